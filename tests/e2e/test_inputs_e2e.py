"""Local media given to edit, video, tools run or a recipe is decoded or probed before anything is sent:
truncated, corrupt and bomb-sized files are refused with exit 2, and no upload or workflow starts."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

pytestmark = pytest.mark.e2e


def _jpeg(w: int = 640, h: int = 480) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.effect_noise((w, h), 64).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` (small on disk: every row is zeros)."""
    row = b"\x00" + bytes((width + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _wav(n: int = 4000) -> bytes:
    data = bytes(n * 2)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


MP4 = (_box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41") + _box(b"moov", _box(b"mvhd", bytes(100)))
       + _box(b"mdat", bytes(5000)))

BAD = {
    "truncated.jpg": lambda: _jpeg()[:6000],
    "noise.png": lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40,
    "huge.png": lambda: _huge_png(9000, 8000),  # 72 megapixels
}


def _sent(emulator) -> list:
    return [r for r in emulator.requests if r["method"] in ("POST", "PUT")]


@pytest.mark.parametrize("name", sorted(BAD))
def test_edit_refuses_a_bad_image_before_uploading(name, emulator, sogni_env, run_sogni, tmp_path):
    path = tmp_path / name
    path.write_bytes(BAD[name]())
    res = run_sogni(["edit", "make it blue", "-i", path, "-o", tmp_path / "out"], sogni_env)
    assert res.returncode == 2, res.stderr
    assert str(path) in res.stderr and "Traceback" not in res.stderr
    assert ("too many pixels" in res.stderr) if name == "huge.png" else ("corrupt" in res.stderr)
    assert _sent(emulator) == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(BAD))
def test_video_and_tools_run_refuse_a_bad_image(name, emulator, sogni_env, run_sogni, tmp_path):
    path = tmp_path / name
    path.write_bytes(BAD[name]())
    res = run_sogni(["video", "waves", "-i", path, "-o", tmp_path], sogni_env)
    assert res.returncode == 2, res.stderr
    res = run_sogni(["tools", "run", "edit_image", "-i", path, "--arg", "prompt=x", "-o", tmp_path], sogni_env)
    assert res.returncode == 2, res.stderr
    assert _sent(emulator) == []


@pytest.mark.parametrize("flag, name, data", [
    ("--video", "cut.mp4", MP4[:-2000]),  # the media box announces more than the file holds
    ("--video", "no-index.mp4", _box(b"ftyp", b"isom\x00\x00\x02\x00isom") + _box(b"mdat", bytes(500))),
    ("--audio", "cut.wav", _wav()[:3000]),
    ("--audio", "noise.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8),
])
def test_video_refuses_cut_or_corrupt_audio_and_video(flag, name, data, emulator, sogni_env, run_sogni, tmp_path):
    path = tmp_path / name
    path.write_bytes(data)
    res = run_sogni(["video", "waves", flag, path, "-o", tmp_path / "out"], sogni_env)
    assert res.returncode == 2, res.stderr
    assert str(path) in res.stderr and "truncated or corrupt" in res.stderr
    assert _sent(emulator) == []


def test_whole_audio_and_video_inputs_are_still_sent(emulator, sogni_env, run_sogni, tmp_path):
    (tmp_path / "a.wav").write_bytes(_wav())
    (tmp_path / "v.mp4").write_bytes(MP4)
    res = run_sogni(["video", "waves", "--audio", tmp_path / "a.wav", "-o", tmp_path / "o1"], sogni_env)
    assert res.returncode == 0, res.stderr
    res = run_sogni(["video", "waves", "--video", tmp_path / "v.mp4", "-o", tmp_path / "o2"], sogni_env)
    assert res.returncode == 0, res.stderr


def test_a_recipe_with_a_bad_input_sends_nothing(emulator, sogni_env, run_sogni, tmp_path):
    (tmp_path / "truncated.jpg").write_bytes(BAD["truncated.jpg"]())
    (tmp_path / "r.yaml").write_text(
        "version: 1\nname: bad\njobs:\n"
        "  - id: ok\n    image: {prompt: \"a heron\", width: 256, height: 256}\n"
        "  - id: fix\n    edit: {prompt: \"make it blue\", images: [truncated.jpg]}\n")
    res = run_sogni(["recipe", "run", tmp_path / "r.yaml", "-o", tmp_path / "out"], sogni_env)
    assert res.returncode == 2, res.stderr
    assert "truncated.jpg" in res.stderr and "corrupt" in res.stderr
    assert _sent(emulator) == []
