"""Local media inputs: vision images for chat, and media files for tool arguments and uploads.

Vision images (contract §6.1, wire spec §3.4) are opened with Pillow restricted to a format allowlist,
guarded against decompression bombs and truncated files, EXIF-rotated, scaled so the longest side is at
most 1024 px and re-encoded as PNG (when the image has alpha) or JPEG, under 10 MB, as a ``data:`` URI.

Other media files (wire spec §3.5) are recognised by their content (magic bytes), not their name, and
checked against the per-kind size limits before any of their bytes are read in full.

Pillow is imported inside functions only: this module is imported on start-up paths.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import warnings
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from ..core.errors import UsageError

# --- vision images ---------------------------------------------------------------------------------

MAX_VISION_IMAGES = 20
VISION_MAX_SIDE = 1024
VISION_MAX_BYTES = 10 * 1024 * 1024
#: Images above this many pixels are refused (Pillow's decompression-bomb guard, warning and error alike).
MAX_IMAGE_PIXELS = 64_000_000
#: stdin is read into memory; refuse anything larger than this.
MAX_STDIN_BYTES = 256 * 1024 * 1024
#: Pillow format names accepted for vision input (GIF: first frame; MPO: first picture).
VISION_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "MPO")
_SUPPORTED_TEXT = "PNG, JPEG, WebP, GIF, BMP or TIFF"

JPEG_QUALITY = 90
_RETRY_QUALITIES = (80, 70, 60, 50, 40)
_SHRINK_STEP = 0.75
_MIN_SIDE = 16


@dataclass
class VisionImage:
    """A prepared vision image: an inline ``data:`` URI plus what it holds."""

    data_uri: str
    mime: str
    width: int
    height: int
    bytes: int
    source: str

    def content_part(self, detail: str | None = None) -> dict:
        """The OpenAI ``image_url`` content part for this image."""
        image_url: dict = {"url": self.data_uri}
        if detail:
            image_url["detail"] = detail
        return {"type": "image_url", "image_url": image_url}


def to_data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,<data>``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _label(source: str | bytes) -> str:
    if isinstance(source, (bytes, bytearray)):
        return "image data"
    return "stdin" if source == "-" else source


def _read_source(source: str | bytes, stdin: BinaryIO | None) -> tuple[BinaryIO, str]:
    """Open a path (or take stdin / raw bytes) as a binary file object; errors are UsageErrors."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise UsageError("The image data is empty.")
        return io.BytesIO(bytes(source)), "<bytes>"
    if source == "-":
        stream = stdin
        if stream is None:
            stream = getattr(sys.stdin, "buffer", None)
        if stream is None:  # pragma: no cover - no usable stdin at all
            raise UsageError("No image data on stdin.", "Pipe an image in, e.g. `sogni chat -i - 'describe' < photo.jpg`.")
        data = stream.read(MAX_STDIN_BYTES + 1)
        if isinstance(data, str):
            raise UsageError("stdin is in text mode; an image must be read as bytes.")
        if not data:
            raise UsageError("No image data on stdin.", "Pipe an image in, e.g. `sogni chat -i - 'describe' < photo.jpg`.")
        if len(data) > MAX_STDIN_BYTES:
            raise UsageError(f"The image on stdin is larger than {_fmt_size(MAX_STDIN_BYTES)}.")
        return io.BytesIO(data), "-"
    path = os.fspath(source)
    if not os.path.exists(path):
        raise UsageError(f"Image not found: {path}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a folder, not an image file.")
    try:
        fp = open(path, "rb")
    except FileNotFoundError:
        raise UsageError(f"Image not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not an image file.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror or exc}") from None
    return fp, path  # type: ignore[return-value]


def _head(fp: BinaryIO, n: int = 64) -> bytes:
    try:
        fp.seek(0)
        head = fp.read(n)
        fp.seek(0)
        return head
    except (OSError, ValueError):  # pragma: no cover - defensive
        return b""


