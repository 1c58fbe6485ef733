#!/usr/bin/env python3
"""A local file server for the download benchmarks (run in its own process, so it never shares the
client's interpreter).

- ``GET /big.bin``: ``--big-mb`` MiB from a file (``socket.sendfile``), ``Content-Length`` set;
- ``GET /small/N.bin``: ``--small-kb`` KB, answered after ``--latency-ms`` (0: at once);
- ``GET /v1/creative-agent/workflows/wf_big`` and ``…/wf_small_N``: a finished workflow record whose
  artifacts are the big file, or N small files (so ``sogni workflow download`` can fetch them).

Prints ``PORT`` on stdout once listening. ``--latency-ms`` can be changed while running:
``GET /_latency/MS``.

    python bench/_files.py --big-mb 1024 --small-kb 200 --latency-ms 20
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import sys
import tempfile
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FileServer"

    def log_message(self, *args):
        pass

    def _send(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        srv = self.server
        path = self.path.split("?", 1)[0]
        if path == "/big.bin":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(srv.big_size))
            self.end_headers()
            self.wfile.flush()
            with open(srv.big_path, "rb") as fh:
                self.connection.sendfile(fh)
            return
        if path.startswith("/small/"):
            if srv.latency:
                time.sleep(srv.latency)
            self._send(srv.small_body, "video/mp4")
            return
        if path.startswith("/_latency/"):
            srv.latency = float(path.rsplit("/", 1)[1]) / 1000.0
            self._send(b"ok", "text/plain")
            return
        prefix = "/v1/creative-agent/workflows/"
        if path.startswith(prefix):
            wid = path[len(prefix):]
            base = f"http://127.0.0.1:{srv.server_address[1]}"
            if wid == "wf_big":
                arts = [{"id": "a1", "url": f"{base}/big.bin", "mimeType": "video/mp4", "toolName": "generate_video"}]
            elif wid.startswith("wf_small_"):
                n = int(wid.rsplit("_", 1)[1])
                arts = [{"id": f"a{i}", "url": f"{base}/small/{i}.bin", "mimeType": "video/mp4",
                         "toolName": "generate_video"} for i in range(1, n + 1)]
            else:
                self.send_error(404)
                return
            rec = {"workflowId": wid, "status": "completed", "artifacts": arts,
                   "input": {"steps": [{"toolName": "generate_video", "arguments": {"prompt": "bench"}}]}}
            self._send(json.dumps(rec).encode(), "application/json")
            return
        self.send_error(404)


class FileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512

    def __init__(self, big_path: str, small_body: bytes, latency: float):
        super().__init__(("127.0.0.1", 0), Handler)
        self.big_path = big_path
        self.big_size = os.path.getsize(big_path) if big_path else 0
        self.small_body = small_body
        self.latency = latency


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--small-kb", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = ap.parse_args()
    fd, big = tempfile.mkstemp(prefix="sogni-bench-big-", dir=args.dir)
    try:
        chunk = os.urandom(1 << 20)
        for _ in range(args.big_mb):
            os.write(fd, chunk)
        os.close(fd)
        srv = FileServer(big, os.urandom(args.small_kb * 1000), args.latency_ms / 1000.0)
        print(srv.server_address[1], flush=True)
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass
    finally:
        os.unlink(big)


if __name__ == "__main__":
    sys.exit(main())
