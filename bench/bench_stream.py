#!/usr/bin/env python3
"""Benchmark: streaming 20,000 chat chunks through `sogni chat`, whole process, stdout to a file.

A local server (bench/_server.py) sends N OpenAI-style ``chat.completion.chunk`` events as fast as it can, each
its own HTTP chunk. Timed in the same run, interleaved, median of R runs each:

- ``baseline``: a bare httpx loop — ``iter_raw()``, split on blank lines, ``json.loads``, write + flush per delta;
- ``sogni``: ``python -m sogni_cli --base-url URL chat "hi"`` (SOGNI_API_KEY set, config folder empty);
- ``openai``: the official ``openai`` package's streaming client, write + flush per delta;
- ``curl -N`` (for scale, when curl is on PATH).

Each output file is checked against the text the server sent. Then the same clients against a 1-chunk stream
give the fixed start-up cost, so ``(t(N) - t(1)) / (N - 1)`` is the cost per extra chunk. ``--compare DIR`` adds
a row for `sogni chat` importing ``sogni_cli`` from another folder (a modified copy), measured in the same
interleaved rounds.

Targets: sogni <= 1.1x baseline, and openai / sogni >= 5.

The child processes run with bytecode caching on (``PYTHONPYCACHEPREFIX`` in a temporary folder) and without
``PYTHONUNBUFFERED``, as in a user's shell, unless ``--keep-env``.

Usage: python bench/bench_stream.py [--chunks 20000] [--runs 5] [--no-openai] [--no-small] [--profile] [--keep-env]
       [--src DIR] [--compare DIR ...]
``--profile`` also runs `sogni chat` once under cProfile and prints where the time goes.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench._server import start_server  # noqa: E402

PY = sys.executable
BASELINE_TARGET = 1.1
OPENAI_TARGET = 5.0

BASELINE = r'''
import json, sys
import httpx
url = sys.argv[1] + "/v1/chat/completions"
body = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
out = sys.stdout
with httpx.Client(timeout=300) as client:
    with client.stream("POST", url, json=body, headers={"Authorization": "Bearer x",
                       "Accept": "text/event-stream", "Accept-Encoding": "identity"}) as resp:
        resp.raise_for_status()
        buf = b""
        done = False
        for raw in resp.iter_raw():
            buf += raw
            *blocks, buf = buf.split(b"\n\n")
            for block in blocks:
                if not block.startswith(b"data: "):
                    continue
                data = block[6:]
                if data == b"[DONE]":
                    done = True
                    break
                text = json.loads(data)["choices"][0]["delta"].get("content")
                if text:
                    out.write(text)
                    out.flush()
            if done:
                break
'''

OPENAI = r'''
import sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="x", max_retries=0)
out = sys.stdout
stream = client.chat.completions.create(model="bench-model", messages=[{"role": "user", "content": "hi"}],
                                        stream=True)
for chunk in stream:
    if chunk.choices:
        text = chunk.choices[0].delta.content
        if text:
            out.write(text)
            out.flush()
'''


KEEP_ENV = False
SRC = ROOT  # where `sogni_cli` is imported from (--src: an experiment copy)
COMPARE: list[str] = []  # extra copies of sogni_cli measured side by side (--compare)


def clean_env(tmp: str) -> dict[str, str]:
    """The environment of a user's shell: bytecode cached (in a folder under ``tmp``, not next to the sources)
    and stdout buffered as usual, whatever PYTHONDONTWRITEBYTECODE/PYTHONUNBUFFERED this shell has."""
    env = dict(os.environ)
    if not KEEP_ENV:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PYTHONUNBUFFERED", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    return env


def _env(tmp: str, src: str = "") -> dict[str, str]:
    env = clean_env(tmp)
    env["SOGNI_API_KEY"] = "sk-bench-0000"
    env["SOGNI_CONFIG_DIR"] = os.path.join(tmp, "config")
    for var in ("SOGNI_BASE_URL", "SOGNI_API_BASE_URL", "SOGNI_PROFILE", "SOGNI_TIMEOUT", "SOGNI_MAX_RETRIES"):
        env.pop(var, None)
    paths = [src or SRC, ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _commands(tmp: str, url: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (argv, environment). The scripts are written to ``tmp``; every process runs with ``tmp`` as cwd."""
    base = os.path.join(tmp, "baseline.py")
    oai = os.path.join(tmp, "openai_stream.py")
    with open(base, "w") as f:
        f.write(BASELINE)
    with open(oai, "w") as f:
        f.write(OPENAI)
    env = _env(tmp)
    sogni = [PY, "-m", "sogni_cli", "--base-url", url, "chat", "hi"]
    cmds = {
        "baseline": ([PY, base, url], env),
        "sogni": (sogni, env),
    }
    for i, src in enumerate(COMPARE, 1):
        cmds[f"sogni #{i}"] = (sogni, _env(tmp, src))
    cmds["openai"] = ([PY, oai, url], env)
    curl = shutil.which("curl")
    if curl:
        cmds["curl -N"] = ([curl, "-sSN", "-X", "POST", "-H", "Content-Type: application/json",
                            "--data", '{"stream":true}', url + "/v1/chat/completions"], env)
    return cmds


