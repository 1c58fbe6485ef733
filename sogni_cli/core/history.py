"""The local log: every chat, media job and recipe run, in ``logs.db`` (SQLite) in the config folder.

Commands fill in an :class:`Entry` while they run (fed by the same typed events their renderers get) and the
exit-code funnel writes it once the exit code is known (:func:`flush`). Writing never fails a command: a
log that cannot be written (corrupt, from a newer schema, a full disk) is one warning on stderr.

Writing appends the entry to a journal next to the database (one JSON line, under a shared file lock), which
needs neither SQLite nor a wait for other writers; whoever reads the log next (``sogni logs``, ``chat -c``)
moves the journal into the database first, in one transaction (see :mod:`.logstore`).

What is stored passes :func:`scrub` first: registered secrets become ``***`` (the one redactor) and
``data:`` URIs become their media type, sha256 and size.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

SCHEMA_VERSION = 1  # PRAGMA user_version of the database this version writes (migrations: logstore)

_STORE_NAMES = ("Filters", "Store", "fts_query")


class LogUnavailable(Exception):
    """The log cannot be opened or written (the message says why)."""


def __getattr__(name: str) -> Any:
    """The store's names, imported on first use (a command that only fills in an entry never needs them)."""
    if name in _STORE_NAMES:
        from . import logstore

        return getattr(logstore, name)
    raise AttributeError(name)


# ----------------------------------------------------------------------------------------- where, whether


