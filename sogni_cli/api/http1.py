"""A lean HTTP/1.1 client: kept-alive connections per host, requests written in one ``send``.

A small request is mostly fixed costs, and a recipe or a folder of downloads is made of them: this client
writes the request (head and body) in one ``send`` and reads the answer's head with a few ``recv`` calls and
a split, with no request or response objects beyond :class:`Answer`. Connections are kept alive per host and
reused. Bodies are framed by ``Content-Length``, by chunks, or by the end of the connection. Failures are
raised as httpcore's exception types (what httpx's own transport raises too, and maps to httpx's).

Reusing a kept-alive connection that the server closed meanwhile: a GET is sent once more on a new
connection (nothing was done). Any other method is never sent twice here: an idle connection that the
server has closed (or that has unread bytes) is dropped before the request is written, and a failure after
writing is raised for the caller's retry rules, which know whether the request may be resent (its
idempotency key).

Two ways in: :meth:`Http1Pool.get` (the downloader's own path, see :mod:`sogni_cli.media.transfer`) and
:meth:`Http1Pool.handle_request`, which stands in for httpcore's pool under an ``httpx.HTTPTransport``
(:func:`install`: the API client's and the download client's), so everything above the transport (httpx's
timeouts, its content decoding, its exceptions, and test doubles that replace the transport) stays as it
is. Proxies from the environment keep their own transports. The downloader's shared glue lives here too:
which failures are a connection's, how they are told, and an httpx response over an answer whose body has
a content coding.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
from typing import Any, Iterator

READ_SIZE = 1024 * 1024
HEAD_MAX = 64 * 1024  # the most an answer's status line and headers may take
#: the most of an unread body's rest that closing an answer reads (when it is already here) to keep its connection
DRAIN_MAX = 64 * 1024
_HEAD_END = b"\r\n\r\n"
#: what may appear in a request target or a header value as sent (no spaces, controls or line breaks)
_TARGET_OK = re.compile(r"[\x21-\x7e]+")
_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")  # a chunk's size: hex digits only (no sign, prefix or underscores)
#: Linux: blocking sockets with SO_RCVTIMEO/SO_SNDTIMEO (a timed-out call fails with EAGAIN)
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")


#: URLs the downloader sends as they are (anything else goes through httpx, which normalises it): http(s),
#: a host name or IPv4/IPv6 address, an optional port, and a path and query made only of characters that
#: httpx would not escape either (``%`` only before two hex digits), with no fragment
_PLAIN_URL = re.compile(
    r"(https?)://([A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    r"((?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)*(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?)")


def plain_url(url: str) -> tuple[str, str, int, str, str] | None:
    """(scheme, host, port, request target, Host header) of a URL that can be sent as it is, else None."""
    m = _PLAIN_URL.fullmatch(url)
    if m is None:
        return None
    scheme, host, port_s, rest = m.group(1).lower(), m.group(2).lower(), m.group(3), m.group(4)
    path = rest.split("?", 1)[0]
    if "/." in path or (rest and rest[0] != "/") or rest.endswith("?"):
        return None  # dot segments (and hidden names) are normalised by httpx
    default = 443 if scheme == "https" else 80
    port = int(port_s) if port_s else default
    if not 0 < port < 65536:
        return None
    return scheme, host, port, rest or "/", host if port == default else f"{host}:{port}"


class _NetStream:
    """What ``extensions["network_stream"]`` offers: the socket (to shut it on Ctrl-C, or to read a large
    plain body straight off it) and whether it is TLS."""

    def __init__(self, sock: Any):
        self._sock = sock

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._sock
        if info == "ssl_object":
            return self._sock if hasattr(self._sock, "getpeercert") else None
        return None


class Headers(dict):
    """An answer's headers by lower-cased name (repeated headers joined with ``", "``, as httpx does)."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)


