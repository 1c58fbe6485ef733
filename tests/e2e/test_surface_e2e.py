"""End to end against the emulator: durable chat runs (cut streams, detach, approve, cancel, Ctrl-C), workflow
resume and reseed, templates (file → run by name → fork → delete), recipe template jobs, and the live
model/LoRA catalogues refusing what cannot work before any request is sent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_sogni, wait_for

RUNS = "/v1/chat/runs"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
       b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def slow_emulator():
    from sogni_cli import emulator as emu_mod

    emu = emu_mod.start(step_seconds=0.6)
    try:
        yield emu
    finally:
        emu.stop()


def _env(emu, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_")}
    env.update(SOGNI_BASE_URL=emu.base_url, SOGNI_API_KEY="sk-test-CANARY-e2e-0000",
               SOGNI_CONFIG_DIR=str(tmp_path / "cfg"), NO_PROXY="127.0.0.1", NO_COLOR="1",
               PYTHONIOENCODING="utf-8")
    return env


def _runs_posted(emu):
    return [r for r in emu.requests if r["method"] == "POST" and r["path"] == RUNS]


def _run_id(stderr: str) -> str:
    return [line.split(": ", 1)[1] for line in stderr.splitlines() if line.startswith("Chat run: ")][0]


def _log(emu, rid):
    import httpx

    body = httpx.get(f"{emu.base_url}{RUNS}/{rid}/events", headers={"Authorization": "Bearer x"}).json()
    return body["data"]["events"]


# --------------------------------------------------------------------------------------------- durable runs


def test_durable_run_cut_twice_delivers_every_event_once(slow_emulator, tmp_path):
    emu = slow_emulator
    env = _env(emu, tmp_path)
    emu.script([{"match": "/events/stream", "action": "reset_after", "chunks": 4, "times": 2}])
    res = run_sogni(["chat", "--durable", "--jsonl", "-o", tmp_path / "out", "Draw a red fox in the snow"], env)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    posts = _runs_posted(emu)
    assert len(posts) == 1 and posts[0]["headers"].get("idempotency-key")
    rid = _run_id(res.stderr)
    log = _log(emu, rid)
    # every delta of the log, once and in order; one tool call; one end marker
    deltas = [e["payload"]["content"] for e in log if e["type"] == "assistant_message_delta"]
    assert [ln["text"] for ln in lines if ln["event"] == "delta"] == deltas
    assert [ln["event"] for ln in lines].count("tool_call") == 1
    assert [ln["event"] for ln in lines].count("done") == 1
    streams = [r for r in emu.requests if r["path"] == f"{RUNS}/{rid}/events/stream"]
    assert len(streams) >= 3  # the first connection and two resumes
    resumed = [int(r["headers"]["last-event-id"]) for r in streams[1:]]
    assert resumed == sorted(resumed) and resumed[0] >= 1
    assert all(r["query"].get("after") == r["headers"]["last-event-id"] for r in streams[1:])
    saved = [ln for ln in lines if ln["event"] == "artifact"]
    assert len(saved) == 1 and Path(saved[0]["path"]).is_file()


def test_durable_detach_then_list_show_watch(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    res = run_sogni(["chat", "--durable", "--detach", "Hello there"], env)
    assert res.returncode == 0, res.stderr
    rid = res.stdout.strip()
    assert rid.startswith("run_")
    res = run_sogni(["run", "watch", rid], env)
    assert res.returncode == 0 and res.stdout == "Echo: Hello there\n"
    res = run_sogni(["run", "list"], env)
    assert res.returncode == 0 and res.stdout.split() == [rid]
    res = run_sogni(["run", "list", "--json"], env)
    assert json.loads(res.stdout)["runs"][0]["runId"] == rid
    res = run_sogni(["run", "show", rid, "--json"], env)
    assert json.loads(res.stdout)["status"] == "completed"
    res = run_sogni(["run", "show", rid], env)
    assert "Status:   completed" in res.stdout and "Echo: Hello there" in res.stdout


def test_durable_cost_wait_exits_9_then_approve_and_watch(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    res = run_sogni(["chat", "--durable", "Draw a cat [wait]"], env)
    assert res.returncode == 9, res.stderr
    rid = _run_id(res.stderr)
    assert rid in res.stderr and f"sogni run approve {rid}" in res.stderr
    res = run_sogni(["run", "approve", rid], env)
    assert res.returncode == 0, res.stderr
    confirm = [r for r in emulator.requests if r["path"].endswith("/confirm-cost")]
    assert len(confirm) == 1 and confirm[0]["json"]["decision"] == "confirm"
    assert confirm[0]["json"]["acceptedCostPreview"]["totalEstimatedCapacityUnits"] == 1
    res = run_sogni(["run", "watch", rid, "-o", tmp_path / "out", "--json"], env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "completed" and len(doc["artifacts"]) == 1 and Path(doc["artifacts"][0]).is_file()
    res = run_sogni(["run", "approve", rid], env)
    assert res.returncode == 4 and "not waiting" in res.stderr


def test_durable_cost_within_approve_up_to_is_approved_and_followed(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    res = run_sogni(["chat", "--durable", "--approve-up-to", "0.5", "Draw a cat [wait]"], env)
    assert res.returncode == 9
    assert not any(r["path"].endswith("/confirm-cost") for r in emulator.requests)
    res = run_sogni(["chat", "--durable", "--approve-up-to", "5", "-o", tmp_path / "out", "--jsonl",
                     "Draw a cat [wait]"], env)
    assert res.returncode == 0, res.stderr
    assert len([r for r in emulator.requests if r["path"].endswith("/confirm-cost")]) == 1
    events = [json.loads(line)["event"] for line in res.stdout.splitlines()]
    assert events.count("tool_call") == 1 and events[-1] == "done" and "artifact" in events
    assert [p.name for p in (tmp_path / "out").glob("*.png")] == ["draw-a-cat-wait-1.png"]


def test_durable_run_cancel_and_cancel_command(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    res = run_sogni(["chat", "--durable", "--detach", "Draw a cat [wait]"], env)
    rid = res.stdout.strip()
    res = run_sogni(["run", "cancel", rid], env)
    assert res.returncode == 0 and res.stdout == f"{rid} cancelled\n"
    res = run_sogni(["run", "watch", rid], env)
    assert res.returncode == 7


def test_durable_ctrl_c_cancels_the_run(slow_emulator, tmp_path):
    env = _env(slow_emulator, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "chat", "--durable", "Draw a cat [slow]"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(r["path"].endswith("/events/stream") for r in slow_emulator.requests))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    rid = _run_id(err)
    cancels = [r for r in slow_emulator.requests if r["path"] == f"{RUNS}/{rid}/cancel"]
    assert len(cancels) == 1
    assert run_sogni(["run", "show", rid, "--json"], env).stdout.count('"status": "cancelled"') == 1


def test_durable_vision_image_is_uploaded_not_inlined(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    img = tmp_path / "dot.png"
    img.write_bytes(PNG)
    res = run_sogni(["chat", "--durable", "-i", img, "What is this?"], env)
    assert res.returncode == 0, res.stderr
    body = _runs_posted(emulator)[0]["json"]
    assert "data:" not in json.dumps(body)
    part = body["messages"][-1]["content"][1]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("http")
    assert any(r["path"].startswith("/_uploads/") for r in emulator.requests)


def test_durable_refuses_options_a_run_cannot_carry(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    res = run_sogni(["chat", "--durable", "--no-exec", "Hi"], env)
    assert res.returncode == 2 and "--no-exec" in res.stderr
    res = run_sogni(["chat", "--detach", "Hi"], env)
    assert res.returncode == 2
    assert emulator.requests == []


# --------------------------------------------------------------------------------------------- resume, reseed


def _partial(env, tmp_path):
    res = run_sogni(["image", "a fox [partial]", "-n", "2", "-o", tmp_path / "out", "--json"], env)
    assert res.returncode == 8
    return json.loads(res.stdout)["workflow_id"]


def test_workflow_resume_completes_a_partial_failure_then_refuses(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    wid = _partial(env, tmp_path)
    res = run_sogni(["workflow", "resume", wid, "-o", tmp_path / "out"], env)
    assert res.returncode == 0, res.stderr
    assert sorted(Path(p).name for p in res.stdout.split()) == ["a-fox-partial-1.png", "a-fox-partial-2.png"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a-fox-partial-1.png", "a-fox-partial-2.png"]
    res = run_sogni(["workflow", "resume", wid], env)
    assert res.returncode == 4 and "completed" in res.stderr


def test_workflow_reseed_makes_a_new_workflow_and_checks_steps(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    res = run_sogni(["image", "a fox", "-o", tmp_path / "a", "--json"], env)
    wid = json.loads(res.stdout)["workflow_id"]
    n = len(emulator.requests)
    res = run_sogni(["workflow", "reseed", wid, "--seed", "stepp_1=4"], env)
    assert res.returncode == 2 and "did you mean 'step_1'" in res.stderr
    assert not any(r["path"].endswith("/reseed") for r in emulator.requests[n:])
    res = run_sogni(["workflow", "reseed", wid, "--seed", "step_1=42", "-o", tmp_path / "b", "--json"], env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["workflow_id"] != wid and len(doc["artifacts"]) == 1
    reseed = [r for r in emulator.requests if r["path"].endswith("/reseed")]
    assert reseed[0]["json"] == {"seed_overrides": {"step_1": 42}} and reseed[0]["headers"].get("idempotency-key")


# --------------------------------------------------------------------------------------------- templates

TEMPLATE = """\
name: fox-scene
description: A fox somewhere
stability: beta
inputs:
  - name: place
    type: string
    required: true
  - name: count
    type: integer
    default: 1
