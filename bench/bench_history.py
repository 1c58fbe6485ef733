#!/usr/bin/env python3
"""Benchmark: the log (logs.db), whole processes.

1. What logging adds to a chat: ``sogni chat`` against the local stream server (bench/_server.py, 50 chunks),
   with and without ``--no-log``, in pairs (the order alternates), median of the paired differences, in wall
   time and in CPU time (steadier on a busy machine); and the time the chat process spends writing its entry
   (timed around the exit-code funnel's ``flush``). Target: <= 3 ms.
2. ``sogni logs -q WORD`` over 100,000 logged entries (seeded through the store), median of R runs.
   Target: <= 150 ms.
3. 16 processes logging 1,000 entries each at the same time, every entry written as one command writes it
   (appended to the journal), each process also reading the log (moving the journal in) every 250 entries;
   rows counted afterwards. Target: none lost.
4. ``sogni --help`` (start-up must not import sqlite3): median of R runs, and whether sqlite3 was imported.

Usage: python bench/bench_history.py [--pairs 40] [--runs 15] [--skip-parallel]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import start_server  # noqa: E402


def _env(tmp: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOGNI_") and k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}
    env.update({"SOGNI_CONFIG_DIR": tmp, "SOGNI_API_KEY": "bench-key", "NO_PROXY": "127.0.0.1",
                "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache")}, **extra)
    return env


_CPU: list[float] = []  # CPU time (user + system) of each child timed, ms: steadier than wall time on a busy machine


def _time(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t) * 1000
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(args)}")
    _CPU.append((usage.ru_utime + usage.ru_stime) * 1000)
    return wall


def chat_overhead(pairs: int, tmp: str) -> dict[str, float]:
    srv = start_server(chunks=50)
    try:
        env = _env(tmp, SOGNI_BASE_URL=srv.url)
        base = [sys.executable, "-m", "sogni_cli", "chat", "--tools", "none", "hello"]
        for _ in range(3):  # warm the caches and create the log
            _time(base, env)
            _time(base + ["--no-log"], env)
        logged, unlogged, diffs, cpu_diffs = [], [], [], []
        for i in range(pairs):
            if i % 2:
                b, a = _time(base + ["--no-log"], env), _time(base, env)
                cb, ca = _CPU[-2], _CPU[-1]
            else:
                a, b = _time(base, env), _time(base + ["--no-log"], env)
                ca, cb = _CPU[-2], _CPU[-1]
            logged.append(a)
            unlogged.append(b)
            diffs.append(a - b)
            cpu_diffs.append(ca - cb)
    finally:
        srv.stop()
    return {"logged": statistics.median(logged), "no_log": statistics.median(unlogged),
            "paired_diff": statistics.median(diffs), "cpu_diff": statistics.median(cpu_diffs)}


TIMED_FLUSH = """
import sys, time
from sogni_cli.core import history
_flush = history.flush
def flush(code):
    t = time.perf_counter()
    _flush(code)
    sys.stderr.write("FLUSH %.3f\\n" % ((time.perf_counter() - t) * 1000))
