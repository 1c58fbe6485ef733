#!/usr/bin/env python3
"""Downloads as whole processes: ``sogni workflow download`` against curl, in the same run.

A file server (``_files.py``) runs in its own process and serves a finished workflow record whose
artifacts are one big file (``--big-mb``, default 1024) or N small files (``--small-kb`` each, optional
latency per request). Every measure is a ratio against its anchor, from interleaved runs (medians of
``--runs``, at least 7), each with a fresh output folder on tmpfs (``/dev/shm``) and on disk (``--disk``):

1. big file, no checksum: ``sogni workflow download wf_big -o DIR`` vs ``curl -s -o FILE URL``
   (throughput as a share of curl's; target >= 90 %); the same with ``--json`` (sha256 reported;
   target >= 80 %); peak RSS of the sogni process (target <= 64 MB).
2. ``workflow download`` without ``--json`` computes no sha256: the no-checksum run must be faster than the
   ``--json`` one (reported as a ratio; checked directly by a test as well).
3. 200 small files with 20 ms latency: ``sogni workflow download wf_small_200 --concurrency N`` vs
   ``curl --parallel --parallel-max 8`` (target <= 1.2x), for each N of ``--concurrency`` (the default
   is chosen from this); with no latency, client CPU per file ``(cpu(200) - cpu(1)) / 199`` from the
   process's own resource usage (target <= 0.5 ms).

    .venv/bin/python bench/bench_wire.py [--runs 7] [--big-mb 1024] [--only big|small|cpu] [--disk DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _wait(proc: subprocess.Popen) -> tuple[int, float, int]:
    """(return code, CPU seconds user+sys, peak RSS in bytes) of a finished child."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS) of ``cmd``; raises when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env)
    err = proc.stderr.read() if proc.stderr else b""
    code, cpu, rss = _wait(proc)
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(cmd)}\n{err.decode(errors='replace')[-2000:]}")
    return wall, cpu, rss


class Server:
    def __init__(self, big_mb: int, small_kb: int):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "_files.py"), "--big-mb", str(big_mb),
                                      "--small-kb", str(small_kb)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.strip():
            raise SystemExit("the file server did not start")
        self.port = int(line)
        self.base = f"http://127.0.0.1:{self.port}"

    def latency(self, ms: float) -> None:
        import urllib.request

        urllib.request.urlopen(f"{self.base}/_latency/{ms}").read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def sogni_env(tmp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_") and k not in
           ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "http_proxy", "https_proxy", "all_proxy")}
    env.update({"SOGNI_API_KEY": "sk-bench", "SOGNI_CONFIG_DIR": os.path.join(tmp, "cfg"),
                "PYTHONPYCACHEPREFIX": os.path.join(tmp, "pycache"), "NO_PROXY": "127.0.0.1"})
    return env


def sogni_cmd(base: str, wid: str, out: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sogni_cli", "--base-url", base, "-q", "workflow", "download", wid, "-o", out,
            *extra]


def fresh(parent: str) -> str:
    return tempfile.mkdtemp(prefix="sogni-bench-out-", dir=parent)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def rng(xs: list[float]) -> str:
    return f"{min(xs):.3f}-{max(xs):.3f}"


def bench_big(srv: Server, env: dict[str, str], where: dict[str, str], runs: int) -> list[tuple]:
    rows = []
    for label, parent in where.items():
        t_curl, t_plain, t_sha, rss_plain, rss_sha = [], [], [], [], []
        kinds = ["curl", "plain", "sha"]
        for i in range(runs):
            # rotate the order, so that no client always runs right after another one's gigabyte (the
            # kernel's writeback of the previous file would always slow the same one down)
            for kind in kinds[i % 3:] + kinds[:i % 3]:
                out = fresh(parent)
                try:
                    if kind == "curl":
                        t_curl.append(timed(["curl", "-s", "-o", os.path.join(out, "big.bin"), f"{srv.base}/big.bin"])[0])
                    else:
                        extra = ("--json",) if kind == "sha" else ()
                        wall, _cpu, rss = timed(sogni_cmd(srv.base, "wf_big", out, *extra), env)
                        (t_plain if kind == "plain" else t_sha).append(wall)
                        (rss_plain if kind == "plain" else rss_sha).append(rss)
                finally:
                    shutil.rmtree(out, ignore_errors=True)
        c = med(t_curl)
        rows.append((label, "curl -o", c, rng(t_curl), 1.0, "", ""))
        rows.append((label, "sogni workflow download", med(t_plain), rng(t_plain), c / med(t_plain),
                     f"{max(rss_plain) / 1e6:.0f} MB", ">= 90%"))
        rows.append((label, "sogni workflow download --json (sha256)", med(t_sha), rng(t_sha), c / med(t_sha),
                     f"{max(rss_sha) / 1e6:.0f} MB", ">= 80%"))
    return rows


def curl_parallel(srv: Server, n: int, out: str) -> list[str]:
    cfg = os.path.join(out, "curl.cfg")
    with open(cfg, "w") as fh:
        for i in range(1, n + 1):
            fh.write(f'url = "{srv.base}/small/{i}.bin"\noutput = "{out}/{i}.bin"\n')
    return ["curl", "-s", "--parallel", "--parallel-max", "8", "-K", cfg]


