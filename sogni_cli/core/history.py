"""The local log: every chat, media job and recipe run, in ``logs.db`` (SQLite) in the config folder.

Commands fill in an :class:`Entry` while they run (fed by the same typed events their renderers get) and the
exit-code funnel writes it once the exit code is known (:func:`flush`). Writing never fails a command: a
log that cannot be written (corrupt, locked, full disk, a newer schema) is one warning on stderr.

What is stored passes :func:`scrub` first: registered secrets become ``***`` (the one redactor) and
``data:`` URIs become their media type, sha256 and size. The database runs in WAL mode with a busy
timeout, every write is one ``BEGIN IMMEDIATE`` transaction, so parallel processes and threads queue
instead of losing rows. The schema is versioned with ``PRAGMA user_version``; a database written by a
newer ``sogni`` is opened read-only and never migrated down.

``sqlite3`` is imported only when something is logged or read: start-up of other commands stays as it was.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

_STORE_NAMES = ("SCHEMA_VERSION", "Filters", "LogUnavailable", "Store", "fts_query")


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
    import secrets as _secrets

    return f"{int(time.time() * 1000):x}{_secrets.token_hex(3)}"


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
            "ts": self.ts, "kind": self.kind, "command": self.command, "cid": self.cid, "model": self.model,
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
_opening: dict[Path, Any] = {}  # path -> thread opening it early, and its result


def _open_early(path: Path) -> None:
    """Import sqlite3 and open the store in a background thread while the command waits on the network."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            from .logstore import Store

            box["store"] = Store.open(path)
        except BaseException as exc:  # noqa: BLE001 - reported when the entry is written
            box["error"] = exc

    t = threading.Thread(target=work, name="sogni-log-open", daemon=True)
    _opening[path] = (t, box)
    t.start()


def begin(settings: Any, kind: str, *, command: str | None = None, no_log: bool = False, **fields: Any) -> Entry:
    """A new entry for this command; written by :func:`flush` when logging is on (else only filled in)."""
    entry = Entry(kind=kind, command=command, **fields)
    track(entry, settings, no_log)
    return entry


def warm(settings: Any, no_log: bool = False) -> Path | None:
    """Start opening the log in the background (when this command will log): by the time the entry is
    written, ``sqlite3`` is imported and the database open, while the command was waiting on the network."""
    if not enabled(settings, no_log) or getattr(settings, "dry_run", False):
        return None
    path = db_path(getattr(settings, "config_dir", None))
    with _lock:
        if path not in _opening:
            _open_early(path)
    return path


def track(entry: Entry, settings: Any, no_log: bool = False) -> None:
    """Have :func:`flush` write ``entry`` (unless logging is off or this is a dry run)."""
    path = warm(settings, no_log)
    if path is None:
        return
    entry.started = time.monotonic()
    with _lock:
        _pending.append((entry, path))


def is_logged(entry: Entry) -> bool:
    with _lock:
        return any(e is entry for e, _ in _pending)


def flush(exit_code: int, *, exiting: bool = False) -> None:
    """Write the pending entries of this process with ``exit_code`` where they have none. Never raises.

    ``exiting``: the process ends right after, so the connection is left to the exit instead of closed.
    Closing the last connection checkpoints the WAL (copies its pages into the database and syncs the file),
    which would add milliseconds to every command; an exit after COMMIT is as safe as SQLite's crash
    recovery, and writers fold the WAL in by themselves once it grows (automatic checkpoints).
    """
    with _lock:
        items = list(_pending)
        _pending.clear()
        opening = dict(_opening)
        _opening.clear()
    if not items:
        for t, box in opening.values():  # warmed up, then nothing to write (e.g. a usage error)
            t.join()
            if box.get("store") is not None and not exiting:
                box["store"].close()
        return
    by_path: dict[Path, list[Entry]] = {}
    for entry, path in items:
        if entry.exit_code is None:
            entry.exit_code = int(exit_code)
        if entry.duration is None:
            entry.duration = time.monotonic() - entry.started
        by_path.setdefault(path, []).append(entry)
    for path, entries in by_path.items():
        store = None
        try:
            t, box = opening.get(path, (None, {}))
            if t is not None:
                t.join()
                if "error" in box:
                    raise box["error"]
                store = box.get("store")
            if store is None:
                from .logstore import Store

                store = Store.open(path)
            store.add(entries)
        except Exception as exc:  # noqa: BLE001 - the log never fails a command
            warn_unlogged(path, exc)
        finally:
            if store is not None:
                if exiting:
                    _left_open.append(store)
                else:
                    store.close()


#: Connections left to the process exit. The list holds itself, so it is garbage that the exit's final
#: collections skip (the entry point freezes the collector before exiting) and module teardown never
#: reaches a reference count of zero: the connection is not closed (and the WAL not checkpointed) on the way out.
_left_open: list[Any] = []
_left_open.append(_left_open)


def write(path: Path, entries: list[Entry]) -> list[int]:
    """Write ``entries`` now (recipe runs); a warning instead of an error when it cannot be done."""
    store = None
    try:
        from .logstore import Store

        store = Store.open(path)
        return store.add(entries)
    except Exception as exc:  # noqa: BLE001
        warn_unlogged(path, exc)
        return []
    finally:
        if store is not None:
            store.close()


def warn_unlogged(path: Path, exc: BaseException) -> None:
    from .term import warn

    from .logstore import LogUnavailable

    reason = str(exc) if isinstance(exc, LogUnavailable) else f"{exc.__class__.__name__}: {exc}"
    try:
        warn(f"not logged ({reason}); the command itself is unaffected. Log: {path}")
    except (OSError, ValueError):  # pragma: no cover - stderr gone
        pass


def reset() -> None:
    """Forget pending entries (tests run many commands in one process)."""
    with _lock:
        _pending.clear()
        _opening.clear()
