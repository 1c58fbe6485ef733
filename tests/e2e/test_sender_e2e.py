"""The one sender against the emulator over sockets: cut answers, a stalled media host, a busy account."""

from __future__ import annotations

import json

import httpx
import pytest

WF = "/v1/creative-agent/workflows"


def _posts(emulator):
    return [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]


def _workflows(emulator):
    rec = httpx.get(f"{emulator.base_url}{WF}", params={"limit": 100}, headers={"Authorization": "Bearer x"}).json()
    return rec["data"]["workflows"]


def test_create_answer_cut_mid_body_is_resent_with_the_same_key_and_pays_once(emulator, sogni_env, run_sogni,
                                                                              tmp_path):
    # the workflow is made, then its answer stops after 50 bytes of JSON
    emulator.script([{"match": WF, "method": "POST", "action": "truncate", "bytes": 50}])
    res = run_sogni(["image", "a heron", "-o", tmp_path / "out"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert "This is a bug" not in res.stderr and "Traceback" not in res.stderr
    posts = _posts(emulator)
    assert len(posts) == 2
    assert posts[0]["headers"]["idempotency-key"] == posts[1]["headers"]["idempotency-key"]
    made = _workflows(emulator)
    assert len(made) == 1  # the resend was answered with the workflow already made
    wid = made[0]["workflowId"]
    assert f"Workflow: {wid}" in res.stderr
    saved = res.stdout.split()
    assert len(saved) == 1 and (tmp_path / "out" / saved[0].rsplit("/", 1)[-1]).is_file()


def test_cut_get_of_a_workflow_is_retried(emulator, sogni_env, run_sogni, tmp_path):
    made = run_sogni(["image", "a heron", "--detach"], sogni_env)
    assert made.returncode == 0, made.stderr
    wid = made.stdout.strip()
    emulator.script([{"match": f"{WF}/{wid}", "method": "GET", "action": "truncate", "bytes": 50}])
    res = run_sogni(["workflow", "show", wid, "--json"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert "This is a bug" not in res.stderr
    assert json.loads(res.stdout)["workflowId"] == wid
    gets = [r for r in emulator.requests if r["method"] == "GET" and r["path"] == f"{WF}/{wid}"]
    assert len(gets) == 2 and gets[0]["fault"] == "truncate" and gets[1]["fault"] is None


def test_cut_get_with_no_retries_left_is_exit_5_not_a_bug(emulator, sogni_env, run_sogni):
    made = run_sogni(["image", "a heron", "--detach"], sogni_env)
    wid = made.stdout.strip()
    emulator.script([{"match": f"{WF}/{wid}", "method": "GET", "action": "truncate", "bytes": 50}])
    res = run_sogni(["--max-retries", "0", "workflow", "show", wid], sogni_env)
    assert res.returncode == 5, res.stderr
    assert res.stderr.startswith("Error: ") and "broke off" in res.stderr and "This is a bug" not in res.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_media_downloads_follow_timeout_and_max_retries(emulator, sogni_env, run_sogni, tmp_path, how):
    # every answer of the media host sends 500 bytes, then goes silent for a minute
    emulator.script([{"match": "/media/", "method": "GET", "action": "stall_after", "bytes": 500, "hold": 60,
                      "times": -1}])
    env = dict(sogni_env)
    args = ["--max-retries", "1", "image", "a heron", "-o", tmp_path / "out"]
    if how == "flag":
        args = ["--timeout", "2", *args]
    else:
        env["SOGNI_TIMEOUT"] = "2"
    # a client still on a 300 s read timeout would overrun this bound (the failure guard, not a measurement)
    res = run_sogni(args, env, timeout=40)
    assert res.returncode == 8, res.stderr
    assert "timed out" in res.stderr and "after 1 retry" in res.stderr
    media = [r for r in emulator.requests if r["path"].startswith("/media/")]
    assert len(media) == 2  # the first try and --max-retries 1
    assert media[1]["headers"].get("range") == "bytes=500-"  # the byte-level resume stays


# ------------------------------------------------------------------------------------ a busy account

SLOW_STEP = {"input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "[slow] a long one"}}]}}


@pytest.fixture
def busy(sogni_env):
    """An emulator whose account runs one workflow at a time, already running a long one."""
    from sogni_cli import emulator as emu_mod

    emu = emu_mod.start(step_seconds=2.0, max_active=1)
    try:
        first = httpx.post(f"{emu.base_url}{WF}", json=SLOW_STEP, headers={"Authorization": "Bearer x"})
        assert first.status_code == 201, first.text
        env = dict(sogni_env, SOGNI_BASE_URL=emu.base_url)
        yield emu, env, first.json()["data"]["workflow"]["workflowId"]
    finally:
        emu.stop()


def test_busy_account_409_waits_for_a_slot_then_starts_once(busy, tmp_path):
    import subprocess
    import sys

    from .conftest import wait_for

    emu, env, first = busy
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "image", "a heron", "-o", str(tmp_path / "out")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the client was refused and is now looking at the account's workflows instead of resending
        wait_for(lambda: any(r["method"] == "GET" and r["path"] == WF for r in emu.requests) or proc.poll() is not None)
        httpx.post(f"{emu.base_url}{WF}/{first}/cancel", json={}, headers={"Authorization": "Bearer x"})
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "too many active workflows; waiting for one to finish" in err
    posts = _posts(emu)[1:]  # the client's starts
    assert len(posts) == 2 and posts[0]["headers"]["idempotency-key"] == posts[1]["headers"]["idempotency-key"]
    assert len(_workflows(emu)) == 2  # the first one and exactly one for this command
    assert len(out.split()) == 1


def test_busy_account_409_gives_up_after_timeout_with_exit_5(busy, run_sogni, tmp_path):
    emu, env, _ = busy
    res = run_sogni(["--timeout", "2", "image", "a heron", "-o", tmp_path / "out"], env)
    assert res.returncode == 5, res.stderr
    assert "Error: " in res.stderr and "too many active workflows (1 of 1)" in res.stderr
    assert len(_posts(emu)) == 2  # the long one, and one refused start: never resent blindly
    assert len(_workflows(emu)) == 1


def test_emulator_max_active_must_be_positive(sogni_env, run_sogni):
    res = run_sogni(["emulator", "--port", "0", "--max-active", "0"], sogni_env)
    assert res.returncode == 2 and "--max-active" in res.stderr


def test_account_shows_the_limit_on_workflows_at_once(busy, run_sogni):
    emu, env, _first = busy
    res = run_sogni(["account", "--json"], env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["concurrency"] == 1
    res = run_sogni(["account"], env)
    assert "Concurrency:  1" in res.stdout


def test_connections_the_server_ends_between_requests_cost_no_second_create(emulator, sogni_env, run_sogni,
                                                                            tmp_path):
    """The server ends every kept-alive connection right after answering (its idle timeout, say): each
    job's create goes out once, on a new connection, and nothing is retried or paid twice."""
    (tmp_path / "three.yaml").write_text(
        "version: 1\nname: three\njobs:\n"
        + "".join(f"  - id: p{i}\n    image: {{prompt: \"heron {i}\", width: 256, height: 256}}\n" for i in range(3)))
    emulator.script([{"match": WF, "action": "close_after", "times": -1}])
    res = run_sogni(["-v", "recipe", "run", tmp_path / "three.yaml", "-o", tmp_path / "out", "--concurrency", "1"],
                    sogni_env)
    assert res.returncode == 0, res.stderr
    posts = _posts(emulator)
    assert len(posts) == 3 and len({p["headers"]["idempotency-key"] for p in posts}) == 3
    assert len(_workflows(emulator)) == 3
    assert res.stderr.count(f"> POST {emulator.base_url}{WF}") == 3 and "retrying" not in res.stderr
    assert len(res.stdout.split()) == 3
