"""Real media files made on the fly for emulator artifacts.

Images are drawn with Pillow (PNG, JPEG or WebP at the requested size with the prompt written on
them), audio is a WAV tone made with :mod:`wave`, videos are a clearly labelled stand-in (a valid
``ftyp`` box, an empty ``moov`` box and a ``free`` box saying so) and 3D models a minimal GLB container.
Everything is deterministic for a given spec.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import textwrap
import wave
from typing import Any

IMAGE_FORMATS = {
    "png": ("PNG", "image/png", "png"),
    "jpg": ("JPEG", "image/jpeg", "jpg"),
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "webp": ("WEBP", "image/webp", "webp"),
}
VIDEO_FORMATS = {"mp4": ("video/mp4", "mp4"), "mov": ("video/quicktime", "mov")}
AUDIO_MAX_SECONDS = 30.0
AUDIO_RATE = 8000


def image_format(fmt: Any) -> tuple[str, str, str]:
    """(Pillow format, mime type, extension) for an ``outputFormat`` value (PNG by default)."""
    return IMAGE_FORMATS.get(str(fmt).lower() if fmt else "png", IMAGE_FORMATS["png"])


def _seed(spec: dict[str, Any]) -> bytes:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).digest()


def make_image(spec: dict[str, Any]) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    width = int(spec.get("width") or 1024)
    height = int(spec.get("height") or 1024)
    pil_format, _, _ = image_format(spec.get("format"))
    seed = _seed(spec)
    bg = (40 + seed[0] % 160, 40 + seed[1] % 160, 40 + seed[2] % 160)
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    accent = (255 - bg[0], 255 - bg[1], 255 - bg[2])
    step = max(8, min(width, height) // 8)
    for i in range(0, max(width, height), step * 2):
        draw.line([(i, 0), (0, i)], fill=accent, width=max(1, step // 16))
    font = ImageFont.load_default()
    lines = ["Sogni emulator", f"{width}x{height} {pil_format}"]
    lines += textwrap.wrap(str(spec.get("prompt") or ""), width=max(10, width // 7))[:12]
    y = 6
    for line in lines:
        draw.text((7, y + 1), line, fill=(0, 0, 0), font=font)
        draw.text((6, y), line, fill=(255, 255, 255), font=font)
        y += 14
        if y > height - 12:
            break
    buf = io.BytesIO()
    if pil_format == "JPEG":
        img.save(buf, format="JPEG", quality=85)
    elif pil_format == "WEBP":
        img.save(buf, format="WEBP", quality=80)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def make_audio(spec: dict[str, Any]) -> bytes:
    seconds = float(spec.get("duration") or 5.0)
    seconds = max(0.5, min(AUDIO_MAX_SECONDS, seconds))
    seed = _seed(spec)
    freq = 220.0 + (seed[0] % 24) * 20.0
    frames = int(seconds * AUDIO_RATE)
    amp = 8000
    two_pi_f = 2 * math.pi * freq / AUDIO_RATE
    samples = bytearray()
    pack = struct.Struct("<h").pack
    for n in range(frames):
        samples += pack(int(amp * math.sin(two_pi_f * n)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(AUDIO_RATE)
        w.writeframes(bytes(samples))
    return buf.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def make_video(spec: dict[str, Any]) -> bytes:
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
    text = (
        "SOGNI EMULATOR STAND-IN VIDEO. This is not a playable movie: the local emulator writes this "
        "placeholder instead of rendering video.\n"
        f"prompt: {spec.get('prompt') or ''}\n"
        f"size: {spec.get('width')}x{spec.get('height')}\n"
        f"duration: {spec.get('duration')} s\n"
        f"artifact: {spec.get('id') or ''}\n"
    )
    moov = _box(b"moov", _box(b"mvhd", bytes(100)))  # an (empty) index, so the file is a whole MP4
    return ftyp + moov + _box(b"free", text.encode("utf-8"))


def make_model(spec: dict[str, Any]) -> bytes:
    doc = json.dumps({"asset": {"version": "2.0", "generator": "sogni emulator stand-in"},
                      "extras": {"prompt": spec.get("prompt") or ""}}).encode()
    doc += b" " * (-len(doc) % 4)
    chunk = struct.pack("<I", len(doc)) + b"JSON" + doc
    return b"glTF" + struct.pack("<II", 2, 12 + len(chunk)) + chunk


def make(spec: dict[str, Any]) -> bytes:
    kind = spec.get("kind")
    if kind == "image":
        return make_image(spec)
    if kind == "audio":
        return make_audio(spec)
    if kind == "video":
        return make_video(spec)
    if kind == "model":
        return make_model(spec)
    return json.dumps(spec, sort_keys=True).encode()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """Parse a single ``Range: bytes=`` header.

    Returns ``(start, end)`` inclusive, ``None`` when the header is absent or not a byte range we
    honour (serve the whole body), or ``"unsatisfiable"``.
    """
    if not header:
        return None
    header = header.strip()
    if not header.lower().startswith("bytes="):
        return None
    spec = header[6:].split(",")[0].strip()
    if "-" not in spec:
        return None
    first, _, last = spec.partition("-")
    try:
        if first == "":
            if last == "":
                return None
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1) if size else "unsatisfiable"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return start, min(end, size - 1)
