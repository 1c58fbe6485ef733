"""Artifact downloads shared by chat, media commands, workflows and recipes (contract §7).

Bounded concurrency over one shared ``httpx.Client`` that never carries credentials; each file streams
into ``NAME.part`` (resumed with ``Range`` when a part exists), is checked (length, size limit, Pillow for
images) and renamed into place atomically. Failures are collected in the report, not raised; the caller
turns them into exit 8. Names come from :mod:`sogni_cli.media.naming`, never from the server.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import SogniError, UsageError
from . import naming

WRITE_SIZE = 1 << 20
MAX_REDIRECTS = 5
THREADED_WRITE_MIN = 8 << 20  # bodies larger than this (or of unknown size) hash and write in a helper thread
WAIT_INTERVAL = 1.0  # how often the waiting thread gives the progress display a heartbeat
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524})
EXPIRED_STATUSES = frozenset({403, 404, 410})
CREDENTIAL_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie"})
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")


@dataclass
class ArtifactRef:
    """One media result to fetch, with what is known about it for naming and the manifest."""

    url: str
    index: int = 1
    count: int = 1
    workflow_id: str | None = None
    tool: str | None = None
    prompt: str | None = None
    seed: int | None = None
    model: str | None = None
    arguments: dict | None = None
    content_type: str | None = None
    media_type: str | None = None


@dataclass
class DownloadOptions:
    output_dir: Path
    name_template: str | None = None
    on_exists: str = "suffix"
    max_size: int = 2 * 1024**3
    concurrency: int = 4
    manifest: Path | None = None
    timeout: float = 300.0
    connect_timeout: float = 10.0
    retries: int = 2
    verify_images: bool = True
    checksum: bool = True  # sha256 of each file; forced on with a manifest. Off: SavedFile.sha256 is None


class _NoHash:
    """Stands in for sha256 when no one asked for checksums (hashing is ~30% of a loopback download)."""

    def update(self, data: Any) -> None:
        pass

    def hexdigest(self) -> None:
        return None


def _new_hash(opts: DownloadOptions) -> Any:
    return hashlib.sha256() if (opts.checksum or opts.manifest is not None) else _NoHash()


@dataclass
class SavedFile:
    ref: ArtifactRef
    path: Path
    bytes: int
    sha256: str | None  # None when checksums were not asked for
    content_type: str | None
    skipped: bool = False
    url: str | None = None  # the URL actually fetched (after a refresh), None when skipped

    def to_event(self):  # -> events.Artifact
        from ..events import Artifact

        return Artifact(url=self.url or self.ref.url, path=str(self.path), workflow_id=self.ref.workflow_id,
                        tool=self.ref.tool, content_type=self.content_type, bytes=self.bytes, sha256=self.sha256)


@dataclass
class DownloadReport:
    saved: list[SavedFile] = field(default_factory=list)
    failed: list[tuple[ArtifactRef, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def paths(self) -> list[Path]:
        return [s.path for s in self.saved]


# ------------------------------------------------------------------------------------------------
# URL rules
# ------------------------------------------------------------------------------------------------

def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in ipaddress.IPv4Network("127.0.0.0/8")
    return ip == ipaddress.IPv6Address("::1")


def media_url_problem(url: str) -> str | None:
    """Why ``url`` may not be fetched (None when it may): https anywhere; http only to this machine
    (127.0.0.0/8, ::1, localhost); no other scheme; no credentials in the URL."""
    import httpx

    try:
        u = httpx.URL(url)
        _ = u.port
    except Exception:  # httpx.InvalidURL and friends
        return "malformed URL"
    scheme = u.scheme.lower()
    if not u.host:
        return "URL has no host"
    if u.userinfo:
        return "URL carries credentials"
    if scheme == "https":
        return None
    if scheme == "http":
        if _is_loopback(u.host):
            return None
        return "plain http:// is allowed only to this machine (127.0.0.1, ::1, localhost); https is required"
    return f"unsupported URL scheme {scheme + ':' if scheme else '(none)'}"


# ------------------------------------------------------------------------------------------------
# Naming
# ------------------------------------------------------------------------------------------------

def _today() -> str:
    return _dt.date.today().isoformat()


def _fields(ref: ArtifactRef, ext: str, date: str) -> dict[str, Any]:
    return {
        "index": ref.index,
        "count": ref.count,
        "tool": ref.tool or "",
        "slug": naming.slugify(ref.prompt) or naming.slugify(ref.tool) or "sogni",
        "seed": "" if ref.seed is None else ref.seed,
        "workflow": ref.workflow_id or "",
        "date": date,
        "ext": ext,
    }


def _name_for(ref: ArtifactRef, ext: str, opts: DownloadOptions, date: str) -> Path:
    return naming.safe_join(Path(opts.output_dir), naming.render_name(opts.name_template, _fields(ref, ext, date)))


def plan_paths(refs: Iterable[ArtifactRef], opts: DownloadOptions, *, date: str | None = None) -> list[Path | None]:
    """The path each artifact would get before any collision rule, or None when it is only known once the
    server answers (no allowed extension from the declared content type or URL, or the template uses
    ``{workflow}``/``{seed}`` that is not known yet). UsageError on a bad template."""
    date = date or _today()
    used = naming.template_fields(opts.name_template)
    out: list[Path | None] = []
    for ref in refs:
        ext = naming.ext_for(ref.url or "", ref.content_type)
        if ext is None or ("workflow" in used and not ref.workflow_id) or ("seed" in used and ref.seed is None):
            out.append(None)
            continue
        out.append(_name_for(ref, ext, opts, date))
    return out


def check_on_exists(refs: Iterable[ArtifactRef], opts: DownloadOptions) -> None:
    """For ``--on-exists error``: UsageError (exit 2) when a name known in advance already exists."""
    if opts.on_exists != "error":
        return
    for path in plan_paths(refs, opts):
        if path is not None and (path.exists() or path.is_symlink()):
            raise UsageError(f"{path} exists", "Use --on-exists suffix|overwrite|skip, or another --name.")


# ------------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------------

def manifest_record(saved: SavedFile, now: _dt.datetime | None = None) -> dict[str, Any]:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=_dt.timezone.utc)
    stamp = now.astimezone(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    ref = saved.ref
    return {
        "path": str(saved.path),
        "sha256": saved.sha256,
        "bytes": saved.bytes,
        "content_type": saved.content_type,
        "url": saved.url or ref.url,
        "workflow_id": ref.workflow_id,
        "tool": ref.tool,
        "arguments": ref.arguments,
        "model": ref.model,
        "seed": ref.seed,
        "time": stamp,
    }


def write_manifest(path: Path, saved: Iterable[SavedFile], now: _dt.datetime | None = None) -> int:
    """Append one JSON line per saved artifact (skipped ones are not written); returns the lines written."""
    lines = [json.dumps(manifest_record(s, now), ensure_ascii=False, default=str) for s in saved if not s.skipped]
    if not lines:
        return 0
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return len(lines)


# ------------------------------------------------------------------------------------------------
# Downloading
# ------------------------------------------------------------------------------------------------

class _Fail(Exception):
    """A permanent failure for one artifact."""

    def __init__(self, message: str, *, drop_part: bool = False):
        super().__init__(message)
        self.message = message
        self.drop_part = drop_part


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class _Cancelled(Exception):
    pass


class _Skip:
    """``--on-exists skip`` matched: keep the existing file at ``path``."""

    def __init__(self, path: Path):
        self.path = path


#: Socket read size for plain-HTTP bodies. httpcore reads 64 KiB at a time; at loopback/LAN speeds that
#: costs ~25% of throughput in per-read overhead. Over TLS each read returns one record (<= 16 KiB) anyway.
READ_SIZE = 1024 * 1024


def _larger_reads() -> None:
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:  # pragma: no cover - another httpcore layout: keep its default
        return
    if getattr(HTTP11Connection, "READ_NUM_BYTES", READ_SIZE) < READ_SIZE:
        HTTP11Connection.READ_NUM_BYTES = READ_SIZE


def make_download_client(opts: DownloadOptions):
    """The shared client for media hosts: no credentials, no automatic redirects, bounded pool."""
    return _make_client(opts)


_SSL_CONTEXT: Any = None
_SSL_LOCK = threading.Lock()


def _ssl_context() -> Any:
    """One TLS context per process: loading the CA bundle costs ~17 ms, too much to pay per job."""
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            import ssl

            try:
                import certifi

                _SSL_CONTEXT = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - httpx brings certifi
                _SSL_CONTEXT = ssl.create_default_context()
        return _SSL_CONTEXT


def _make_client(opts: DownloadOptions):
    import httpx

    from .. import __version__

    _larger_reads()

    n = max(1, int(opts.concurrency))
    return httpx.Client(
        verify=_ssl_context(),
        follow_redirects=False,
        timeout=httpx.Timeout(opts.timeout, connect=opts.connect_timeout),
        limits=httpx.Limits(max_connections=n * 2, max_keepalive_connections=n),
        headers={"User-Agent": f"sogni-cli/{__version__}"},
    )


def _check_client(client: Any) -> None:
    bad = sorted({k.lower() for k in client.headers.keys()} & CREDENTIAL_HEADERS)
    if bad or getattr(client, "auth", None) is not None:
        raise SogniError("internal error: the download client carries credentials "
                         f"({', '.join(bad) or 'auth'}); media hosts never receive them")


def _describe(exc: BaseException) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect ({exc})" if str(exc) else "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection broken ({exc})" if str(exc) else "connection broken"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, min(60.0, float(value)))
    except ValueError:
        return None


def _remove(path: Path | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # pragma: no cover - best effort
        pass


def _size(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    import stat

    if not stat.S_ISREG(st.st_mode):
        raise _Fail(f"refused: {path} is not a regular file")
    return st.st_size


def _hash_file(path: Path, h: "hashlib._Hash", cancel: threading.Event | None = None) -> int:
    n = 0
    with open(path, "rb", buffering=0) as fh:
        while True:
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            data = fh.read(WRITE_SIZE)
            if not data:
                return n
            h.update(data)
            n += len(data)


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _writev_all(fd: int, pieces: list[bytes]) -> None:
    if len(pieces) == 1 or not hasattr(os, "writev"):
        _write_all(fd, pieces[0] if len(pieces) == 1 else b"".join(pieces))
        return
    written = os.writev(fd, pieces)
    total = sum(len(p) for p in pieces)
    if written < total:  # a short write: finish the rest plainly
        _write_all(fd, memoryview(b"".join(pieces))[written:])


_PIL_READY = False


def verify_image(path: Path) -> str | None:
    """None when Pillow opens the file as PNG/JPEG/WebP/GIF, else why not."""
    global _PIL_READY
    from PIL import Image

    if not _PIL_READY:
        import warnings

        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        _PIL_READY = True
    try:
        with Image.open(path, formats=["PNG", "JPEG", "WEBP", "GIF"]) as im:
            im.verify()
    except Image.DecompressionBombError:
        return None  # a huge but well-formed image: the header parsed
    except Exception as exc:  # noqa: BLE001 - any decoder error means a corrupt file
        return f"not a valid image ({type(exc).__name__})"
    return None


class _Writer:
    """Hashes and writes received chunks in order, in batches of about 1 MiB (one ``writev`` each, no copy).

    For large bodies a helper thread does the hashing and writing (both release the GIL), so the network
    read never waits for them; a bounded queue limits the memory and gives back-pressure. ``close()``
    writes what is left and re-raises a write error; ``abort()`` drops what is left.
    """

    MAX_PIECES = 512  # well under IOV_MAX

    def __init__(self, fd: int, h: Any, on_written: Callable[[int], Any], *, threaded: bool,
                 size: int = WRITE_SIZE, depth: int = 4):
        self.fd = fd
        self.h = h
        self.on_written = on_written
        self.size = size
        self.batch: list[bytes] = []
        self.pending = 0
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if threaded:
            import queue

            self.todo: Any = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._run, name="sogni-download-writer", daemon=True)
            self.thread.start()

    def _consume(self, batch: list[bytes]) -> None:
        for piece in batch:
            self.h.update(piece)
        _writev_all(self.fd, batch)

    def _run(self) -> None:
        while True:
            batch = self.todo.get()
            if batch is None:
                return
            if self.error is None:
                try:
                    self._consume(batch)
                except BaseException as exc:  # noqa: BLE001 - reported by close()
                    self.error = exc

    def _hand_off(self) -> None:
        if not self.batch:
            return
        batch, n = self.batch, self.pending
        self.batch, self.pending = [], 0
        if self.thread is None:
            self._consume(batch)
        else:
            if self.error is not None:
                raise self.error
            self.todo.put(batch)
        self.on_written(n)

    def add(self, chunk: bytes) -> None:
        self.batch.append(chunk)
        self.pending += len(chunk)
        if self.pending >= self.size or len(self.batch) >= self.MAX_PIECES:
            self._hand_off()

    def close(self) -> None:
        try:
            self._hand_off()
        finally:
            self._stop()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self.batch, self.pending = [], 0
        self._stop()

    def _stop(self) -> None:
        if self.thread is not None:
            self.todo.put(None)
            self.thread.join()
            self.thread = None


class _Job:
    """What is known so far about one artifact's file."""

    def __init__(self, final: Path | None, ref: ArtifactRef):
        self.final = final
        self.ref = ref

    @property
    def part(self) -> Path | None:
        return self.final.with_name(self.final.name + ".part") if self.final is not None else None

    @property
    def label(self) -> str:
        return self.final.name if self.final is not None else f"artifact {self.ref.index}/{self.ref.count}"


