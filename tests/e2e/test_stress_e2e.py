"""A 50-job recipe against a flaky emulator (30% 429s, 10% cut answers), interrupted with SIGINT and SIGKILL
on observed progress and run again until done: exactly 50 workflows, every job succeeded, every file opens
and matches the sha256 its run record holds."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from .conftest import wait_for

WF = "/v1/creative-agent/workflows"

FIFTY = f"""\
version: 1
name: fifty
matrix:
  n: {list(range(1, 51))}
jobs:
  - id: pic
    matrix: true
    image: {{prompt: "stress picture {{{{ matrix.n }}}}", width: 32, height: 32}}
"""


def _job_lines(record: Path) -> list[dict]:
    if not record.exists():
        return []
    rows = []
    for ln in record.read_text().splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:  # a line cut by SIGKILL
            continue
        if "id" in rec:
            rows.append(rec)
    return rows


def _start_emulator(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "emulator", "--port", "0", "--step-seconds", "0.02",
                             "--rate-429", "0.3", "--rate-reset", "0.1", "--retry-after", "0.05", "--seed", "11", "-q"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("SOGNI_BASE_URL="), line
    return proc, line.split("=", 1)[1]


def _run_until(args, env, record: Path, lines: int, sig) -> int:
    """Run ``sogni *args``; once the record holds ``lines`` job lines, send ``sig``. The exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(_job_lines(record)) >= lines or proc.poll() is not None, timeout=60)
        if proc.poll() is None:
            proc.send_signal(sig)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_fifty_jobs_interrupted_and_rerun_against_a_flaky_api_pay_for_fifty_workflows(sogni_env, tmp_path):
    from PIL import Image

    emu, base = _start_emulator(sogni_env)
    try:
        env = dict(sogni_env, SOGNI_BASE_URL=base)
        (tmp_path / "fifty.yaml").write_text(FIFTY)
        out = tmp_path / "out"
        record = out / ".sogni-run" / "fifty.jsonl"
        args = ["recipe", "run", tmp_path / "fifty.yaml", "-o", out, "--concurrency", "8"]
        assert _run_until(args, env, record, 20, signal.SIGINT) in (0, 8, 130)
        assert _run_until(args, env, record, len(_job_lines(record)) + 25, signal.SIGKILL) in (0, 8, -9)
        codes = []
        for _ in range(12):
            res = subprocess.run([sys.executable, "-m", "sogni_cli", *map(str, args)], env=env,
                                 capture_output=True, text=True, timeout=120)
            codes.append(res.returncode)
            assert "Traceback" not in res.stderr and "Internal error" not in res.stderr, res.stderr
            if res.returncode == 0:
                break
        assert codes[-1] == 0, codes

        seen = httpx.get(f"{base}/_emulator/requests").json()["requests"]
        made = {r["headers"].get("idempotency-key") for r in seen
                if r["method"] == "POST" and r["path"] == WF and r["fault"] != "status"}
        assert len(made) == 50  # every create that reached the emulator was for one of 50 keys
        total = None
        for _ in range(50):  # the listing itself meets the 429s too
            resp = httpx.get(f"{base}{WF}", params={"limit": 1}, headers={"Authorization": "Bearer x"})
            if resp.status_code == 200:
                total = resp.json()["data"]["total"]
                break
        assert total == 50

        final: dict[str, dict] = {}
        for rec in _job_lines(record):
            final[rec["id"]] = rec
        assert len(final) == 50 and all(r["status"] == "succeeded" for r in final.values())
        assert len({r["workflow_id"] for r in final.values()}) == 50
        for rec in final.values():
            (o,) = rec["outputs"]
            path = out / o["path"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == o["sha256"]
            with Image.open(path) as im:
                im.verify()
    finally:
        emu.terminate()
        emu.wait(timeout=10)
