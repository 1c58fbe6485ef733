"""Keep logs and debug output readable and safe: shorten inline media, hide secrets and keys."""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import unquote_to_bytes

_ELLIPSIS = "\u2026"


def _decoded_len_base64(payload: str) -> int:
    """Byte length of a base64 payload without decoding it (whitespace and padding ignored)."""
    stripped = payload.strip()
    if " " in stripped or "\n" in stripped or "\r" in stripped or "\t" in stripped:
        stripped = "".join(stripped.split())
    n = len(stripped.rstrip("="))
    return (n * 3) // 4


def shorten_data_uri(value: str) -> str:
    """``data:image/jpeg;base64,/9j/...`` → ``data:image/jpeg;base64,…(N bytes)``; other strings unchanged."""
    if not value.startswith("data:"):
        return value
    comma = value.find(",")
    if comma < 0:
        return value
    header = value[5:comma]
    payload = value[comma + 1:]
    params = header.split(";")
    media_type = params[0].strip()
    is_base64 = any(p.strip().lower() == "base64" for p in params[1:])
    if is_base64:
        size = _decoded_len_base64(payload)
        return f"data:{media_type};base64,{_ELLIPSIS}({size} bytes)"
    size = len(unquote_to_bytes(payload))
    return f"data:{media_type},{_ELLIPSIS}({size} bytes)"


def shorten_data_uris(obj: Any) -> Any:
    """A deep copy of JSON-like ``obj`` with every ``data:`` URI string shortened (media type kept)."""
    if isinstance(obj, str):
        return shorten_data_uri(obj)
    if isinstance(obj, dict):
        return {k: shorten_data_uris(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [shorten_data_uris(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(shorten_data_uris(v) for v in obj)
    return obj


def redact_secret(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``***``."""
    # Longest first, so a secret that contains another is hidden whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def mask_key(key: str | None) -> str:
    """``sk-…abcd``: first 3 characters, an ellipsis, the last 4.

    Keys shorter than 12 characters show only ``…`` and the last 4; keys shorter than 8 show nothing
    but the ellipsis (the last 4 would be half the key or more).
    """
    if not key:
        return ""
    if len(key) >= 12:
        return f"{key[:3]}{_ELLIPSIS}{key[-4:]}"
    if len(key) >= 8:
        return f"{_ELLIPSIS}{key[-4:]}"
    return _ELLIPSIS