def bench_small(srv: Server, env: dict[str, str], parent: str, runs: int, n: int, conc: list[int],
                latency: float) -> list[tuple]:
    srv.latency(latency)
    t_curl: list[float] = []
    t_sogni: dict[int, list[float]] = {c: [] for c in conc}
    order: list[int | None] = [None, *conc]  # None: curl
    for i in range(runs):
        for c in order[i % len(order):] + order[:i % len(order)]:
            out = fresh(parent)
            try:
                if c is None:
                    t_curl.append(timed(curl_parallel(srv, n, out))[0])
                else:
                    t_sogni[c].append(timed(sogni_cmd(srv.base, f"wf_small_{n}", out, "--concurrency", str(c)),
                                            env)[0])
            finally:
                shutil.rmtree(out, ignore_errors=True)
    cm = med(t_curl)
    rows = [(f"{n} x small, {latency:g} ms", "curl --parallel --parallel-max 8", cm, rng(t_curl), 1.0, "")]
    for c in conc:
        rows.append((f"{n} x small, {latency:g} ms", f"sogni --concurrency {c}", med(t_sogni[c]), rng(t_sogni[c]),
                     med(t_sogni[c]) / cm, "<= 1.2x"))
    return rows


def bench_cpu(srv: Server, env: dict[str, str], parent: str, runs: int, n: int, conc: int) -> tuple[float, list]:
    srv.latency(0)
    cpu1, cpun, walln, wallc, ccpu1, ccpun = [], [], [], [], [], []
    for _ in range(runs):
        for count in (1, n):
            out = fresh(parent)
            try:
                wall, cpu, _ = timed(sogni_cmd(srv.base, f"wf_small_{count}", out, "--concurrency", str(conc)), env)
                (cpu1 if count == 1 else cpun).append(cpu)
                if count == n:
                    walln.append(wall)
            finally:
                shutil.rmtree(out, ignore_errors=True)
            out = fresh(parent)
            try:
                wall, cpu, _ = timed(curl_parallel(srv, count, out))
                (ccpu1 if count == 1 else ccpun).append(cpu)
                if count == n:
                    wallc.append(wall)
            finally:
                shutil.rmtree(out, ignore_errors=True)
    per = (med(cpun) - med(cpu1)) / (n - 1)
    curl_per = (med(ccpun) - med(ccpu1)) / (n - 1)
    return per, [med(cpu1), med(cpun), med(walln), med(wallc), curl_per]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--small-kb", type=int, default=200)
    ap.add_argument("--small-count", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--concurrency", default="4,8,16", help="comma-separated values to compare")
    ap.add_argument("--cpu-concurrency", type=int, default=16,
                    help="--concurrency of the CPU-per-file measure (default: the CLI's own default, 16)")
    ap.add_argument("--disk", default=tempfile.gettempdir(), help="a folder on a real disk")
    ap.add_argument("--only", choices=("big", "small", "cpu"), action="append")
    args = ap.parse_args()
    if args.runs < 7:
        print("note: fewer than 7 runs; the targets ask for medians of >= 7 pairs", file=sys.stderr)
    only = set(args.only or ("big", "small", "cpu"))
    conc = [int(c) for c in args.concurrency.split(",") if c]
    where = {"tmpfs": "/dev/shm", "disk": args.disk} if os.path.isdir("/dev/shm") else {"disk": args.disk}
    srv = Server(args.big_mb if "big" in only else 1, args.small_kb)
    tmp = tempfile.mkdtemp(prefix="sogni-bench-")
    env = sogni_env(tmp)
    env["PYTHONPATH"] = str(ROOT)
    try:
        timed(sogni_cmd(srv.base, "wf_small_1", fresh(tmp)), env)  # warm the bytecode cache
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, runs={args.runs}")
        if "big" in only:
            print(f"\n## {args.big_mb} MiB, one file (s, median; ratio = share of curl's throughput)\n")
            print("| output | client | s | min-max | % of curl | peak RSS | target |\n|---|---|---|---|---|---|---|")
            for label, name, t, r, ratio, rss, target in bench_big(srv, env, where, args.runs):
                verdict = ""
                if target:
                    need = 0.9 if "90" in target else 0.8
                    verdict = " OK" if ratio >= need else " FAIL"
                print(f"| {label} | {name} | {t:.3f} | {r} | {ratio * 100:.0f}% | {rss} | {target}{verdict} |")
        if "small" in only:
            for label, parent in where.items():
                print(f"\n## {args.small_count} x {args.small_kb} KB, {args.latency_ms:g} ms latency, output on {label}\n")
                print("| client | s | min-max | x curl | target |\n|---|---|---|---|---|")
                for _l, name, t, r, ratio, target in bench_small(srv, env, parent, args.runs, args.small_count,
                                                                 conc, args.latency_ms):
                    verdict = (" OK" if ratio <= 1.2 else " FAIL") if target else ""
                    print(f"| {name} | {t:.3f} | {r} | {ratio:.2f} | {target}{verdict} |")
        if "cpu" in only:
            for label, parent in where.items():
                per, (c1, cn, wn, wc, cper) = bench_cpu(srv, env, parent, args.runs, args.small_count,
                                                        args.cpu_concurrency)
                print(f"\n## {args.small_count} x {args.small_kb} KB, no latency, output on {label}\n")
                print(f"CPU of the sogni process (--concurrency {args.cpu_concurrency}): 1 file {c1 * 1000:.0f} ms, "
                      f"{args.small_count} files {cn * 1000:.0f} ms -> **{per * 1000:.2f} ms per file** (target <= 0.5 ms"
                      f"{' OK' if per <= 0.0005 else ' FAIL'}); curl --parallel {cper * 1000:.2f} ms per file; "
                      f"wall {wn:.3f} s vs curl --parallel {wc:.3f} s")
    finally:
        srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
