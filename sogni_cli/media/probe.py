"""Checks that a local media file is whole before it is uploaded (and paid for).

Images are decoded with Pillow (JPEG at 1/8 scale: every byte of the compressed data is still read), with
the pixel limit checked from the header before anything is decoded. Audio and video files are probed,
not decoded: their container structure is walked (WAV/AVI chunks, MP4/MOV/M4A boxes, Matroska/WebM
elements, Ogg pages, FLAC metadata blocks, MP3/AAC frames) and everything it announces must be in the
file: a file cut short, noise after a valid signature, or impossible header values are refused. Each
problem is a :class:`~sogni_cli.core.errors.UsageError` (exit 2).

Standard library only, except Pillow for images (imported when needed).
"""

from __future__ import annotations

import mmap
import os
import struct
import warnings
from typing import Callable

from ..core.errors import UsageError

#: Video frames larger than this on either side are refused (no encoder makes them; a header that says so
#: is corrupt or hostile).
MAX_VIDEO_SIDE = 16384
_RETRY_HINT = "Re-export or re-download the file and try again."


class _Bad(Exception):
    """Why the file is not whole (turned into a UsageError with the file's name)."""


def check_media(path: str, kind: str, mime: str, *, max_pixels: int) -> None:
    """Refuse (UsageError) a ``kind`` file of type ``mime`` (as sniffed) that is truncated, corrupt or too
    large to decode. Unknown types are left to the server."""
    if kind == "image":
        _check_image(path, mime, max_pixels)
        return
    probe = _PROBES.get(mime)
    if probe is not None:
        _probe_or_raise(path, probe)


# ------------------------------------------------------------------------------------------ images

_PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP",
                "image/tiff": "TIFF", "image/bmp": "BMP"}


