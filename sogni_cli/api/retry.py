"""The one retry policy: which failures are tried again, how long to wait, and what may not be resent.

Every request the CLI sends (API calls, presigned uploads, media downloads) follows these rules; the numbers
live here and nowhere else.

- **What is retried.** A failure is retried at most ``--max-retries`` times. Which failures depend on what a
  second copy of the request could do (:func:`classify`):

  * ``READ`` (GET, HEAD, PUT of the same bytes, a chat answer without hosted tools): connection errors,
    timeouts, a body cut short, and :data:`RETRY_STATUSES`;
  * ``KEYED`` (routes that honour ``Idempotency-Key`` or repeat harmlessly: workflow start and reseed, chat
    runs, cost confirmations, cancels): the same failures, with the same key on every copy, so the API
    answers a repeat with what it already did;
  * ``PAID`` (chat with hosted tools, tool execution, and any other POST): only failures after which the
    API cannot have acted: a connection that was never made, a 429, a 503 that says when to come back.
    Anything else is reported, not resent (:class:`NotResent`, exit 5).

- **How long to wait.** ``retry-after-ms``, a body ``retryAfter``, or ``Retry-After`` (seconds or an HTTP
  date), capped at :data:`MAX_RETRY_AFTER`; otherwise exponential backoff from :data:`INITIAL_RETRY_DELAY`
  to :data:`MAX_RETRY_DELAY` less up to 25 % jitter.

- **A busy account.** A 409 saying the account has too many active workflows is never resent blindly: the
  client waits, polling the account's workflows, until one finishes (bounded by ``--timeout``), then
  resends with the same key. Each 409 and 429 is reported to ``ClientConfig.on_limited`` as a
  :class:`Limited` signal, so a caller running many jobs can lower its concurrency;
  :class:`ConcurrencyLimited` is raised when no slot frees up in time (or when the caller asked not to wait).
"""

from __future__ import annotations

import email.utils
import enum
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..core.config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_READ_TIMEOUT
from ..core.errors import ApiError, ExitCode, UnavailableError

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
JITTER = 0.25
MAX_RETRY_AFTER = 60.0
SLOT_POLL_INITIAL = 1.0  # first look at the account's workflows while waiting for a slot
SLOT_POLL_MAX = 10.0
SLOT_LIST_LIMIT = 100  # workflows read per look (the newest; active ones are among them)
ACTIVE_STATUSES = frozenset({"queued", "running", "pending", "starting", "in_progress"})

WORKFLOWS = "/v1/creative-agent/workflows"
CHAT = "/v1/chat/completions"


class Safety(enum.Enum):
    READ = "read"
    KEYED = "keyed"
    PAID = "paid"


def _hosted_chat(body: Any) -> bool:
    """A chat body in which the API may run Sogni's tools itself (and so start paid media work): Sogni's tools
    are offered unless ``sogni_tools`` is false, and run by the API unless ``sogni_tool_execution`` is false."""
    if not isinstance(body, dict):
        return True  # unknown: assume the worst
    tools = body.get("sogni_tools", True)
    if tools is False or (isinstance(tools, str) and tools.strip().lower() in ("none", "off", "no", "false")):
        return False
    return body.get("sogni_tool_execution") is not False


def classify(method: str, path: str, body: Any = None) -> Safety:
    """What a second copy of this request could do (see the module docstring)."""
    method = method.upper()
    if method in ("GET", "HEAD", "PUT", "OPTIONS"):
        return Safety.READ
    path = "/" + path.split("?", 1)[0].strip("/")
    if path == CHAT:
        return Safety.PAID if _hosted_chat(body) else Safety.READ
    if path == WORKFLOWS or path == "/v1/chat/runs":
        return Safety.KEYED
    if path.startswith((WORKFLOWS + "/", "/v1/chat/runs/")) and path.rsplit("/", 1)[-1] in (
            "reseed", "confirm-cost", "cancel"):
        return Safety.KEYED
    return Safety.PAID


