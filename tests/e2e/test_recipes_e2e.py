"""Every example recipe in recipes/ runs end to end against the emulator, in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    assert sorted(r["id"] for r in recs) == sorted(j["id"] for j in doc["jobs"])
    assert all(r["status"] == "succeeded" for r in recs)
    sent = [r for r in emulator.requests if r["method"] == "POST" and r["path"] in (
        "/v1/creative-agent/workflows", "/v1/chat/completions", "/v1/creative-agent/tools/execute")]
    assert len(sent) == len(doc["jobs"])
    # a second run resumes: nothing is sent again and the same files are listed
    again = run_sogni(["recipe", "run", recipe, "-o", out], sogni_env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.splitlines()) == sorted(paths)
    assert len([r for r in emulator.requests if r["method"] == "POST" and r["path"] in (
        "/v1/creative-agent/workflows", "/v1/chat/completions", "/v1/creative-agent/tools/execute")]) == len(sent)
