"""Vision input checks: inline PNG/JPEG ``data:`` URIs, at most 10 MB, longest side at most 1024 px."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from .common import ApiFailure

MAX_IMAGES = 20
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_SIDE = 1024


def bad(message: str, param: str | None = None) -> ApiFailure:
    return ApiFailure(400, message, code="invalid_parameter", type="invalid_request_error", envelope="openai",
                      details={"param": param} if param else None)


def image_info(url: Any, where: str) -> tuple[int, int, str]:
    """Check a vision data URI; returns (width, height, 'png'|'jpeg')."""
    if not isinstance(url, str):
        raise bad(f"{where}.image_url.url must be a string", where)
    m = re.match(r"^data:([\w/+.-]+)((?:;[^,;]+)*);base64,(.*)$", url, re.S)
    if not m:
        raise bad(f"{where}: vision images must be inline PNG or JPEG data: URIs (base64)", where)
    mime = m.group(1).lower()
    if mime not in ("image/png", "image/jpeg", "image/jpg"):
        raise bad(f"{where}: vision supports PNG and JPEG images only (got {mime})", where)
    try:
        raw = base64.b64decode(m.group(3), validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"{where}: invalid base64 image data", where) from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise bad(f"{where}: image is larger than 10 MB", where)
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt = "png"
    elif raw.startswith(b"\xff\xd8\xff"):
        fmt = "jpeg"
    else:
        raise bad(f"{where}: image data is not PNG or JPEG", where)
    if (fmt == "png") != (mime == "image/png"):
        raise bad(f"{where}: declared type {mime} does not match the image data ({fmt})", where)
    dims = _png_size(raw) if fmt == "png" else _jpeg_size(raw)
    if dims is None:
        raise bad(f"{where}: could not read the image size", where)
    if max(dims) > MAX_SIDE:
        raise bad(f"{where}: image is {dims[0]}x{dims[1]}; the longest side must be at most {MAX_SIDE} px", where)
    return dims[0], dims[1], fmt


def _png_size(raw: bytes) -> tuple[int, int] | None:
    if len(raw) < 24 or raw[12:16] != b"IHDR":
        return None
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(raw)
    while i + 4 <= n:
        if raw[i] != 0xFF:
            i += 1
            continue
        marker = raw[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xD9:
            return None
        length = int.from_bytes(raw[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if i + 9 > n:
                return None
            h = int.from_bytes(raw[i + 5:i + 7], "big")
            w = int.from_bytes(raw[i + 7:i + 9], "big")
            return w, h
        i += 2 + length
    return None
