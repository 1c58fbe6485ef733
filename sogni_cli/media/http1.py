"""A lean HTTP/1.1 connection pool for media downloads, on the standard library's ``http.client``.

It stands in for httpcore's pool under the download client's ``httpx.HTTPTransport`` (so the client,
its redirects policy, timeouts, headers and error types stay httpx's): a GET of a small file costs
about a third of the CPU time through it, which is what many files at once are made of. Connections are
kept alive per host and reused; a reused connection that the server closed meanwhile is retried once
on a new one. Failures are raised as httpcore's exception types, which the transport maps to httpx's.
Only the download client uses it; proxies from the environment keep their own transports.
"""

from __future__ import annotations

import http.client
import socket
import threading
from typing import Any, Iterator

READ_SIZE = 1024 * 1024


class _NetStream:
    """What ``response.extensions["network_stream"]`` offers: the socket (to shut it on Ctrl-C, or to
    read a large plain body straight off it) and whether it is TLS."""

    def __init__(self, sock: Any):
        self._sock = sock

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._sock
        if info == "ssl_object":
            return self._sock if hasattr(self._sock, "getpeercert") else None
        return None


class _Body:
    """The response body as an iterable of chunks; the connection goes back to the pool once the body
    was read to its end, and is closed otherwise."""

    def __init__(self, pool: "Http1Pool", key: tuple, conn: http.client.HTTPConnection,
                 resp: http.client.HTTPResponse):
        self.pool = pool
        self.key = key
        self.conn = conn
        self.resp = resp
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        import httpcore

        resp = self.resp
        try:
            while True:
                chunk = resp.read1(READ_SIZE)
                if not chunk:
                    break
                yield chunk
        except socket.timeout as exc:
            raise httpcore.ReadTimeout(str(exc) or "timed out") from None
        except http.client.IncompleteRead as exc:
            raise httpcore.RemoteProtocolError(f"connection closed before the end of the body ({exc})") from None
        except (http.client.HTTPException, OSError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from None
        self.done = True

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        resp = self.resp
        if self.done and (resp.isclosed() or resp.length == 0) and not resp.will_close and conn.sock is not None:
            resp.close()  # read to its end: the connection is ready for the next request
            self.pool._release(self.key, conn)
        else:
            conn.close()


class Http1Pool:
    """``handle_request(httpcore.Request) -> httpcore.Response`` over kept-alive ``http.client``
    connections (at most ``keepalive`` idle ones per host)."""

    def __init__(self, ssl_context: Any, keepalive: int = 8):
        self.ssl_context = ssl_context  # an SSLContext, or a function that returns it (on first https use)
        self.keepalive = keepalive
        self.idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self.lock = threading.Lock()
        self.closed = False

    def _release(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            spare = self.idle.setdefault(key, [])
            if not self.closed and len(spare) < self.keepalive:
                spare.append(conn)
                return
        conn.close()

    def _take(self, key: tuple) -> http.client.HTTPConnection | None:
        with self.lock:
            spare = self.idle.get(key)
            return spare.pop() if spare else None

    def _new(self, scheme: str, host: str, port: int, timeout: float | None) -> http.client.HTTPConnection:
        if scheme == "https":
            ctx = self.ssl_context() if callable(self.ssl_context) else self.ssl_context
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def handle_request(self, request: Any) -> Any:
        import httpcore

        url = request.url
        scheme = url.scheme.decode("ascii").lower()
        host = url.host.decode("ascii")
        port = url.port or (443 if scheme == "https" else 80)
        target = url.target.decode("ascii")
        timeouts = request.extensions.get("timeout", {})
        connect_t, read_t = timeouts.get("connect"), timeouts.get("read")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
        key = (scheme, host, port)
        for attempt in (0, 1):
            conn = self._take(key) if attempt == 0 else None
            reused = conn is not None
            if conn is None:
                conn = self._new(scheme, host, port, connect_t)
                try:
                    conn.connect()
                except socket.timeout as exc:
                    conn.close()
                    raise httpcore.ConnectTimeout(str(exc) or "timed out") from None
                except OSError as exc:
                    conn.close()
                    raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
            conn.sock.settimeout(read_t)
            try:
                conn.putrequest(request.method.decode("ascii"), target, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                conn.endheaders()
                resp = conn.getresponse()
            except socket.timeout as exc:
                conn.close()
                raise httpcore.ReadTimeout(str(exc) or "timed out") from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if reused:  # the server closed an idle connection: one more try on a new one
                    continue
                raise httpcore.RemoteProtocolError(str(exc) or "server disconnected") from None
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                raise httpcore.ReadError(str(exc) or type(exc).__name__) from None
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.getheaders()]
            return httpcore.Response(
                status=resp.status, headers=raw, content=_Body(self, key, conn, resp),
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": (resp.reason or "").encode("latin-1"),
                            "network_stream": _NetStream(conn.sock)})
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self.lock:
            self.closed = True
            spare = [c for conns in self.idle.values() for c in conns]
            self.idle.clear()
        for conn in spare:
            conn.close()

    def __enter__(self) -> "Http1Pool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
