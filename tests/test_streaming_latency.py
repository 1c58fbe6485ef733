"""Each streamed delta reaches the terminal before the next chunk exists.

A local server sends one chunk, then waits (``threading.Event``) until the test has read that delta from the
``sogni chat`` subprocess's stdout (or stderr, for reasoning), and only then sends the next. If anything on the
way (the HTTP client, the SSE decoder, the chat parser, the view, stdout buffering) held a delta back until more
bytes came, the read would never complete and the test fails on its timeout guard. No sleeps: timeouts are
failure guards only.

The subprocess runs without ``PYTHONUNBUFFERED`` (stdout is a pipe, so Python block-buffers it): only the CLI's
own flushes can get each delta out.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .conftest import chunk

ROOT = Path(__file__).resolve().parents[1]
GUARD = 20.0  # seconds: only reached when a delta is held back (the failure this test looks for)
KEY = "sk-latency-dummy-0001"

TEXT = ["Hello", " there", ",", " how", " are", " you", "?\n", "Second", " line", " ends", "."]


class PacedServer:
    """Serves one streamed completion; chunk i+1 is sent only after ``release(i)``."""

    def __init__(self, chunks: list[dict]):
        self.chunks = chunks
        self.released = [threading.Event() for _ in chunks]
        self.sent = 0  # chunks written so far
        self.requests: list[tuple[str, dict, dict]] = []
        self.errors: list[str] = []
        self.finished = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _chunk(self, payload: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                self.wfile.flush()

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"null")
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for i, obj in enumerate(server.chunks):
                        server.sent = i + 1
                        self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")
                        if not server.released[i].wait(GUARD):
                            server.errors.append(f"chunk {i} was never read by the client")
                            return
                    self._chunk(b"data: " + json.dumps(chunk(finish="stop")).encode() + b"\n\n")
                    self._chunk(b"data: [DONE]\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError as exc:  # the client went away
                    server.errors.append(f"write failed: {exc!r}")
                finally:
                    self.close_connection = True
                    server.finished.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "PacedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for ev in self.released:  # never leave the handler waiting
            ev.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Reader:
    """Reads a pipe in a thread; ``until(pred)`` waits (bounded) until the bytes read so far satisfy ``pred``."""

    def __init__(self, pipe):
        self.q: queue.Queue = queue.Queue()
        self.data = b""
        self.eof = False
        self._fd = pipe.fileno()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                piece = os.read(self._fd, 65536)
            except OSError:
                piece = b""
            self.q.put(piece)
            if not piece:
                return

    def until(self, pred, what: str) -> bytes:
        while not pred(self.data):
            if self.eof:
                pytest.fail(f"{what}: the stream ended first; read so far: {self.data!r}")
            try:
                piece = self.q.get(timeout=GUARD)
            except queue.Empty:
                pytest.fail(f"{what}: not written within {GUARD:g} s; read so far: {self.data!r}")
            if piece:
                self.data += piece
            else:
                self.eof = True
        return self.data

    def rest(self) -> bytes:
        self.until(lambda _: self.eof, "end of output")
        return self.data


def _start(server: PacedServer, tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_") and k != "PYTHONUNBUFFERED"}
    env.update(SOGNI_BASE_URL=server.url, SOGNI_API_KEY=KEY, SOGNI_CONFIG_DIR=str(tmp_path / "config"),
               SOGNI_MAX_RETRIES="0", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-m", "sogni_cli", "chat", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(tmp_path))


def _finish(proc: subprocess.Popen, server: PacedServer, out: Reader, err: Reader) -> tuple[bytes, bytes]:
    stdout, stderr = out.rest(), err.rest()
    try:
        code = proc.wait(timeout=GUARD)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("sogni chat did not exit after the stream ended")
    assert code == 0, stderr.decode(errors="replace")
    assert server.finished.wait(GUARD)
    assert server.errors == []
    assert len(server.requests) == 1
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "hi"}
    return stdout, stderr


def test_each_text_delta_is_on_stdout_before_the_next_chunk_is_sent(tmp_path):
    chunks = [chunk(t, role="assistant" if i == 0 else None) for i, t in enumerate(TEXT)]
    with PacedServer(chunks) as server:
        proc = _start(server, tmp_path, "hi")
        try:
            out, err = Reader(proc.stdout), Reader(proc.stderr)
            for i, _ in enumerate(TEXT):
                want = "".join(TEXT[: i + 1]).encode()
                got = out.until(lambda d, n=len(want): len(d) >= n, f"delta {i} ({TEXT[i]!r})")
                assert got == want  # exactly the text so far: nothing more, nothing held back
                assert server.sent == i + 1  # read while the server was still waiting to send chunk i+1
                server.released[i].set()
            stdout, _ = _finish(proc, server, out, err)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert stdout == ("".join(TEXT) + "\n").encode()


def test_each_jsonl_delta_line_is_written_before_the_next_chunk_is_sent(tmp_path):
    chunks = [chunk(t) for t in TEXT]
    with PacedServer(chunks) as server:
        proc = _start(server, tmp_path, "--jsonl", "hi")
        try:
            out, err = Reader(proc.stdout), Reader(proc.stderr)
            for i, text in enumerate(TEXT):
                got = out.until(lambda d, n=i + 1: d.count(b"\n") >= n, f"jsonl line {i}")
                lines = got.split(b"\n")
                assert len(lines) == i + 2 and lines[-1] == b""  # exactly i+1 complete lines, nothing partial
                assert json.loads(lines[i]) == {"event": "delta", "text": text}
                assert server.sent == i + 1
                server.released[i].set()
            stdout, _ = _finish(proc, server, out, err)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    events = [json.loads(line) for line in stdout.splitlines()]
    assert [e["text"] for e in events if e["event"] == "delta"] == TEXT
    assert events[-1]["event"] == "done"


def test_reasoning_reaches_stderr_and_answer_stdout_one_chunk_at_a_time(tmp_path):
    thinking = ["Let me", " think", " about it."]
    chunks = [chunk(**{"choices": [{"index": 0, "delta": {"reasoning_content": t}, "finish_reason": None}]})
              for t in thinking] + [chunk(t) for t in TEXT[:3]]
    with PacedServer(chunks) as server:
        proc = _start(server, tmp_path, "--show-thinking", "hi")
        try:
            out, err = Reader(proc.stdout), Reader(proc.stderr)
            for i, t in enumerate(thinking):
                want = "".join(thinking[: i + 1]).encode()
                out_so_far = out.data
                err.until(lambda d, w=want: w in d, f"reasoning {i} ({t!r}) on stderr")
                assert server.sent == i + 1
                assert out_so_far == b""  # no answer text yet
                server.released[i].set()
            for j, t in enumerate(TEXT[:3]):
                i = len(thinking) + j
                want = "".join(TEXT[: j + 1]).encode()
                got = out.until(lambda d, n=len(want): len(d) >= n, f"delta {j} ({t!r})")
                assert got == want
                assert server.sent == i + 1
                server.released[i].set()
            stdout, stderr = _finish(proc, server, out, err)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert stdout == ("".join(TEXT[:3]) + "\n").encode()
    assert "".join(thinking).encode() in stderr
    assert thinking[-1].encode() not in stdout
