#!/usr/bin/env python
"""A recipe against an account that runs only a few workflows at once: wall time, 409s, concurrency over time.

`sogni recipe run --concurrency 32` of a 500-job image recipe against `sogni emulator --max-active 4`
(short steps). The run slows down on the 409s (halved at most once a second, raised by one per round of
successes) and must finish with every job succeeded and exactly one workflow per job. For scale, the same
recipe runs with `--concurrency 4` against the same limit (a user who knew the limit) and with
`--concurrency 32` against no limit.

The emulator is a subprocess; `sogni` runs in this process (``sogni_cli.__main__.run``) so the pace's
``watch`` seam can record every change of the number of jobs allowed at once. The server-side active count
over time comes from the workflows' ``createdAt``/``completedAt``; the 409s from ``GET /_emulator/requests``.

Run: .venv/bin/python bench/bench_limit.py [--jobs 500] [--step-seconds 0.1] [--limit 4] [--no-anchors]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WF = "/v1/creative-agent/workflows"


def recipe(n: int) -> str:
    return ("version: 1\nname: limited\nmatrix:\n  n: " + str(list(range(1, n + 1))) + "\njobs:\n  - id: pic\n"
            "    matrix: true\n    image: {prompt: \"limited picture {{ matrix.n }}\", width: 32, height: 32}\n")


def start_emulator(step: float, limit: int | None) -> tuple[subprocess.Popen, str]:
    args = [PY, "-m", "sogni_cli", "emulator", "--port", "0", "--step-seconds", str(step), "-q"]
    if limit:
        args += ["--max-active", str(limit)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("SOGNI_BASE_URL="):
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def one_run(jobs: int, step: float, limit: int | None, concurrency: int, work: Path) -> dict:
    import httpx

    from sogni_cli.__main__ import run
    from sogni_cli.recipes import pace as pace_mod

    emu, base = start_emulator(step, limit)
    try:
        folder = Path(tempfile.mkdtemp(dir=work))
        (folder / "limited.yaml").write_text(recipe(jobs))
        os.environ.update(SOGNI_BASE_URL=base, SOGNI_API_KEY="sk-bench-0000", SOGNI_CONFIG_DIR=str(folder / "cfg"),
                          NO_COLOR="1")
        changes: list[tuple[float, str, int]] = []
        t0 = time.time()
        pace_mod.watch = lambda p, event: changes.append((time.time() - t0, event, p.allowed))
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = run(["recipe", "run", str(folder / "limited.yaml"), "-o", str(folder / "out"),
                            "--concurrency", str(concurrency)])
        finally:
            pace_mod.watch = None
        wall = time.time() - t0
        seen = httpx.get(f"{base}/_emulator/requests", timeout=30).json()["requests"]
        creates = [r for r in seen if r["method"] == "POST" and r["path"] == WF]
        made = [r for r in creates if r["status"] == 201]
        refused = [r["time"] - t0 for r in creates if r["status"] == 409]
        listed: list[dict] = []
        while True:  # pages of 100
            page = httpx.get(f"{base}{WF}", params={"limit": 100, "offset": len(listed)},
                             headers={"Authorization": "Bearer x"}, timeout=60).json()["data"]["workflows"]
            listed += page
            if len(page) < 100:
                break
        spans = []
        for w in listed:
            a = _epoch(w.get("createdAt"))
            b = _epoch((w.get("timestamps") or {}).get("completedAt")) or a
            if a is not None:
                spans.append((a - t0, b - t0))
        ok = code == 0 and f"{jobs} jobs: {jobs} succeeded" in err.getvalue() and len(made) == jobs
        shutil.rmtree(folder, ignore_errors=True)
        return {"code": code, "ok": ok, "wall": wall, "made": len(made), "refused": refused,
                "changes": changes, "spans": spans, "stderr_tail": err.getvalue()[-600:]}
    finally:
        emu.terminate()
        emu.wait(timeout=10)


def active_at(spans: list[tuple[float, float]], t: float) -> int:
    return sum(1 for a, b in spans if a <= t < b)


def timeline(res: dict, ceiling: int, bucket: float) -> list[str]:
    """Per ``bucket`` seconds: the pace's allowed jobs (lowest-highest), the 409s, the server's active
    workflows (highest, sampled every 10 ms), the workflows created."""
    rows = ["| t (s) | jobs allowed | 409s | server active (max) | workflows created |", "|---|---|---|---|---|"]
    allowed = ceiling
    changes = list(res["changes"])
    t = 0.0
    while t < res["wall"]:
        lo = hi = allowed
        while changes and changes[0][0] < t + bucket:
            _, _, allowed = changes.pop(0)
            lo, hi = min(lo, allowed), max(hi, allowed)
        n409 = sum(1 for x in res["refused"] if t <= x < t + bucket)
        act = max((active_at(res["spans"], t + i * 0.01) for i in range(int(bucket * 100))), default=0)
        made = sum(1 for a, _ in res["spans"] if t <= a < t + bucket)
        rows.append(f"| {t:.0f}-{t + bucket:.0f} | {lo}-{hi} | {n409} | {act} | {made} |")
        t += bucket
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--step-seconds", type=float, default=0.1)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--bucket", type=float, default=2.0, help="seconds per timeline row")
    ap.add_argument("--no-anchors", action="store_true", help="skip the runs at --concurrency LIMIT and with no limit")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="sogni-bench-limit-"))
    try:
        runs = [("paced", a.concurrency, a.limit)]
        if not a.no_anchors:
            runs += [("knew the limit", a.limit, a.limit), ("no limit", a.concurrency, None)]
        results = {}
        for name, conc, limit in runs:
            results[name] = one_run(a.jobs, a.step_seconds, limit, conc, work)
            r = results[name]
            print(f"{name}: exit {r['code']}, {r['made']} workflows, {len(r['refused'])} 409s, {r['wall']:.1f} s",
                  file=sys.stderr)
        print(f"\n{a.jobs} jobs, emulator --step-seconds {a.step_seconds}, CPython "
              f"{sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
        print("| run | --concurrency | account limit | wall s | workflows | 409s | jobs allowed (lowest) | "
              "pace changes | server active (max) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for (name, conc, limit) in runs:
            r = results[name]
            lowest = min([c[2] for c in r["changes"]] or [conc])
            peak = max((active_at(r["spans"], a0) for a0, _ in r["spans"]), default=0)
            print(f"| {name} | {conc} | {limit or '—'} | {r['wall']:.1f} | {r['made']} | {len(r['refused'])} | "
                  f"{lowest} | {sum(1 for c in r['changes'] if c[1] != 'start')} | {peak} |")
        paced = results["paced"]
        print("\nConcurrency over time (paced run):\n")
        print("\n".join(timeline(paced, a.concurrency, a.bucket)))
        verdict = "PASS" if paced["ok"] else "FAIL"
        print(f"\nVerdict: every job succeeded, one workflow per job: {verdict}")
        if "knew the limit" in results:
            print(f"Paced run vs --concurrency {a.limit}: {paced['wall'] / results['knew the limit']['wall']:.2f}x")
        if not paced["ok"]:
            print(paced["stderr_tail"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
