"""Vision image preparation, media sniffing/loading and redaction helpers."""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageFile

from sogni_cli.core.errors import ExitCode, UsageError
from sogni_cli.media import inputs
from sogni_cli.media.inputs import (
    MAX_VISION_IMAGES,
    load_media_file,
    prepare_vision_image,
    prepare_vision_images,
    sniff_media,
    to_data_uri,
)
from sogni_cli.core.redact import mask_key, redact_secret, shorten_data_uris


# --- helpers ---------------------------------------------------------------------------------------

def decode_uri(uri: str) -> tuple[str, Image.Image, bytes]:
    header, payload = uri.split(",", 1)
    assert header.startswith("data:") and header.endswith(";base64")
    raw = base64.b64decode(payload, validate=True)
    return header[5:-7], Image.open(io.BytesIO(raw)), raw


def noisy_rgb(size: tuple[int, int]) -> Image.Image:
    return Image.merge("RGB", [Image.effect_noise(size, 60 + 10 * i) for i in range(3)])


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_bilevel_png(path, width: int, height: int) -> None:
    """A valid 1-bit greyscale PNG of any size, written without holding the pixels in memory."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + zero bits
    comp = zlib.compressobj(9)
    parts = []
    block = row * 256
    for _ in range(height // 256):
        parts.append(comp.compress(block))
    parts.append(comp.compress(row * (height % 256)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts))
                     + png_chunk(b"IEND", b""))


# --- prepare_vision_image --------------------------------------------------------------------------

def test_png_with_alpha_stays_png(tmp_path):
    im = Image.new("RGBA", (64, 48), (10, 20, 30, 0))
    im.paste((200, 100, 50, 255), (0, 0, 32, 48))
    path = tmp_path / "a.png"
    im.save(path)
    v = prepare_vision_image(str(path))
    mime, out, _ = decode_uri(v.data_uri)
    assert v.mime == mime == "image/png"
    assert out.format == "PNG" and out.mode == "RGBA"
    assert (v.width, v.height) == out.size == (64, 48)
    assert out.getpixel((40, 10))[3] == 0 and out.getpixel((5, 5)) == (200, 100, 50, 255)
    assert v.source == str(path)


def test_palette_with_transparency_is_png(tmp_path):
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 10, 20))
    path = tmp_path / "p.gif"
    im.save(path, transparency=0)
    v = prepare_vision_image(str(path))
    _, out, _ = decode_uri(v.data_uri)
    assert v.mime == "image/png"
    assert out.convert("RGBA").getpixel((15, 5))[3] == 0
    assert out.convert("RGBA").getpixel((2, 5)) == (255, 0, 0, 255)


def photo_like(size: tuple[int, int]) -> Image.Image:
    """Cheap to make at any size: smooth gradients in three channels."""
    g = Image.linear_gradient("L").resize(size)
    return Image.merge("RGB", [g, g.transpose(Image.Transpose.FLIP_TOP_BOTTOM), g.point(lambda v: v // 2)])


def test_large_jpeg_scaled_to_1024_keeping_aspect(tmp_path, monkeypatch):
    from PIL import JpegImagePlugin

    drafts = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        before = self.size
        result = real_draft(self, mode, size)
        drafts.append((mode, size, before, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    path = tmp_path / "big.jpg"
    photo_like((3000, 2000)).save(path, quality=85)
    v = prepare_vision_image(str(path))
    # Decoded with libjpeg scaling straight to the aspect-fitted target size (1/2 here: 1500x1000).
    assert drafts == [("RGB", (1024, 683), (3000, 2000), (1500, 1000))]
    mime, out, raw = decode_uri(v.data_uri)
    assert v.mime == mime == "image/jpeg" and out.format == "JPEG" and out.mode == "RGB"
    assert out.size == (v.width, v.height) == (1024, 683)
    assert v.bytes == len(raw) <= inputs.VISION_MAX_BYTES


def test_greyscale_becomes_rgb_jpeg(tmp_path):
    path = tmp_path / "grey.png"
    Image.linear_gradient("L").resize((2048, 1024)).save(path)
    v = prepare_vision_image(str(path))
    _, out, _ = decode_uri(v.data_uri)
    assert v.mime == "image/jpeg" and out.mode == "RGB" and out.size == (1024, 512)
    top, bottom = out.getpixel((512, 2)), out.getpixel((512, 509))
    assert top[0] < 20 and bottom[0] > 235


def test_sixteen_bit_greyscale_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.new("I;16", (40, 40), 40000).save(path)
    v = prepare_vision_image(str(path))
    _, out, _ = decode_uri(v.data_uri)
    assert abs(out.getpixel((20, 20))[0] - 40000 // 256) <= 3


def test_small_jpeg_not_drafted(tmp_path, monkeypatch):
    from PIL import JpegImagePlugin

    calls = []
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", lambda self, *a: calls.append(a))
    path = tmp_path / "s.jpg"
    photo_like((800, 600)).save(path)
    v = prepare_vision_image(str(path))
    assert calls == [] and (v.width, v.height) == (800, 600)


def test_small_image_not_upscaled_and_non_alpha_becomes_jpeg(tmp_path):
    path = tmp_path / "small.bmp"
    Image.new("RGB", (300, 100), (0, 128, 255)).save(path)
    v = prepare_vision_image(str(path))
    _, out, _ = decode_uri(v.data_uri)
    assert v.mime == "image/jpeg" and out.size == (300, 100)
    r, g, b = out.getpixel((150, 50))
    assert abs(r - 0) < 8 and abs(g - 128) < 8 and abs(b - 255) < 8


def test_exif_orientation_6_rotates(tmp_path):
    im = Image.new("RGB", (1600, 800), (255, 255, 255))
    im.paste((255, 0, 0), (0, 0, 200, 800))  # red band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif.tobytes(), quality=95)
    v = prepare_vision_image(str(path))
    _, out, _ = decode_uri(v.data_uri)
    # Orientation 6 = rotate 90° clockwise to display: landscape becomes portrait, left edge goes on top.
    assert (v.width, v.height) == out.size == (512, 1024)
    r, g, b = out.getpixel((256, 20))
    assert r > 200 and g < 60 and b < 60
    r, g, b = out.getpixel((256, 1000))
    assert min(r, g, b) > 200
    assert out.getexif().get(0x0112) in (None, 1)


def test_text_file_refused(tmp_path):
    path = tmp_path / "notes.png"  # the name lies; the content decides
    path.write_text("hello, this is not an image\n")
    with pytest.raises(UsageError) as ei:
        prepare_vision_image(str(path))
    assert ei.value.exit_code == ExitCode.USAGE == 2
    assert f"{path} is not a supported image (" in ei.value.message
    assert "text" in ei.value.message


def test_unsupported_format_refused(tmp_path):
    path = tmp_path / "pic.ppm"
    Image.new("RGB", (10, 10)).save(path)  # a real image, but not an allowed format
    with pytest.raises(UsageError, match="is not a supported image"):
        prepare_vision_image(str(path))


def test_audio_file_refused_naming_its_type(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(100))
    with pytest.raises(UsageError, match=r"looks like audio/mpeg"):
        prepare_vision_image(str(path))


def test_folder_refused(tmp_path):
    with pytest.raises(UsageError, match="folder") as ei:
        prepare_vision_image(str(tmp_path))
    assert ei.value.exit_code == 2


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(UsageError) as ei:
        prepare_vision_image(str(path))
    assert ei.value.message == f"Image not found: {path}"
    assert ei.value.exit_code == 2


def test_truncated_jpeg_refused(tmp_path):
    buf = io.BytesIO()
    noisy_rgb((800, 600)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="truncated or corrupt") as ei:
        prepare_vision_image(str(path))
    assert ei.value.exit_code == 2


def test_truncated_large_jpeg_refused_with_draft(tmp_path):
    buf = io.BytesIO()
    photo_like((2400, 1600)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="truncated or corrupt"):
        prepare_vision_image(str(path))


def test_truncated_png_refused(tmp_path):
    buf = io.BytesIO()
    noisy_rgb((300, 300)).save(buf, "PNG")
    data = buf.getvalue()
    path = tmp_path / "half.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError):
        prepare_vision_image(str(path))


def test_truncated_refused_even_when_pillow_told_to_load_truncated(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    buf = io.BytesIO()
    noisy_rgb((400, 300)).save(buf, "JPEG")
    path = tmp_path / "half.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(UsageError):
        prepare_vision_image(str(path))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


@pytest.mark.parametrize("side", [20000, 9000])  # 400 MP (Pillow error) and 81 MP (Pillow warning)
def test_decompression_bomb_is_an_error_never_a_warning(tmp_path, side):
    path = tmp_path / "bomb.png"
    write_bilevel_png(path, side, side)
    assert path.stat().st_size < 2_000_000
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UsageError, match="too many pixels") as ei:
            prepare_vision_image(str(path))
    assert ei.value.exit_code == 2
    assert caught == []
    assert Image.MAX_IMAGE_PIXELS == before


def test_pixel_limit_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_IMAGE_PIXELS", 2000 * 1000)
    at_limit = tmp_path / "at.png"
    write_bilevel_png(at_limit, 2000, 1000)
    v = prepare_vision_image(str(at_limit))
    _, out, _ = decode_uri(v.data_uri)
    assert (v.width, v.height) == (1024, 512) and out.mode == "RGB"
    assert out.getpixel((10, 10)) == (0, 0, 0)
    over = tmp_path / "over.png"
    write_bilevel_png(over, 2001, 1000)  # one column more: Pillow's warning zone, still an error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UsageError, match="too many pixels"):
            prepare_vision_image(str(over))
    assert caught == []


def test_default_pixel_limit_allows_a_big_photo(tmp_path):
    path = tmp_path / "wide.png"
    write_bilevel_png(path, 8000, 4000)  # 32 MP: under the 64 MP limit
    v = prepare_vision_image(str(path))
    assert (v.width, v.height) == (1024, 512)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    v = prepare_vision_image(str(path))
    _, out, _ = decode_uri(v.data_uri)
    r, g, b = out.convert("RGB").getpixel((20, 20))
    assert r > 200 and b < 60


@pytest.mark.parametrize("fmt,ext", [("WEBP", "webp"), ("TIFF", "tif")])
def test_other_allowed_formats(tmp_path, fmt, ext):
    path = tmp_path / f"img.{ext}"
    Image.new("RGB", (2048, 512), (0, 200, 0)).save(path, fmt)
    v = prepare_vision_image(str(path))
    assert v.mime == "image/jpeg" and (v.width, v.height) == (1024, 256)


def test_oversized_result_reencoded_under_max_bytes(tmp_path):
    path = tmp_path / "noise.png"
    noisy_rgb((1024, 1024)).save(path)
    first = prepare_vision_image(str(path))
    assert first.bytes > 60_000  # noise does not compress: the default encoding is well over the limit below
    v = prepare_vision_image(str(path), max_bytes=60_000)
    mime, out, raw = decode_uri(v.data_uri)
    assert v.mime == mime == "image/jpeg"
    assert len(raw) == v.bytes <= 60_000
    assert out.size == (v.width, v.height)
    assert abs(v.width / v.height - 1.0) < 0.01


def test_oversized_alpha_image_falls_back_to_jpeg(tmp_path):
    im = noisy_rgb((600, 400)).convert("RGBA")
    path = tmp_path / "alpha.png"
    im.save(path)
    v = prepare_vision_image(str(path), max_bytes=30_000)
    assert v.mime == "image/jpeg" and v.bytes <= 30_000
    assert abs(v.width / v.height - 1.5) < 0.02


def test_impossible_max_bytes_is_an_error(tmp_path):
    path = tmp_path / "n.png"
    noisy_rgb((200, 200)).save(path)
    with pytest.raises(UsageError, match="cannot be made smaller"):
        prepare_vision_image(str(path), max_bytes=50)


def test_custom_max_side(tmp_path):
    path = tmp_path / "tall.jpg"
    noisy_rgb((500, 1500)).save(path)
    v = prepare_vision_image(str(path), max_side=300)
    assert (v.width, v.height) == (100, 300)


def test_stdin_dash(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (1200, 600), (1, 2, 3)).save(buf, "PNG")
    v = prepare_vision_image("-", stdin=io.BytesIO(buf.getvalue()))
    assert v.source == "-" and v.mime == "image/jpeg" and (v.width, v.height) == (1024, 512)


def test_stdin_empty_and_not_an_image():
    with pytest.raises(UsageError, match="No image data on stdin"):
        prepare_vision_image("-", stdin=io.BytesIO(b""))
    with pytest.raises(UsageError, match="stdin is not a supported image"):
        prepare_vision_image("-", stdin=io.BytesIO(b"plain words"))


def test_raw_bytes_source():
    buf = io.BytesIO()
    Image.new("LA", (10, 10), (5, 128)).save(buf, "PNG")
    v = prepare_vision_image(buf.getvalue())
    assert v.mime == "image/png"
    assert v.content_part("low") == {"type": "image_url", "image_url": {"url": v.data_uri, "detail": "low"}}


# --- prepare_vision_images -------------------------------------------------------------------------

def test_more_than_20_images_refused_before_opening(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(inputs, "prepare_vision_image", lambda *a, **k: opened.append(a))
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a))
    paths = [str(tmp_path / f"missing{i}.png") for i in range(MAX_VISION_IMAGES + 1)]
    with pytest.raises(UsageError, match="Too many images: 21") as ei:
        prepare_vision_images(paths)
    assert ei.value.exit_code == 2
    assert opened == []


def test_twenty_images_accepted(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (8, 8)).save(path)
    out = prepare_vision_images([str(path)] * MAX_VISION_IMAGES)
    assert len(out) == 20 and all(v.mime == "image/jpeg" for v in out)


def test_stdin_only_once(tmp_path):
    with pytest.raises(UsageError, match="only once"):
        prepare_vision_images(["-", "-"], stdin=io.BytesIO(b"x"))


def test_images_mixed_paths_and_stdin(tmp_path):
    a = tmp_path / "a.png"
    Image.new("RGBA", (4, 4)).save(a)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "JPEG")
    out = prepare_vision_images([str(a), "-"], stdin=io.BytesIO(buf.getvalue()))
    assert [v.mime for v in out] == ["image/png", "image/jpeg"]
    assert [v.source for v in out] == [str(a), "-"]


# --- sniff_media -----------------------------------------------------------------------------------

def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def ftyp(major: bytes, *compat: bytes) -> bytes:
    body = major + b"\x00\x00\x02\x00" + b"".join(compat)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08free"


SNIFF_CASES = [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ("image", "image/png")),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", ("image", "image/jpeg")),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", ("image", "image/webp")),
    (b"GIF89a\x01\x00\x01\x00", ("image", "image/gif")),
    (b"GIF87a\x01\x00\x01\x00", ("image", "image/gif")),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", ("audio", "audio/wav")),
    (b"ID3\x03\x00\x00\x00\x00\x00\x00", ("audio", "audio/mpeg")),
    (b"\xff\xfb\x90\x64\x00\x00", ("audio", "audio/mpeg")),  # MPEG-1 layer III frame
    (b"\xff\xf3\x40\xc4\x00\x00", ("audio", "audio/mpeg")),  # MPEG-2 layer III frame
    (b"fLaC\x00\x00\x00\x22", ("audio", "audio/flac")),
    (b"OggS\x00\x02" + bytes(22) + b"\x01vorbis", ("audio", "audio/ogg")),
    (ftyp(b"M4A ", b"M4A ", b"mp42", b"isom"), ("audio", "audio/mp4")),
    (ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"), ("video", "video/mp4")),
    (ftyp(b"mp42", b"mp42", b"isom"), ("video", "video/mp4")),
    (ftyp(b"avc1"), ("video", "video/mp4")),
    (ftyp(b"qt  ", b"qt  "), ("video", "video/quicktime")),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", ("video", "video/webm")),
    (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", ("video", "video/x-matroska")),
]


@pytest.mark.parametrize("head,expected", SNIFF_CASES)
def test_sniff_media_table(head, expected):
    assert sniff_media(head) == expected


@pytest.mark.parametrize("head", [b"", b"x", b"hello world", b"RIFF\x00\x00\x00\x00XXXX", b"\xff\xd8",
                                  b"\xff\xfb\xf0\x00", b"%PDF-1.7\n", b"PK\x03\x04"])
def test_sniff_media_unknown(head):
    assert sniff_media(head) is None


def test_sniff_media_real_pillow_outputs():
    for fmt, expected in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"),
                          ("GIF", "image/gif"), ("BMP", "image/bmp"), ("TIFF", "image/tiff")):
        buf = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buf, fmt)
        assert sniff_media(buf.getvalue()[:64]) == ("image", expected), fmt


# --- load_media_file -------------------------------------------------------------------------------

def wav_bytes(n_samples: int = 100) -> bytes:
    data = bytes(n_samples * 2)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_load_media_by_content_not_name(tmp_path):
    path = tmp_path / "voice.mp4"  # misleading name
    content = wav_bytes()
    path.write_bytes(content)
    mf = load_media_file(str(path), "audio")
    assert (mf.kind, mf.mime, mf.size, mf.path) == ("audio", "audio/wav", len(content), str(path))
    assert mf.data is None  # not read yet
    assert mf.read_bytes() == content
    assert mf.data == content
    assert mf.data_uri() == "data:audio/wav;base64," + base64.b64encode(content).decode()


def test_load_media_reads_only_the_head_until_needed(tmp_path, monkeypatch):
    path = tmp_path / "clip.mov"
    content = ftyp(b"qt  ", b"qt  ") + box(b"moov", box(b"mvhd", bytes(100))) + box(b"mdat", bytes(200_000))
    path.write_bytes(content)
    reads = []
    real_open = open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def fileno(self):  # the structure check maps the file: no read() of the body
            return self.fh.fileno()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def read(self, n=-1):
            data = self.fh.read(n)
            reads.append(len(data))
            return data

    monkeypatch.setattr("builtins.open", lambda p, mode="r", *a, **k: Spy(real_open(p, mode, *a, **k)))
    mf = load_media_file(str(path), "video")
    assert mf.mime == "video/quicktime" and mf.size == len(content)
    assert sum(reads) <= 4096
    assert mf.read_bytes() == content


def test_load_media_kind_mismatch(tmp_path):
    path = tmp_path / "song.mp3"
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    with pytest.raises(UsageError) as ei:
        load_media_file(str(path), "audio")
    assert ei.value.exit_code == 2
    assert str(path) in ei.value.message and "not an audio file" in ei.value.message
    assert "image/png" in ei.value.message


def test_load_media_unknown_content_and_missing_and_folder_and_empty(tmp_path):
    text = tmp_path / "a.wav"
    text.write_text("just words")
    with pytest.raises(UsageError, match="not an audio file"):
        load_media_file(str(text), "audio")
    with pytest.raises(UsageError, match="File not found"):
        load_media_file(str(tmp_path / "missing.mp4"), "video")
    with pytest.raises(UsageError, match="folder"):
        load_media_file(str(tmp_path), "image")
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    with pytest.raises(UsageError, match="empty"):
        load_media_file(str(empty), "image")
    with pytest.raises(ValueError):
        load_media_file(str(text), "document")


def _small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("kind,const,content", [
    ("image", "IMAGE_MAX_BYTES", _small_png()),
    ("audio", "AUDIO_MAX_BYTES", wav_bytes(1500)),
    ("video", "VIDEO_MAX_BYTES", ftyp(b"isom", b"isom") + box(b"moov", box(b"mvhd", bytes(100))) + box(b"mdat", bytes(3000))),
])
def test_load_media_size_limits(tmp_path, monkeypatch, kind, const, content):
    path = tmp_path / f"file.{kind}"
    path.write_bytes(content)
    monkeypatch.setattr(inputs, const, len(content))
    assert load_media_file(str(path), kind).size == len(content)  # exactly at the limit: fine
    monkeypatch.setattr(inputs, const, len(content) - 1)
    with pytest.raises(UsageError) as ei:
        load_media_file(str(path), kind)
    assert ei.value.exit_code == 2
    assert str(path) in ei.value.message and f"limit for {kind} inputs" in ei.value.message


def test_default_limits_match_wire_spec():
    assert inputs.media_limit("image") == 20 * 1024 * 1024
    assert inputs.media_limit("audio") == 50 * 1024 * 1024
    assert inputs.media_limit("video") == 100 * 1024 * 1024


def test_read_bytes_rechecks_limit_when_file_grew(tmp_path, monkeypatch):
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes(10))
    mf = load_media_file(str(path), "audio")
    monkeypatch.setattr(inputs, "AUDIO_MAX_BYTES", mf.size + 10)
    path.write_bytes(wav_bytes(1000))
    with pytest.raises(UsageError, match="larger than"):
        mf.read_bytes()


def test_allowed_mimes(tmp_path):
    path = tmp_path / "a.flac"
    info = bytes(10) + (44100 << 4 | 1 << 1).to_bytes(3, "big") + bytes(21)  # 44.1 kHz, stereo
    path.write_bytes(b"fLaC\x80\x00\x00\x22" + info + b"\xff\xf8" + bytes(20))
    assert load_media_file(str(path), "audio").mime == "audio/flac"
    with pytest.raises(UsageError, match="audio inputs accept audio/mp4, audio/mpeg, audio/wav"):
        load_media_file(str(path), "audio", allowed_mimes=inputs.TOOL_INPUT_MIMES["audio"])


def test_to_data_uri():
    assert to_data_uri(b"\x00\x01hi", "image/png") == "data:image/png;base64,AAFoaQ=="


# --- redaction -------------------------------------------------------------------------------------

def test_shorten_data_uris_deep_copy():
    jpeg = bytes(range(256)) * 4 + b"x"  # 1025 bytes
    png = b"\x89PNG" + bytes(9)  # 13 bytes
    original = {
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this? data: not a uri"},
            {"type": "image_url", "image_url": {"url": to_data_uri(jpeg, "image/jpeg"), "detail": "auto"}},
        ]}],
        "tool": ("keep", to_data_uri(png, "image/png")),
        "plain": "data:text/plain,hello%20world",
        "n": 3, "flag": True, "none": None,
    }
    snapshot = repr(original)
    out = shorten_data_uris(original)
    assert repr(original) == snapshot  # input untouched
    parts = out["messages"][0]["content"]
    assert parts[0]["text"] == "what is this? data: not a uri"
    assert parts[1]["image_url"] == {"url": "data:image/jpeg;base64,\u2026(1025 bytes)", "detail": "auto"}
    assert out["tool"] == ("keep", "data:image/png;base64,\u2026(13 bytes)")
    assert out["plain"] == "data:text/plain,\u2026(11 bytes)"
    assert (out["n"], out["flag"], out["none"]) == (3, True, None)
    out["messages"][0]["role"] = "changed"
    assert original["messages"][0]["role"] == "user"


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 100])
def test_shorten_counts_decoded_bytes(n):
    assert shorten_data_uris(to_data_uri(b"a" * n, "audio/wav")) == f"data:audio/wav;base64,\u2026({n} bytes)"


def test_redact_secret():
    text = "key sk-abc123 and sk-abc123456 and token t0k"
    assert redact_secret(text, ["sk-abc123456", "sk-abc123", "", None, "t0k"]) == \
        "key *** and *** and token ***"
    assert redact_secret("nothing here", []) == "nothing here"


def test_mask_key():
    assert mask_key("sk-live-1234567890abcd") == "sk-\u2026abcd"
    assert mask_key("abcdefghijkl") == "abc\u2026ijkl"  # exactly 12
    assert mask_key("abcdefghijk") == "\u2026hijk"  # 11
    assert mask_key("abcdefgh") == "\u2026efgh"
    assert mask_key("short") == "\u2026"
    assert mask_key("") == "" and mask_key(None) == ""


# --- whole-file probes (audio and video structure) ---------------------------------------------------

def _mp3(frames: int = 5) -> bytes:
    frame = b"\xff\xfb\x90\x00" + bytes(417 - 4)  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417 bytes
    return b"ID3\x03\x00\x00\x00\x00\x00\x00" + frame * frames


def _adts(frames: int = 4) -> bytes:
    n = 200
    head = bytes([0xFF, 0xF1, 0x50, 0x80 | (n >> 11), (n >> 3) & 0xFF, ((n & 7) << 5) | 0x1F, 0xFC])
    return (head + bytes(n - 7)) * frames


def _ogg_page(flags: int, body: bytes) -> bytes:
    segs = [255] * (len(body) // 255) + [len(body) % 255]
    return b"OggS\x00" + bytes([flags]) + bytes(20) + bytes([len(segs)]) + bytes(segs) + body


def _webm(cut: int = 0) -> bytes:
    ebml = b"\x1a\x45\xdf\xa3" + bytes([0x80 | 4]) + b"\x42\x82\x81\x00"  # a 4-byte header body
    seg_body = bytes(300)
    return (ebml + b"\x18\x53\x80\x67" + b"\x41\x2c" + seg_body)[: None if not cut else -cut]


@pytest.mark.parametrize("name, data, ok", [
    ("a.mp3", _mp3(), True),
    ("cut.mp3", _mp3()[:-100], False),
    ("a.aac", _adts(), True),
    ("cut.aac", _adts()[:-50], False),
    ("a.ogg", _ogg_page(2, b"\x01vorbis" + bytes(40)) + _ogg_page(4, bytes(600)), True),
    ("cut.ogg", (_ogg_page(2, b"\x01vorbis" + bytes(40)) + _ogg_page(4, bytes(600)))[:-10], False),
    ("open.ogg", _ogg_page(2, b"\x01vorbis" + bytes(40)), False),  # no end-of-stream page
    ("a.wav", wav_bytes(100), True),
    ("cut.wav", wav_bytes(100)[:-20], False),
    ("a.webm", _webm(), True),
    ("cut.webm", _webm(cut=40), False),
])
def test_audio_and_video_structure_is_probed(tmp_path, name, data, ok):
    path = tmp_path / name
    path.write_bytes(data)
    kind = "video" if name.endswith(".webm") else "audio"
    if ok:
        assert load_media_file(str(path), kind).size == len(data)
    else:
        with pytest.raises(UsageError, match="truncated or corrupt") as ei:
            load_media_file(str(path), kind)
        assert ei.value.exit_code == 2


def test_a_video_track_of_impossible_size_is_refused(tmp_path):
    tkhd = box(b"tkhd", bytes(76) + struct.pack(">II", 20000 << 16, 20000 << 16))
    data = ftyp(b"isom", b"isom") + box(b"moov", box(b"trak", tkhd)) + box(b"mdat", bytes(100))
    (tmp_path / "v.mp4").write_bytes(data)
    with pytest.raises(UsageError, match="20000x20000"):
        load_media_file(str(tmp_path / "v.mp4"), "video")