def db_path(config_dir: Path | str | None = None, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("SOGNI_LOGS_DB"):
        return Path(env["SOGNI_LOGS_DB"]).expanduser()
    if config_dir is None:
        from .config import config_dir as _config_dir

        config_dir = _config_dir(env)
    return Path(config_dir) / "logs.db"


def _off(value: Any) -> bool:
    if value is False:
        return True
    return isinstance(value, str) and value.strip().lower() in ("off", "false", "no", "0")


def enabled(settings: Any = None, no_log: bool = False, env: Mapping[str, str] | None = None) -> bool:
    """Logging is on unless ``--no-log``, ``SOGNI_NO_LOG=1`` or ``logs: off`` in the profile."""
    env = os.environ if env is None else env
    if no_log or env.get("SOGNI_NO_LOG", "").strip().lower() not in ("", "0", "false", "no", "off"):
        return False
    if settings is not None and _off(settings.default("logs")):
        return False
    return True


# ----------------------------------------------------------------------------------------- scrubbing


def _data_uri_digest(value: str) -> str:
    import hashlib

    comma = value.find(",")
    if comma < 0:
        return value
    header, payload = value[5:comma], value[comma + 1:]
    media_type = header.split(";")[0].strip() or "application/octet-stream"
    if ";base64" in header.lower():
        import base64
        import binascii

        try:
            raw = base64.b64decode("".join(payload.split()), validate=False)
        except (binascii.Error, ValueError):
            raw = payload.encode("utf-8", "replace")
    else:
        from urllib.parse import unquote_to_bytes

        raw = unquote_to_bytes(payload)
    return f"data:{media_type};sha256={hashlib.sha256(raw).hexdigest()};bytes={len(raw)}"


def scrub(obj: Any) -> Any:
    """A copy of JSON-like data safe to keep: secrets redacted, ``data:`` URIs replaced by hash and size."""
    from .secrets import redact

    if isinstance(obj, str):
        if obj.startswith("data:") and "," in obj[:300]:
            return _data_uri_digest(obj)
        return redact(obj)
    if isinstance(obj, dict):
        return {str(k): scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    return scrub(str(obj))


def _bare_url(url: str | None) -> str | None:
    """Media URLs without their query (presigned links carry signatures and expire anyway)."""
    if not url:
        return url
    if url.startswith("data:"):
        return _data_uri_digest(url)
    return url.split("?", 1)[0].split("#", 1)[0]


# ----------------------------------------------------------------------------------------- the entry


def _now_iso() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_cid() -> str:
    """A conversation id: sortable by time, short enough to type a prefix of."""
    # os.urandom is what secrets.token_hex reads; importing secrets (hmac, hashlib, random) costs a chat ~5 ms
    return f"{int(time.time() * 1000):x}{os.urandom(3).hex()}"


@dataclass
class Entry:
    """One logged thing, filled in while it runs; :meth:`event` takes the command's typed events."""

    kind: str  # chat | media | recipe
    command: str | None = None
    cid: str | None = None
    model: str | None = None
    tool: str | None = None
    workflow_id: str | None = None
    prompt: str | None = None
    reply: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    cost: Any = None
    data: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    ts: str = field(default_factory=_now_iso)
    uid: str = field(default_factory=lambda: os.urandom(12).hex())  # moving a journal twice adds it once
    started: float = field(default_factory=time.monotonic)
    keep_reasoning: bool = False
    _parts: list[str] = field(default_factory=list, repr=False)
    _thinking: list[str] = field(default_factory=list, repr=False)

    def event(self, ev: Any) -> None:
        """Take what matters from one typed event (delta, reasoning, usage, artifact, workflow update)."""
        kind = getattr(ev, "kind", None)
        if kind == "delta":
            self._parts.append(ev.text or "")
        elif kind == "reasoning":
            if self.keep_reasoning:
                self._thinking.append(ev.text or "")
        elif kind == "usage":
            self.data["usage"] = ev.usage
        elif kind == "artifact":
            if ev.workflow_id and not self.workflow_id:
                self.workflow_id = ev.workflow_id
            if ev.path:
                self.add_artifact(path=ev.path, url=ev.url, bytes=ev.bytes, sha256=ev.sha256,
                                  content_type=ev.content_type, workflow_id=ev.workflow_id)
        elif kind == "workflow":
            if ev.workflow_id and not self.workflow_id:
                self.workflow_id = ev.workflow_id

    def tee(self, handler: Any) -> Any:
        """``handler`` that also feeds this entry."""

        def both(ev: Any) -> None:
            self.event(ev)
            handler(ev)

        return both

    def add_artifact(self, **art: Any) -> None:
        path = art.get("path")
        if path is not None:
            try:
                art["path"] = str(Path(path).resolve())
            except OSError:
                art["path"] = str(path)
            if any(a.get("path") == art["path"] for a in self.artifacts):
                return
        self.artifacts.append(art)

    def streamed_text(self) -> str:
        return "".join(self._parts)

    def row(self) -> dict[str, Any]:
        """The scrubbed column values (and artifacts) as they are written."""
        data = dict(self.data)
        if self._thinking and "reasoning" not in data:
            data["reasoning"] = "".join(self._thinking)
        reply = self.reply if self.reply is not None else (self.streamed_text() or None)
        return {
            "uid": self.uid, "ts": self.ts, "kind": self.kind, "command": self.command, "cid": self.cid, "model": self.model,
            "tool": self.tool, "workflow_id": self.workflow_id, "prompt": scrub(self.prompt),
            "reply": scrub(reply), "exit_code": self.exit_code,
            "duration": round(self.duration, 3) if self.duration is not None else None,
            "cost": json.dumps(scrub(self.cost), ensure_ascii=False) if self.cost is not None else None,
            "data": json.dumps(scrub(data), ensure_ascii=False, default=str),
            "artifacts": [
                {"path": a.get("path"), "url": _bare_url(a.get("url")), "bytes": a.get("bytes"),
                 "sha256": a.get("sha256"), "content_type": a.get("content_type"),
                 "workflow_id": a.get("workflow_id")}
                for a in self.artifacts
            ],
        }


# ----------------------------------------------------------------------------------------- pending entries


_lock = threading.Lock()
_pending: list[tuple[Entry, Path]] = []

#: A journal larger than this is moved into the database by the command that grew it.
JOURNAL_FOLD_BYTES = 512 * 1024
_HEADER = b"SQLite format 3\x00"


def journal_path(db: Path) -> Path:
    """Where commands append their entries (JSON lines) until the next reader moves them into ``db``."""
    return db.with_name(db.name + "-journal.jsonl")


def begin(settings: Any, kind: str, *, command: str | None = None, no_log: bool = False, **fields: Any) -> Entry:
    """A new entry for this command; written by :func:`flush` when logging is on (else only filled in)."""
    entry = Entry(kind=kind, command=command, **fields)
    track(entry, settings, no_log)
    return entry


def track(entry: Entry, settings: Any, no_log: bool = False) -> None:
    """Have :func:`flush` write ``entry`` (unless logging is off or this is a dry run)."""
    if not enabled(settings, no_log) or getattr(settings, "dry_run", False):
        return
    entry.started = time.monotonic()
    with _lock:
        _pending.append((entry, db_path(getattr(settings, "config_dir", None))))


def is_logged(entry: Entry) -> bool:
    with _lock:
        return any(e is entry for e, _ in _pending)


def flush(exit_code: int) -> None:
    """Write the pending entries of this process with ``exit_code`` where they have none. Never raises."""
    with _lock:
        items = list(_pending)
        _pending.clear()
    by_path: dict[Path, list[Entry]] = {}
    for entry, path in items:
        if entry.exit_code is None:
            entry.exit_code = int(exit_code)
        if entry.duration is None:
            entry.duration = time.monotonic() - entry.started
        by_path.setdefault(path, []).append(entry)
    for path, entries in by_path.items():
        try:
            write(path, entries)
        except Exception as exc:  # noqa: BLE001 - the log never fails a command
            warn_unlogged(path, exc)


def _check_header(path: Path) -> None:
    """Refuse (LogUnavailable) a database that is not SQLite or comes from a newer schema, from its header
    alone: the user version is the big-endian integer at offset 60."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LogUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    if not head:
        return  # an empty file becomes a database when it is first opened
    if len(head) < 100 or not head.startswith(_HEADER):
        raise LogUnavailable(f"{path}: file is not a database")
    version = int.from_bytes(head[60:64], "big")
    if version > SCHEMA_VERSION:
        raise LogUnavailable(f"{path} was written by a newer sogni (schema {version}, this one knows "
                             f"{SCHEMA_VERSION}); it is read-only here")


def write(path: Path, entries: list[Entry]) -> None:
    """Append ``entries`` to the log's journal (one JSON line each, under a shared lock); readers move the
    journal into the database (:meth:`~sogni_cli.core.logstore.Store.fold`). Appending needs no SQLite, so
    it costs a fraction of a millisecond and parallel writers never wait for each other. Where there are no
    POSIX file locks, the entries go straight into the database instead. Raises LogUnavailable."""
    _check_header(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is None:  # pragma: no cover - Windows
        from .logstore import Store

        store = Store.open(path)
        try:
            store.add(entries)
        finally:
            store.close()
        return
    data = "".join(json.dumps(e.row(), ensure_ascii=False, separators=(",", ":")) + "\n" for e in entries)
    journal = journal_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o600)
    except OSError as exc:
        raise LogUnavailable(f"cannot write {journal}: {exc.strerror or exc}") from None
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LogUnavailable(f"{journal} is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_SH)  # a reader moving the journal holds it exclusively
        raw = data.encode("utf-8")
        while raw:
            raw = raw[os.write(fd, raw):]
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > JOURNAL_FOLD_BYTES:
        from .logstore import Store

        store = Store.open(path)  # folds the journal in
        store.close()


def warn_unlogged(path: Path, exc: BaseException) -> None:
    from .term import warn

    reason = str(exc) if isinstance(exc, LogUnavailable) else f"{exc.__class__.__name__}: {exc}"
    try:
        warn(f"not logged ({reason}); the command itself is unaffected. Log: {path}")
    except (OSError, ValueError):  # pragma: no cover - stderr gone
        pass


def reset() -> None:
    """Forget pending entries (tests run many commands in one process)."""
    with _lock:
        _pending.clear()
