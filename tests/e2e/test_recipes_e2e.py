"""Every example recipe in recipes/ runs end to end against the emulator, in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import interrupt_when_stalled

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_runs_end_to_end(recipe, tmp_path, sogni_env, run_sogni, emulator):
    plan = run_sogni(["recipe", "plan", recipe, "--json"], sogni_env)
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    expected_files = doc["media"] + sum(1 for j in doc["jobs"] if j.get("save"))
    out = tmp_path / "out"
    res = run_sogni(["recipe", "run", recipe, "-o", out, "--concurrency", "4"], sogni_env, timeout=120)
    assert res.returncode == 0, res.stderr
    paths = res.stdout.splitlines()
    assert len(paths) == expected_files
    for p in paths:
        f = Path(p)
        assert f.is_file() and f.stat().st_size > 0, p
        assert out.resolve() in f.resolve().parents
    name = doc["recipe"]
    recs = [json.loads(ln) for ln in (out / ".sogni-run" / f"{name}.jsonl").read_text().splitlines()]
    recs = [r for r in recs if "id" in r]  # the plan line names the jobs, the other lines are theirs
    final = {r["id"]: r for r in recs}  # the last line per job is its state
    assert sorted(final) == sorted(j["id"] for j in doc["jobs"])
    assert all(r["status"] == "succeeded" for r in final.values())
    # each workflow was recorded as `started` (with its id) before the job's final line
    started = [r for r in recs if r["status"] == "started"]
    assert all(r["workflow_id"] and final[r["id"]]["workflow_id"] == r["workflow_id"] for r in started)
    assert len(started) == sum(1 for r in final.values() if r["workflow_id"])
    sent = [r for r in emulator.requests if r["method"] == "POST" and r["path"] in (
        "/v1/creative-agent/workflows", "/v1/chat/completions", "/v1/creative-agent/tools/execute")]
    assert len(sent) == len(doc["jobs"])
    # a second run resumes: nothing is sent again and the same files are listed
    again = run_sogni(["recipe", "run", recipe, "-o", out], sogni_env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.splitlines()) == sorted(paths)
    assert len([r for r in emulator.requests if r["method"] == "POST" and r["path"] in (
        "/v1/creative-agent/workflows", "/v1/chat/completions", "/v1/creative-agent/tools/execute")]) == len(sent)


WF = "/v1/creative-agent/workflows"
ONE = """\
version: 1
name: one
jobs:
  - id: pic
    image: {prompt: "a blue heron", width: 512, height: 512}
    filename: heron
"""



@pytest.mark.parametrize("sig,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_interrupt_during_a_stalled_download_then_rerun_pays_once(sig, code, emulator, sogni_env, run_sogni,
                                                                   tmp_path):
    """Ctrl-C (or SIGTERM) while a download hangs: the run stops at once and records the workflow id; the
    rerun follows that workflow, resumes the download and sends no second workflow."""
    import signal

    (tmp_path / "one.yaml").write_text(ONE)
    out = tmp_path / "out"
    emulator.script([{"match": "/media/", "action": "stall_after", "bytes": 3000, "hold": 60}])
    part = out / "heron.png.part"
    # the server holds the connection for 60 s: a run that waited for it would miss the 10 s bound
    returncode, _out, err = interrupt_when_stalled(emulator, ["recipe", "run", tmp_path / "one.yaml", "-o", out],
                                                   sogni_env, part, getattr(signal, sig), timeout=10, min_bytes=3000)
    assert returncode == code, err
    assert "Traceback" not in err
    created = [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]
    assert len(created) == 1
    recs = [json.loads(ln) for ln in (out / ".sogni-run" / "one.jsonl").read_text().splitlines()]
    assert recs[0]["record"] == "plan" and recs[0]["jobs"] == ["pic"]
    recs = recs[1:]
    assert recs[-1]["status"] == "interrupted"
    wid = recs[-1]["workflow_id"]
    assert [r["status"] for r in recs] == ["starting", "started", "interrupted"]
    assert wid and wid.startswith("wf_") and recs[1]["workflow_id"] == wid
    # the key was on disk before the create left, and the create carried it
    assert recs[0]["idempotency_key"] == created[0]["headers"]["idempotency-key"]
    assert not [r for r in emulator.requests if r["path"].endswith("/cancel")]  # left running for the rerun
    assert not (out / "heron.png").exists() and part.stat().st_size == 3000

    emulator.faults.clear()
    before = len(emulator.requests)
    res = run_sogni(["recipe", "run", tmp_path / "one.yaml", "-o", out], sogni_env, timeout=60)
    assert res.returncode == 0, res.stderr
    final = out / "heron.png"
    assert res.stdout.splitlines() == [str(final)]
    assert f"following workflow {wid}" in res.stderr
    assert [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF] == created
    later = emulator.requests[before:]
    ranged = [r for r in later if r["path"].startswith("/media/") and r["headers"].get("range")]
    assert ranged and ranged[0]["headers"]["range"] == "bytes=3000-"
    import httpx

    rec = httpx.get(f"{emulator.base_url}{WF}/{wid}", headers={"Authorization": "Bearer x"}).json()
    url = rec["data"]["workflow"]["artifacts"][0]["url"]
    assert final.read_bytes() == httpx.get(url).content
    assert not part.exists()
    last = json.loads((out / ".sogni-run" / "one.jsonl").read_text().splitlines()[-1])
    assert last["status"] == "succeeded" and last["workflow_id"] == wid