class _Conn:
    """One connection: its socket and the bytes read past what was handed out."""

    __slots__ = ("sock", "buf", "stream", "timeout")

    def __init__(self, sock: Any):
        self.sock = sock
        self.buf = b""
        self.stream = _NetStream(sock)
        self.timeout: Any = ()  # not set yet

    def set_timeout(self, timeout: float | None) -> None:
        """Every read and write on the connection fails after ``timeout`` seconds without progress.

        A plain socket on Linux stays blocking with the kernel's own receive and send timeouts (a read is
        one system call, with no ``poll`` before it); elsewhere, and over TLS, the socket's timeout."""
        if timeout == self.timeout:
            return
        self.timeout = timeout
        if _KERNEL_TIMEOUTS and not hasattr(self.sock, "getpeercert"):
            import struct

            secs = 0.0 if timeout is None else max(0.001, float(timeout))
            tv = struct.pack("ll", int(secs), int((secs % 1) * 1_000_000))
            self.sock.settimeout(None)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        else:
            self.sock.settimeout(timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover - closing never matters
            pass


class Answer:
    """One answer: ``status_code``, ``reason``, ``headers``, ``raw_headers`` and its body through
    :meth:`iter_raw`. The connection goes back to the pool once the body was read to its end and the
    answer is closed; otherwise it is closed."""

    http_version = "HTTP/1.1"

    def __init__(self, pool: "Http1Pool", key: tuple, conn: _Conn, status: int, reason: str,
                 raw_headers: list[tuple[str, str]], headers: Headers, keep_alive: bool):
        self.pool = pool
        self.key = key
        self.conn: _Conn | None = conn
        self.status_code = status
        self.reason = reason
        self.raw_headers = raw_headers
        self.headers = headers
        self.extensions = {"network_stream": conn.stream, "http_version": b"HTTP/1.1",
                           "reason_phrase": reason.encode("latin-1")}
        self.done = False
        self._reader: Iterator[bytes] | None = None  # the body's reader, once asked for
        self.keep_alive = keep_alive
        self.num_bytes_downloaded = 0
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        self.chunked = bool(te) and te.replace(" ", "").lower().split(",")[-1] == "chunked"
        self.length: int | None = None
        if status in (204, 304) or 100 <= status < 200:
            self.length = 0
        elif not self.chunked and cl is not None:
            try:
                self.length = int(cl.split(",")[0].strip())
            except ValueError:
                self.length = None
            if self.length is not None and self.length < 0:
                self.length = None
        if not self.chunked and self.length is None:
            self.keep_alive = False  # the body ends with the connection

    def iter_raw(self) -> Iterator[bytes]:
        self._reader = self._read()
        return self._reader

    def _read(self) -> Iterator[bytes]:
        import httpcore

        conn = self.conn
        assert conn is not None
        try:
            if self.chunked:
                yield from self._chunks(conn)
            elif self.length is not None:
                left = self.length
                if conn.buf:
                    piece, conn.buf = conn.buf[:left], conn.buf[left:]
                    left -= len(piece)
                    self.num_bytes_downloaded += len(piece)
                    if piece:
                        yield piece
                recv = conn.sock.recv
                while left > 0:  # what arrived is handed on at once (a stalled body is on disk so far)
                    piece = recv(min(READ_SIZE, left))
                    if not piece:
                        raise httpcore.RemoteProtocolError(
                            f"connection closed before the end of the body ({left} bytes missing)")
                    left -= len(piece)
                    self.num_bytes_downloaded += len(piece)
                    yield piece
            else:
                if conn.buf:
                    piece, conn.buf = conn.buf, b""
                    self.num_bytes_downloaded += len(piece)
                    yield piece
                while True:
                    piece = conn.sock.recv(READ_SIZE)
                    if not piece:
                        break
                    self.num_bytes_downloaded += len(piece)
                    yield piece
        except (TimeoutError, BlockingIOError):
            raise httpcore.ReadTimeout("timed out") from None
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from None
        self.done = True

    def _chunks(self, conn: _Conn) -> Iterator[bytes]:
        """A chunked body's data, read from the connection's buffer by position (cutting the buffer at every
        chunk copied all of what followed it: a stream of many small chunks took quadratic time)."""
        import httpcore

        buf, pos = conn.buf, 0
        while True:
            i = buf.find(b"\r\n", pos)
            while i < 0:  # the size line
                if len(buf) - pos > HEAD_MAX:
                    raise httpcore.RemoteProtocolError("line too long in chunked body")
                buf, pos = buf[pos:] + _recv_some(conn), 0
                i = buf.find(b"\r\n")
            digits = buf[pos:i].split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(digits):
                raise httpcore.RemoteProtocolError("malformed chunked body")
            size = int(digits, 16)
            pos = i + 2
            if size == 0:
                while True:  # trailers, up to the empty line
                    i = buf.find(b"\r\n", pos)
                    if i < 0:
                        if len(buf) - pos > HEAD_MAX:
                            raise httpcore.RemoteProtocolError("line too long in chunked body")
                        buf, pos = buf[pos:] + _recv_some(conn), 0
                        continue
                    empty, pos = i == pos, i + 2
                    if empty:
                        conn.buf = buf[pos:]
                        return
            while size > 0:
                if pos >= len(buf):
                    buf, pos = _recv_some(conn), 0
                end = min(len(buf), pos + size)
                piece = buf[pos:end]
                size -= end - pos
                pos = end
                self.num_bytes_downloaded += len(piece)
                yield piece
            while len(buf) - pos < 2:
                buf, pos = buf[pos:] + _recv_some(conn), 0
            if buf[pos:pos + 2] != b"\r\n":
                raise httpcore.RemoteProtocolError("malformed chunked body")
            pos += 2

    def iter_bytes(self) -> Iterator[bytes]:
        return self.iter_raw()

    def _finish_unread(self) -> None:
        """The reader stopped before the end of the body (an event stream after its last event): read the
        rest when it is already here (at most :data:`DRAIN_MAX` bytes, without waiting), so the connection
        can carry the next request instead of a new one being made (a TLS handshake, over https)."""
        reader, conn = self._reader, self.conn
        if reader is None or conn is None or not self.keep_alive:
            return
        start = self.num_bytes_downloaded
        try:
            conn.sock.setblocking(False)  # a read that would wait fails instead
            conn.timeout = ()  # the next request sets its timeouts again
            for _ in reader:
                if self.num_bytes_downloaded - start > DRAIN_MAX:
                    break
        except Exception:  # noqa: BLE001 - nothing more to read now, or a broken connection: it is closed
            pass
        try:
            reader.close()
        except ValueError:  # pragma: no cover - another thread is inside it: the connection is closed below
            self.done = False

    def close(self) -> None:
        if not self.done and self.conn is not None:
            self._finish_unread()
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.done and self.keep_alive and not conn.buf:
            self.pool._release(self.key, conn)  # read to its end: ready for the next request
        else:
            conn.close()


def _recv_some(conn: _Conn) -> bytes:
    import httpcore

    data = conn.sock.recv(READ_SIZE)
    if not data:
        raise httpcore.RemoteProtocolError("connection closed before the end of the body")
    return data


class Http1Pool:
    """Kept-alive HTTP/1.1 connections (at most ``keepalive`` idle ones per host)."""

    def __init__(self, ssl_context: Any, keepalive: int = 8):
        self.ssl_context = ssl_context  # an SSLContext, or a function that returns it (on first https use)
        self.keepalive = keepalive
        self.idle: dict[tuple, list[_Conn]] = {}
        self.lock = threading.Lock()
        self.closed = False

    def _release(self, key: tuple, conn: _Conn) -> None:
        with self.lock:
            spare = self.idle.setdefault(key, [])
            if not self.closed and len(spare) < self.keepalive:
                spare.append(conn)
                return
        conn.close()

    def _take(self, key: tuple, fresh: bool = False) -> _Conn | None:
        """An idle connection to ``key``; with ``fresh``, only one the server has not closed (nor written
        to) since it went idle, checked with a poll that does not wait."""
        while True:
            with self.lock:
                spare = self.idle.get(key)
                conn = spare.pop() if spare else None
            if conn is None or not fresh or not _readable(conn):
                return conn
            conn.close()

    def _connect(self, scheme: str, host: str, port: int, timeout: float | None) -> _Conn:
        import httpcore

        try:
            sock = socket.create_connection((host.strip("[]"), port), timeout)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not a TCP socket
            pass
        if scheme == "https":
            ctx = self.ssl_context() if callable(self.ssl_context) else self.ssl_context
            try:
                sock = ctx.wrap_socket(sock, server_hostname=host.strip("[]"))
            except TimeoutError as exc:
                sock.close()
                raise httpcore.ConnectTimeout(str(exc) or "timed out") from None
            except OSError as exc:  # ssl.SSLError is an OSError
                sock.close()
                raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        return _Conn(sock)

    def get(self, scheme: str, host: str, port: int, target: str, headers: list[tuple[str, str]],
            connect_timeout: float | None, read_timeout: float | None, method: str = "GET",
            body: bytes = b"") -> Answer:
        """Send ``METHOD target`` with ``headers`` (the ``Host`` header among them, and the body's
        ``Content-Length``) and ``body``, and read the answer's head. ValueError for a target or header that
        cannot be sent as it is."""
        import httpcore

        if not _TARGET_OK.fullmatch(target):
            raise ValueError(f"invalid request target {target!r}")
        lines = [f"{method} {target} HTTP/1.1"]
        for k, v in headers:
            if not _TARGET_OK.fullmatch(k) or ":" in k or _VALUE_BAD.search(v):
                raise ValueError(f"invalid header {k!r}")
            lines.append(f"{k}: {v}")
        lines.append("\r\n")
        request = "\r\n".join(lines).encode("latin-1") + body
        key = (scheme, host, port)
        resend = method in ("GET", "HEAD")  # a stale kept-alive connection may be retried: nothing was done
        for attempt in (0, 1):
            conn = self._take(key, fresh=not resend) if attempt == 0 else None
            reused = conn is not None and resend
            if conn is None:
                conn = self._connect(scheme, host, port, connect_timeout)
            try:
                conn.set_timeout(read_timeout)
                conn.sock.sendall(request)
                head = self._read_head(conn, reused)
            except _Stale:
                conn.close()
                continue  # the server closed an idle connection: one more try on a new one
            except (TimeoutError, BlockingIOError):
                conn.close()
                raise httpcore.ReadTimeout("timed out") from None
            except httpcore.RemoteProtocolError:
                conn.close()
                raise
            except OSError as exc:
                conn.close()
                if reused:
                    continue
                if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                    raise httpcore.RemoteProtocolError(str(exc) or "server disconnected") from None
                raise httpcore.ReadError(str(exc) or type(exc).__name__) from None
            return self._answer(key, conn, head)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_head(self, conn: _Conn, reused: bool) -> bytes:
        """The next answer's status line and headers (interim 1xx answers skipped)."""
        import httpcore

        buf = conn.buf
        while True:
            end = buf.find(_HEAD_END)
            if end >= 0:
                head, buf = buf[:end], buf[end + 4:]
                status = head[9:12]
                if status[:1] == b"1" and status != b"101":
                    continue  # 100 Continue, 103 Early Hints: the real answer follows
                conn.buf = buf
                return head
            if len(buf) > HEAD_MAX:
                raise httpcore.RemoteProtocolError("the answer's headers are too long")
            data = conn.sock.recv(HEAD_MAX)
            if not data:
                if reused and not buf:
                    raise _Stale()
                raise httpcore.RemoteProtocolError("server disconnected without sending a response")
            buf += data

    def _answer(self, key: tuple, conn: _Conn, head: bytes) -> Answer:
        import httpcore

        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
            conn.close()
            raise httpcore.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}")
        version, status, reason = parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""
        raw: list[tuple[str, str]] = []
        headers = Headers()
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and raw:  # an obsolete folded line continues the header before it
                k, v = raw[-1]
                raw[-1] = (k, f"{v} {line.strip()}")
                name = k.lower()
                headers[name] = f"{headers[name]} {line.strip()}"
                continue
            k, sep, v = line.partition(":")
            if not sep:
                continue
            k, v = k.strip(), v.strip(" \t")
            raw.append((k, v))
            name = k.lower()
            headers[name] = f"{dict.__getitem__(headers, name)}, {v}" if name in headers else v
        conn_hdr = (headers.get("connection") or "").lower()
        keep = "close" not in conn_hdr if version == "HTTP/1.1" else "keep-alive" in conn_hdr
        return Answer(self, key, conn, status, reason, raw, headers, keep)

    def handle_request(self, request: Any) -> Any:
        """``httpcore.Request -> httpcore.Response``, for an ``httpx.HTTPTransport`` (see :func:`install`)."""
        import httpcore

        url = request.url
        scheme = url.scheme.decode("ascii").lower()
        host = url.host.decode("ascii")
        port = url.port or (443 if scheme == "https" else 80)
        timeouts = request.extensions.get("timeout", {})
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers]
        body = b"".join(request.stream)  # httpx has sent the body's length as a header
        try:
            answer = self.get(scheme, host, port, url.target.decode("ascii"), headers, timeouts.get("connect"),
                              timeouts.get("read"), method=request.method.decode("ascii"), body=body)
        except ValueError as exc:
            raise httpcore.LocalProtocolError(str(exc)) from None
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.raw_headers]
        return httpcore.Response(status=answer.status_code, headers=raw, content=_Body(answer),
                                 extensions=answer.extensions)

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


