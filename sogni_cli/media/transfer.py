"""The per-file transfer behind :func:`sogni_cli.media.downloads.download_all`.

A worker pool over the shared client; for each artifact: redirects (checked hop by hop), retries with
backoff, a fresh link on 403/404/410, resume with ``Range`` and ``If-Range`` (only of a part whose
sidecar names the same artifact), streaming into ``NAME.part`` with sha256 and a helper write thread for
large bodies, then the checks, the rename into place and the download record (see
:mod:`sogni_cli.media.downloads` for the sidecar and the record).
Names are held against other processes saving into the same folder (see :mod:`sogni_cli.core.filewrite`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..core.errors import SogniError, UsageError
from ..api import http1
from . import naming
from ..core.filewrite import (PartClaim, _Cancelled, _hash_file, _new_hash, _NoHash, _Writer, hold_name,
                              put_in_place)
from . import downloads as _dl
from .socketbody import _DISK_ERRNOS, _Closed, _from_socket, _plain_socket
from ..api.retry import RETRY_STATUSES, Safety, parse_retry_after
from ..api.urls import media_url_problem
from .downloads import (ArtifactRef, DownloadOptions, SavedFile, _name_for, policy_of, verify_image,
                        write_manifest)

MAX_REDIRECTS = 5
THREADED_WRITE_MIN = 8 << 20  # bodies larger than this (or of unknown size) hash and write in a helper thread
WAIT_INTERVAL = 1.0  # how often the waiting thread gives the progress display a heartbeat
#: A download thread that saved a file in less than QUICK_FILE seconds ends (while more than FEW_WORKERS
#: remain): when files arrive that fast (a near host, small files) the CPU is what limits, and many threads
#: only add the cost of handing the interpreter between them (about 0.6 ms per file with 16 threads and no
#: latency, against 0.4 ms with 4). Far hosts keep every thread busy waiting, where more threads help.
QUICK_FILE = 0.005
FEW_WORKERS = 4
#: Bodies up to this size get their part's sidecar only when they stop short (a process killed meanwhile
#: leaves a part without one, which is started over: at most this many bytes fetched again).
SIDECAR_EAGER_MIN = 1 << 20
RECORD_INTERVAL = 0.25  # the download record is written at most this often during a batch, and at its end
EXPIRED_STATUSES = frozenset({403, 404, 410})
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")


class _Fail(Exception):
    """A permanent failure for one artifact."""

    def __init__(self, message: str, *, drop_part: bool = False):
        super().__init__(message)
        self.message = message
        self.drop_part = drop_part


class _Retry(Exception):
    """A failure the policy may retry: a transport failure (``status`` None) or a retryable HTTP status."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.status = status


class _Skip:
    """``--on-exists skip`` matched (or, with ``present``, the artifact is already saved there): keep the
    existing file at ``path``."""

    def __init__(self, path: Path, present: bool = False):
        self.path = path
        self.present = present


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


