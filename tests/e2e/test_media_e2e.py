"""Media commands end to end: a real `sogni` process against the local emulator."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import wait_for

pytestmark = pytest.mark.e2e

WF = "/v1/creative-agent/workflows"



def test_image_to_a_finished_png_of_the_requested_size(emulator, sogni_env, run_sogni, tmp_path):
    from PIL import Image

    res = run_sogni(["image", "a lighthouse at dusk", "--width", "320", "--height", "200", "-n", "2",
                     "-o", tmp_path / "out"], sogni_env)
    assert res.returncode == 0, res.stderr
    paths = res.stdout.splitlines()
    assert len(paths) == 2 and all(p.endswith(".png") for p in paths)
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size == (320, 200)
    assert "Workflow: wf_" in res.stderr and "completed" in res.stderr
    posts = [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]
    assert len(posts) == 1
    assert posts[0]["json"]["input"]["steps"][0]["arguments"] == {
        "prompt": "a lighthouse at dusk", "width": 320, "height": 200, "numberOfVariations": 2}
    media = [r for r in emulator.requests if r["path"].startswith("/media/")]
    assert media and all("authorization" not in r["headers"] and "api-key" not in r["headers"] for r in media)


@pytest.mark.parametrize("argv, ext, magic", [
    (["video", "waves", "--duration", "3"], ".mp4", None),
    (["music", "lo-fi beat", "--duration", "12", "--bpm", "80"], ".wav", b"RIFF"),
    (["speech", "hello there", "--voice", "serena"], ".wav", b"RIFF"),
])
def test_video_music_speech(emulator, sogni_env, run_sogni, tmp_path, argv, ext, magic):
    res = run_sogni([*argv, "-o", tmp_path], sogni_env)
    assert res.returncode == 0, res.stderr
    [path] = res.stdout.splitlines()
    assert path.endswith(ext)
    data = open(path, "rb").read()
    assert len(data) > 100
    if magic:
        assert data.startswith(magic)


def test_sigint_cancels_the_workflow(sogni_env, tmp_path):
    from sogni_cli import emulator as emu_mod

    emu = emu_mod.start(step_seconds=1.0)  # "[slow]" makes a step last 10 s
    try:
        env = dict(sogni_env, SOGNI_BASE_URL=emu.base_url)
        proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "image", "[slow] x", "-o", str(tmp_path)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: any(r["path"].endswith("/events/stream") for r in emu.requests)
                      or proc.poll() is not None)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err
        cancels = [r for r in emu.requests if r["method"] == "POST" and r["path"].endswith("/cancel")]
        assert len(cancels) == 1
        wid = [r for r in emu.requests if r["method"] == "POST" and r["path"] == WF]
        assert len(wid) == 1
        assert not list(tmp_path.glob("*.png"))
    finally:
        emu.stop()


def test_interrupted_download_finished_by_workflow_download(emulator, sogni_env, run_sogni, tmp_path):
    emulator.script([{"match": "/media/", "action": "reset_after", "bytes": 300, "times": -1}])
    res = run_sogni(["image", "a red fox", "--width", "256", "--height", "256", "-o", tmp_path], sogni_env)
    assert res.returncode == 8, res.stderr
    wid = res.stderr.split("Workflow: ", 1)[1].split()[0]
    assert f"sogni workflow download {wid}" in res.stderr
    final = tmp_path / "a-red-fox-1.png"
    part = tmp_path / "a-red-fox-1.png.part"
    assert part.exists() and not final.exists()
    kept = part.stat().st_size
    assert kept > 0

    emulator.faults.clear()
    before = len(emulator.requests)
    res = run_sogni(["workflow", "download", wid, "-o", tmp_path], sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [str(final)]
    assert not part.exists()
    later = emulator.requests[before:]
    ranged = [r for r in later if r["path"].startswith("/media/") and r["headers"].get("range")]
    assert ranged and ranged[0]["headers"]["range"] == f"bytes={kept}-"
    assert not [r for r in later if r["method"] == "POST" and r["path"] == WF]  # no second workflow
    rec = httpx.get(f"{emulator.base_url}{WF}/{wid}", headers={"Authorization": "Bearer x"}).json()
    url = rec["data"]["workflow"]["artifacts"][0]["url"]
    assert final.read_bytes() == httpx.get(url).content  # byte-exact


def test_retries_on_429_and_503_with_real_short_delays(emulator, sogni_env, run_sogni, tmp_path):
    emulator.script([
        {"match": WF, "method": "POST", "action": "status", "status": 429, "retry_after": 0.05},
        {"match": WF, "method": "POST", "action": "status", "status": 503, "body_retry_after": 0.05},
    ])
    started = time.monotonic()
    res = run_sogni(["image", "x", "-o", tmp_path], sogni_env)
    assert res.returncode == 0, res.stderr
    posts = [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]
    assert len(posts) == 3
    keys = {r["headers"].get("idempotency-key") for r in posts}
    assert len(keys) == 1 and None not in keys
    assert posts[2]["time"] - posts[0]["time"] >= 0.09  # both waits were honoured
    assert time.monotonic() - started < 30