def _readable(conn: _Conn) -> bool:
    """Whether an idle connection has something to read: the server closed it, or sent bytes that belong to
    no request. Either way it must not carry a request."""
    import select

    if conn.buf:
        return True
    try:
        if hasattr(select, "poll"):
            p = select.poll()
            p.register(conn.sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(p.poll(0))
        return bool(select.select([conn.sock], [], [], 0)[0])  # pragma: no cover - platforms without poll
    except (OSError, ValueError):
        return True


def install(client: Any, ssl_context: Any, keepalive: int) -> bool:
    """Put the lean pool under ``client``'s own ``httpx.HTTPTransport`` (in place of httpcore's), keeping
    at most ``keepalive`` idle connections per host. ``ssl_context`` is an SSLContext or a function that
    returns one on first https use. False (and nothing changed) when httpx lays the client out otherwise,
    or a transport of the caller's stands in for httpx's."""
    import httpx

    transport = getattr(client, "_transport", None)
    if type(transport) is not httpx.HTTPTransport or not hasattr(transport, "_pool"):
        return False
    old, transport._pool = transport._pool, Http1Pool(ssl_context, keepalive=keepalive)
    old.close()
    return True


_JARS: dict[bool, Any] = {}  # the two cookie jar classes below, made once each


def set_cookie_jar(client: Any, *, keep: bool) -> None:
    """Give ``client`` a cookie jar that skips httpx's per-answer work where it is not needed.

    ``keep=True`` (the API): cookies are kept and sent back as httpx does, but an answer without
    ``Set-Cookie`` is not handed to the jar (which builds a request wrapper for every answer, about a tenth
    of a small request's CPU time). ``keep=False`` (media hosts): no cookie is kept or sent, so one host
    cannot set a cookie that another would see. Only a client whose jar is httpx's own, still empty, is
    changed."""
    import httpx

    jar = _JARS.get(keep)
    if jar is None:
        if keep:
            class LeanCookies(httpx.Cookies):
                def extract_cookies(self, response: Any) -> None:
                    if "set-cookie" in response.headers:
                        super().extract_cookies(response)

            jar = LeanCookies
        else:
            class NoCookies(httpx.Cookies):
                def extract_cookies(self, response: Any) -> None:
                    pass

                def set_cookie_header(self, request: Any) -> None:
                    pass

            jar = NoCookies
        _JARS[keep] = jar
    if type(getattr(client, "_cookies", None)) is httpx.Cookies and not client._cookies:
        client._cookies = jar()


class _Stale(Exception):
    """A reused connection was closed by the server before it answered."""


class _Body:
    """An answer's body as httpcore wants it: iterable, closeable."""

    def __init__(self, answer: Answer):
        self.answer = answer

    def __iter__(self) -> Iterator[bytes]:
        return self.answer.iter_raw()

    def close(self) -> None:
        self.answer.close()


def describe_error(exc: BaseException) -> str:
    """How a connection failure (httpx's or httpcore's) is told to the user."""
    import httpcore
    import httpx

    if isinstance(exc, (httpx.TimeoutException, httpcore.TimeoutException)):
        return "timed out"
    if isinstance(exc, (httpx.ConnectError, httpcore.ConnectError)):
        return f"could not connect ({exc})" if str(exc) else "could not connect"
    if isinstance(exc, (httpx.RemoteProtocolError, httpcore.RemoteProtocolError)):
        return f"connection broken ({exc})" if str(exc) else "connection broken"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def transport_errors() -> tuple:
    """The failures of a connection: httpx's, and httpcore's (what the lean pool raises)."""
    import httpcore
    import httpx

    return (httpx.TransportError, httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError)


def as_httpx_response(answer: Any) -> Any:
    """An ``httpx.Response`` over a lean-pool answer whose body has a content coding (httpx decodes it)."""
    import httpx

    class Stream(httpx.SyncByteStream):
        def __iter__(self):
            return answer.iter_raw()

        def close(self) -> None:
            answer.close()

    return httpx.Response(answer.status_code, headers=answer.raw_headers, stream=Stream(),
                          extensions=answer.extensions)
