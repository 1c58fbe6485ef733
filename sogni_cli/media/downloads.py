"""Artifact downloads shared by chat, media commands, workflows and recipes (contract §7).

Bounded concurrency over one shared ``httpx.Client`` that never carries credentials; each file streams
into ``NAME.part``, is checked (length, size limit, Pillow for images) and renamed into place atomically.
Failures are collected in the report, not raised; the caller turns them into exit 8. Names come from
:mod:`sogni_cli.media.naming`, never from the server.

Where a file came from is recorded, so that a resume never joins two different files and a finished
file is never fetched twice:

- **Part sidecar** ``NAME.part.json`` (next to the part, written atomically before the first byte of a
  fresh body): the artifact's identity — the URL without its query string (signed query strings change
  between reads of the same workflow), the workflow id and artifact index when known — and the answer's
  ``ETag``, ``Last-Modified`` and total length. A part is resumed only when its sidecar names the same
  artifact (same workflow id and index; without a workflow id, the same URL path); the ``Range`` request
  carries ``If-Range`` (the strong ETag, else the Last-Modified date), so a changed resource answers 200
  and the part is rewritten from zero. A part with a missing, unreadable or different sidecar is
  discarded (with its sidecar) and the download starts from zero. The sidecar goes when the file is
  renamed into place, and whenever the part is dropped.
- **Download record** ``.sogni-downloads.json`` in the output folder: for each file saved there, its
  identity (as above), size, modification time, sha256 and content type. When a final name is already
  taken by a regular file that the record says is the same artifact, with the size and modification time
  it had when it was saved, that file is listed as the output and nothing is downloaded (a *present*
  :class:`SavedFile`), in every ``--on-exists`` mode except ``overwrite``; with ``suffix`` the record is
  also searched for the same artifact under ``NAME-N.ext``. Any other file under the name follows
  ``--on-exists``. New entries are appended to its journal ``.sogni-downloads.jsonl`` (folded into the
  record now and then: see :mod:`sogni_cli.media.dlrecord`) under a lock on the output folder (so
  processes saving there at once keep each other's entries) and a process-wide lock, at most every
  :data:`~sogni_cli.media.transfer.RECORD_INTERVAL` seconds during a batch and when the batch ends (also on
  Ctrl-C); a file the record does not know (saved by hand, by another tool, edited since, or saved just
  before the process was killed) is never taken for the artifact: it follows ``--on-exists``.

None of these files holds credentials (media requests carry none) or a signed query string, and all stay in
the output folder.

This module holds what is fetched and where it goes (artifacts, URL rules, names, identities, the
manifest, the shared client); the per-file HTTP and disk work lives in :mod:`sogni_cli.media.transfer`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import stat as _stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..api.client import RetryPolicy
from ..api.retry import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_READ_TIMEOUT
from ..core.errors import SogniError, UsageError
from . import naming
from .dlrecord import (IDENTITY_VERSION, JOURNAL_NAME, RECORD_NAME, forget_cached_records,  # noqa: F401
                       read_json_limited, read_record, record_saved, write_record_file)

#: Files downloaded at once unless ``--concurrency`` says otherwise (measured: see bench/README.md).
DOWNLOAD_CONCURRENCY = 16

CREDENTIAL_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie"})


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
    position: int | None = None  # its place in its workflow's artifact list (to find a fresh link)


@dataclass
class DownloadOptions:
    output_dir: Path
    name_template: str | None = None
    on_exists: str = "suffix"
    max_size: int = 2 * 1024**3
    concurrency: int = DOWNLOAD_CONCURRENCY
    manifest: Path | None = None
    timeout: float = DEFAULT_READ_TIMEOUT  # used when no ``policy`` is given
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = DEFAULT_MAX_RETRIES
    policy: Any = None  # the run's RetryPolicy (--timeout, --max-retries); it wins over the three fields above
    verify_images: bool = True
    checksum: bool = True  # sha256 of each file; forced on with a manifest. Off: SavedFile.sha256 is None
    root: Path | None = None  # the folder nothing is written outside of (default: output_dir itself)


@dataclass
class SavedFile:
    ref: ArtifactRef
    path: Path
    bytes: int
    sha256: str | None  # None when checksums were not asked for
    content_type: str | None
    skipped: bool = False
    url: str | None = None  # the URL actually fetched (after a refresh), None when skipped
    present: bool = False  # skipped because this very artifact was already saved under this name

    def to_event(self):  # -> events.Artifact
        from ..core.events import Artifact

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
    name = naming.render_name(opts.name_template, _fields(ref, ext, date))
    # One name inside the output folder: rendered names have no separators, the folders on the way are
    # checked once per batch, and files are never opened or replaced through a link.
    if not name or name in (".", "..") or "\x00" in name or "/" in name or "\\" in name:
        return naming.safe_join(Path(opts.output_dir), name)  # refuses it
    return Path(opts.output_dir) / name


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
    """For ``--on-exists error``: UsageError (exit 2) when a name known in advance already exists (unless
    the download record says it is this very artifact, already saved)."""
    if opts.on_exists != "error":
        return
    refs = list(refs)
    record: dict[str, Any] | None = None
    for ref, path in zip(refs, plan_paths(refs, opts)):
        if path is not None and (path.exists() or path.is_symlink()):
            if record is None:
                record = read_record(Path(opts.output_dir))
            if saved_as(path, ref, record) is None:
                raise UsageError(f"{path} exists", "Use --on-exists suffix|overwrite|skip, or another --name.")


# ------------------------------------------------------------------------------------------------
# Identity: where a part came from, which saved file is which artifact
# ------------------------------------------------------------------------------------------------

_SIDECAR_MAX = 64 * 1024


def url_key(url: str | None) -> str:
    """``url`` without its query string and fragment ("" when it cannot be parsed)."""
    if not url:
        return ""
    from urllib.parse import urlsplit, urlunsplit

    try:
        u = urlsplit(url)
        return urlunsplit((u.scheme.lower(), u.netloc.lower(), u.path or "/", "", ""))
    except ValueError:
        return ""


def identity(ref: ArtifactRef, url: str, headers: Any = None, total: int | None = None) -> dict[str, Any]:
    """What identifies the artifact behind a part or a saved file (no query string, no credentials)."""
    etag = last_modified = None
    if headers is not None:
        etag = headers.get("etag") or None
        last_modified = headers.get("last-modified") or None
    return {"version": IDENTITY_VERSION, "url": url_key(url), "workflow_id": ref.workflow_id,
            "index": ref.index if ref.workflow_id else None, "etag": etag, "last_modified": last_modified,
            "total": total}


def same_artifact(ident: Any, ref: ArtifactRef, url: str | None = None) -> bool:
    """Whether ``ident`` (a sidecar or record entry) names the artifact ``ref``: the same workflow id and
    index when either has a workflow id, else the same URL without its query string."""
    if not isinstance(ident, dict) or ident.get("version") != IDENTITY_VERSION:
        return False
    wid = ident.get("workflow_id")
    if ref.workflow_id or wid:
        return bool(ref.workflow_id) and wid == ref.workflow_id and ident.get("index") == ref.index
    key = url_key(url or ref.url)
    return bool(key) and ident.get("url") == key


def if_range_value(ident: dict[str, Any] | None) -> str | None:
    """The ``If-Range`` validator for a resume: a strong ETag, else the Last-Modified date, else None."""
    if not ident:
        return None
    etag = ident.get("etag")
    if isinstance(etag, str) and etag and not etag.startswith("W/"):
        return etag
    lm = ident.get("last_modified")
    return lm if isinstance(lm, str) and lm else None


def sidecar_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def write_json_atomic(path: Path, doc: Any, *, root: Path | None = None, durable: bool = True) -> None:
    """Write ``doc`` as compact JSON with the one file writer (temporary name, flush, rename)."""
    from ..core.filewrite import write_atomic

    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    write_atomic(path, data, root=root, durable=durable)


def read_sidecar(part: Path) -> dict[str, Any] | None:
    doc = read_json_limited(sidecar_path(part), _SIDECAR_MAX)
    return doc if isinstance(doc, dict) else None


def write_sidecar(part: Path, ident: dict[str, Any]) -> None:
    write_json_atomic(sidecar_path(part), ident, durable=False)  # a lost sidecar only means starting over


def _intact(path: Path, entry: dict[str, Any]) -> bool:
    """Whether ``path`` is still the regular file the record entry describes (size and modification time)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (_stat.S_ISREG(st.st_mode) and st.st_size == entry.get("bytes")
            and st.st_mtime_ns == entry.get("mtime_ns"))