def _check_image(path: str, mime: str, max_pixels: int) -> None:
    fmt = _PIL_FORMATS.get(mime)
    if fmt is None:  # HEIF/AVIF: a box structure like MP4
        _probe_or_raise(path, _probe_isobmff_image)
        return
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=[fmt, "MPO"] if fmt == "JPEG" else [fmt]) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise UsageError(f"{path} has too many pixels ({w}x{h}); the limit is "
                                     f"{max_pixels // 1_000_000} megapixels.", "Scale the image down first.")
                if im.format in ("JPEG", "MPO"):
                    im.draft(im.mode if im.mode in ("L", "RGB") else "RGB", (max(1, w // 8), max(1, h // 8)))
                im.load()
    except UsageError:
        raise
    except UnidentifiedImageError:
        raise UsageError(f"{path} is corrupt (its {fmt} header cannot be read).", _RETRY_HINT) from None
    except Image.DecompressionBombError:
        raise UsageError(f"{path} has too many pixels; the limit is {max_pixels // 1_000_000} megapixels.",
                         "Scale the image down first.") from None
    except MemoryError:
        raise UsageError(f"{path} is too large to decode.") from None
    except (OSError, SyntaxError, EOFError, ValueError, IndexError, TypeError, ZeroDivisionError,
            struct.error) as exc:
        raise UsageError(f"{path} is truncated or corrupt ({exc}).", _RETRY_HINT) from None


def _probe_or_raise(path: str, probe: Callable[[object, int], None]) -> None:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise _Bad("it is empty")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                probe(data, size)
    except _Bad as exc:
        raise UsageError(f"{path} is truncated or corrupt ({exc}).", _RETRY_HINT) from None
    except (IndexError, struct.error):
        raise UsageError(f"{path} is truncated or corrupt (a header is cut short).", _RETRY_HINT) from None
    except (ValueError, OSError) as exc:
        raise UsageError(f"Cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


# ------------------------------------------------------------------------------------------ RIFF

def _riff_chunks(data, size: int, start: int):
    """(id, offset of the body, body size) for each chunk from ``start``; the last one may be cut short."""
    pos = start
    while pos + 8 <= size:
        cid = bytes(data[pos:pos + 4])
        n = struct.unpack_from("<I", data, pos + 4)[0]
        yield cid, pos + 8, n
        pos += 8 + n + (n & 1)


def _riff_size_ok(data, size: int) -> None:
    declared = struct.unpack_from("<I", data, 4)[0]
    if declared not in (0, 0xFFFFFFFF) and declared + 8 > size:
        raise _Bad(f"it announces {declared + 8} bytes but has {size}")


def _probe_wav(data, size: int) -> None:
    if size < 12:
        raise _Bad("no WAVE header")
    _riff_size_ok(data, size)
    fmt = False
    for cid, off, n in _riff_chunks(data, size, 12):
        if cid == b"fmt ":
            if n < 16 or off + 16 > size:
                raise _Bad("its format chunk is cut short")
            tag, channels, rate, _byte_rate, align, _bits = struct.unpack_from("<HHIIHH", data, off)
            if tag == 0 or not 1 <= channels <= 64 or not 1 <= rate <= 1_536_000 or align == 0:
                raise _Bad("its format chunk holds impossible values")
            fmt = True
        elif cid == b"data":
            if not fmt:
                raise _Bad("its audio comes before its format chunk")
            if n not in (0, 0xFFFFFFFF) and off + n > size:
                raise _Bad(f"its audio data announces {n} bytes but has {size - off}")
            return
        elif off + n > size:
            raise _Bad(f"its {cid.decode('latin-1')!r} chunk is cut short")
    raise _Bad("no audio data chunk" if fmt else "no format chunk")


def _probe_avi(data, size: int) -> None:
    _riff_size_ok(data, size)
    if not any(cid == b"LIST" and bytes(data[off:off + 4]) == b"hdrl" for cid, off, _n in _riff_chunks(data, size, 12)):
        raise _Bad("no AVI header list")


# ------------------------------------------------------------------------------------------ ISO base media

def _boxes(data, start: int, end: int, size: int):
    """(type, offset of the body, end of the box) for each box in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        n, btype = struct.unpack_from(">I4s", data, pos)
        head = 8
        if n == 1:
            if pos + 16 > end:
                raise _Bad("a box header is cut short")
            n = struct.unpack_from(">Q", data, pos + 8)[0]
            head = 16
        elif n == 0:
            n = end - pos
        if n < head:
            raise _Bad(f"a box has an impossible size ({n})")
        if not all(32 <= c < 127 for c in btype):
            raise _Bad("a box has no valid type")
        if pos + n > end:
            raise _Bad(f"its {btype.decode('latin-1')!r} box announces {n} bytes but the file ends "
                       f"{end - pos} bytes after its start")
        yield btype, pos + head, pos + n
        pos += n
    if pos != end and end - pos < 8:
        raise _Bad("it ends inside a box header")


def _check_tracks(data, moov_start: int, moov_end: int, size: int) -> None:
    for btype, off, end in _boxes(data, moov_start, moov_end, size):
        if btype != b"trak":
            continue
        for t2, o2, e2 in _boxes(data, off, end, size):
            if t2 != b"tkhd" or e2 - o2 < 84:
                continue
            version = data[o2]
            at = o2 + (88 if version == 1 else 76)
            if at + 8 > e2:
                continue
            w, h = struct.unpack_from(">II", data, at)
            w, h = w >> 16, h >> 16
            if w > MAX_VIDEO_SIDE or h > MAX_VIDEO_SIDE:
                raise _Bad(f"a track is {w}x{h} pixels, more than {MAX_VIDEO_SIDE} on a side")


def _probe_isobmff(data, size: int) -> None:
    seen = set()
    for btype, off, end in _boxes(data, 0, size, size):
        seen.add(btype)
        if btype == b"moov":
            _check_tracks(data, off, end, size)
    if b"moov" not in seen:
        raise _Bad("no 'moov' box (the index of its media)")


def _probe_isobmff_image(data, size: int) -> None:
    seen = {btype for btype, _o, _e in _boxes(data, 0, size, size)}
    if b"meta" not in seen:
        raise _Bad("no 'meta' box")


# ------------------------------------------------------------------------------------------ Matroska

def _vint(data, pos: int, size: int, keep_marker: bool) -> tuple[int, int]:
    if pos >= size:
        raise _Bad("an element header is cut short")
    first = data[pos]
    if first == 0:
        raise _Bad("an element has an invalid length")
    length = 8 - first.bit_length() + 1
    if pos + length > size:
        raise _Bad("an element header is cut short")
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for i in range(1, length):
        value = (value << 8) | data[pos + i]
    return value, length


def _probe_matroska(data, size: int) -> None:
    eid, n = _vint(data, 0, size, True)
    if eid != 0x1A45DFA3:
        raise _Bad("no EBML header")
    hsize, m = _vint(data, n, size, False)
    pos = n + m + hsize
    if pos > size:
        raise _Bad("its EBML header is cut short")
    eid, n = _vint(data, pos, size, True)
    if eid != 0x18538067:
        raise _Bad("no segment after the EBML header")
    ssize, m = _vint(data, pos + n, size, False)
    unknown = ssize == (1 << (7 * m)) - 1
    if not unknown and pos + n + m + ssize > size:
        raise _Bad(f"its segment announces {ssize} bytes but the file has {size - pos - n - m}")


# ------------------------------------------------------------------------------------------ Ogg, FLAC

def _probe_ogg(data, size: int) -> None:
    pos = 0
    last_flags = 0
    pages = 0
    while pos < size:
        if size - pos < 27 or bytes(data[pos:pos + 4]) != b"OggS" or data[pos + 4] != 0:
            raise _Bad(f"no Ogg page at byte {pos}")
        nseg = data[pos + 26]
        if pos + 27 + nseg > size:
            raise _Bad("a page header is cut short")
        body = sum(data[pos + 27:pos + 27 + nseg])
        end = pos + 27 + nseg + body
        if end > size:
            raise _Bad(f"a page announces {body} bytes but the file ends before them")
        last_flags = data[pos + 5]
        pages += 1
        pos = end
    if not last_flags & 0x04:
        raise _Bad("its last page is not the end of the stream")


def _probe_flac(data, size: int) -> None:
    pos = 4
    first = True
    while True:
        if pos + 4 > size:
            raise _Bad("its metadata is cut short")
        head = data[pos]
        btype, n = head & 0x7F, int.from_bytes(data[pos + 1:pos + 4], "big")
        if first:
            if btype != 0 or n != 34 or pos + 4 + 34 > size:
                raise _Bad("no stream information block")
            rate = int.from_bytes(data[pos + 14:pos + 17], "big") >> 4
            if rate == 0:
                raise _Bad("its sample rate is zero")
            first = False
        if btype == 127:
            raise _Bad("an invalid metadata block")
        pos += 4 + n
        if pos > size:
            raise _Bad("a metadata block is cut short")
        if head & 0x80:
            break
    if pos + 2 > size or data[pos] != 0xFF or (data[pos + 1] & 0xFE) != 0xF8:
        raise _Bad("no audio frame after its metadata")


# ------------------------------------------------------------------------------------------ MP3, AAC

_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_MP3_KBPS = {
    (3, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (3, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (3, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_KBPS[(2, 1)] = _MP3_KBPS[(2, 2)]
for _layer in (1, 2, 3):
    _MP3_KBPS[(0, _layer)] = _MP3_KBPS[(2, _layer)]


def _mp3_frame(data, pos: int) -> int:
    """The length of the MPEG audio frame at ``pos``, or 0 when there is none."""
    b1, b2 = data[pos + 1], data[pos + 2]
    if data[pos] != 0xFF or (b1 & 0xE0) != 0xE0:
        return 0
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    rate_i, kbps_i = (b2 >> 2) & 3, b2 >> 4
    if version == 1 or layer == 0 or rate_i == 3 or kbps_i in (0, 15):
        return 0
    rate = _MP3_RATES[version][rate_i]
    kbps = _MP3_KBPS[(version, layer)][kbps_i]
    pad = (b2 >> 1) & 1
    if layer == 3:  # layer I
        return (12 * kbps * 1000 // rate + pad) * 4
    per = 144 if (layer == 2 or version == 3) else 72
    return per * kbps * 1000 // rate + pad


def _skip_id3(data, size: int) -> int:
    pos = 0
    while pos + 10 <= size and bytes(data[pos:pos + 3]) == b"ID3":
        flags = data[pos + 5]
        n = 0
        for i in range(6, 10):
            if data[pos + i] & 0x80:
                raise _Bad("its ID3 tag has an invalid size")
            n = (n << 7) | data[pos + i]
        pos += 10 + n + (10 if flags & 0x10 else 0)
        if pos > size:
            raise _Bad("its ID3 tag announces more bytes than the file has")
    return pos


def _audio_end(data, size: int) -> int:
    """Where the frames end: before an ID3v1 or APE tag at the end of the file."""
    end = size
    if end >= 128 and bytes(data[end - 128:end - 125]) == b"TAG":
        end -= 128
    if end >= 32 and bytes(data[end - 32:end - 24]) == b"APETAGEX":
        n = struct.unpack_from("<I", data, end - 20)[0]
        end = max(0, end - n - (32 if data[end - 9] & 0x80 else 0))
    return end


def _walk_frames(data, size: int, frame_len: Callable[[object, int], int], what: str) -> None:
    pos = _skip_id3(data, size)
    end = _audio_end(data, size)
    while pos < end and pos < 65536 and data[pos] == 0:  # padding some encoders leave after the tag
        pos += 1
    frames = 0
    while pos + 4 <= end:
        n = frame_len(data, pos)
        if n <= 0:
            if frames == 0:
                raise _Bad(f"no {what} frame where its audio starts")
            raise _Bad(f"noise instead of a {what} frame at byte {pos}")
        if pos + n > end:
            raise _Bad(f"its last {what} frame is cut short")
        pos += n
        frames += 1
    if frames == 0:
        raise _Bad(f"no {what} frame")


def _probe_mp3(data, size: int) -> None:
    _walk_frames(data, size, _mp3_frame, "MPEG audio")


def _adts_frame(data, pos: int) -> int:
    if pos + 7 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xF6) != 0xF0:
        return 0
    n = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
    return n if n >= 7 else 0


def _probe_aac(data, size: int) -> None:
    _walk_frames(data, size, _adts_frame, "AAC")


_PROBES: dict[str, Callable[[object, int], None]] = {
    "audio/wav": _probe_wav,
    "video/x-msvideo": _probe_avi,
    "audio/mp4": _probe_isobmff,
    "video/mp4": _probe_isobmff,
    "video/quicktime": _probe_isobmff,
    "video/3gpp": _probe_isobmff,
    "video/webm": _probe_matroska,
    "video/x-matroska": _probe_matroska,
    "audio/ogg": _probe_ogg,
    "video/ogg": _probe_ogg,
    "audio/flac": _probe_flac,
    "audio/mpeg": _probe_mp3,
    "audio/aac": _probe_aac,
}