class _Job:
    """What is known so far about one artifact's file: its claim (None until the name is known)."""

    def __init__(self, claim: PartClaim | None, ref: ArtifactRef):
        self.claim = claim
        self.ref = ref
        self.ident: dict[str, Any] | None = None  # the sidecar of the part being resumed
        self.sidecar_due = False  # a small body's sidecar, written only when the body stops short

    @property
    def final(self) -> Path | None:
        return self.claim.final if self.claim is not None else None

    @property
    def part(self) -> Path | None:
        return self.claim.part if self.claim is not None else None

    def drop_part(self) -> None:
        """Empty the part and remove its sidecar (the part stays held: the name is still this job's)."""
        c = self.claim
        if c is None:
            return
        if c.fresh:
            c.drop_sidecar()  # nothing was written through this claim: only a sidecar from before may be there
        else:
            c.reset()

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
        self.policy = policy_of(opts)
        self.date = date
        self.lock = threading.Lock()
        self.refresh_lock = threading.Lock()
        self.cancel = threading.Event()
        self.active: set[Any] = set()  # responses being read, so an interrupt can unblock their reads
        self.taken = naming.TakenNames()
        self.record: dict[str, dict[str, Any]] | None = None  # the output folder's download record
        self.unrecorded: list[tuple[SavedFile, dict[str, Any]]] = []  # saved, not yet in the record
        self.recorded_at = time.monotonic()
        self.checked: dict[str, str | None] = {}  # URL -> why it may not be fetched (None: it may)
        self.direct: Any = None  # the lean pool under the client, when requests may go to it directly
        self.base_headers: list[tuple[str, str]] = []
        self.timeouts: tuple[float | None, float | None] = (None, None)

    def use_client(self, client: Any) -> None:
        """Fetch through ``client``; straight through its lean pool when :func:`~sogni_cli.media.downloads.direct_pool`
        finds one, with the client's own headers and timeouts."""
        self.client = client
        self.direct = _dl.direct_pool(client)
        if self.direct is not None:
            self.base_headers = [(k, v) for k, v in client.headers.items() if k.lower() != "accept-encoding"]
            t = client.timeout
            self.timeouts = (t.connect, t.read)

    # -- naming -----------------------------------------------------------------------------------
    def claim(self, path: Path, ref: ArtifactRef | None = None) -> PartClaim | _Skip:
        """The name for an artifact under ``--on-exists``, held (its part locked) against other processes
        saving into the same folder; a present ``_Skip`` when the download record says this artifact is
        already saved under the name (every mode but ``overwrite``)."""
        with self.lock:
            exists = None  # not looked at yet
            if ref is not None and self.opts.on_exists != "overwrite" and path not in self.taken:
                exists = os.path.lexists(path)
                if exists:
                    if self.record is None:
                        self.record = _dl.read_record(Path(self.opts.output_dir))
                    done = _dl.saved_as(path, ref, self.record, suffixed=self.opts.on_exists == "suffix")
                    if done is not None and done not in self.taken:
                        self.taken.add(done)
                        return _Skip(done, present=True)
            got = naming.resolve_collision(path, self.opts.on_exists, self.taken, exists=exists)
            if got is None:
                return _Skip(path)
            return self._hold(path, got)

    def _hold(self, path: Path, got: Path) -> PartClaim | _Skip:
        """Hold ``got`` (chosen for the template's name ``path``) against other processes, or the next free
        ``-N`` name, or what ``skip``/``error`` say for the template's own name. ``self.lock`` is held."""
        mode = self.opts.on_exists
        c = hold_name(path, got, mode, lambda: naming.resolve_collision(path, "suffix", self.taken))
        if isinstance(c, PartClaim):
            return c
        why = {"busy": "is being saved by another process", "exists": "exists"}.get(c, "has an unusable part file")
        if mode == "skip":
            self.progress.note(f"{got.name} {why}; skipped")
            return _Skip(got)
        raise UsageError(f"{got} {why}", "Use --on-exists suffix|overwrite|skip, or another --name.")

    def place(self, job: "_Job") -> Path | _Skip:
        """Put a finished part into place (see :func:`~sogni_cli.core.filewrite.put_in_place`)."""
        c = job.claim
        assert c is not None

        def next_claim() -> PartClaim:
            with self.lock:
                got = self._hold(c.base, naming.resolve_collision(c.base, "suffix", self.taken))
            assert isinstance(got, PartClaim)
            return got

        where = put_in_place(c, self.opts.on_exists, next_claim)
        if where is None and self.opts.on_exists == "skip":
            self.progress.note(f"{c.final.name} was saved by another process meanwhile; kept it, skipped this one")
            return _Skip(c.final)
        if where is None:
            job.drop_part()
            raise _Fail(f"{c.final} was saved by another process meanwhile (--on-exists error)")
        if where != c.final:
            self.progress.note(f"{c.final.name} was saved by another process meanwhile; saved as {where.name}")
        return where

    def skipped(self, ref: ArtifactRef, skip: _Skip) -> SavedFile:
        path = skip.path
        h = _new_hash(self.opts)
        if not path.is_file():
            n = 0
        elif isinstance(h, _NoHash):
            n = path.stat().st_size
        else:
            n = _hash_file(path, h)
        ctype = ref.content_type
        if skip.present and self.record is not None:
            ctype = ctype or self.record.get(path.name, {}).get("content_type")
        return SavedFile(ref, path, n, h.hexdigest(), ctype, skipped=True, present=skip.present)

    def resume_point(self, job: "_Job", ref: ArtifactRef, url: str) -> tuple[int, str | None]:
        """(offset, If-Range value) for the next request: the part's size when its sidecar names this
        artifact; otherwise the part and its sidecar are dropped and the answer is (0, None)."""
        job.ident = None
        part = job.part
        if part is None or (job.claim is not None and job.claim.fresh):
            return 0, None  # no part yet, or one this run made and has not written to
        size = _size(part)
        if not size:
            return 0, None
        ident = _dl.read_sidecar(part)
        total = ident.get("total") if ident else None
        if ident is None or not _dl.same_artifact(ident, ref, url) or (isinstance(total, int) and size > total):
            why = "from an unknown download" if ident is None else "from another download"
            self.progress.note(f"{job.label}: the partial file is {why}; starting from zero")
            job.drop_part()
            return 0, None
        job.ident = ident
        return size, _dl.if_range_value(ident)

    # -- HTTP -------------------------------------------------------------------------------------
    def url_problem(self, url: str) -> str | None:
        """:func:`~sogni_cli.api.urls.media_url_problem`, once per origin: what it looks at (scheme, host,
        port, credentials) is all before the path. A malformed path is refused when the request is built."""
        head = url.split("?", 1)[0].split("#", 1)[0].split("/", 3)
        origin = "/".join(head[:3]) if len(head) >= 3 and head[1] == "" else url
        try:
            return self.checked[origin]
        except KeyError:
            problem = self.checked[origin] = media_url_problem(url)
            return problem

    def open(self, url: str, offset: int, if_range: str | None = None):
        """The answer to a GET of ``url`` (from ``offset``), redirects followed hop by hop, each target checked
        like the first URL. Through the lean connection pool when the download client has one and the URL
        can be sent as it is (:attr:`direct`), else through httpx; either way the same answer interface."""
        import httpx

        extra = {"Accept-Encoding": "identity"}
        if offset:
            extra["Range"] = f"bytes={offset}-"
            if if_range:
                extra["If-Range"] = if_range
        direct = self.direct
        for hop in range(MAX_REDIRECTS + 1):
            problem = self.url_problem(url)
            if problem:
                where = "redirect target" if hop else "URL"
                raise _Fail(f"refused {where} {_short(url)}: {problem}")
            if self.cancel.is_set():
                raise _Cancelled()
            plain = http1.plain_url(url) if direct is not None else None
            try:
                if plain is not None:
                    assert direct is not None
                    response = self._direct(direct, plain, extra)
                else:
                    request = self.client.build_request("GET", url, headers=extra)
                    response = self.client.send(request, stream=True, follow_redirects=False)
            except http1.transport_errors() as exc:
                raise _Retry(http1.describe_error(exc)) from None
            except (httpx.InvalidURL, ValueError):
                raise _Fail(f"refused URL {_short(url)}: malformed URL") from None
            if response.status_code in _REDIRECTS and "location" in response.headers:
                location = response.headers.get("location", "")
                response.close()
                if hop == MAX_REDIRECTS:
                    raise _Fail(f"too many redirects (more than {MAX_REDIRECTS})")
                try:
                    url = str(httpx.URL(url).join(location))
                except (httpx.InvalidURL, ValueError):
                    raise _Fail(f"refused redirect target {_short(location)}: malformed URL") from None
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _direct(self, pool: Any, plain: tuple, extra: dict[str, str]) -> Any:
        """One GET through the lean pool, with the headers httpx would send (see :meth:`use_client`)."""
        scheme, host, port, target, host_header = plain
        headers = [("Host", host_header), *self.base_headers, *extra.items()]
        answer = pool.get(scheme, host, port, target, headers, self.timeouts[0], self.timeouts[1])
        encoding = answer.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return answer
        return http1.as_httpx_response(answer)  # httpx undoes the content coding

    def fresh_url(self, ref: ArtifactRef) -> str | None:
        if self.refresh is None:
            return None
        with self.refresh_lock:
            try:
                return self.refresh(ref)
            except SogniError as exc:
                raise _Fail(f"could not get a fresh link: {exc.message}") from None

    # -- one artifact -----------------------------------------------------------------------------
    def run_one(self, key: int, ref: ArtifactRef, claimed: PartClaim | _Skip | None) -> SavedFile:
        if isinstance(claimed, _Skip):
            return self.skipped(ref, claimed)
        if claimed is not None:
            claimed.used = True
        job = _Job(claimed, ref)
        ok = False
        try:
            saved = self._run_one(key, ref, job)
            ok = True
            return saved
        finally:
            if job.claim is not None:  # a failed download keeps its bytes for a resume; the name goes free
                job.claim.release(keep=not ok)

    def _run_one(self, key: int, ref: ArtifactRef, job: "_Job") -> SavedFile:
        opts = self.opts
        url = ref.url
        problem = self.url_problem(url)
        if problem:
            raise _Fail(f"refused URL {_short(url)}: {problem}")
        refreshed = False
        policy = self.policy
        retries = max(0, int(policy.max_retries))
        restarts_left = 1
        attempt = 0
        while True:
            if self.cancel.is_set():
                raise _Cancelled()
            offset, if_range = self.resume_point(job, ref, url)
            try:
                response = self.open(url, offset, if_range)
                try:
                    outcome = self.receive(key, ref, response, url, job, offset)
                finally:
                    response.close()
            except _Retry as exc:
                if self.cancel.is_set():
                    raise _Cancelled() from None
                if not policy.may_resend(Safety.READ, attempt, status=exc.status, retry_after=exc.retry_after):
                    tries = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if attempt else ""
                    raise _Fail(f"{exc.message}{tries}") from None
                delay = policy.delay(attempt, exc.retry_after)
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
                job.drop_part()
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
                job.drop_part()
                raise _Fail(f"downloaded file is {why}")
        if self.cancel.is_set():
            raise _Cancelled()
        placed = self.place(job)
        if isinstance(placed, _Skip):
            return self.skipped(ref, placed)
        saved = SavedFile(ref, placed, nbytes, digest, content_type, url=url)
        self.remember(saved, job)
        return saved

    def remember(self, saved: SavedFile, job: "_Job") -> None:
        """Queue a saved file for the output folder's download record; write it when it is due."""
        ident = job.ident or _dl.identity(saved.ref, saved.url or saved.ref.url)
        with self.lock:
            self.unrecorded.append((saved, ident))
            due = time.monotonic() - self.recorded_at >= RECORD_INTERVAL
        if due:
            self.flush_record()

    def flush_record(self) -> None:
        """Write the queued files to the download record (a failure there is only a warning)."""
        with self.lock:
            todo, self.unrecorded = self.unrecorded, []
            self.recorded_at = time.monotonic()
        if not todo:
            return
        try:
            _dl.record_saved(Path(self.opts.output_dir), todo, root=self.opts.root)
        except (OSError, UsageError) as exc:
            self.progress.note(f"warning: could not update the download record: {getattr(exc, 'message', exc)}")

    def receive(self, key: int, ref: ArtifactRef, response: Any, url: str, job: "_Job", offset: int) -> tuple:
        opts = self.opts
        final = job.final
        status = response.status_code
        if status in EXPIRED_STATUSES:
            return ("refresh", status)
        if status in RETRY_STATUSES:
            raise _Retry(f"HTTP {status} from the media host", parse_retry_after(response.headers), status)
        if status == 416 and offset:
            m = _UNSATISFIED_RANGE.match(response.headers.get("content-range", "").strip())
            if m and int(m.group(1)) == offset and final is not None:
                part = job.part  # the part is already complete
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
            got = self.claim(_name_for(ref, ext, opts, self.date), ref)
            if isinstance(got, _Skip):
                return ("skip", got)
            got.used = True
            job.claim = got
            final = got.final
            if self.resume_point(job, ref, url)[0]:  # a part of this very artifact: ask again with Range
                return ("named",)
        part = job.part
        assert part is not None
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
            ident = job.ident or {}
            etag = response.headers.get("etag")
            if ((ident.get("etag") and etag and etag != ident["etag"])
                    or (isinstance(ident.get("total"), int) and ident["total"] != total)):
                return ("restart", "the file changed on the server since the partial download")
            expected: int | None = total
        else:
            offset = 0  # 200: the whole file again
            length = _content_length(response)
            expected = None if decode else length
        if expected is not None and expected > opts.max_size:
            job.drop_part()
            raise _Fail(f"refused: {expected} bytes is over the size limit ({opts.max_size} bytes)")
        if status == 200:  # a fresh body: the old part goes first, then its new identity, then the bytes
            job.drop_part()
            job.ident = _dl.identity(ref, url, response.headers, expected)
            if expected is None or expected > SIDECAR_EAGER_MIN:
                job.claim.no_sidecar = False
                _dl.write_sidecar(part, job.ident)
            else:  # a small body: its sidecar is written only if it does not arrive whole
                job.sidecar_due = True
        nbytes, digest = self.stream(key, response, job, offset, expected, decode, length)
        return ("done", nbytes, digest, content_type)

    def stream(self, key: int, response: Any, job: "_Job", offset: int, expected: int | None,
               decode: bool, raw_length: int | None) -> tuple[int, str]:
        part, label = job.part, job.label
        assert part is not None
        opts = self.opts
        progress = self.progress
        cancel = self.cancel
        h = _new_hash(opts)
        if offset and not isinstance(h, _NoHash):
            _hash_file(part, h, cancel)
        claim = job.claim
        assert claim is not None
        fd = claim.fd  # the part is written through the descriptor that holds it (never reopened by name)
        if offset:
            os.lseek(fd, 0, os.SEEK_END)  # the part is held by this process: writing at its end appends
        elif not claim.fresh:  # from byte 0 of an empty part (a fresh part is one already); the sidecar stays
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        claim.fresh = False
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
            sock = None if decode or expected is None else _plain_socket(response, expected - offset)
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
                    if sock is not None:
                        break  # what the HTTP layer had buffered is written; the rest comes straight off the socket
                if sock is not None and expected is not None and offset + received < expected:
                    writer.close()  # in order: the buffered start is on disk before the rest
                    received += _from_socket(sock, fd, expected - offset - received, h, self.policy.timeout,
                                             lambda n: progress.advance(key, n), cancel)
            except (OSError, _Closed) as exc:
                if sock is None or isinstance(exc, (FileNotFoundError, PermissionError)) or (
                        isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS):
                    raise
                writer.close()
                if cancel.is_set():
                    raise _Cancelled() from None
                raise _Retry("timed out" if isinstance(exc, TimeoutError) else
                             f"connection broken ({exc})") from None
            except http1.transport_errors() as exc:
                writer.close()  # what arrived is good: keep it for the resume
                if cancel.is_set():
                    raise _Cancelled() from None
                raise _Retry(http1.describe_error(exc)) from None
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
                job.drop_part()
            elif job.sidecar_due and job.ident is not None:  # what arrived can be resumed later
                job.sidecar_due = False
                try:
                    claim.no_sidecar = False
                    _dl.write_sidecar(part, job.ident)
                except OSError:
                    pass
            raise
        finally:
            with self.lock:
                self.active.discard(response)
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
                    began = time.monotonic()
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
                    if time.monotonic() - began < QUICK_FILE:
                        with self.lock:  # files come faster than threads help: fewer threads, less CPU each
                            if state["live"] > FEW_WORKERS:
                                return
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
        finally:
            self.flush_record()  # what was saved is known next time, even after Ctrl-C
        if fatal:
            raise fatal[0]
        return results


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


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
