"""The lean HTTP/1.1 pool under the API and download clients: what it sends again and what it never does.

A scripted server on 127.0.0.1 (plain sockets, one connection at a time) answers, closes, or reads and
hangs up exactly when the test says; the assertions are on what reached it. A GET that meets a kept-alive
connection the server has closed is sent once more on a new one; a POST is never written twice by the pool:
an idle connection the server closed is dropped before writing, and a POST whose connection breaks after it
was written is raised for the caller's retry rules (which resend it only with the same idempotency key).
"""

from __future__ import annotations

import socket
import threading

import httpcore
import pytest

from sogni_cli.api.http1 import Http1Pool

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Script:
    """A listening socket; ``serve(steps)`` runs the steps in a thread: ("accept",), ("read",) (one request,
    recorded), ("answer",), ("send", bytes), ("close",), ("signal", event), ("wait", event)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[int, bytes]] = []  # (connection number, request)
        self.conns = 0
        self.thread: threading.Thread | None = None

    def serve(self, steps: list[tuple]) -> None:
        def run() -> None:
            conn = None
            for step in steps:
                if step[0] == "accept":
                    conn, _ = self.sock.accept()
                    conn.settimeout(10)
                    self.conns += 1
                elif step[0] == "read":
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(body) < length:
                        body += conn.recv(65536)
                    self.seen.append((self.conns, head.split(b"\r\n")[0] + b" " + body))
                elif step[0] == "answer":
                    conn.sendall(OK)
                elif step[0] == "send":
                    conn.sendall(step[1])
                elif step[0] == "trickle":  # one byte per send
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for k in range(len(step[1])):
                        conn.sendall(step[1][k:k + 1])
                elif step[0] == "wait":
                    step[1].wait(10)
                elif step[0] == "close":
                    conn.close()
                elif step[0] == "signal":
                    step[1].set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(10)
        assert not self.thread.is_alive()

    def pending_connection(self) -> bool:
        self.sock.setblocking(False)
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()


def _send(pool: Http1Pool, port: int, method: str, body: bytes = b"") -> tuple[int, bytes]:
    headers = [("Host", f"127.0.0.1:{port}"), ("Content-Length", str(len(body)))]
    answer = pool.get("http", "127.0.0.1", port, "/v1/x", headers, 5, 5, method=method, body=body)
    try:
        return answer.status_code, b"".join(answer.iter_raw())
    finally:
        answer.close()


@pytest.fixture
def script():
    s = Script()
    yield s
    s.close()


def test_a_post_is_never_written_on_a_connection_the_server_closed(script):
    closed = threading.Event()
    script.serve([("accept",), ("read",), ("answer",), ("close",), ("signal", closed),
                  ("accept",), ("read",), ("answer",)])
    with Http1Pool(None) as pool:
        assert _send(pool, script.port, "GET") == (200, b"ok")
        assert closed.wait(10)
        assert _send(pool, script.port, "POST", b'{"a":1}') == (200, b"ok")
    script.join()
    assert script.seen == [(1, b"GET /v1/x HTTP/1.1 "), (2, b'POST /v1/x HTTP/1.1 {"a":1}')]


def test_a_post_whose_connection_breaks_after_writing_is_raised_not_sent_again(script):
    script.serve([("accept",), ("read",), ("answer",), ("read",), ("close",)])
    with Http1Pool(None) as pool:
        assert _send(pool, script.port, "GET") == (200, b"ok")
        with pytest.raises(httpcore.RemoteProtocolError):
            _send(pool, script.port, "POST", b'{"a":1}')
    script.join()
    assert script.seen == [(1, b"GET /v1/x HTTP/1.1 "), (1, b'POST /v1/x HTTP/1.1 {"a":1}')]
    assert script.conns == 1 and not script.pending_connection()  # no second connection, no second POST


def test_a_get_that_meets_a_closed_connection_is_sent_once_more(script):
    script.serve([("accept",), ("read",), ("answer",), ("read",), ("close",), ("accept",), ("read",), ("answer",)])
    with Http1Pool(None) as pool:
        assert _send(pool, script.port, "GET") == (200, b"ok")
        assert _send(pool, script.port, "GET") == (200, b"ok")
    script.join()
    assert script.seen == [(1, b"GET /v1/x HTTP/1.1 "), (1, b"GET /v1/x HTTP/1.1 "), (2, b"GET /v1/x HTTP/1.1 ")]


STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EVENT = b"data: {\"type\": \"workflow_completed\"}\n\n"
CHUNK = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)


def _first_piece(pool: Http1Pool, port: int, sent: threading.Event | None = None) -> bytes:
    """Read an answer's first piece of body, then close it (a reader that stops after its last event), once
    the server has sent all it is going to (``sent``)."""
    answer = pool.get("http", "127.0.0.1", port, "/events", [("Host", f"127.0.0.1:{port}")], 5, 5)
    try:
        return next(iter(answer.iter_raw()))
    finally:
        if sent is not None:
            assert sent.wait(10)
        answer.close()


def test_a_stream_whose_end_is_already_here_leaves_its_connection_for_the_next_request(script):
    sent = threading.Event()
    script.serve([("accept",), ("read",), ("send", STREAM_HEAD + CHUNK + b"0\r\n\r\n"), ("signal", sent),
                  ("read",), ("answer",)])
    with Http1Pool(None) as pool:
        assert _first_piece(pool, script.port, sent) == EVENT
        assert _send(pool, script.port, "GET") == (200, b"ok")
    script.join()
    assert [n for n, _ in script.seen] == [1, 1]  # the second request went on the same connection


def test_a_stream_still_open_is_closed_at_once_and_the_next_request_gets_a_new_connection(script):
    done = threading.Event()
    script.serve([("accept",), ("read",), ("send", STREAM_HEAD + CHUNK), ("accept",), ("read",), ("answer",),
                  ("wait", done)])
    with Http1Pool(None) as pool:
        assert _first_piece(pool, script.port) == EVENT  # returns without waiting for the rest
        assert _send(pool, script.port, "GET") == (200, b"ok")
    done.set()
    script.join()
    assert [n for n, _ in script.seen] == [1, 2]


@pytest.mark.parametrize("how", ["send", "trickle"])
def test_a_chunked_body_is_read_whole_however_it_arrives(script, how):
    pieces = [b"a" * 5000, b"", b"data: x\n\n", b"b" * 70000, b"\r\n"]
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\nX-Trailer: t\r\n\r\n"
    script.serve([("accept",), ("read",), (how, STREAM_HEAD + body), ("read",), ("answer",)])
    with Http1Pool(None) as pool:
        answer = pool.get("http", "127.0.0.1", script.port, "/events", [("Host", "x")], 5, 5)
        try:
            assert b"".join(answer.iter_raw()) == b"".join(pieces)
        finally:
            answer.close()
        assert _send(pool, script.port, "GET") == (200, b"ok")  # the next request on the same connection
    script.join()
    assert [n for n, _ in script.seen] == [1, 1]


@pytest.mark.parametrize("size_line", [b"-5", b"0x5", b"+5", b"5_0", b"", b"zz"])
def test_a_chunk_size_that_is_not_plain_hex_is_refused(script, size_line):
    script.serve([("accept",), ("read",), ("send", STREAM_HEAD + size_line + b"\r\nhello\r\n0\r\n\r\n")])
    with Http1Pool(None) as pool:
        answer = pool.get("http", "127.0.0.1", script.port, "/events", [("Host", "x")], 5, 5)
        try:
            with pytest.raises(httpcore.RemoteProtocolError, match="malformed chunked body"):
                b"".join(answer.iter_raw())
        finally:
            answer.close()
    script.join()