def _not_supported_detail(head: bytes) -> str:
    if not head:
        return "the file is empty"
    sniffed = sniff_media(head)
    if sniffed:
        return f"its content looks like {sniffed[1]}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "unrecognised content"
    return "its content looks like text"


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size that fits ``width``x``height`` inside ``max_side`` keeping the aspect ratio."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def _has_alpha(im) -> bool:
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return True
    return "transparency" in im.info and im.mode in ("P", "L", "RGB", "1", "I", "I;16")


def _normalise_mode(im, alpha: bool):
    """Convert to a mode LANCZOS resampling and the encoders handle: RGBA/LA with alpha, else RGB or L.

    Greyscale stays single-channel until after resizing (a third of the work); see :func:`_final_mode`.
    """
    if alpha:
        if im.mode in ("RGBA", "LA"):
            return im
        if im.mode == "La":
            return im.convert("LA")
        return im.convert("RGBA")
    if im.mode in ("RGB", "L"):
        return im
    if im.mode == "1":
        return im.convert("L")
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit (or 32-bit integer) greyscale: scale to 8 bits instead of clipping.
        im = im.convert("I") if im.mode != "I" else im
        lo, hi = im.getextrema()
        divisor = 256 if hi > 255 else 1
        return im.point(lambda v: v / divisor).convert("L")
    if im.mode == "F":
        return im.convert("L")
    return im.convert("RGB")


def _final_mode(im):
    """Greyscale → RGB for the JPEG output (after resizing, so on at most 1024x1024 pixels)."""
    return im.convert("RGB") if im.mode == "L" else im