steps:
  - id: img
    toolName: generate_image
    arguments:
      prompt: "a fox in {{inputs.place}}"
      numberOfVariations: "{{inputs.count}}"
"""


def test_template_create_run_fork_delete(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    f = tmp_path / "fox.yaml"
    f.write_text(TEMPLATE, encoding="utf-8")
    res = run_sogni(["template", "create", "-f", f], env)
    assert res.returncode == 0, res.stderr
    tid = res.stdout.strip()
    assert tid.startswith("tpl_")
    res = run_sogni(["template", "list"], env)
    assert res.stdout.split() == ["fox-scene", "studio-portrait"]
    res = run_sogni(["template", "show", "fox-scene"], env)
    assert "Version:    1  (beta, private)" in res.stdout and "place (string, required)" in res.stdout
    n = len(emulator.requests)
    res = run_sogni(["template", "run", "fox-scene", "--input", "plac=forest"], env)
    assert res.returncode == 2 and "did you mean 'place'?" in res.stderr
    assert not any(r["method"] == "POST" for r in emulator.requests[n:])
    res = run_sogni(["template", "run", "fox-scene", "--input", "place=forest", "--input", "count=2",
                     "-o", tmp_path / "out"], env)
    assert res.returncode == 0, res.stderr
    assert [Path(p).name for p in res.stdout.split()] == ["a-fox-in-forest-1.png", "a-fox-in-forest-2.png"]
    start = [r for r in emulator.requests if r["method"] == "POST" and r["path"] == "/v1/creative-agent/workflows"]
    assert start[-1]["json"] == {"workflow_id": tid, "inputs": {"place": "forest", "count": 2},
                                 "token_type": "spark"} or start[-1]["json"]["workflow_id"] == tid
    assert start[-1]["headers"].get("idempotency-key")
    res = run_sogni(["template", "fork", "fox-scene", "--name", "fox-copy", "--json"], env)
    assert res.returncode == 0 and json.loads(res.stdout)["forkedFrom"]["id"] == tid
    res = run_sogni(["template", "delete", "fox-copy"], env)
    assert res.returncode == 0 and res.stdout.endswith("deleted\n")
    res = run_sogni(["template", "list"], env)
    assert res.stdout.split() == ["fox-scene", "studio-portrait"]


def test_template_update_makes_a_new_version(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    f = tmp_path / "fox.yaml"
    f.write_text(TEMPLATE, encoding="utf-8")
    run_sogni(["template", "create", "-f", f], env)
    patch = tmp_path / "patch.json"
    patch.write_text('{"stability": "stable", "description": "Better"}', encoding="utf-8")
    res = run_sogni(["template", "update", "fox-scene", "-f", patch], env)
    assert res.returncode == 0 and res.stdout.strip().endswith(" v2")
    res = run_sogni(["template", "show", "fox-scene", "--json"], env)
    doc = json.loads(res.stdout)
    assert [v["version"] for v in doc["versions"]] == [1, 2] and doc["stability"] == "stable"


def test_template_file_problems_have_positions(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: oops\ninputs:\n  - name: place\nsteps:\n  - id: a\n    toolName: generate_image\n"
                   "    arguments:\n      prompt: \"a fox in {{inputs.plac}}\"\n", encoding="utf-8")
    res = run_sogni(["template", "create", "-f", bad], env)
    assert res.returncode == 2
    assert f"{bad}:1:1: missing `name`" in res.stderr
    assert f"{bad}:8:" in res.stderr and "did you mean 'place'?" in res.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n "steps": [\n', encoding="utf-8")
    res = run_sogni(["template", "create", "-f", broken], env)
    assert res.returncode == 2 and f"{broken}:3:" in res.stderr
    assert not any(r["method"] == "POST" for r in emulator.requests)


RECIPE = """\
version: 1
name: portraits
jobs:
  - id: fox
    template:
      name: studio-portrait
      inputs:
        subject: a red fox
        {key}: painting
