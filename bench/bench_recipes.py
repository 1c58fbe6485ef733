#!/usr/bin/env python
"""Recipe benchmarks (medians; ratios measured in the same run).

1. A 1,000-job recipe (a matrix) validates and plans in under 1 s (whole process, `sogni recipe validate`
   and `sogni recipe plan --json`; the in-process time is shown too).
2. Per-job overhead of `recipe run` against a local server that answers at once, excluding the server's own
   time: (T(N2) - T(N1)) / (N2 - N1) at concurrency 1, minus the server's handling time per job. Target < 5 ms.
3. Against a local server where each job takes 1 s: 64 jobs with --concurrency 16 finish in under 5.5 s.
4. Peak memory of `recipe run` with 100 and with 1,000 jobs (flat: the ratio stays near 1).

Run: .venv/bin/python bench/bench_recipes.py [--quick] [--runs N] [--only plan,overhead,slow,memory]
                                            [--src DIR]

--src DIR measures another checkout of the project (e.g. `git worktree add /tmp/old COMMIT`) in the same run:
every round runs both trees' processes, in alternating order, importing `sogni_cli` from DIR or from this
repository (PYTHONPATH, working directory set to the tree). Per-job overhead and memory are then shown for
both, with the CPU time (user + system) of each whole process next to the wall time, which load moves less.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


# --------------------------------------------------------------------------------------------- server


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


class Server:
    """A stand-in for the workflow routes that answers at once (or after ``delay`` seconds per job)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.png = _png()
        self.busy = 0.0  # seconds spent handling requests, excluding the deliberate delay
        self.count = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                import socket

                # headers and body go out in separate writes: without this, Nagle + delayed ACK stall 40 ms
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _send(self, status, body, ctype="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, wid):
                return {"workflowId": wid, "status": "completed",
                        "input": {"steps": [{"toolName": "generate_image", "arguments": {}}]},
                        "artifacts": [{"url": f"{server.base_url}/media/{wid}.png", "mimeType": "image/png",
                                       "toolName": "generate_image"}]}

            def handle_one(self, method):
                t = time.perf_counter()
                waited = 0.0
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                path = self.path.split("?")[0]
                parts = path.strip("/").split("/")
                if method == "POST" and path == "/v1/creative-agent/workflows":
                    wid = "wf_" + uuid.uuid4().hex[:12]
                    self._send(201, {"status": "success", "data": {"workflow": {"workflowId": wid, "status": "queued"}}})
                elif method == "GET" and path.endswith("/events/stream"):
                    wid = parts[3]
                    if server.delay:
                        w = time.perf_counter()
                        time.sleep(server.delay)
                        waited = time.perf_counter() - w
                    ev = {"id": "1", "workflowId": wid, "sequence": 1, "type": "workflow_completed",
                          "status": "completed", "data": {"status": "completed"}}
                    self._send(200, f"id: 1\nevent: workflow_completed\ndata: {json.dumps(ev)}\n\n".encode(),
                               "text/event-stream")
                elif method == "GET" and path.startswith("/v1/creative-agent/workflows/"):
                    self._send(200, {"status": "success", "data": {"workflow": self._record(parts[3])}})
                elif method == "GET" and path.startswith("/media/"):
                    self._send(200, server.png, "image/png")
                else:
                    self._send(404, {"status": "error", "message": "not found", "errorCode": 404})
                with server.lock:
                    server.busy += time.perf_counter() - t - waited
                    server.count += 1

            def do_GET(self):
                self.handle_one("GET")

            def do_POST(self):
                self.handle_one("POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        with self.lock:
            self.busy, self.count = 0.0, 0

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------------------------- helpers


def recipe(path: Path, n: int) -> Path:
    a = max(1, int(round(n ** 0.5)))
    while n % a:
        a -= 1
    b = n // a
    path.write_text(
        "version: 1\nname: bench\nvars:\n  style: {default: studio}\n"
        f"matrix:\n  a: [{', '.join(map(str, range(a)))}]\n  b: [{', '.join(map(str, range(b)))}]\n"
        "jobs:\n  - id: shot\n    matrix: true\n    image:\n"
        "      prompt: \"item {{ matrix.a }} variant {{ matrix.b }}, {{ vars.style }} | {{ job.name }}\"\n"
        "      width: 512\n      height: 512\n      model: z-turbo\n", encoding="utf-8")
    return path


def env_for(base_url: str, cfg: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_")}
    env.update(SOGNI_BASE_URL=base_url, SOGNI_API_KEY="bench-key-0000", SOGNI_CONFIG_DIR=str(cfg),
               NO_PROXY="127.0.0.1", NO_COLOR="1")
    return env


def tree_env(env: dict[str, str], src: Path | None) -> dict[str, str]:
    """The environment that makes a child import ``sogni_cli`` from ``src`` (this repository when None)."""
    env = dict(env)
    env["PYTHONPATH"] = str(src or ROOT)
    return env


def run_proc(args: list[str], env: dict[str, str], src: Path | None = None) -> tuple[float, float, float]:
    """Run ``python -m sogni_cli ARGS`` as a whole process: (wall s, CPU s user + system, peak RSS MiB).

    The child runs with its working directory in the tree it imports from, so ``-m`` finds that tree's
    package first; its own rusage comes from ``wait4``, not from every child this script ever reaped."""
    cwd = str(src or ROOT)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen([PY, "-m", "sogni_cli", *args], env=tree_env(env, src), cwd=cwd, stdout=out,
                             stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            raise SystemExit(f"sogni {' '.join(args)} failed ({p.returncode}):\n"
                             f"{err.read().decode(errors='replace')[-2000:]}")
    return dt, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def timed(args: list[str], env: dict[str, str], src: Path | None = None) -> float:
    return run_proc(args, env, src)[0]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------------------------- benches


def bench_plan(tmp: Path, env: dict[str, str], reps: int) -> bool:
    from sogni_cli.recipes.plan import plan_json, prepare

    f = recipe(tmp / "plan.yaml", 1000)
    inproc = []
    for _ in range(reps):
        t = time.perf_counter()
        p = prepare(str(f))
        json.dumps(plan_json(p))
        inproc.append(time.perf_counter() - t)
    assert len(p.jobs) == 1000
    base = median([timed(["--version"], env) for _ in range(reps)])
    val = median([timed(["recipe", "validate", str(f)], env) for _ in range(reps)])
    pln = median([timed(["recipe", "plan", str(f), "--json"], env) for _ in range(reps)])
    ok = val < 1.0 and pln < 1.0
    print("1. 1,000-job recipe (matrix 25 × 40)")
    print(f"   in-process validate + plan:        {median(inproc) * 1000:7.0f} ms")
    print(f"   `sogni --version` (start-up):       {base * 1000:7.0f} ms")
    print(f"   `sogni recipe validate`:            {val * 1000:7.0f} ms  ({val / base:.1f}× start-up)")
    print(f"   `sogni recipe plan --json`:         {pln * 1000:7.0f} ms  ({pln / base:.1f}× start-up)"
          f"   target < 1000 ms: {'OK' if ok else 'MISSED'}")
    return ok


def trees(src: Path | None) -> list[tuple[str, Path | None]]:
    return [("this tree", None)] + ([(f"{src}", src)] if src else [])


def bench_overhead(tmp: Path, cfg: Path, reps: int, src: Path | None = None) -> bool:
    srv = Server()
    env = env_for(srv.base_url, cfg)
    n1, n2 = 20, 220
    names = trees(src)
    wall: dict[str, list[float]] = {k: [] for k, _ in names}
    cpu: dict[str, list[float]] = {k: [] for k, _ in names}
    server_per_job: dict[str, list[float]] = {k: [] for k, _ in names}
    try:
        for i in range(reps):
            order = names if i % 2 == 0 else names[::-1]
            for label, tree in order:
                times = {}
                for n in (n1, n2):
                    out = tmp / f"ov-{n}"
                    shutil.rmtree(out, ignore_errors=True)
                    srv.reset()
                    times[n] = run_proc(["-q", "recipe", "run", str(recipe(tmp / f"ov-{n}.yaml", n)), "-o",
                                         str(out), "--concurrency", "1"], env, tree)
                    if n == n2:
                        server_per_job[label].append(srv.busy / n2)
                wall[label].append((times[n2][0] - times[n1][0]) / (n2 - n1))
                cpu[label].append((times[n2][1] - times[n1][1]) / (n2 - n1))
    finally:
        srv.stop()
    print("2. per-job overhead, server answering at once, concurrency 1")
    ok = True
    for label, _ in names:
        w, server = median(wall[label]), median(server_per_job[label])
        overhead = w - server
        ok = ok and overhead < 0.005 if label == "this tree" else ok
        print(f"   [{label}]")
        print(f"   wall time per extra job:            {w * 1000:7.2f} ms   "
              f"(runs: {', '.join(f'{x * 1000:.2f}' for x in wall[label])})")
        print(f"   of which the server:                {server * 1000:7.2f} ms")
        print(f"   overhead of `recipe run` per job:   {overhead * 1000:7.2f} ms   target < 5 ms: "
              f"{'OK' if overhead < 0.005 else 'MISSED'}")
        print(f"   CPU time (user + system) per job:   {median(cpu[label]) * 1000:7.2f} ms   "
              f"(runs: {', '.join(f'{x * 1000:.2f}' for x in cpu[label])})")
    if src is None:
        layer, direct = recipe_layer_cost(tmp, cfg, reps)
        print(f"   - the shared media pipeline alone:  {direct * 1000:7.2f} ms per job (build_job + run_media_job, "
              "what `sogni image` runs)")
        print(f"   - what the recipe layer adds:       {layer * 1000:7.2f} ms per job (render, hash, schedule, "
              "record)")
    return ok


def recipe_layer_cost(tmp: Path, cfg: Path, reps: int) -> tuple[float, float]:
    """(recipe runner per job - direct pipeline per job, direct pipeline per job), in process, paired."""
    from sogni_cli.api.client import make_client
    from sogni_cli.core.config import resolve
    from sogni_cli.jobs import build_job
    from sogni_cli.jobs.pipeline import PipelineOptions, run_media_job
    from sogni_cli.recipes.plan import prepare
    from sogni_cli.recipes.run import RunOptions, run_plan

    srv = Server()
    n = 100
    settings = resolve(env=env_for(srv.base_url, cfg))
    client = make_client(settings)
    f = recipe(tmp / "layer.yaml", n)
    layer, direct = [], []
    try:
        for i in range(reps):
            plan = prepare(str(f), settings=settings)
            t = time.perf_counter()
            for pj in plan.jobs:
                job = build_job("image", pj.fields, base_dir=tmp)
                run_media_job(client, job, PipelineOptions(output_dir=tmp / f"direct-{i}", name=pj.inst.filename,
                                                           on_exists="overwrite"))
            d = (time.perf_counter() - t) / n
            t = time.perf_counter()
            code = run_plan(client, plan, RunOptions(output_dir=tmp / f"layer-{i}", concurrency=1, quiet=True,
                                                     settings=settings, stdout=open(os.devnull, "w"),
                                                     stderr=open(os.devnull, "w")))
            r = (time.perf_counter() - t) / n
            assert code == 0
            direct.append(d)
            layer.append(r - d)
    finally:
        client.close()
        srv.stop()
    return median(layer), median(direct)


def bench_slow_jobs(tmp: Path, cfg: Path, reps: int) -> bool:
    srv = Server(delay=1.0)
    env = env_for(srv.base_url, cfg)
    f = recipe(tmp / "slow.yaml", 64)
    walls = []
    try:
        for i in range(reps):
            out = tmp / f"slow-{i}"
            walls.append(timed(["-q", "recipe", "run", str(f), "-o", str(out), "--concurrency", "16"], env))
    finally:
        srv.stop()
    w = median(walls)
    ok = w < 5.5
    print("3. 64 jobs of 1 s each, --concurrency 16 (ideal: 4 waves = 4.0 s)")
    print(f"   wall time:                          {w:7.2f} s   ({w / 4.0:.2f}× ideal)   target < 5.5 s: "
          f"{'OK' if ok else 'MISSED'}")
    return ok


def bench_memory(tmp: Path, cfg: Path, reps: int, src: Path | None = None) -> bool:
    srv = Server()
    env = env_for(srv.base_url, cfg)
    names = trees(src)
    peaks: dict[tuple[str, int], list[float]] = {(k, n): [] for k, _ in names for n in (100, 1000)}
    try:
        for i in range(reps):
            order = names if i % 2 == 0 else names[::-1]
            for label, tree in order:
                for n in (100, 1000):
                    out = tmp / f"mem-{n}-{i}"
                    shutil.rmtree(out, ignore_errors=True)
                    peaks[(label, n)].append(run_proc(["-q", "recipe", "run", str(recipe(tmp / f"mem-{n}.yaml", n)),
                                                       "-o", str(out), "--concurrency", "16"], env, tree)[2])
    finally:
        srv.stop()
    print("4. peak memory of `recipe run` (server answering at once, concurrency 16)")
    ok = True
    for label, _ in names:
        a, b = median(peaks[(label, 100)]), median(peaks[(label, 1000)])
        ratio = b / a
        if label == "this tree":
            ok = ratio < 1.3
        print(f"   [{label}]")
        print(f"   100 jobs:                           {a:7.1f} MiB   "
              f"(runs: {', '.join(f'{x:.1f}' for x in peaks[(label, 100)])})")
        print(f"   1,000 jobs:                         {b:7.1f} MiB   "
              f"(runs: {', '.join(f'{x:.1f}' for x in peaks[(label, 1000)])})")
        print(f"   ratio {ratio:.2f}   target: flat (< 1.3×): {'OK' if ratio < 1.3 else 'MISSED'}")
    return ok


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one run of each measure")
    ap.add_argument("--runs", type=int, default=None, help="runs of each measure (default 3)")
    ap.add_argument("--only", default="plan,overhead,slow,memory", help="comma-separated: plan,overhead,slow,memory")
    ap.add_argument("--src", type=Path, default=None, help="another checkout to measure in the same run (paired)")
    a = ap.parse_args()
    reps = a.runs or (1 if a.quick else 3)
    only = set(a.only.split(","))
    src = a.src.resolve() if a.src else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-recipes-"))
    cfg = tmp / "cfg"
    try:
        env = env_for("http://127.0.0.1:9", cfg)
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, medians of {reps}, "
              f"load average {os.getloadavg()[0]:.2f} at start" + (f", paired with {src}" if src else "") + "\n")
        results = []
        if "plan" in only:
            results.append(bench_plan(tmp, env, max(reps, 3)))
        if "overhead" in only:
            results.append(bench_overhead(tmp, cfg, reps, src))
        if "slow" in only:
            results.append(bench_slow_jobs(tmp, cfg, reps))
        if "memory" in only:
            results.append(bench_memory(tmp, cfg, reps, src))
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nall targets met" if all(results) else "\nsome targets missed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