def _encode(im, fmt: str, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        im.save(buf, "PNG", compress_level=6)
    else:
        im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _flatten(im):
    """Alpha image → RGB on a white background (used only when a PNG cannot fit the byte limit)."""
    from PIL import Image

    rgba = im.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _shrink_to_fit(im, label: str, max_bytes: int, lanczos) -> tuple[bytes, object]:
    """Re-encode as JPEG at lower quality, then smaller sizes, until under ``max_bytes``."""
    if im.mode != "RGB":
        im = _flatten(im) if im.mode in ("RGBA", "LA") else im.convert("RGB")
    current = im
    while True:
        for quality in _RETRY_QUALITIES:
            data = _encode(current, "JPEG", quality)
            if len(data) <= max_bytes:
                return data, current
        w, h = current.size
        nw, nh = max(1, int(w * _SHRINK_STEP)), max(1, int(h * _SHRINK_STEP))
        if max(nw, nh) < _MIN_SIDE:
            raise UsageError(
                f"{label} cannot be made smaller than {_fmt_size(max_bytes)} as an image.")
        current = im.resize((nw, nh), lanczos, reducing_gap=3.0)


def prepare_vision_image(
    source: str | bytes,
    *,
    stdin: BinaryIO | None = None,
    max_side: int = VISION_MAX_SIDE,
    max_bytes: int = VISION_MAX_BYTES,
) -> VisionImage:
    """Open ``source`` (a path, ``"-"`` for ``stdin``, or raw bytes) and make a vision ``data:`` URI.

    Raises :class:`UsageError` (exit 2) for anything that is not a readable, complete, supported image
    of at most :data:`MAX_IMAGE_PIXELS` pixels.
    """
    from PIL import (  # noqa: F401 - the plugin imports register the allowed formats
        BmpImagePlugin,
        GifImagePlugin,
        Image,
        ImageFile,
        ImageOps,
        JpegImagePlugin,
        MpoImagePlugin,
        PngImagePlugin,
        TiffImagePlugin,
        UnidentifiedImageError,
    )

    try:
        from PIL import WebPImagePlugin  # noqa: F401
    except ImportError:  # pragma: no cover - Pillow built without WebP
        pass

    if max_side < 1:
        raise UsageError("The longest side must be at least 1 pixel.")
    label = _label(source)
    fp, src = _read_source(source, stdin)
    saved_pixels = Image.MAX_IMAGE_PIXELS
    saved_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with warnings.catch_warnings():
            # Pillow's own chatter (palette transparency notes, TIFF tags...) is noise on a CLI;
            # a decompression-bomb warning is an error.
            warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                # MPO has no opener of its own (the JPEG opener returns MPO files), so filter on OPEN.
                im = Image.open(fp, formats=[f for f in VISION_FORMATS if f in Image.OPEN])
            except UnidentifiedImageError:
                raise UsageError(
                    f"{label} is not a supported image ({_not_supported_detail(_head(fp))}).",
                    f"Vision input accepts {_SUPPORTED_TEXT} images.",
                ) from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise _too_many_pixels(label, None) from None
            except (OSError, SyntaxError, EOFError, ValueError) as exc:
                raise UsageError(f"{label} could not be read as an image ({exc}).") from None

            try:
                with im:
                    result = _process(im, label, max_side, max_bytes, Image, ImageOps)
            except UsageError:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise _too_many_pixels(label, None) from None
            except MemoryError:
                raise UsageError(f"{label} is too large to decode.") from None
            except (OSError, SyntaxError, EOFError, ValueError, IndexError, TypeError, ZeroDivisionError) as exc:
                raise UsageError(
                    f"{label} is truncated or corrupt ({exc}).",
                    "Re-export or re-download the image and try again.",
                ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = saved_truncated
        fp.close()
    data, mime, width, height = result
    return VisionImage(data_uri=to_data_uri(data, mime), mime=mime, width=width, height=height,
                       bytes=len(data), source=src)


def _too_many_pixels(label: str, size: tuple[int, int] | None) -> UsageError:
    dims = f" ({size[0]}x{size[1]})" if size else ""
    return UsageError(
        f"{label} has too many pixels{dims}; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels.",
        "Scale the image down before sending it.",
    )


def _process(im, label: str, max_side: int, max_bytes: int, Image, ImageOps) -> tuple[bytes, str, int, int]:
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:  # Pillow checks this too; belt and braces for formats that skip it
        raise _too_many_pixels(label, (w, h))
    if im.format in ("JPEG", "MPO"):
        tw, th = _fit(w, h, max_side)
        if (tw, th) != (w, h):
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: most of the time and memory saved.
            im.draft("RGB", (tw, th))
    im.load()
    # Rotate/flip by the EXIF orientation (and drop it); in place, on the possibly drafted image.
    ImageOps.exif_transpose(im, in_place=True)
    alpha = _has_alpha(im)
    work = _normalise_mode(im, alpha)
    tw, th = _fit(work.size[0], work.size[1], max_side)
    if (tw, th) != work.size:
        work = work.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0)
    work = _final_mode(work)
    fmt = "PNG" if alpha else "JPEG"
    data = _encode(work, fmt)
    if len(data) > max_bytes:
        data, work = _shrink_to_fit(work, label, max_bytes, Image.Resampling.LANCZOS)
        fmt = "JPEG"
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return data, mime, work.size[0], work.size[1]


def prepare_vision_images(
    sources: list[str],
    stdin: BinaryIO | None = None,
    *,
    max_side: int = VISION_MAX_SIDE,
    max_bytes: int = VISION_MAX_BYTES,
) -> list[VisionImage]:
    """Prepare several vision images; at most :data:`MAX_VISION_IMAGES`, stdin (``"-"``) at most once.

    The count and the stdin rule are checked before any file is opened.
    """
    sources = list(sources)
    if len(sources) > MAX_VISION_IMAGES:
        raise UsageError(
            f"Too many images: {len(sources)} given, at most {MAX_VISION_IMAGES} per request.",
            "Send fewer -i/--image options.",
        )
    if sum(1 for s in sources if s == "-") > 1:
        raise UsageError("stdin ('-') can be given as an image only once.")
    return [prepare_vision_image(s, stdin=stdin, max_side=max_side, max_bytes=max_bytes) for s in sources]


# --- media sniffing ---------------------------------------------------------------------------------

_MP4_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_MP4_VIDEO_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso8", b"iso9", b"mp41", b"mp42", b"mp71",
    b"avc1", b"dash", b"M4V ", b"M4VH", b"M4VP", b"f4v ", b"mmp4", b"MSNV", b"NDAS", b"NDSC", b"NDSH",
    b"XAVC", b"hvc1", b"av01", b"cmfc", b"cmfv",
}
_HEIF_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heif", b"msf1": "image/heif",
                b"avif": "image/avif", b"avis": "image/avif"}


