#!/usr/bin/env python3
"""Benchmark: time to first token of `sogni chat` against a bare ten-line httpx script, whole processes.

From just before the process is started to the first byte it writes on stdout (read from a pipe), against
the local SSE server of bench/_server.py (a few chunks, loopback, ``http://``). Paired runs: each round runs
the anchor and `sogni chat` back to back (the order alternates), and the ratio is taken per pair; the table
shows medians over the rounds.

- ``bare httpx``: the ten-line script below (``httpx.Client()``, ``iter_lines``, ``json.loads``, write + flush);
- ``sogni chat (-m)``: ``python -m sogni_cli --base-url URL chat hi`` (the target row);
- ``sogni chat (console script)``: the ``sogni`` launcher next to the interpreter, when there is one;
- ``python -c pass``, for scale.

The CPU time of each whole process (user + system, from ``wait4``) is shown too: on a busy machine it moves
much less than wall time. Also, once each under ``python -X importtime``, what `sogni chat` imports and whether it loads a CA bundle
(it must not for an ``http://`` base URL).

Target: `sogni chat` <= 1.1x the bare script (median of the paired ratios, >= 7 pairs).

The child processes run with bytecode cached and stdout buffered as in a user's shell (see bench_stream.py),
unless ``--keep-env``.

Usage: python bench/bench_first_token.py [--runs 15] [--keep-env] [--src DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import bench.bench_stream as bs  # noqa: E402
from bench._server import start_server  # noqa: E402

PY = sys.executable
TARGET = 1.1

BARE = r'''import json, sys, httpx
body = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
with httpx.Client(timeout=300) as client:
    with client.stream("POST", sys.argv[1] + "/v1/chat/completions", json=body,
                       headers={"Authorization": "Bearer x"}) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                text = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
'''


def first_byte(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(seconds from just before the process starts to its first byte on stdout, CPU seconds of the whole
    process); the process runs to its end."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env,
                                cwd=cwd, bufsize=0)
        first = proc.stdout.read(1)
        dt = time.perf_counter() - t0
        proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or (not first and cmd[-1] != "pass"):
            err.seek(0)
            raise SystemExit(f"{cmd!r} exited {proc.returncode}: {err.read().decode(errors='replace')[-2000:]}")
    return dt, usage.ru_utime + usage.ru_stime


COUNTER = r'''import atexit, os, ssl, sys
_n = [0]
def _wrap(name):
    orig = getattr(ssl.SSLContext, name)
    def counted(self, *a, **k):
        _n[0] += 1
        return orig(self, *a, **k)
    setattr(ssl.SSLContext, name, counted)
for _name in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
    _wrap(_name)
atexit.register(lambda: open(os.environ["CA_LOADS_FILE"], "w").write(str(_n[0])))
'''


def ca_loads(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[int, list[str]]:
    """Run once more, counting CA bundle loads (a ``sitecustomize`` that counts calls of ``SSLContext``'s
    loading methods) and once under -X importtime: (CA loads, the slowest imports by their own time)."""
    site = os.path.join(cwd, "ca-count")
    os.makedirs(site, exist_ok=True)
    with open(os.path.join(site, "sitecustomize.py"), "w") as f:
        f.write(COUNTER)
    count_file = os.path.join(cwd, "ca-loads.txt")
    path = os.pathsep.join([site] + [p for p in [env.get("PYTHONPATH")] if p])
    subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, cwd=cwd,
                   env=dict(env, PYTHONPATH=path, CA_LOADS_FILE=count_file))
    with open(count_file) as f:
        loads = int(f.read() or 0)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                          env=dict(env, PYTHONPROFILEIMPORTTIME="1"), cwd=cwd)
    rows = []
    for ln in proc.stderr.decode(errors="replace").splitlines():
        if not ln.startswith("import time:") or "|" not in ln:
            continue
        parts = [p for p in ln[len("import time:"):].split("|")]
        try:
            rows.append((int(parts[0]), parts[2].strip()))
        except ValueError:
            continue
    top = [f"{us / 1000:.1f} ms {name}" for us, name in sorted(rows, reverse=True)][:12]
    return loads, top


def main() -> int:
    ap = argparse.ArgumentParser(description="Time to first token of `sogni chat` vs a bare httpx script.")
    ap.add_argument("--runs", type=int, default=15, help="paired rounds (at least 7)")
    ap.add_argument("--chunks", type=int, default=5)
    ap.add_argument("--keep-env", action="store_true")
    ap.add_argument("--src", help="import sogni_cli from this folder (to measure a modified copy)")
    a = ap.parse_args()
    bs.KEEP_ENV = a.keep_env
    if a.src:
        bs.SRC = os.path.abspath(a.src)
    runs = max(7, a.runs)
    with tempfile.TemporaryDirectory(prefix="sogni-bench-ftt-") as tmp:
        srv = start_server(a.chunks)
        try:
            bare = os.path.join(tmp, "bare.py")
            with open(bare, "w") as f:
                f.write(BARE)
            env = bs._env(tmp)
            cmds = {
                "python -c pass": [PY, "-c", "pass"],
                "bare httpx": [PY, bare, srv.url],
                "sogni chat (-m)": [PY, "-m", "sogni_cli", "--base-url", srv.url, "chat", "hi"],
            }
            script = os.path.join(os.path.dirname(PY), "sogni")
            if os.path.exists(script) and not a.src:
                cmds["sogni chat (console script)"] = [script, "--base-url", srv.url, "chat", "hi"]
            for cmd in cmds.values():  # warm-up: page cache, bytecode
                first_byte(cmd, env, tmp)
                first_byte(cmd, env, tmp)
            times: dict[str, list[float]] = {k: [] for k in cmds}
            cpu: dict[str, list[float]] = {k: [] for k in cmds}
            ratios: dict[str, list[float]] = {k: [] for k in cmds if k.startswith("sogni")}
            cpu_ratios: dict[str, list[float]] = {k: [] for k in ratios}
            names = list(cmds)
            for r in range(runs):
                order = names if r % 2 == 0 else list(reversed(names))
                got = {n: first_byte(cmds[n], env, tmp) for n in order}
                for n, (t, c) in got.items():
                    times[n].append(t)
                    cpu[n].append(c)
                for n in ratios:
                    ratios[n].append(got[n][0] / got["bare httpx"][0])
                    cpu_ratios[n].append(got[n][1] / got["bare httpx"][1])
            certs = {n: ca_loads(cmds[n], env, tmp) for n in cmds if n != "python -c pass"}
        finally:
            srv.stop()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {runs} paired rounds, whole processes, "
          f"process start -> first byte on stdout, http:// loopback server, "
          + ("environment as is" if a.keep_env else "bytecode cached, stdout buffered"))
    print()
    print("| process | first byte ms (median) | min-max | × bare httpx (median of pairs) | CPU ms (median) | "
          "CPU × bare httpx | CA bundle loads |")
    print("|---|---|---|---|---|---|---|")
    for n, ts in times.items():
        if n in ratios:
            ratio, cratio = f"{statistics.median(ratios[n]):.2f}", f"{statistics.median(cpu_ratios[n]):.2f}"
        else:
            ratio = f"{statistics.median(ts) / statistics.median(times['bare httpx']):.2f}"
            cratio = f"{statistics.median(cpu[n]) / statistics.median(cpu['bare httpx']):.2f}"
        ca = str(certs[n][0]) if n in certs else "—"
        print(f"| {n} | {statistics.median(ts) * 1000:.1f} | {min(ts) * 1000:.1f}-{max(ts) * 1000:.1f} | "
              f"{ratio} | {statistics.median(cpu[n]) * 1000:.1f} | {cratio} | {ca} |")
    print()
    print("Slowest imports of `sogni chat` (self time, -X importtime):")
    for line in certs["sogni chat (-m)"][1]:
        print("  " + line)
    ratio = statistics.median(ratios["sogni chat (-m)"])
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    no_ca = certs["sogni chat (-m)"][0] == 0
    print(f"\ntarget sogni chat <= {TARGET}x bare httpx: {ratio:.2f}x  {verdict}")
    print(f"target no CA bundle for an http:// base URL: {'PASS' if no_ca else 'FAIL'}")
    return 0 if verdict == "PASS" and no_ca else 1


if __name__ == "__main__":
    sys.exit(main())
