"""The emulator's HTTP server: an :class:`Emulator` owning a loopback ``ThreadingHTTPServer``.

Plumbing lives here (request recording, auth, faults, JSON/SSE/byte writers); the routes are in
:mod:`sogni_cli.emulator.routes`.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, TextIO
from urllib.parse import parse_qsl, urlsplit

from sogni_cli.core.errors import UsageError

from .common import ApiFailure, openai_error, sogni_error
from .faults import FaultQueue
from .workflows import WorkflowStore


class LoopbackOnlyError(UsageError, ValueError):
    """The emulator was asked to listen on an address that is not loopback."""


def check_loopback(host: str) -> str:
    """Return the address to bind for ``host``; refuse anything that is not loopback."""
    if host in ("localhost", ""):
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise LoopbackOnlyError(f"the emulator only listens on loopback; {host!r} is not a loopback address",
                                "Use --host 127.0.0.1 (or ::1).") from None
    if not ip.is_loopback:
        raise LoopbackOnlyError(f"the emulator only listens on loopback; {host!r} is not a loopback address",
                                "Use --host 127.0.0.1 (or ::1).")
    return str(ip)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: "Emulator"

    def handle_error(self, request, client_address):  # noqa: D401 - socketserver hook
        """A client that hangs up (Ctrl-C, a cut download) is normal here: no traceback."""
        import sys as _sys

        exc = _sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class Abort(Exception):
    """The handler cut the connection on purpose (a fault); stop processing the request."""


class Emulator:
    """A running (or startable) emulator. Use :func:`sogni_cli.emulator.start` to get one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0, step_seconds: float = 0.5,
                 quiet: bool = True, require_auth: bool = True, keepalive: float = 1.0,
                 out: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 fault_rates: dict[str, float] | None = None, seed: int = 0, tool_names: str = "prefixed",
                 balance: float | None = None, retry_after: float = 1.0):
        from .account import DEFAULT_BALANCE, Account
        from .runs import RunStore
        from .templates import TemplateStore

        if tool_names not in TOOL_NAMES:
            raise UsageError(f"tool names must be one of {', '.join(TOOL_NAMES)}, not {tool_names!r}")
        self.host = check_loopback(host)
        self.tool_names = tool_names
        self.account = Account(DEFAULT_BALANCE if balance is None else balance)
        self.port = port
        self.latency = float(latency)
        self.step_seconds = float(step_seconds)
        self.quiet = quiet
        self.require_auth = require_auth
        self.keepalive = float(keepalive)
        self.out = out if out is not None else sys.stderr
        self.faults = FaultQueue(fault_rates, seed, retry_after)
        self.stopping = threading.Event()
        self.stalled = threading.Event()  # set when a ``stall_after`` fault starts holding a connection
        self._lock = threading.RLock()
        self._requests: list[dict[str, Any]] = []
        self._media_cache: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.chat_idem: dict[str, tuple[str, dict[str, Any]]] = {}
        self.store = WorkflowStore(lambda: self.base_url, self.step_seconds, clock=clock,
                                   media_size=lambda spec: len(self.media_bytes(spec)), account=self.account)
        self.account.spent = self.store.spent
        self.account.max_active = lambda: self.store.max_active
        self.templates = TemplateStore()
        self.runs = RunStore(self.store, clock=clock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- life cycle
    def start(self) -> "Emulator":
        if self._server is not None:
            return self
        cls = _Server6 if ":" in self.host else _Server
        server = cls((self.host, self.port), Handler)
        server.emulator = self
        self._server = server
        self.port = server.server_address[1]
        self.stopping.clear()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sogni-emulator-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # ----------------------------------------------------------------- state
    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the recorded requests (admin routes excluded)."""
        with self._lock:
            return [dict(r) for r in self._requests]

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def script(self, faults: list[dict[str, Any]]) -> None:
        """Append faults to the queue (see :mod:`sogni_cli.emulator.faults`)."""
        self.faults.add(faults)

    def reset(self) -> None:
        """Forget recorded requests, pending faults, workflows, uploads and cached answers."""
        self.faults.clear()
        self.store.reset()
        self.templates.reset()
        self.runs.reset()
        self.account.reset()
        with self._lock:
            self._requests.clear()
            self.uploads.clear()
            self.chat_idem.clear()
            self._media_cache.clear()

    def configure(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """Change settings while running: ``tool_names``, ``balance``, ``credit``, ``subscription``, ``usage``."""
        if "tool_names" in cfg:
            if cfg["tool_names"] not in TOOL_NAMES:
                raise ValueError(f"tool_names must be one of {', '.join(TOOL_NAMES)}")
            self.tool_names = cfg["tool_names"]
        self.account.configure(cfg)
        return {"tool_names": self.tool_names, "balance": self.account.balance()}

    def media_bytes(self, spec: dict[str, Any]) -> bytes:
        from . import media

        key = json.dumps(spec, sort_keys=True, default=str)
        with self._lock:
            data = self._media_cache.get(key)
        if data is None:
            data = media.make(spec)
            with self._lock:
                self._media_cache[key] = data
        return data

    def log(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.out, flush=True)


OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
TOOL_NAMES = ("prefixed", "flat")
NO_AUTH_PREFIXES = ("/media/", "/_uploads/")


def _fmt_seconds(value: float) -> str:
    return f"{value:g}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SogniEmulator/1.0"
    server: _Server

    # These are set per request in _dispatch.
    fault: dict[str, Any] | None = None
    entry: dict[str, Any] | None = None  # the recorded request; its answer's status is added
    frames_sent = 0
    bytes_sent = 0

    @property
    def emu(self) -> Emulator:
        return self.server.emulator

    def setup(self) -> None:
        super().setup()
        try:  # headers and body go out in separate writes: do not let Nagle hold the second one back
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def send_response(self, code: int, message: str | None = None) -> None:
        if self.entry is not None:
            self.entry["status"] = code
        super().send_response(code, message)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        self.emu.log("emulator: " + (format % args))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # ----------------------------------------------------------------- request
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                line = self.rfile.readline(65537).strip()
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def envelope_for(self, path: str) -> str:
        return "openai" if path.startswith(OPENAI_PATHS) else "sogni"

    def _dispatch(self, method: str) -> None:
        from . import routes

        self.fault = None
        self.entry = None
        self.frames_sent = 0
        self.bytes_sent = 0
        parts = urlsplit(self.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            raw = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.startswith("/_emulator/"):
            try:
                routes.admin(self, method, path, raw)
            except ApiFailure as exc:
                self.send_error_body(exc, "sogni")
            return
        body: Any = None
        bad_json = False
        if raw and "json" in (headers.get("content-type") or "json") and not path.startswith("/_uploads/"):
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        fault = self.emu.faults.take(method, path)
        entry = {"method": method, "path": path, "query": query, "headers": headers, "json": body,
                 "time": time.time(), "body_size": len(raw),
                 "auth_sent": "authorization" in headers or "api-key" in headers,
                 "fault": fault["action"] if fault else None}
        self.emu.record(entry)
        self.entry = entry
        envelope = self.envelope_for(path)
        try:
            if self.emu.latency > 0:
                time.sleep(self.emu.latency)
            if fault is not None:
                self.fault = fault
                action = fault["action"]
                if action == "drop":
                    self.abort()
                if action == "status":
                    self.send_fault_status(fault, envelope)
                    return
            if bad_json:
                raise ApiFailure(400, "request body is not valid JSON", code="invalid_json")
            if not path.startswith(NO_AUTH_PREFIXES) and self.emu.require_auth and not self._authorized(headers):
                raise ApiFailure(401, "Missing or empty API key: send Authorization: Bearer KEY or api-key: KEY",
                                 code="invalid_api_key" if envelope == "openai" else 401,
                                 type="invalid_request_error")
            routes.route(self, method, path, query, headers, body, raw)
            if fault is not None and fault["action"] == "close_after":
                self.close_quietly()
        except Abort:
            return
        except ApiFailure as exc:
            try:
                self.send_error_body(exc, exc.envelope or envelope)
            except Abort:
                return
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the emulator: answer 500 and show it
            traceback.print_exc(file=self.emu.out)
            try:
                self.send_error_body(ApiFailure(500, f"emulator error: {exc}", code=500), envelope)
            except Exception:
                self.close_connection = True

    @staticmethod
    def _authorized(headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip():
            return True
        return bool(headers.get("api-key", "").strip())

    # ----------------------------------------------------------------- faults
    def close_quietly(self) -> None:
        """End the connection after what was written (a complete answer that said nothing of closing it,
        or one cut short): the client reads to the end of it, then finds the connection closed."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self) -> None:
        """Close the connection after what was written (no terminating chunk) and stop handling."""
        self.close_quietly()
        raise Abort()

    def abort(self) -> None:
        """Cut the connection (RST, unread data is lost) and stop handling this request."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.wfile, self.rfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass
        raise Abort()

    def send_fault_status(self, fault: dict[str, Any], envelope: str) -> None:
        status = fault["status"]
        kind = fault.get("body") or envelope
        default_msg = {429: "Rate limit exceeded", 402: "Insufficient balance", 401: "Invalid API key",
                       409: "Too many active workflows; wait for one to finish",
                       503: "Service temporarily unavailable", 500: "Internal server error",
                       502: "Bad gateway", 504: "Gateway timeout"}.get(status, f"HTTP {status}")
        message = fault.get("message") or f"{default_msg} (emulated fault)"
        headers: dict[str, str] = {}
        if "retry_after" in fault:
            headers["Retry-After"] = _fmt_seconds(fault["retry_after"])
        if "retry_after_ms" in fault:
            headers["retry-after-ms"] = _fmt_seconds(fault["retry_after_ms"])
        if kind == "openai":
            etype = fault.get("type") or ("rate_limit_exceeded" if status == 429 else
                                          "insufficient_balance" if status == 402 else
                                          "invalid_request_error" if status < 500 else "server_error")
            body: dict[str, Any] = openai_error(message, type=etype, code=fault.get("code", status))
        else:
            body = sogni_error(message, fault.get("code", status), retry_after=fault.get("body_retry_after"))
        self.fault = None  # the answer itself is the fault
        self.send_json(status, body, headers)

    # ----------------------------------------------------------------- writers
    def send_error_body(self, exc: ApiFailure, envelope: str) -> None:
        if envelope == "openai":
            param = exc.details.get("param") if isinstance(exc.details, dict) else None
            body = openai_error(exc.message, type=exc.type or "invalid_request_error",
                                code=exc.code if exc.code is not None else "invalid_parameter", param=param)
        else:
            body = sogni_error(exc.message, exc.code if exc.code is not None else exc.status, exc.details)
        self.fault = None
        self.send_json(exc.status, body, exc.headers)

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode("utf-8")
        self.send_bytes(status, data, "application/json", headers)

    def send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None,
                   head_only: bool = False, length: int | None = None) -> None:
        fault = self.fault
        if fault and fault["action"] == "slow":
            time.sleep(float(fault.get("delay", 0)))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if head_only:
            return
        if fault and fault["action"] in ("truncate", "reset_after", "stall_after"):
            n = fault.get("bytes", fault.get("chunks", 0))
            self.wfile.write(data[:n])
            self.wfile.flush()
            if fault["action"] == "stall_after":
                self.stall(float(fault.get("hold", 60)))
            self.cut()
        step = 65536
        for i in range(0, len(data), step):
            self.wfile.write(data[i:i + step])
        self.wfile.flush()

    def stall(self, seconds: float) -> None:
        """Hold the connection open, sending nothing, until ``seconds`` pass or the emulator stops."""
        emulator = self.server.emulator
        emulator.stalled.set()
        emulator.stopping.wait(seconds)

    # SSE: chunked transfer encoding, one write + flush per frame.
    def sse_start(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, text: str) -> None:
        data = text.encode("utf-8")
        if not data:
            return
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
        self.bytes_sent += len(data)

    def sse_frame(self, text: str) -> None:
        """Write one SSE frame (a full ``...\\n\\n`` block), honouring stream faults."""
        fault = self.fault
        if fault:
            action = fault["action"]
            if action == "slow" and self.frames_sent > 0:
                time.sleep(float(fault.get("delay", 0)))
            if action == "stall_after" and self.frames_sent >= int(fault.get("chunks", fault.get("bytes", 0))):
                self.stall(float(fault.get("hold", 60)))
                self.cut()
            if action == "reset_after" and self.frames_sent >= int(fault.get("chunks", fault.get("bytes", 0))):
                if fault.get("clean"):
                    self.sse_end()
                    raise Abort()
                self.cut()
            if action == "truncate":
                room = int(fault["bytes"]) - self.bytes_sent
                if room < len(text.encode("utf-8")):
                    self._chunk(text.encode("utf-8")[:max(0, room)].decode("utf-8", "ignore"))
                    self.cut()
        self._chunk(text)
        self.frames_sent += 1

    def sse_comment(self, text: str) -> None:
        self._chunk(f": {text}\n\n")

    def sse_end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