def parse_retry_after(headers: Any, body: Any = None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, a body ``retryAfter`` or ``Retry-After`` (seconds or an HTTP
    date), uncapped; None when none is given (or it is unreadable)."""
    value = None
    ms = headers.get("retry-after-ms") if headers is not None else None
    if ms:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = None
    if value is None and isinstance(body, dict):
        b = body.get("retryAfter", body.get("retry_after"))
        if isinstance(body.get("error"), dict):
            b = b if b is not None else body["error"].get("retryAfter", body["error"].get("retry_after"))
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            value = float(b)
    if value is None and headers is not None and headers.get("retry-after"):
        ra = headers.get("retry-after").strip()
        try:
            value = float(ra)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(ra)
                value = when.timestamp() - (time.time() if now is None else now)
            except (TypeError, ValueError, IndexError, OverflowError):
                value = None
    if value is None or not math.isfinite(value):
        return None
    return max(0.0, value)


def backoff_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff from 0.5 s to 8 s with up to 25% jitter (attempt counts from 0)."""
    delay = min(INITIAL_RETRY_DELAY * (2 ** attempt), MAX_RETRY_DELAY)
    return delay * (1 - JITTER * rand())


def retry_delay(attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``attempt + 1``: the server's word (capped), else backoff."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    return backoff_delay(attempt, rand)


def may_resend(safety: Safety, *, status: int | None = None, connected: bool = True,
               retry_after: float | None = None) -> bool:
    """Whether this failure may be retried for a request of this ``safety`` (retries left aside).

    ``status`` is the HTTP status of an error answer (None for a transport failure); ``connected`` says
    whether the request could have reached the server (False: the connection was never made)."""
    if status is None:
        return safety is not Safety.PAID or not connected
    if safety is Safety.PAID:
        return status == 429 or (status == 503 and retry_after is not None)
    return status in RETRY_STATUSES


# ------------------------------------------------------------------------------------ a busy account


_LIMIT_WORDS = ("too many active", "active workflow", "concurrency limit", "concurrent workflow",
                "concurrency_limit", "too_many_active")


def _num(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value)


def concurrency_details(status: int, body: Any) -> tuple[int | None, int | None] | None:
    """(active workflows, limit) when this answer is the account's concurrency limit, else None."""
    if status != 409 or not isinstance(body, dict):
        return None
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    text = " ".join(str(v) for v in (err.get("message"), err.get("code"), err.get("errorCode"), err.get("type"),
                                     body.get("message"), body.get("errorCode")) if v is not None).lower()
    if not any(w in text for w in _LIMIT_WORDS):
        return None
    details = err.get("details") if isinstance(err.get("details"), dict) else body.get("details")
    details = details if isinstance(details, dict) else {}
    active = limit = None
    for k in ("activeWorkflows", "active_workflows", "active", "activeCount"):
        active = active if active is not None else _num(details.get(k))
    for k in ("limit", "maxActiveWorkflows", "max_active_workflows", "maxActive", "max_active"):
        limit = limit if limit is not None else _num(details.get(k))
    return active, limit


@dataclass(frozen=True)
class Limited:
    """A 409 (account concurrency limit) or 429 (rate limit) seen by the sender: the signal a caller that
    runs many jobs uses to lower its concurrency. ``waited`` is the seconds the sender then waits."""

    kind: str  # "concurrency" or "rate"
    status: int
    method: str
    path: str
    retry_after: float | None = None
    active: int | None = None
    limit: int | None = None
    waited: float | None = None


class ConcurrencyLimited(ApiError):
    """The account's limit on active workflows refused a start and no slot freed up in time (or the client
    was told not to wait). The API did not act on the request: resending it later, with the same
    ``idempotency_key``, is safe."""

    def __init__(self, message: str, *, active: int | None = None, limit: int | None = None,
                 idempotency_key: str | None = None, hint: str | None = None, retry_after: float | None = None):
        super().__init__(message, status=409, hint=hint, retry_after=retry_after)
        self.exit_code = ExitCode.UNAVAILABLE
        self.active = active
        self.limit = limit
        self.idempotency_key = idempotency_key


class NotResent(UnavailableError):
    """A request that may have started paid work failed in a way after which the API may have acted; it was
    not sent again, so nothing is paid twice (exit 5). ``idempotency_key`` is the key it carried."""

    def __init__(self, message: str, hint: str | None = None, *, idempotency_key: str | None = None,
                 status: int | None = None, exit_code: ExitCode | int | None = None):
        super().__init__(message, hint, exit_code=exit_code)
        self.idempotency_key = idempotency_key
        self.status = status


def count_active(workflows: list[dict[str, Any]]) -> int:
    return sum(1 for w in workflows if isinstance(w, dict) and str(w.get("status", "")).lower() in ACTIVE_STATUSES)


__all__ = [
    "ACTIVE_STATUSES", "ConcurrencyLimited", "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_MAX_RETRIES",
    "DEFAULT_READ_TIMEOUT", "INITIAL_RETRY_DELAY", "Limited", "MAX_RETRY_AFTER", "MAX_RETRY_DELAY",
    "NotResent", "RETRY_STATUSES", "Safety", "backoff_delay", "classify", "concurrency_details",
    "count_active", "may_resend", "parse_retry_after", "retry_delay",
]
