"""Running at scale, simulated: a Kubernetes Indexed Job is N processes with JOB_COMPLETION_INDEX=0…N-1
against one API (the emulator), writing per-index folders on one tree; the merged report equals the report
of the same recipe run on one machine, and its HTML page loads in a real Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .. import browser

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
N = 3
WF = "/v1/creative-agent/workflows"


def _shape(doc: dict) -> dict:
    """What must agree between a sharded and a single-machine run (not times, ids or shard labels)."""
    jobs = {}
    for j in doc["jobs"]:
        d = j.get("details") or {}
        jobs[j["id"]] = (j["status"], j.get("kind"), sorted(o["path"] for o in j.get("outputs") or []),
                         d.get("prompt"), d.get("model"))
    counts = {k: doc[k] for k in ("total", "succeeded", "failed", "files")}
    return {"jobs": jobs, "counts": counts, "recipes": doc["recipes"]}


@pytest.mark.parametrize("recipe", ["storyboard.yaml", "product-shots.yaml"])
def test_kubernetes_indexed_job_equals_one_machine(recipe, tmp_path, sogni_env, run_sogni, emulator):
    file = ROOT / "recipes" / recipe
    tree = tmp_path / "data" / "out"
    procs = []
    for i in range(N):  # the Job's pods, all at once against the same API
        env = {**sogni_env, "JOB_COMPLETION_INDEX": str(i), "SOGNI_SHARD_COUNT": str(N)}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "sogni_cli", "recipe", "run", str(file), "-o", str(tree / f"shard-{i}"),
             "--shard", "auto"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=180)
        results.append((p.returncode, out, err))
        assert p.returncode == 0, err
        assert f"Shard {i + 1}/{N} from Kubernetes Indexed Job (JOB_COMPLETION_INDEX={i}, SOGNI_SHARD_COUNT={N})" in err
        for line in out.splitlines():  # every saved path is in this index's own folder
            assert (tree / f"shard-{i}").resolve() in Path(line).resolve().parents
    sent_sharded = len([r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF])

    single = tmp_path / "single"
    one = run_sogni(["recipe", "run", file, "-o", single], sogni_env, timeout=180)
    assert one.returncode == 0, one.stderr
    sent_single = len([r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]) - sent_sharded
    assert sent_sharded == sent_single  # every job ran exactly once across the shards

    merged = run_sogni(["recipe", "report", *(tree / f"shard-{i}" for i in range(N)), "--json"], sogni_env)
    alone = run_sogni(["recipe", "report", single, "--json"], sogni_env)
    assert merged.returncode == 0 and alone.returncode == 0, merged.stderr + alone.stderr
    m, a = json.loads(merged.stdout), json.loads(alone.stdout)
    assert _shape(m) == _shape(a)
    assert m["missing_shards"] == [] and m["total"] == a["total"] > 0
    assert {j["shard"] for j in m["jobs"]} <= {f"{k}/{N}" for k in range(1, N + 1)}
    assert sum(1 for r in results if r[1].strip()) >= 2  # the work was really split
    assert sum(len(r[1].splitlines()) for r in results) == len(one.stdout.splitlines())

    # the merge step's page: every file is a tile, and it loads in a real browser without errors
    page = tmp_path / "data" / "report" / "index.html"
    html = run_sogni(["recipe", "report", *(tree / f"shard-{i}" for i in range(N)), "--html", page], sogni_env)
    assert html.returncode == 0, html.stderr
    files = sum(len(j.get("outputs") or []) for j in m["jobs"])
    assert f"({files} tiles)" in html.stderr
    got = browser.load(page, tmp_path / f"report-{recipe}.png")
    assert got["tiles"] == files and got["errors"] == 0, got["dom"][:300]
    assert got["console"] == [] and got["screenshot_ok"]
