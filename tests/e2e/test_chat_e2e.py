"""`sogni chat` end to end against the emulator over real sockets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import E2E_KEY, interrupt_when_stalled

CHAT = "/v1/chat/completions"
WF = "/v1/creative-agent/workflows"



def test_streamed_chat_to_stdout(emulator, sogni_env, run_sogni):
    res = run_sogni(["chat", "--tools", "none", "tell me about lighthouses"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Echo: tell me about lighthouses")
    assert res.stdout.endswith("\n")
    (req,) = [r for r in emulator.requests if r["path"] == CHAT]
    assert req["json"] == {"messages": [{"role": "user", "content": "tell me about lighthouses"}], "stream": True,
                           "stream_options": {"include_usage": True}, "sogni_tools": False}
    assert req["headers"]["authorization"] == f"Bearer {E2E_KEY}" and req["headers"]["api-key"] == E2E_KEY


def test_thinking_stays_off_stdout(emulator, sogni_env, run_sogni):
    res = run_sogni(["chat", "--tools", "none", "--think", "why is the sky blue"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert "<think>" not in res.stdout and "reasoning about" not in res.stdout
    assert res.stdout.startswith("Echo: why is the sky blue")


@pytest.mark.parametrize("names", ["prefixed", "flat"])
def test_hosted_execution_saves_media_from_a_stream(emulator, sogni_env, run_sogni, tmp_path, names):
    """A streamed answer carries no creative_workflows (the brief promises none): the media come from the
    links of the final reply, which the server sends once its tool round has finished."""
    emulator.configure({"tool_names": names})
    out = tmp_path / "out"
    res = run_sogni(["chat", "draw an image of a red fox", "-o", out, "--json"], sogni_env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert "creative_workflows" not in doc
    assert len(doc["artifacts"]) == 1
    saved = Path(doc["artifacts"][0])
    assert saved.parent == out and saved.suffix == ".png"
    from PIL import Image

    with Image.open(saved) as im:
        assert im.format == "PNG"
    media = [r for r in emulator.requests if r["path"].startswith("/media/")]
    assert media and not any(r["auth_sent"] for r in media)
    (req,) = [r for r in emulator.requests if r["path"] == CHAT]
    assert req["json"]["stream"] is True
    assert not list(out.glob("*.part"))


@pytest.mark.parametrize("names", ["prefixed", "flat"])
def test_hosted_execution_saves_media_from_a_non_streamed_answer(emulator, sogni_env, run_sogni, tmp_path, names):
    """A non-streamed answer names its workflows: they are followed to their artifacts."""
    emulator.configure({"tool_names": names})
    out = tmp_path / "out"
    res = run_sogni(["chat", "--no-stream", "draw an image of a red fox", "-o", out, "--json"], sogni_env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    (wf,) = doc["creative_workflows"]
    assert len(doc["artifacts"]) == 1 and Path(doc["artifacts"][0]).parent == out
    assert any(r["path"] == f"{WF}/{wf['workflowId']}" for r in emulator.requests)


def test_no_exec_prints_tool_calls(emulator, sogni_env, run_sogni):
    res = run_sogni(["chat", "--no-exec", "draw an image of a cat"], sogni_env)
    assert res.returncode == 0, res.stderr
    calls = [json.loads(line) for line in res.stdout.splitlines()]
    assert calls and calls[0]["name"].endswith("generate_image")
    assert calls[0]["arguments"]["prompt"]
    assert not any(r["path"] == WF for r in emulator.requests)


def test_vision_image_round_trip(emulator, sogni_env, run_sogni, tmp_path):
    from PIL import Image

    p = tmp_path / "photo.jpg"
    Image.new("RGB", (3000, 1500), (20, 120, 200)).save(p)
    res = run_sogni(["chat", "--tools", "none", "-i", p, "what is this"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert "1024x512" in res.stdout


def test_connection_reset_mid_stream_keeps_partial_text(emulator, sogni_env, run_sogni):
    emulator.script([{"match": CHAT, "action": "reset_after", "chunks": 4}])
    res = run_sogni(["chat", "--tools", "none", "a long answer about the sea please"], sogni_env)
    assert res.returncode == 5, res.stderr
    assert res.stdout and "Echo: a long answer about the sea please".startswith(res.stdout.rstrip("\n"))
    assert res.stderr.startswith("Error: ")
    assert len([r for r in emulator.requests if r["path"] == CHAT]) == 1  # not retried after content started


def test_error_inside_a_200_stream(emulator, sogni_env, run_sogni):
    emulator.script([{"match": CHAT, "action": "error_in_stream", "code": 402, "type": "insufficient_balance",
                      "message": "Not enough credit"}])
    res = run_sogni(["chat", "--tools", "none", "hello there"], sogni_env)
    assert res.returncode == 9, res.stderr
    assert "Not enough credit" in res.stderr


def test_chat_retries_429_then_streams(emulator, sogni_env, run_sogni):
    emulator.script([{"match": CHAT, "action": "status", "status": 429, "retry_after_ms": 50}])
    res = run_sogni(["chat", "--tools", "none", "hi"], sogni_env)
    assert res.returncode == 0, res.stderr
    posts = [r for r in emulator.requests if r["path"] == CHAT]
    assert len(posts) == 2
    assert posts[0]["headers"]["idempotency-key"] == posts[1]["headers"]["idempotency-key"]
    assert posts[1]["time"] - posts[0]["time"] >= 0.045


def test_readme_quickstart_offline(tmp_path):
    """`sogni --emulator image "a lighthouse at dusk" -o out/` with no key and no base URL."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_")}
    env["SOGNI_CONFIG_DIR"] = str(tmp_path / "cfg")
    proc = subprocess.run([sys.executable, "-m", "sogni_cli", "--emulator", "image", "a lighthouse at dusk",
                           "-o", "out/"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    saved = tmp_path / line
    assert saved.is_file() and saved.parent == tmp_path / "out"
    from PIL import Image

    with Image.open(saved) as im:
        assert im.size == (1024, 1024)


def test_sigint_during_download_then_workflow_download_finishes(emulator, sogni_env, run_sogni, tmp_path):
    """Ctrl-C half-way through a download: nothing under the final name; `workflow download` resumes it."""
    emulator.script([{"match": "/media/", "action": "stall_after", "bytes": 2000, "hold": 60}])
    part = tmp_path / "a-blue-heron-1.png.part"
    final = tmp_path / "a-blue-heron-1.png"
    # The server sends 2,000 bytes and then holds the connection; Ctrl-C arrives while the part is open.
    code, _, err = interrupt_when_stalled(emulator, ["image", "a blue heron", "--width", "512", "--height", "512",
                                                     "-o", tmp_path], sogni_env, part, min_bytes=2000)
    assert code == 130, err
    assert "Traceback" not in err
    assert not final.exists() and part.stat().st_size == 2000
    wid = err.split("Workflow: ", 1)[1].split()[0]
    created = [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]
    assert len(created) == 1

    emulator.faults.clear()
    before = len(emulator.requests)
    res = run_sogni(["workflow", "download", wid, "-o", tmp_path], sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [str(final)]
    later = emulator.requests[before:]
    ranged = [r for r in later if r["path"].startswith("/media/") and r["headers"].get("range")]
    assert ranged and ranged[0]["headers"]["range"] == "bytes=2000-"
    assert not [r for r in later if r["method"] == "POST" and r["path"] == WF]
    rec = httpx.get(f"{emulator.base_url}{WF}/{wid}", headers={"Authorization": "Bearer x"}).json()
    url = rec["data"]["workflow"]["artifacts"][0]["url"]
    assert final.read_bytes() == httpx.get(url).content
    assert not part.exists()


@pytest.mark.parametrize("shell", ["bash"])
def test_emulator_command_prints_base_url(tmp_path, shell):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_")}
    env["SOGNI_CONFIG_DIR"] = str(tmp_path / "cfg")
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "emulator", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("SOGNI_BASE_URL=http://127.0.0.1:")
        base = line.split("=", 1)[1]
        r = httpx.get(f"{base}/v1/models", headers={"Authorization": "Bearer any"})
        assert r.status_code == 200 and r.json()["data"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
