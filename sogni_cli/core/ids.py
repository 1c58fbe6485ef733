"""Random ids: idempotency keys (UUID version 4 text) and short hex ids, from ``os.urandom``.

The standard library's ``uuid`` module imports ``platform`` on start, a couple of milliseconds that every
chat would pay before its request leaves; a version-4 UUID is just 122 random bits in a fixed layout.
"""

from __future__ import annotations

import os


def new_uuid() -> str:
    """A random (version 4, RFC 4122 variant) UUID as text, e.g. ``1b4e28ba-2fa1-4d2c-883f-0016d3cca427``."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_hex(length: int = 32) -> str:
    """``length`` random hex digits."""
    return os.urandom((length + 1) // 2).hex()[:length]
