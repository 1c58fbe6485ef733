"""A 500-job recipe at ``--concurrency 32`` against an account that runs 4 workflows at once: the run slows
down on the 409s instead of failing, and pays for exactly 500 workflows."""

from __future__ import annotations

import json

import httpx

from sogni_cli import emulator as emu_mod

from .conftest import run_sogni

WF = "/v1/creative-agent/workflows"
JOBS = 500

RECIPE = f"""\
version: 1
name: limited
matrix:
  n: {list(range(1, JOBS + 1))}
jobs:
  - id: pic
    matrix: true
    image: {{prompt: "limited picture {{{{ matrix.n }}}}", width: 32, height: 32}}
"""


def test_five_hundred_jobs_at_concurrency_32_against_a_limit_of_4_all_succeed_once(sogni_env, tmp_path):
    # Short steps keep the run quick; long enough that 32 jobs at once meet the account's limit.
    emu = emu_mod.start(step_seconds=0.1, max_active=4)
    try:
        env = dict(sogni_env, SOGNI_BASE_URL=emu.base_url)
        (tmp_path / "limited.yaml").write_text(RECIPE)
        out = tmp_path / "out"
        res = run_sogni(["recipe", "run", tmp_path / "limited.yaml", "-o", out, "--concurrency", "32"], env,
                        timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "Traceback" not in res.stderr
        assert f"{JOBS} jobs: {JOBS} succeeded" in res.stderr
        assert "The API asked to slow down" in res.stderr  # the limit was met, and the run said so
        saved = res.stdout.splitlines()
        assert len(saved) == JOBS and len(set(saved)) == JOBS

        seen = httpx.get(f"{emu.base_url}/_emulator/requests").json()["requests"]
        creates = [r for r in seen if r["method"] == "POST" and r["path"] == WF]
        made = [r for r in creates if r["status"] == 201]
        refused = [r for r in creates if r["status"] == 409]
        assert len(made) == JOBS  # exactly 500 workflows created
        assert len({r["headers"]["idempotency-key"] for r in made}) == JOBS  # one per job, none twice
        assert refused, "the account's limit was never met: the test would prove nothing"
        assert {r["status"] for r in creates} == {201, 409}  # nothing else went wrong on the way
        # every refused start was sent again with its own key and then made, never as a new job
        assert {r["headers"]["idempotency-key"] for r in refused} <= {r["headers"]["idempotency-key"] for r in made}
        listed = httpx.get(f"{emu.base_url}{WF}", params={"limit": 1}, headers={"Authorization": "Bearer x"})
        assert listed.json()["data"]["total"] == JOBS

        record = out / ".sogni-run" / "limited.jsonl"
        final: dict[str, dict] = {}
        for line in record.read_text().splitlines():
            rec = json.loads(line)
            if "id" in rec:
                final[rec["id"]] = rec
        assert len(final) == JOBS
        assert all(r["status"] == "succeeded" for r in final.values())  # not a single failed job
        assert len({r["workflow_id"] for r in final.values()}) == JOBS
    finally:
        emu.stop()
