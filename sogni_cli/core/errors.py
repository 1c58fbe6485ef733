"""Error types and exit codes (contract §4).

Every layer raises a :class:`SogniError` (or a subclass); ``__main__.main`` is the one place that turns
them into an ``Error:``/``Hint:`` pair on stderr and an exit code. Nothing else calls ``sys.exit``.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    AUTH = 3
    REJECTED = 4
    UNAVAILABLE = 5
    TIMEOUT = 6
    GENERATION_FAILED = 7
    INCOMPLETE = 8
    BILLING = 9
    INTERRUPTED = 130
    TERMINATED = 143


#: How ``--help`` names each exit code (1, a bug, and 143, SIGTERM, are left out of that summary).
EXIT_WORDS: dict[ExitCode, str] = {
    ExitCode.OK: "ok", ExitCode.USAGE: "usage", ExitCode.AUTH: "auth", ExitCode.REJECTED: "rejected",
    ExitCode.UNAVAILABLE: "unavailable", ExitCode.TIMEOUT: "timeout", ExitCode.GENERATION_FAILED: "generation failed",
    ExitCode.INCOMPLETE: "incomplete", ExitCode.BILLING: "billing", ExitCode.INTERRUPTED: "interrupted",
}


def exit_codes_text(width: int = 73) -> str:
    """``Exit codes: 0 ok, 2 usage, …`` wrapped to ``width``."""
    import textwrap

    words = ", ".join(f"{int(code)} {word}" for code, word in EXIT_WORDS.items())
    return "\n".join(textwrap.wrap(f"Exit codes: {words}.", width))


class ExitStatus(Exception):
    """End the command with ``code``: what the user needs to know was already written (a partial download,
    a run that ended badly and said so)."""

    def __init__(self, code: ExitCode | int):
        super().__init__(int(code))
        self.code = int(code)


class StdoutClosed(Exception):
    """Standard output's reader went away (``sogni chat … | head -1``); not an OSError, so the command-line
    framework leaves it to the exit-code funnel."""


class DryRunDone(Exception):
    """Raised after ``--dry-run`` printed the request it would have sent (exit 0)."""


class SogniError(Exception):
    """An error with a message for the user, an optional hint and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str | None = None, *, exit_code: ExitCode | int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = ExitCode(exit_code)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class UsageError(SogniError):
    """Bad flag, bad value, unreadable or invalid input file, invalid recipe (exit 2)."""

    exit_code = ExitCode.USAGE


class AuthError(SogniError):
    exit_code = ExitCode.AUTH


class RejectedError(SogniError):
    exit_code = ExitCode.REJECTED


class UnavailableError(SogniError):
    exit_code = ExitCode.UNAVAILABLE


class TimeoutError_(SogniError):
    exit_code = ExitCode.TIMEOUT


class GenerationFailed(SogniError):
    exit_code = ExitCode.GENERATION_FAILED


class IncompleteError(SogniError):
    exit_code = ExitCode.INCOMPLETE


class BillingError(SogniError):
    exit_code = ExitCode.BILLING


class StreamError(UnavailableError):
    """A stream that ended early or broke after content was delivered (exit 5)."""


class MalformedResponse(UnavailableError):
    """The server sent data the CLI refuses to use (an event over the size limit, JSON nested too deeply):
    exit 5, and never worked around (no fallback to another route)."""


BILLING_CODES = {4078, 4079, 4080, 4081, 123, 149}
BILLING_TYPES = {"insufficient_balance", "subscription_unavailable", "insufficient_credit", "insufficient_quota"}


class ApiError(SogniError):
    """An error answer from the API, from either envelope, mapped to the contract's exit code."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: Any = None,
        type: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, hint, exit_code=exit_code_for(status, code, type))
        self.status = status
        self.code = code
        self.type = type
        self.retry_after = retry_after
        self.details: dict[str, Any] | None = None


def _int_code(code: Any) -> int | None:
    """An error code as an integer (``4078``, ``"4078"``), or None for anything else (objects, lists, floats)."""
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.lstrip("-").isdigit() and len(code) <= 20:
        return int(code)
    return None


def exit_code_for(status: Any, code: Any = None, type: Any = None) -> ExitCode:
    """The exit code for an error answer; ``code`` and ``type`` may be any JSON value (only numbers and strings
    mean something)."""
    if isinstance(status, bool) or not isinstance(status, int):
        status = None
    icode = _int_code(code)
    if (status == 402 or icode in BILLING_CODES or (isinstance(type, str) and type in BILLING_TYPES)
            or (isinstance(code, str) and code in BILLING_TYPES)):
        return ExitCode.BILLING
    if status in (401, 403):
        return ExitCode.AUTH
    if status is None:
        return ExitCode.UNAVAILABLE
    if status in (408,):
        return ExitCode.TIMEOUT
    if 400 <= status < 500 and status != 429:
        return ExitCode.REJECTED
    return ExitCode.UNAVAILABLE


def _text(value: Any) -> str | None:
    """A message-like value as text (None when absent or empty); objects and lists are shortened."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    try:
        import json

        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def parse_error_body(status: int | None, body: Any, text: str = "") -> ApiError:
    """Build an :class:`ApiError` from either error envelope (or a plain body); fields may hold any JSON value."""
    message = None
    code = None
    etype = None
    retry_after = None
    hint = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # OpenAI style
            message = _text(err.get("message"))
            code = err.get("code")
            etype = err.get("type") if isinstance(err.get("type"), str) else None
            sub = err.get("subscription")
            plans = sub.get("requiredPlans") if isinstance(sub, dict) else None
            if isinstance(plans, list) and plans:
                hint = "This needs one of the plans: " + ", ".join(_text(p) or "?" for p in plans)
        elif isinstance(err, str):  # socket style
            etype = err
            message = _text(body.get("error_message")) or _text(body.get("message")) or err
            code = body.get("error_code") or body.get("errorCode")
        if message is None and (body.get("status") == "error" or "errorCode" in body or "message" in body):
            message = _text(body.get("message"))
            code = body.get("errorCode", code)
        ra = body.get("retryAfter", body.get("retry_after"))
        if isinstance(ra, (int, float)) and not isinstance(ra, bool) and math.isfinite(ra) and ra >= 0:
            retry_after = float(ra)
    if not message:
        snippet = " ".join((text or "").split())[:200]
        message = f"HTTP {status}" + (f": {snippet}" if snippet else "") if status else (snippet or "request failed")
    if hint is None:
        if status in (401, 403):
            hint = "Check the API key (SOGNI_API_KEY or `sogni auth login`)."
        elif status == 402 or exit_code_for(status, code, etype) == ExitCode.BILLING:
            hint = "Add credits or change the token type (--token-type spark|sogni)."
        elif status == 429:
            hint = "Rate limited: wait a little, or raise --max-retries."
        elif code == "model_not_found" or etype == "model_not_found" or (
                status == 404 and message and "model" in message.lower()):
            hint = "See the available models with `sogni models`."
    from .term import clean_text

    message = clean_text(message, newlines=False)  # server text: one line, so it cannot forge one of ours
    prefix = f"{status} " if status else ""
    err = ApiError(f"{prefix}{message}".strip() if status else message, status=status, code=code, type=etype,
                   hint=hint, retry_after=retry_after)
    if isinstance(body, dict) and isinstance(body.get("details"), dict):
        err.details = body["details"]  # e.g. what a refused request needed, a fresh cost preview
    return err
