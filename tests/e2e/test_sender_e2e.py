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