def _sniff_ftyp(head: bytes) -> tuple[str, str] | None:
    box = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    brands = [major]
    end = min(len(head), box if box >= 16 else len(head))
    brands += [head[i:i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        if brand == b"qt  ":
            return "video", "video/quicktime"
        if brand in _MP4_AUDIO_BRANDS:
            return "audio", "audio/mp4"
        if brand in _HEIF_BRANDS:
            return "image", _HEIF_BRANDS[brand]
        if brand[:3] in (b"3gp", b"3g2", b"3ge", b"3gg"):
            return "video", "video/3gpp"
        if brand in _MP4_VIDEO_BRANDS:
            return "video", "video/mp4"
    return "video", "video/mp4"  # some other ISO base media brand: almost always video


def sniff_media(data_head: bytes) -> tuple[str, str] | None:
    """Recognise media by its first bytes: ``(kind, mime)`` with kind ``image|audio|video``, or None.

    Give it at least the first 32 bytes (a few KB lets it read MP4 compatible brands and WebM doc types).
    """
    h = bytes(data_head[:4096])
    if len(h) < 2:
        return None
    if h.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "image/png"
    if h.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg"
    if h.startswith((b"GIF87a", b"GIF89a")):
        return "image", "image/gif"
    if h.startswith(b"RIFF") and len(h) >= 12:
        form = h[8:12]
        if form == b"WEBP":
            return "image", "image/webp"
        if form == b"WAVE":
            return "audio", "audio/wav"
        if form == b"AVI ":
            return "video", "video/x-msvideo"
        return None
    if h.startswith((b"II*\x00", b"MM\x00*")):
        return "image", "image/tiff"
    if h.startswith(b"BM") and len(h) >= 18 and h[6:10] == b"\x00\x00\x00\x00" \
            and int.from_bytes(h[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return "image", "image/bmp"
    if h.startswith(b"fLaC"):
        return "audio", "audio/flac"
    if h.startswith(b"OggS"):
        if b"\x80theora" in h or b"OVP80" in h:
            return "video", "video/ogg"
        return "audio", "audio/ogg"
    if h.startswith(b"ID3"):
        return "audio", "audio/mpeg"
    if len(h) >= 12 and h[4:8] == b"ftyp":
        return _sniff_ftyp(h)
    if h.startswith(b"\x1a\x45\xdf\xa3"):
        if b"webm" in h:
            return "video", "video/webm"
        return "video", "video/x-matroska"
    if h[0] == 0xFF and (h[1] & 0xE0) == 0xE0:
        layer = (h[1] >> 1) & 0x03
        if layer == 0:  # 12-bit sync with layer 0: AAC in ADTS frames
            return ("audio", "audio/aac") if (h[1] & 0xF6) == 0xF0 else None
        if len(h) >= 3 and (h[2] >> 4) == 0x0F:  # bad bitrate index: not an MPEG audio frame
            return None
        return "audio", "audio/mpeg"
    return None


# --- media files for tool arguments / uploads -------------------------------------------------------

IMAGE_MAX_BYTES = 20 * 1024 * 1024
AUDIO_MAX_BYTES = 50 * 1024 * 1024
VIDEO_MAX_BYTES = 100 * 1024 * 1024
MEDIA_KINDS = ("image", "audio", "video")
#: What hosted tools accept as inline ``data:`` URIs (wire spec §3.5).
TOOL_INPUT_MIMES = {
    "image": frozenset({"image/png", "image/jpeg"}),
    "audio": frozenset({"audio/mpeg", "audio/wav", "audio/mp4"}),
    "video": frozenset({"video/mp4", "video/quicktime"}),
}
_SNIFF_BYTES = 4096


def media_limit(kind: str) -> int:
    """The size limit in bytes for ``kind`` (read at call time)."""
    return {"image": IMAGE_MAX_BYTES, "audio": AUDIO_MAX_BYTES, "video": VIDEO_MAX_BYTES}[kind]


def _fmt_size(n: int) -> str:
    if n >= 1024 * 1024:
        value = n / (1024 * 1024)
        return f"{value:.0f} MiB" if value == int(value) else f"{value:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} bytes"


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


@dataclass
class MediaFile:
    """A local media file checked by content and size; its bytes are read on demand."""

    path: str
    kind: str
    mime: str
    size: int
    data: bytes | None = None

    def read_bytes(self) -> bytes:
        """Read (once) and return the file's bytes, re-checking the size limit."""
        if self.data is None:
            limit = media_limit(self.kind)
            try:
                with open(self.path, "rb") as fh:
                    data = fh.read(limit + 1)
            except OSError as exc:
                raise UsageError(f"Cannot read {self.path}: {exc.strerror or exc}") from None
            if len(data) > limit:
                raise UsageError(f"{self.path} is larger than the {_fmt_size(limit)} limit for {self.kind} inputs.")
            self.data = data
            self.size = len(data)
        return self.data

    def data_uri(self) -> str:
        return to_data_uri(self.read_bytes(), self.mime)


def load_media_file(path: str, expected: str, *, allowed_mimes: Iterable[str] | None = None,
                    probe: bool = True) -> MediaFile:
    """Check a local media file by content (not by name) and size; the bytes are read lazily.

    ``expected`` is ``"image"``, ``"audio"`` or ``"video"``. ``allowed_mimes`` narrows the accepted
    types further (e.g. ``TOOL_INPUT_MIMES["audio"]`` for hosted-tool arguments). With ``probe`` the
    whole file is checked too (see :mod:`sogni_cli.media.probe`): an image is decoded (and refused above
    :data:`MAX_IMAGE_PIXELS`), audio and video containers are walked; truncated or corrupt files are
    usage errors, before anything is uploaded or paid for.
    """
    if expected not in MEDIA_KINDS:
        raise ValueError(f"expected must be one of {MEDIA_KINDS}, not {expected!r}")
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"File not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror or exc}") from None
    import stat as _stat

    if _stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path} is a folder, not {_article(expected)} {expected} file.")
    limit = media_limit(expected)
    if st.st_size > limit:
        raise UsageError(
            f"{path} is {_fmt_size(st.st_size)}, over the {_fmt_size(limit)} limit for {expected} inputs.")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        raise UsageError(f"{path} is empty.")
    sniffed = sniff_media(head)
    if sniffed is None:
        raise UsageError(f"{path} is not {_article(expected)} {expected} file ({_not_supported_detail(head)}).")
    kind, mime = sniffed
    if kind != expected:
        raise UsageError(f"{path} is not {_article(expected)} {expected} file (its content looks like {mime}).")
    if allowed_mimes is not None:
        allowed = sorted(set(allowed_mimes))
        if mime not in allowed:
            raise UsageError(f"{path} is {mime}; {expected} inputs accept {', '.join(allowed)}.")
    if probe:
        from .probe import check_media

        check_media(path, kind, mime, max_pixels=MAX_IMAGE_PIXELS)
    return MediaFile(path=path, kind=kind, mime=mime, size=st.st_size)