def saved_as(path: Path, ref: ArtifactRef, record: dict[str, dict[str, Any]],
             suffixed: bool = False) -> Path | None:
    """Where the artifact ``ref`` is already saved, per the download record: ``path`` itself, or with
    ``suffixed`` also ``STEM-N.ext`` next to it; None when it is not (or the file changed since)."""
    entry = record.get(path.name)
    if entry is not None and same_artifact(entry, ref) and _intact(path, entry):
        return path
    if not suffixed:
        return None
    name = path.name
    stem, ext = (name.rsplit(".", 1)[0], "." + name.rsplit(".", 1)[1]) if "." in name.lstrip(".") else (name, "")
    for other, entry in sorted(record.items()):
        if not (other.startswith(stem + "-") and other.endswith(ext)):
            continue
        middle = other[len(stem) + 1: len(other) - len(ext)] if ext else other[len(stem) + 1:]
        if middle.isdigit() and same_artifact(entry, ref):
            cand = path.with_name(other)
            if _intact(cand, entry):
                return cand
    return None


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
    from ..core.filewrite import open_append

    with os.fdopen(open_append(path), "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return len(lines)


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# The shared client
# ------------------------------------------------------------------------------------------------

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


def _ssl_context(load: bool = False) -> Any:
    """The process's one TLS context (:mod:`sogni_cli.core.tls`), shared with the API client and uploads. Its
    CA bundle is loaded once per process, on the first TLS connection (or now with ``load=True``), never for
    plain-HTTP downloads."""
    from ..core import tls

    return tls.loaded() if load else tls.context()


def ssl_ready() -> Any:
    """The process's TLS context with its CA bundle loaded (once per process, whoever asks first)."""
    from ..core import tls

    return tls.loaded()


def _make_client(opts: DownloadOptions):
    import httpx

    from .. import __version__
    from ..api.http1 import install, set_cookie_jar

    _larger_reads()

    n = max(1, int(opts.concurrency))
    client = httpx.Client(
        verify=_ssl_context(),
        follow_redirects=False,
        timeout=httpx.Timeout(policy_of(opts).timeout, connect=policy_of(opts).connect_timeout),
        limits=httpx.Limits(max_connections=n * 2, max_keepalive_connections=n),
        headers={"User-Agent": f"sogni-cli/{__version__}"},
    )
    set_cookie_jar(client, keep=False)  # media hosts get no cookies back
    proxied = any(t is not None for t in (getattr(client, "_mounts", None) or {}).values())
    if not install(client, ssl_ready, n) or proxied:
        ssl_ready()  # proxies (or httpcore itself) use the context as it is: load the CA bundle now
    return client


def direct_pool(client: Any) -> Any:
    """The lean pool under the download client (see :func:`sogni_cli.api.http1.install`) when the downloader
    may send its GETs to it directly, without httpx's request and response objects: the client has no proxy, no
    authentication and no event hooks, and its transport is httpx's own (nothing, such as a test double,
    stands in for how it handles requests). None otherwise: requests then go through the client."""
    import httpx

    from ..api.http1 import Http1Pool

    transport = getattr(client, "_transport", None)
    if type(transport) is not httpx.HTTPTransport or not isinstance(getattr(transport, "_pool", None), Http1Pool):
        return None
    handler = httpx.HTTPTransport.__dict__.get("handle_request")
    if (getattr(handler, "__qualname__", None) != "HTTPTransport.handle_request"
            or not str(getattr(handler, "__module__", "")).startswith("httpx.")):
        return None  # something else handles this transport's requests
    if any(t is not None for t in (getattr(client, "_mounts", None) or {}).values()):
        return None  # a proxy from the environment
    hooks = getattr(client, "event_hooks", None) or {}
    if getattr(client, "auth", None) is not None or any(hooks.get(k) for k in ("request", "response")):
        return None
    return transport._pool


def policy_of(opts: DownloadOptions) -> Any:
    """The retry settings a download follows: the run's policy, else one made of the options' own fields."""
    if opts.policy is not None:
        return opts.policy
    return RetryPolicy(max_retries=opts.retries, timeout=opts.timeout, connect_timeout=opts.connect_timeout)


def _check_client(client: Any) -> None:
    bad = sorted({k.lower() for k in client.headers.keys()} & CREDENTIAL_HEADERS)
    if bad or getattr(client, "auth", None) is not None:
        raise SogniError("internal error: the download client carries credentials "
                         f"({', '.join(bad) or 'auth'}); media hosts never receive them")


# ------------------------------------------------------------------------------------------------
# Downloading
# ------------------------------------------------------------------------------------------------

def download_all(refs: Iterable[ArtifactRef], opts: DownloadOptions, *, client: Any = None, progress: Any = None,
                 refresh: Callable[[ArtifactRef], str | None] | None = None,
                 sleep: Callable[[float], Any] | None = None) -> DownloadReport:
    """Download every artifact into ``opts.output_dir``; see the module docstring.

    Raises UsageError (before any request) for a bad template or ``--on-exists`` value, an output folder
    that cannot be made, or — with ``on_exists="error"`` — a name known in advance that exists.
    KeyboardInterrupt stops everything, keeps the ``.part`` files for a later resume, and is re-raised.
    ``refresh(ref)`` is called at most once per artifact, on a 403/404/410 from the media host, and may
    return a fresh URL. With ``opts.manifest`` set, one line per saved file is appended as each completes.
    """
    from ..core.progress import NullProgress
    from ..core.filewrite import PartClaim
    from .transfer import _Downloader, _Fail

    refs = list(refs)
    if opts.on_exists not in ("suffix", "overwrite", "skip", "error"):
        raise UsageError(f"Invalid --on-exists value {opts.on_exists!r}", "Use one of: suffix, overwrite, skip, error")
    if opts.max_size <= 0:
        raise UsageError("The download size limit must be positive")
    progress = progress or NullProgress()
    date = _today()
    planned = plan_paths(refs, opts, date=date)
    from ..core.filewrite import safe_folder

    safe_folder(Path(opts.root or opts.output_dir), Path(opts.output_dir))  # no folder below the root is a link
    dl = _Downloader(opts, None, progress, refresh, sleep if sleep is not None else policy_of(opts).pause, date)
    claims: list[Any] = []
    try:
        for p, r in zip(planned, refs):  # stable names, held against other processes until saved
            claims.append(dl.claim(p, r) if p is not None else None)
        if opts.manifest:
            from ..core.filewrite import open_append

            try:
                os.close(open_append(opts.manifest))
            except OSError as exc:
                raise UsageError(f"Cannot write the manifest {opts.manifest}: {exc.strerror or exc}") from None
        report = DownloadReport()
        if not refs:
            return report
        own = client is None
        if not own:
            _check_client(client)
        dl.use_client(_make_client(opts) if own else client)
        try:
            results = dl.run(refs, claims)
        finally:
            if own:
                dl.client.close()
    finally:
        for c in claims:  # names never handed to a job (an error, Ctrl-C): let them go
            if isinstance(c, PartClaim) and not c.used:
                c.release(keep=False)
    for ref, res in zip(refs, results):
        if isinstance(res, SavedFile):
            report.saved.append(res)
        elif isinstance(res, _Fail):
            report.failed.append((ref, res.message))
        else:  # pragma: no cover - only when cancelled, which re-raises above
            report.failed.append((ref, "not downloaded"))
    return report
