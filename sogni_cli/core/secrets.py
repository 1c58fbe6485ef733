"""The one redactor: every secret the process knows (the resolved API key) is replaced by ``***`` in any
text that leaves it through an error line, a log, a run record or a summary.

Settings register the key when they resolve it; ``__main__`` also registers keys found in the
environment and on the command line before anything runs, so even early errors are clean.
"""

from __future__ import annotations

import threading
from typing import Any

MIN_LENGTH = 8  # shorter strings would blank out ordinary words (keys that short are refused where they are set)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register(secret: str | None) -> None:
    global _secrets
    if not secret or len(secret) < MIN_LENGTH:
        return
    forms = {secret, repr(secret)[1:-1], secret.encode("utf-8", "backslashreplace").decode("ascii", "replace")}
    with _lock:
        _secrets = tuple(sorted({*_secrets, *(f for f in forms if len(f) >= MIN_LENGTH)}, key=len, reverse=True))


def known() -> tuple[str, ...]:
    return _secrets


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first)."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def redact_obj(obj: Any) -> Any:
    """A copy of JSON-like data with every string redacted."""
    if not _secrets:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


def clear() -> None:
    """Forget every secret (tests run many commands in one process)."""
    global _secrets
    with _lock:
        _secrets = ()