def _run_once(cmd: list[str], env: dict[str, str], out_path: str) -> float:
    with open(out_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE, env=env,
                              cwd=os.path.dirname(out_path))
        dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd!r} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
    return dt


def _check(name: str, out_path: str, expected: str) -> None:
    with open(out_path, "rb") as f:
        got = f.read()
    if name.startswith("curl"):
        ok = got.count(b"data: ") >= expected.count(" ") + expected.count("\n") + 2
    else:
        ok = got.decode("utf-8").rstrip() == expected.rstrip()
    if not ok:
        raise SystemExit(f"{name}: the output ({len(got)} bytes) is not the streamed text ({len(expected)} chars)")


def measure(chunks: int, runs: int, names: list[str], tmp: str) -> dict[str, list[float]]:
    srv = start_server(chunks)
    try:
        cmds = {k: v for k, v in _commands(tmp, srv.url).items() if k.split(" #")[0] in names}
        for name, (cmd, env) in cmds.items():  # warm-up (page cache, .pyc) and correctness check
            path = os.path.join(tmp, f"out-{name.split()[0]}.txt")
            _run_once(cmd, env, path)
            _check(name, path, srv.expected_text)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        order = list(cmds)
        for r in range(runs):
            rot = order[r % len(order):] + order[: r % len(order)]
            for name in rot:
                path = os.path.join(tmp, f"out-{name.split()[0]}.txt")
                times[name].append(_run_once(*cmds[name], path))
                _check(name, path, srv.expected_text)
        return times
    finally:
        srv.stop()


def profile(chunks: int, tmp: str, top: int = 30) -> None:
    import pstats

    srv = start_server(chunks)
    try:
        prof = os.path.join(tmp, "sogni.prof")
        cmd = [PY, "-m", "cProfile", "-o", prof, "-m", "sogni_cli", "--base-url", srv.url, "chat", "hi"]
        _run_once(cmd, _env(tmp), os.path.join(tmp, "out-prof.txt"))
        print(f"\ncProfile of `sogni chat` ({chunks} chunks), top {top} by own time:")
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(40)
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description="Streaming benchmark for `sogni chat`.")
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-openai", action="store_true", help="skip the openai client (slow)")
    ap.add_argument("--no-small", action="store_true", help="skip the 1-chunk run (per-chunk cost)")
    ap.add_argument("--profile", action="store_true", help="also run `sogni chat` under cProfile")
    ap.add_argument("--src", help="import sogni_cli from this folder (to measure a modified copy)")
    ap.add_argument("--compare", action="append", default=[], metavar="DIR",
                    help="also measure `sogni chat` importing sogni_cli from DIR (repeatable; rows 'sogni #N')")
    ap.add_argument("--keep-env", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE/PYTHONUNBUFFERED as set (default: a user's usual environment)")
    a = ap.parse_args()
    global KEEP_ENV, SRC
    KEEP_ENV = a.keep_env
    COMPARE.extend(os.path.abspath(d) for d in a.compare)
    if a.src:
        SRC = os.path.abspath(a.src)

    names = ["baseline", "sogni", "openai", "curl -N"]
    if a.no_openai:
        names.remove("openai")
    with tempfile.TemporaryDirectory(prefix="sogni-bench-") as tmp:
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {a.chunks} chunks, median of {a.runs} "
              "interleaved runs, whole processes, stdout to a file"
              + ("" if SRC == ROOT else f", sogni_cli from {SRC}")
              + (", environment as is" if KEEP_ENV else ", bytecode cached, stdout buffered"))
        for i, d in enumerate(COMPARE, 1):
            print(f"sogni #{i}: sogni_cli from {d}")
        big = measure(a.chunks, a.runs, names, tmp)
        small = {} if a.no_small else measure(1, max(a.runs, 5), [n for n in names if n != "curl -N"], tmp)

        med = {k: statistics.median(v) for k, v in big.items()}
        base = med["baseline"]
        print()
        print("| client | s (median) | min-max | × baseline | 1-chunk s | µs per extra chunk |")
        print("|---|---|---|---|---|---|")
        for name in big:
            s1 = statistics.median(small[name]) if name in small else None
            per = f"{(med[name] - s1) / (a.chunks - 1) * 1e6:.1f}" if s1 is not None and a.chunks > 1 else "—"
            print(f"| {name} | {med[name]:.3f} | {min(big[name]):.3f}-{max(big[name]):.3f} | "
                  f"{med[name] / base:.2f} | {f'{s1:.3f}' if s1 is not None else '—'} | {per} |")
        print()
        ok = True
        for name in [n for n in med if n.startswith("sogni")]:
            ratio = med[name] / base
            verdict = "PASS" if ratio <= BASELINE_TARGET else "FAIL"
            if name == "sogni":
                ok &= verdict == "PASS"
            print(f"target {name} <= {BASELINE_TARGET}x baseline: {ratio:.2f}x  {verdict}")
            if "openai" in med:
                speed = med["openai"] / med[name]
                verdict = "PASS" if speed >= OPENAI_TARGET else "FAIL"
                if name == "sogni":
                    ok &= verdict == "PASS"
                print(f"target {name} >= {OPENAI_TARGET:g}x faster than openai: {speed:.2f}x  {verdict}")
        if a.profile:
            profile(a.chunks, tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
