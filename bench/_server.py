#!/usr/bin/env python3
"""A tiny local server for the benchmarks: OpenAI-style streamed chat completions, as fast as it can send.

Every ``POST .../chat/completions`` is answered with ``N`` ``chat.completion.chunk`` events, a final chunk with
``finish_reason`` and ``data: [DONE]``. Each SSE event is its own HTTP/1.1 chunk (``Transfer-Encoding:
chunked``), as a real server that flushes every token sends them, but the whole response is built once and
written with a few large ``sendall`` calls, so the server costs next to nothing per chunk.

Standard library only. Use it from a script::

    from bench._server import start_server
    srv = start_server(chunks=20000)     # srv.port, srv.url, srv.expected_text, srv.requests; srv.stop()

or on its own: ``python bench/_server.py --chunks 20000 [--port 8899]`` (prints the URL, serves until Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["build_stream", "delta_text", "start_server", "StreamServer"]

MODEL = "bench-model"


def delta_text(i: int) -> str:
    """The content of chunk ``i`` (short, like a token; no leading space on the first one)."""
    return f"w{i} " if i % 16 else f"w{i}\n"


def _chunk(obj: dict) -> bytes:
    payload = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def build_stream(chunks: int) -> tuple[bytes, str]:
    """The chunked-encoded response body for ``chunks`` deltas, and the text those deltas add up to."""
    parts = []
    texts = []
    for i in range(chunks):
        text = delta_text(i)
        texts.append(text)
        parts.append(_chunk({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": text} if i else {"role": "assistant", "content": text},
                         "finish_reason": None}],
        }))
    parts.append(_chunk({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }))
    parts.append(b"e\r\ndata: [DONE]\n\n\r\n")
    parts.append(b"0\r\n\r\n")
    return b"".join(parts), "".join(texts)


@dataclass
class StreamServer:
    httpd: ThreadingHTTPServer
    thread: threading.Thread
    body: bytes
    expected_text: str
    requests: list = field(default_factory=list)  # (path, headers dict, parsed JSON body)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def start_server(chunks: int = 20000, port: int = 0, write_size: int = 1 << 16) -> StreamServer:
    """Start the server on 127.0.0.1 in a daemon thread; returns once it is listening."""
    body, text = build_stream(chunks)
    state: dict = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            state["server"].requests.append((self.path, dict(self.headers), parsed))
            if not self.path.rstrip("/").endswith("chat/completions"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            sock = self.connection
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            view = memoryview(body)
            try:
                for off in range(0, len(view), write_size):
                    sock.sendall(view[off:off + write_size])
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    srv = StreamServer(httpd, thread, body, text)
    state["server"] = srv
    thread.start()
    return srv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = start_server(a.chunks, a.port)
    print(f"{srv.url}  ({a.chunks} chunks, {len(srv.body)} bytes per response)", flush=True)
    try:
        srv.thread.join()
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
