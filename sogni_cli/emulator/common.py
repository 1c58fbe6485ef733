"""Small helpers shared by the emulator modules."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import uuid
from typing import Any


class ApiFailure(Exception):
    """An error answer. ``envelope`` is ``"openai"`` or ``"sogni"`` (``None``: the route's own)."""

    def __init__(self, status: int, message: str, *, code: Any = None, type: str | None = None,
                 details: Any = None, envelope: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.details = details
        self.envelope = envelope
        self.headers = headers or {}


def openai_error(message: str, *, type: str = "invalid_request_error", code: Any = "invalid_parameter",
                 param: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "type": type, "code": code}
    if param is not None:
        err["param"] = param
    return {"error": err}


def sogni_error(message: str, code: Any, details: Any = None, retry_after: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "error", "message": message, "errorCode": code}
    if details is not None:
        body["details"] = details
    if retry_after is not None:
        body["retryAfter"] = retry_after
    return body


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_iso(text: str) -> float | None:
    """Seconds since the epoch for an ISO 8601 time (``Z`` or an offset); None when it is not one."""
    try:
        return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


def find_data_uri(value: Any, path: str = "") -> str | None:
    """The path (``a.b[2]``) of the first ``data:`` URI inside ``value`` (the routes that refuse them), or None."""
    if isinstance(value, str):
        return path if value.strip().lower().startswith("data:") else None
    if isinstance(value, dict):
        for k, v in value.items():
            hit = find_data_uri(v, f"{path}.{k}" if path else str(k))
            if hit:
                return hit
    if isinstance(value, list):
        for i, v in enumerate(value):
            hit = find_data_uri(v, f"{path}[{i}]")
            if hit:
                return hit
    return None