history.flush = flush
sys.argv = ["sogni"] + sys.argv[1:]
from sogni_cli.__main__ import main
main()
"""


def flush_cost(runs: int, tmp: str) -> float:
    """The time the exit-code funnel spends writing the entry, inside the chat process (median, ms)."""
    srv = start_server(chunks=50)
    try:
        env = _env(tmp, SOGNI_BASE_URL=srv.url)
        found = []
        for _ in range(runs):
            p = subprocess.run([sys.executable, "-c", TIMED_FLUSH, "chat", "--tools", "none", "hello"], env=env,
                               capture_output=True, text=True, check=True)
            found += [float(line.split()[1]) for line in p.stderr.splitlines() if line.startswith("FLUSH ")]
    finally:
        srv.stop()
    return statistics.median(found)


def seed(path: Path, n: int) -> None:
    from sogni_cli.core import history

    words = ["lighthouse", "harbour", "fox", "meadow", "engine", "violet", "granite", "orbit", "lantern", "tide"]
    store = history.Store.open(path)
    batch = []
    for i in range(n):
        w = words[i % len(words)]
        batch.append(history.Entry("chat", command="chat", cid=f"c{i // 4}", model="bench-model",
                                   prompt=f"prompt {i} about the {w} and item{i}", reply=f"reply {i} {w}",
                                   exit_code=0, duration=0.1))
        if len(batch) == 5000:
            store.add(batch)
            batch = []
    if batch:
        store.add(batch)
    store.close()


def search(runs: int, tmp: str) -> dict[str, float]:
    path = Path(tmp) / "big.db"
    t = time.perf_counter()
    seed(path, 100_000)
    seeded = time.perf_counter() - t
    env = _env(tmp, SOGNI_LOGS_DB=str(path))
    cmd_rare = [sys.executable, "-m", "sogni_cli", "logs", "-q", "item99999"]
    cmd_common = [sys.executable, "-m", "sogni_cli", "logs", "-q", "lighthouse"]
    _time(cmd_rare, env)
    rare = statistics.median(_time(cmd_rare, env) for _ in range(runs))
    common = statistics.median(_time(cmd_common, env) for _ in range(runs))
    from sogni_cli.core import history

    store = history.Store.open(path)
    query = {}
    for word in ("item99999", "lighthouse"):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            store.query(history.Filters(text=word, limit=10))
            times.append((time.perf_counter() - t) * 1000)
        query[word] = statistics.median(times)
    store.close()
    return {"rare_word": rare, "common_word": common, "seed_s": seeded, "query_rare": query["item99999"],
            "query_common": query["lighthouse"]}


WRITER = """
import sys
from pathlib import Path
from sogni_cli.core import history
path = Path(sys.argv[1])
for i in range(1000):
    history.write(path, [history.Entry("chat", command="chat", cid="w" + sys.argv[2], prompt=f"w{sys.argv[2]} {i}",
                                       reply="ok", exit_code=0)])
    if i % 250 == 0:
        history.Store.open(path).close()
"""


def parallel(tmp: str) -> dict[str, float]:
    path = Path(tmp) / "parallel.db"
    env = _env(tmp, SOGNI_LOGS_WAIT="120", PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w)], env=env,
                              stderr=subprocess.PIPE) for w in range(16)]
    warnings = sum(p.communicate()[1].count(b"Warning") for p in procs)
    took = time.perf_counter() - t
    import sqlite3

    from sogni_cli.core import history

    history.Store.open(path).close()

    rows = sqlite3.connect(path).execute("SELECT count(*) FROM entries").fetchone()[0]
    return {"rows": rows, "expected": 16000, "seconds": took, "warnings": warnings}


def startup(runs: int, tmp: str) -> dict[str, float]:
    env = _env(tmp)
    cmd = [sys.executable, "-m", "sogni_cli", "--help"]
    _time(cmd, env)
    ms = statistics.median(_time(cmd, env) for _ in range(runs))
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "sogni_cli", "--help"], env=env,
                         capture_output=True, text=True).stderr
    return {"help_ms": ms, "imports_sqlite3": " sqlite3" in out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--skip-parallel", action="store_true")
    a = ap.parse_args()
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        c = chat_overhead(a.pairs, tmp)
        print(f"chat: logged {c['logged']:.1f} ms, --no-log {c['no_log']:.1f} ms, paired difference "
              f"(median of {a.pairs}) {c['paired_diff']:+.2f} ms  [target <= 3 ms: "
              f"{'OK' if c['paired_diff'] <= 3 else 'FAIL'}]; CPU time paired difference {c['cpu_diff']:+.2f} ms")
        print(f"chat: writing the entry inside the process (the exit-code funnel's flush): median "
              f"{flush_cost(a.runs, tmp):.2f} ms")
        s = search(a.runs, tmp)
        print(f"logs -q over 100,000 entries: rare word {s['rare_word']:.1f} ms, common word (10,000 hits, "
              f"10 shown) {s['common_word']:.1f} ms  [target <= 150 ms: "
              f"{'OK' if max(s['rare_word'], s['common_word']) <= 150 else 'FAIL'}]  (seeded in {s['seed_s']:.1f} s); "
              f"the query alone {s['query_rare']:.2f} / {s['query_common']:.2f} ms")
        if not a.skip_parallel:
            p = parallel(tmp)
            print(f"16 processes x 1,000 entries (one write each, journal moved in meanwhile): {p['rows']} of {p['expected']} rows "
                  f"in {p['seconds']:.1f} s, {p['warnings']} warnings  "
                  f"[{'OK' if p['rows'] == p['expected'] else 'FAIL'}]")
        st = startup(a.runs, tmp)
        print(f"sogni --help: {st['help_ms']:.1f} ms; sqlite3 imported: {st['imports_sqlite3']}")


if __name__ == "__main__":
    main()