class _Downloader:
    def __init__(self, opts: DownloadOptions, client: Any, progress: Any, refresh: Callable | None,
                 sleep: Callable[[float], Any], date: str):
        self.opts = opts
        self.client = client
        self.progress = progress
        self.refresh = refresh
        self.sleep = sleep
        self.date = date
        self.lock = threading.Lock()
        self.refresh_lock = threading.Lock()
        self.cancel = threading.Event()
        self.active: set[Any] = set()  # responses being read, so an interrupt can unblock their reads
        self.taken: set[Path] = set()

    # -- naming -----------------------------------------------------------------------------------
    def claim(self, path: Path) -> Path | _Skip:
        with self.lock:
            got = naming.resolve_collision(path, self.opts.on_exists, self.taken)
        return _Skip(path) if got is None else got

    def skipped(self, ref: ArtifactRef, path: Path) -> SavedFile:
        h = _new_hash(self.opts)
        if not path.is_file():
            n = 0
        elif isinstance(h, _NoHash):
            n = path.stat().st_size
        else:
            n = _hash_file(path, h)
        return SavedFile(ref, path, n, h.hexdigest(), ref.content_type, skipped=True)

    # -- HTTP -------------------------------------------------------------------------------------
    def open(self, url: str, offset: int):
        import httpx

        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        for hop in range(MAX_REDIRECTS + 1):
            problem = media_url_problem(url)
            if problem:
                where = "redirect target" if hop else "URL"
                raise _Fail(f"refused {where} {_short(url)}: {problem}")
            if self.cancel.is_set():
                raise _Cancelled()
            try:
                request = self.client.build_request("GET", url, headers=headers)
                response = self.client.send(request, stream=True, follow_redirects=False)
            except httpx.TransportError as exc:
                raise _Retry(_describe(exc)) from None
            if response.is_redirect:
                location = response.headers.get("location", "")
                target = str(response.url.join(location))
                response.close()
                if hop == MAX_REDIRECTS:
                    raise _Fail(f"too many redirects (more than {MAX_REDIRECTS})")
                url = target
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def fresh_url(self, ref: ArtifactRef) -> str | None:
        if self.refresh is None:
            return None
        with self.refresh_lock:
            try:
                return self.refresh(ref)
            except SogniError as exc:
                raise _Fail(f"could not get a fresh link: {exc.message}") from None

    # -- one artifact -----------------------------------------------------------------------------
    def run_one(self, key: int, ref: ArtifactRef, claimed: Path | _Skip | None) -> SavedFile:
        opts = self.opts
        if isinstance(claimed, _Skip):
            return self.skipped(ref, claimed.path)
        job = _Job(claimed if isinstance(claimed, Path) else None, ref)
        url = ref.url
        problem = media_url_problem(url)
        if problem:
            raise _Fail(f"refused URL {_short(url)}: {problem}")
        refreshed = False
        retries_left = max(0, int(opts.retries))
        restarts_left = 1
        attempt = 0
        while True:
            if self.cancel.is_set():
                raise _Cancelled()
            part = job.part
            if part is not None:
                naming.safe_join(Path(opts.output_dir), part.name)
            offset = _size(part)
            try:
                response = self.open(url, offset)
                try:
                    outcome = self.receive(key, ref, response, url, job, offset)
                finally:
                    response.close()
            except _Retry as exc:
                if self.cancel.is_set():
                    raise _Cancelled() from None
                if retries_left <= 0:
                    tries = f" after {opts.retries} retr{'y' if opts.retries == 1 else 'ies'}" if opts.retries else ""
                    raise _Fail(f"{exc.message}{tries}") from None
                retries_left -= 1
                delay = exc.retry_after if exc.retry_after is not None else \
                    min(8.0, 0.5 * (2 ** attempt)) * random.uniform(0.8, 1.2)
                attempt += 1
                self.progress.note(f"{job.label}: {exc.message}; retrying in {delay:.1f}s")
                self.sleep(delay)
                continue
            kind = outcome[0]
            if kind == "refresh":
                if refreshed or self.refresh is None:
                    raise _Fail(f"HTTP {outcome[1]} from the media host (the link may have expired)")
                refreshed = True
                new_url = self.fresh_url(ref)
                if not new_url:
                    raise _Fail(f"HTTP {outcome[1]} from the media host and no fresh link is available")
                url = new_url
                continue
            if kind == "restart":
                _remove(part)
                if restarts_left <= 0:
                    raise _Fail(outcome[1])
                restarts_left -= 1
                self.progress.note(f"{job.label}: {outcome[1]}; starting again from zero")
                continue
            if kind == "named":  # the name became known from the answer and a part exists: ask again to resume
                continue
            if kind == "skip":
                return self.skipped(ref, outcome[1])
            _, nbytes, digest, content_type = outcome
            final, part = job.final, job.part
            assert final is not None and part is not None
            break
        if opts.verify_images and final.suffix.lower().lstrip(".") in naming.IMAGE_EXTS:
            why = verify_image(part)
            if why:
                _remove(part)
                raise _Fail(f"downloaded file is {why}")
        if self.cancel.is_set():
            raise _Cancelled()
        os.replace(part, final)
        return SavedFile(ref, final, nbytes, digest, content_type, url=url)

    def receive(self, key: int, ref: ArtifactRef, response: Any, url: str, job: "_Job", offset: int) -> tuple:
        opts = self.opts
        final = job.final
        status = response.status_code
        if status in EXPIRED_STATUSES:
            return ("refresh", status)
        if status in RETRY_STATUSES or status >= 500:
            raise _Retry(f"HTTP {status} from the media host", _retry_after(response.headers))
        if status == 416 and offset:
            m = _UNSATISFIED_RANGE.match(response.headers.get("content-range", "").strip())
            if m and int(m.group(1)) == offset and final is not None:
                part = final.with_name(final.name + ".part")  # the part is already complete
                h = _new_hash(self.opts)
                if not isinstance(h, _NoHash):
                    _hash_file(part, h, self.cancel)
                return ("done", offset, h.hexdigest(), ref.content_type)
            return ("restart", "the server refused to resume (HTTP 416)")
        if status not in (200, 206):
            raise _Fail(f"HTTP {status} from the media host")
        if status == 206 and not offset:
            raise _Fail("the server sent a partial answer (206) to a full request")
        content_type = response.headers.get("content-type")
        if final is None:
            ext = naming.ext_for(str(url), content_type)
            if ext is None:
                raise _Fail(f"refused: file type not allowed (content type {content_type or 'missing'})")
            got = self.claim(_name_for(ref, ext, opts, self.date))
            if isinstance(got, _Skip):
                return ("skip", got.path)
            job.final = final = got
            naming.safe_join(Path(opts.output_dir), job.part.name)
            if _size(job.part):
                return ("named",)
        part = final.with_name(final.name + ".part")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        decode = encoding not in ("", "identity")
        if status == 206:
            if decode:
                return ("restart", f"the server resumed with an encoded body ({encoding})")
            m = _CONTENT_RANGE.match(response.headers.get("content-range", "").strip())
            first, last, total = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (-1, -1, -1)
            length = _content_length(response)
            if (not m or first != offset or last != total - 1 or last < first
                    or (length is not None and length != last - first + 1)):
                shown = response.headers.get("content-range") or "none"
                return ("restart", f"the resume answer's Content-Range ({shown}) does not match byte {offset}")
            expected: int | None = total
        else:
            offset = 0  # 200: the whole file again
            length = _content_length(response)
            expected = None if decode else length
        if expected is not None and expected > opts.max_size:
            _remove(part)
            raise _Fail(f"refused: {expected} bytes is over the size limit ({opts.max_size} bytes)")
        nbytes, digest = self.stream(key, response, part, offset, expected, job.label, decode, length)
        return ("done", nbytes, digest, content_type)

    def stream(self, key: int, response: Any, part: Path, offset: int, expected: int | None, label: str,
               decode: bool, raw_length: int | None) -> tuple[int, str]:
        import httpx

        opts = self.opts
        progress = self.progress
        cancel = self.cancel
        h = _new_hash(opts)
        if offset and not isinstance(h, _NoHash):
            _hash_file(part, h, cancel)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if offset else os.O_TRUNC)
        flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(part, flags, 0o644)
        limit = opts.max_size - offset
        received = 0
        ok = False
        progress.start(key, expected, label)
        if offset:
            progress.advance(key, offset)
        writer = _Writer(fd, h, lambda n: progress.advance(key, n),
                         threaded=expected is None or expected - offset > THREADED_WRITE_MIN)
        with self.lock:
            self.active.add(response)
        try:
            source = response.iter_bytes() if decode else response.iter_raw()
            try:
                for chunk in source:
                    if cancel.is_set():
                        raise _Cancelled()
                    received += len(chunk)
                    if received > limit:
                        raise _Fail(f"refused: more than the size limit ({opts.max_size} bytes)", drop_part=True)
                    if expected is not None and offset + received > expected:
                        raise _Fail(f"the body is longer than announced ({expected} bytes)", drop_part=True)
                    writer.add(chunk)
            except httpx.TransportError as exc:
                writer.close()  # what arrived is good: keep it for the resume
                if cancel.is_set():
                    raise _Cancelled() from None
                raise _Retry(_describe(exc)) from None
            except (KeyboardInterrupt, _Cancelled):
                writer.close()
                raise
            writer.close()
            if cancel.is_set():  # the read was cut short by an interrupt: keep the part, stop here
                raise _Cancelled()
            total = offset + received
            if expected is not None and total < expected:
                raise _Retry(f"the body ended early ({total} of {expected} bytes)")
            if decode and raw_length is not None and response.num_bytes_downloaded != raw_length:
                raise _Fail("the body does not match its announced length", drop_part=True)
            ok = True
            return total, h.hexdigest()
        except BaseException as exc:
            writer.abort()
            if isinstance(exc, _Fail) and exc.drop_part:
                os.close(fd)
                fd = -1
                _remove(part)
            raise
        finally:
            with self.lock:
                self.active.discard(response)
            if fd >= 0:
                os.close(fd)
            progress.finish(key, ok)

    def abort_reads(self) -> None:
        """Wake the workers blocked on a silent connection (shut their sockets) so they save what arrived."""
        import socket

        with self.lock:
            responses = list(self.active)
        for response in responses:
            stream = getattr(response, "extensions", {}).get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # -- the pool ---------------------------------------------------------------------------------
    def run(self, refs: list[ArtifactRef], claims: list[Any]) -> list[Any]:
        n = len(refs)
        results: list[Any] = [None] * n
        pending = list(range(n - 1, -1, -1))
        fatal: list[BaseException] = []
        state = {"live": 0}
        all_done = threading.Event()

        def work() -> None:
            try:
                while not self.cancel.is_set():
                    with self.lock:
                        if not pending:
                            return
                        i = pending.pop()
                    try:
                        results[i] = self.run_one(i, refs[i], claims[i])
                    except _Cancelled:
                        results[i] = None
                    except _Fail as exc:
                        results[i] = exc
                    except (UsageError, OSError) as exc:
                        results[i] = _Fail(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
                    except BaseException as exc:  # KeyboardInterrupt from a stream, or a bug
                        fatal.append(exc)
                        self.cancel.set()
                        return
                    if isinstance(results[i], SavedFile) and not results[i].skipped and self.opts.manifest:
                        try:
                            with self.lock:
                                write_manifest(Path(self.opts.manifest), [results[i]])
                        except OSError as exc:
                            self.progress.note(f"warning: could not write the manifest: {exc}")
            finally:
                with self.lock:
                    state["live"] -= 1
                    if state["live"] == 0:
                        all_done.set()

        workers = max(1, min(int(self.opts.concurrency or 1), n))
        threads = [threading.Thread(target=work, name=f"sogni-download-{k}", daemon=True) for k in range(workers)]
        state["live"] = len(threads)
        for t in threads:
            t.start()
        try:
            while not all_done.wait(WAIT_INTERVAL):
                self.progress.heartbeat()
        except BaseException:
            self.cancel.set()
            self.abort_reads()
            deadline = time.monotonic() + 5.0
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            raise
        if fatal:
            raise fatal[0]
        return results


def _short(url: str, limit: int = 120) -> str:
    url = url.split("?", 1)[0]  # signed query strings are long and not for display
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _content_length(response: Any) -> int | None:
    value = response.headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit():
        raise _Fail(f"invalid Content-Length {value!r}")
    return int(value)


def download_all(refs: Iterable[ArtifactRef], opts: DownloadOptions, *, client: Any = None, progress: Any = None,
                 refresh: Callable[[ArtifactRef], str | None] | None = None,
                 sleep: Callable[[float], Any] = time.sleep) -> DownloadReport:
    """Download every artifact into ``opts.output_dir``; see the module docstring.

    Raises UsageError (before any request) for a bad template or ``--on-exists`` value, an output folder
    that cannot be made, or — with ``on_exists="error"`` — a name known in advance that exists.
    KeyboardInterrupt stops everything, keeps the ``.part`` files for a later resume, and is re-raised.
    ``refresh(ref)`` is called at most once per artifact, on a 403/404/410 from the media host, and may
    return a fresh URL. With ``opts.manifest`` set, one line per saved file is appended as each completes.
    """
    from ..render.progress import NullProgress

    refs = list(refs)
    if opts.on_exists not in ("suffix", "overwrite", "skip", "error"):
        raise UsageError(f"Invalid --on-exists value {opts.on_exists!r}", "Use one of: suffix, overwrite, skip, error")
    if opts.max_size <= 0:
        raise UsageError("The download size limit must be positive")
    progress = progress or NullProgress()
    date = _today()
    planned = plan_paths(refs, opts, date=date)
    try:
        Path(opts.output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Cannot create the output folder {opts.output_dir}: {exc.strerror or exc}") from None
    dl = _Downloader(opts, None, progress, refresh, sleep, date)
    claims: list[Any] = [dl.claim(p) if p is not None else None for p in planned]  # in order: stable names
    if opts.manifest:
        try:
            with open(opts.manifest, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise UsageError(f"Cannot write the manifest {opts.manifest}: {exc.strerror or exc}") from None
    report = DownloadReport()
    if not refs:
        return report
    own = client is None
    dl.client = _make_client(opts) if own else client
    if not own:
        _check_client(client)
    try:
        results = dl.run(refs, claims)
    finally:
        if own:
            dl.client.close()
    for ref, res in zip(refs, results):
        if isinstance(res, SavedFile):
            report.saved.append(res)
        elif isinstance(res, _Fail):
            report.failed.append((ref, res.message))
        else:  # pragma: no cover - only when cancelled, which re-raises above
            report.failed.append((ref, "not downloaded"))
    return report