"""


def test_recipe_template_job_validated_against_the_api_and_run(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.format(key="styel"), encoding="utf-8")
    res = run_sogni(["recipe", "validate", bad], env)
    assert res.returncode == 2
    assert f"{bad}:9:9: template 'studio-portrait' has no input 'styel'; did you mean 'style'?" in res.stderr
    res = run_sogni(["recipe", "validate", "--offline", bad], env)
    assert res.returncode == 0
    good = tmp_path / "good.yaml"
    good.write_text(RECIPE.format(key="style"), encoding="utf-8")
    res = run_sogni(["recipe", "run", good, "-o", tmp_path / "out"], env)
    assert res.returncode == 0, res.stderr
    assert [Path(p).name for p in res.stdout.split()] == ["fox-1.png"]
    start = [r for r in emulator.requests if r["method"] == "POST" and r["path"] == "/v1/creative-agent/workflows"]
    assert start[0]["json"]["workflow_id"] == "tpl_public_portrait"
    assert start[0]["json"]["inputs"] == {"subject": "a red fox", "style": "painting"}


# --------------------------------------------------------------------------------------------- catalogues


def test_models_and_loras_are_listed_and_cached(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    res = run_sogni(["models", "--kind", "video", "--json"], env)
    doc = json.loads(res.stdout)
    wan = [m for m in doc["data"] if m["id"] == "wan22"][0]
    assert wan["tier"] == "video" and wan["limits"]["duration"]["max"] == 15
    n = len(emulator.requests)
    res = run_sogni(["models", "--kind", "video"], env)
    assert "wan22" in res.stdout.split() and len(emulator.requests) == n  # from the cache
    res = run_sogni(["models", "--kind", "video", "--refresh"], env)
    assert len(emulator.requests) > n
    res = run_sogni(["loras", "--model", "z-turbo"], env)
    assert res.stdout.split() == ["film-grain"]
    res = run_sogni(["loras", "--personal", "--json"], env)
    ids = [r["loraId"] for r in json.loads(res.stdout)["loras"]]
    assert "personal-my-style" in ids
    cfg = tmp_path / "cfg"
    assert "film-grain" in (cfg / "loras-cache.txt").read_text().split()
    assert "wan22" in (cfg / "models-cache.txt").read_text().split()


def test_incompatible_lora_and_strength_refused_before_any_request(emulator, tmp_path):
    env = _env(emulator, tmp_path)
    assert run_sogni(["loras"], env).returncode == 0
    assert run_sogni(["models", "--kind", "image"], env).returncode == 0
    n = len(emulator.requests)
    res = run_sogni(["image", "a fox", "--model", "z-turbo", "--lora", "pixel-art", "-o", tmp_path / "o"], env)
    assert res.returncode == 2
    assert "LoRA 'pixel-art' does not work with model 'z-turbo'" in res.stderr
    res = run_sogni(["image", "a fox", "--model", "z-turbo", "--lora", "film-grian"], env)
    assert res.returncode == 2 and "did you mean 'film-grain'?" in res.stderr
    res = run_sogni(["image", "a fox", "--model", "z-turbo", "--lora", "film-grain:5"], env)
    assert res.returncode == 2 and "outside its range 0..2" in res.stderr
    assert len(emulator.requests) == n  # nothing was sent
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nname: r\njobs:\n  - id: a\n    image:\n      prompt: a fox\n      model: z-turbo\n"
                      "      loras: [pixel-art]\n", encoding="utf-8")
    res = run_sogni(["recipe", "validate", recipe], env)
    assert res.returncode == 2 and f"{recipe}:8:" in res.stderr and "does not work with model" in res.stderr
    res = run_sogni(["image", "a fox", "--model", "z-turbo", "--lora", "film-grain:0.5", "--no-download"], env)
    assert res.returncode == 0, res.stderr
    body = [r for r in emulator.requests if r["method"] == "POST"][-1]["json"]
    assert body["input"]["steps"][0]["arguments"]["loras"] == ["film-grain"]
