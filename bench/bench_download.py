#!/usr/bin/env python3
"""Download benchmark: ``sogni_cli.media.downloads.download_all`` against curl on a local server.

Starts a threaded HTTP server on 127.0.0.1 that serves
  (a) one large zero-filled sparse file (``--size-mb``, default 1024) with ``socket.sendfile``, and
  (b) ``--small-count`` files of ``--small-kb`` KB each, answered after ``--latency-ms`` of delay.
Then, ``--runs`` times each (medians reported):
  * ``curl -s -o`` of the large file vs ``download_all`` of it in a child process (throughput ratio, and
    the child's peak RSS read with ``os.wait4``'s resource usage),
  * the small files with the default concurrency vs concurrency 1 (speed-up).
Targets: >= 80 % of curl's throughput, peak memory <= 80 MB, >= 3x speed-up.

    python bench/bench_download.py --size-mb 256
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent


# -------------------------------------------------------------------------------------------------
# server
# -------------------------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "BenchServer"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        if self.path == "/big.mp4":
            size = os.path.getsize(srv.big_path)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            with open(srv.big_path, "rb") as fh:
                self.connection.sendfile(fh)
            return
        if self.path.startswith("/small/"):
            time.sleep(srv.latency)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(srv.small_body)))
            self.end_headers()
            self.wfile.write(srv.small_body)
            return
        self.send_error(404)


class BenchServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, big_path: Path, small_body: bytes, latency: float):
        super().__init__(("127.0.0.1", 0), Handler)
        self.big_path = big_path
        self.small_body = small_body
        self.latency = latency

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


# -------------------------------------------------------------------------------------------------
# child processes (our downloads run in a fresh interpreter so their peak RSS can be read)
# -------------------------------------------------------------------------------------------------

def child_big(url: str, out_dir: str, checksum: str = "0") -> None:
    sys.path.insert(0, str(ROOT))
    import httpx  # noqa: F401 - a real run has imported it for the API calls before any download

    from sogni_cli.media.downloads import ArtifactRef, DownloadOptions, download_all

    t0 = time.perf_counter()
    report = download_all([ArtifactRef(url, prompt="big")],
                          DownloadOptions(output_dir=Path(out_dir), on_exists="overwrite",
                                          checksum=checksum == "1"))
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "failed": [m for _, m in report.failed],
                      "bytes": sum(s.bytes for s in report.saved)}))


def child_small(base: str, count: int, concurrency: int, out_dir: str) -> None:
    sys.path.insert(0, str(ROOT))
    import httpx  # noqa: F401
    from sogni_cli.media.downloads import ArtifactRef, DownloadOptions, download_all

    refs = [ArtifactRef(f"{base}/small/{i}.mp4", index=i, count=count, prompt="small") for i in range(1, count + 1)]
    t0 = time.perf_counter()
    report = download_all(refs, DownloadOptions(output_dir=Path(out_dir), on_exists="overwrite",
                                                concurrency=concurrency))
    dt = time.perf_counter() - t0
    print(json.dumps({"seconds": dt, "failed": [m for _, m in report.failed],
                      "bytes": sum(s.bytes for s in report.saved)}))


def run_child(args: list[str]) -> tuple[dict, float, float]:
    """(child's JSON, wall seconds, peak RSS in MB) for one child run of this script."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed ({proc.returncode}):\n{err}")
    data = json.loads(out.strip().splitlines()[-1])
    if data["failed"]:
        raise SystemExit(f"child {args[0]} reported failures: {data['failed'][:3]}")
    rss_mb = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 1024 / 1024
    return data, wall, rss_mb


def run_curl(url: str, dest: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["curl", "-s", "-S", "-f", "-o", str(dest), url], check=True)
    return time.perf_counter() - t0


def settle() -> None:
    """Write back dirty pages left by the previous run so that it does not slow the next one."""
    if hasattr(os, "sync"):
        os.sync()


# -------------------------------------------------------------------------------------------------
# main
# -------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child-big":
        child_big(argv[1], argv[2], argv[3] if len(argv) > 3 else "0")
        return 0
    if argv and argv[0] == "--child-small":
        child_small(argv[1], int(argv[2]), int(argv[3]), argv[4])
        return 0

    sys.path.insert(0, str(ROOT))
    from sogni_cli.media.downloads import DownloadOptions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="size of the large file (MiB)")
    ap.add_argument("--small-count", type=int, default=200)
    ap.add_argument("--small-kb", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=20.0, help="server delay per small-file request")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=DownloadOptions(output_dir=Path(".")).concurrency,
                    help="concurrency for the small files (default: the download default)")
    ap.add_argument("--dir", default=None, help="where files are written (default: the system temp folder; "
                                                "/dev/shm measures without the disk)")
    ns = ap.parse_args(argv)

    if shutil.which("curl") is None:
        print("curl is needed for the comparison", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="sogni-bench-", dir=ns.dir))
    try:
        big = work / "served-big.bin"
        with open(big, "wb") as fh:
            fh.truncate(ns.size_mb * 1024 * 1024)  # sparse: reads as zeros without using disk
        small_body = os.urandom(ns.small_kb * 1000)
        srv = BenchServer(big, small_body, ns.latency_ms / 1000)
        threading.Thread(target=srv.serve_forever, daemon=True).start()

        size = ns.size_mb * 1024 * 1024
        curl_times, our_times, our_walls, rss, sha_times = [], [], [], [], []
        def curl_once() -> None:
            dest = work / "curl-out.bin"
            settle()
            curl_times.append(run_curl(f"{srv.base}/big.mp4", dest))
            if dest.stat().st_size != size:
                raise SystemExit("curl downloaded the wrong size")
            dest.unlink()

        def ours_once() -> None:
            out_dir = work / "ours"
            settle()
            data, wall, peak = run_child(["--child-big", f"{srv.base}/big.mp4", str(out_dir)])
            if data["bytes"] != size:
                raise SystemExit("our download has the wrong size")
            our_times.append(data["seconds"])
            our_walls.append(wall)
            rss.append(peak)
            shutil.rmtree(out_dir, ignore_errors=True)
            settle()
            data, _, peak = run_child(["--child-big", f"{srv.base}/big.mp4", str(out_dir), "1"])
            sha_times.append(data["seconds"])
            rss.append(peak)
            shutil.rmtree(out_dir, ignore_errors=True)

        for run in range(ns.runs):  # alternate the order so neither side always follows the other's writes
            for step in ((curl_once, ours_once) if run % 2 == 0 else (ours_once, curl_once)):
                step()

        seq, par = [], []
        for _ in range(ns.runs):
            for conc, bucket in ((1, seq), (ns.concurrency, par)):
                out_dir = work / f"small-{conc}"
                settle()
                data, _, _ = run_child(["--child-small", srv.base, str(ns.small_count), str(conc), str(out_dir)])
                if data["bytes"] != ns.small_count * len(small_body):
                    raise SystemExit("small files: wrong total size")
                bucket.append(data["seconds"])
                shutil.rmtree(out_dir, ignore_errors=True)
        srv.shutdown()

        med = statistics.median
        curl_t, our_t, our_w = med(curl_times), med(our_times), med(our_walls)
        ratio = curl_t / our_t
        ratio_wall = curl_t / our_w
        peak = max(rss)
        speedup = med(seq) / med(par)
        mb = size / 1e6
        where = ns.dir or tempfile.gettempdir()
        print(f"download benchmark: {ns.size_mb} MiB file, {ns.small_count} x {ns.small_kb} KB files with "
              f"{ns.latency_ms:g} ms latency, {ns.runs} runs (medians), writing under {where}")
        rows = [
            ("large file, curl -o", f"{curl_t:.2f} s", f"{mb / curl_t:.0f} MB/s", ""),
            ("large file, download_all", f"{our_t:.2f} s", f"{mb / our_t:.0f} MB/s",
             f"{ratio:.0%} of curl (target >= 80%) {'OK' if ratio >= 0.8 else 'MISS'}"),
            ("  same, with sha256 (--json, --manifest)", f"{med(sha_times):.2f} s", f"{mb / med(sha_times):.0f} MB/s",
             f"{curl_t / med(sha_times):.0%} of curl"),
            ("  same, whole child process", f"{our_w:.2f} s", f"{mb / our_w:.0f} MB/s",
             f"{ratio_wall:.0%} of curl (includes interpreter start-up)"),
            ("  peak RSS of the child", f"{peak:.0f} MB", "", f"target <= 80 MB {'OK' if peak <= 80 else 'MISS'}"),
            ("small files, concurrency 1", f"{med(seq):.2f} s", "", ""),
            (f"small files, concurrency {ns.concurrency}", f"{med(par):.2f} s", "",
             f"{speedup:.1f}x faster (target >= 3x) {'OK' if speedup >= 3 else 'MISS'}"),
        ]
        w0 = max(len(r[0]) for r in rows)
        for r in rows:
            print(f"  {r[0]:<{w0}}  {r[1]:>9}  {r[2]:>10}  {r[3]}")
        fmt = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        print(f"  runs (s): curl {fmt(curl_times)} | download_all {fmt(our_times)} | "
              f"small x1 {fmt(seq)} | small x{ns.concurrency} {fmt(par)}")
        ok = ratio >= 0.8 and peak <= 80 and speedup >= 3
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
