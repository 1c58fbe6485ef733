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

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

SCHEMA_VERSION = 1
DEFAULT_WAIT = 5.0  # seconds a write waits for another writer before giving up with a warning

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            kind TEXT NOT NULL,
            command TEXT,
            cid TEXT,
            model TEXT,
            tool TEXT,
            workflow_id TEXT,
            prompt TEXT,
            reply TEXT,
            exit_code INTEGER,
            duration REAL,
            cost TEXT,
            data TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX entries_ts ON entries(ts)",
        "CREATE INDEX entries_cid ON entries(cid, id)",
        "CREATE INDEX entries_workflow ON entries(workflow_id)",
        """CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
            path TEXT,
            url TEXT,
            bytes INTEGER,
            sha256 TEXT,
            content_type TEXT,
            workflow_id TEXT
        )""",
        "CREATE INDEX artifacts_entry ON artifacts(entry_id)",
        "@fts",  # the full-text index, when this SQLite has FTS5
    ],
}

_FTS = [
    "CREATE VIRTUAL TABLE entries_fts USING fts5(prompt, reply, content='entries', content_rowid='id')",
    """CREATE TRIGGER entries_ai AFTER INSERT ON entries BEGIN
        INSERT INTO entries_fts(rowid, prompt, reply) VALUES (new.id, new.prompt, new.reply); END""",
    """CREATE TRIGGER entries_ad AFTER DELETE ON entries BEGIN
        INSERT INTO entries_fts(entries_fts, rowid, prompt, reply) VALUES ('delete', old.id, old.prompt, old.reply);
        END""",
]


class LogUnavailable(Exception):
    """The log cannot be opened or written (the message says why)."""


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


def _wait(env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    try:
        return max(0.0, float(env.get("SOGNI_LOGS_WAIT", DEFAULT_WAIT)))
    except ValueError:
        return DEFAULT_WAIT


# ----------------------------------------------------------------------------------------- scrubbing


def _data_uri_digest(value: str) -> str:
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


# ----------------------------------------------------------------------------------------- the store


class Store:
    """One connection to ``logs.db``. ``Store.open`` migrates a new or older database up to date; a newer one
    is opened read-only (``read_only`` is then True and :meth:`add` refuses)."""

    def __init__(self, conn: Any, path: Path, version: int, read_only: bool):
        self.conn = conn
        self.path = path
        self.version = version
        self.read_only = read_only
        self._fts: bool | None = None

    @classmethod
    def open(cls, path: Path, *, create: bool = True, wait: float | None = None) -> "Store":
        import sqlite3

        wait = _wait() if wait is None else wait
        if not create and not path.exists():
            raise LogUnavailable(f"no log yet at {path}")
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=wait, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise LogUnavailable(f"cannot open {path}: {exc}") from None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=wait, isolation_level=None,
                                       check_same_thread=False)
                return cls(conn, path, version, True)
            if version < SCHEMA_VERSION:
                version = cls._migrate(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            conn.close()
            raise LogUnavailable(f"{path}: {exc}") from None
        return cls(conn, path, version, False)

    @staticmethod
    def _migrate(conn: Any) -> int:
        import sqlite3

        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in _MIGRATIONS[target]:
                    if stmt == "@fts":
                        try:
                            for fts in _FTS:
                                conn.execute(fts)
                        except sqlite3.OperationalError:  # no FTS5 in this build: searches use LIKE
                            pass
                    else:
                        conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={target}")
                version = target
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return version

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass

    @property
    def has_fts(self) -> bool:
        if self._fts is None:
            row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='entries_fts'").fetchone()
            self._fts = row is not None
        return self._fts

    # -- writing ---------------------------------------------------------------------------------
    def add(self, entries: Iterable[Entry | dict[str, Any]]) -> list[int]:
        """Write entries in one transaction; their ids."""
        if self.read_only:
            raise LogUnavailable(f"{self.path} was written by a newer sogni (schema {self.version}, this one knows "
                                 f"{SCHEMA_VERSION}); it is read-only here")
        rows = [e.row() if isinstance(e, Entry) else e for e in entries]
        ids: list[int] = []
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for r in rows:
                cur = c.execute(
                    "INSERT INTO entries(ts, kind, command, cid, model, tool, workflow_id, prompt, reply, exit_code,"
                    " duration, cost, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r["ts"], r["kind"], r.get("command"), r.get("cid"), r.get("model"), r.get("tool"),
                     r.get("workflow_id"), r.get("prompt"), r.get("reply"), r.get("exit_code"), r.get("duration"),
                     r.get("cost"), r.get("data") or "{}"))
                eid = int(cur.lastrowid)
                ids.append(eid)
                for a in r.get("artifacts") or []:
                    c.execute("INSERT INTO artifacts(entry_id, path, url, bytes, sha256, content_type, workflow_id)"
                              " VALUES (?,?,?,?,?,?,?)",
                              (eid, a.get("path"), a.get("url"), a.get("bytes"), a.get("sha256"),
                               a.get("content_type"), a.get("workflow_id")))
            c.execute("COMMIT")
        except BaseException:
            try:
                c.execute("ROLLBACK")
            except Exception:  # noqa: BLE001
                pass
            raise
        return ids

    def remove(self, ids: list[int]) -> int:
        if self.read_only:
            raise LogUnavailable(f"{self.path} was written by a newer sogni (schema {self.version}); it is "
                                 "read-only here")
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            n = 0
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                c.execute(f"DELETE FROM artifacts WHERE entry_id IN ({marks})", chunk)
                n += c.execute(f"DELETE FROM entries WHERE id IN ({marks})", chunk).rowcount
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return n

    # -- reading ---------------------------------------------------------------------------------
    def query(self, f: "Filters") -> list[dict[str, Any]]:
        """Entries matching ``f``, newest first (at most ``f.limit``)."""
        where, params = self._where(f)
        sql = "SELECT * FROM entries e" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY e.id DESC"
        if f.limit is not None:
            sql += " LIMIT ?"
            params.append(f.limit)
        return [self._entry(r) for r in self._rows(sql, params)]

    def ids(self, f: "Filters") -> list[int]:
        where, params = self._where(f)
        sql = "SELECT e.id FROM entries e" + (" WHERE " + " AND ".join(where) if where else "")
        return [r[0] for r in self.conn.execute(sql, params)]

    def get(self, eid: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM entries WHERE id = ?", [eid])
        return self._entry(rows[0], artifacts=True) if rows else None

    def artifacts(self, f: "Filters") -> list[dict[str, Any]]:
        where, params = self._where(f)
        sql = ("SELECT a.*, e.ts AS ts, e.command AS command FROM artifacts a JOIN entries e ON e.id = a.entry_id"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY a.id DESC")
        if f.limit is not None:
            sql += " LIMIT ?"
            params.append(f.limit)
        return [dict(r) for r in self._rows(sql, params)]

    def conversation(self, cid: str) -> list[dict[str, Any]]:
        """The chat turns of a conversation, oldest first."""
        rows = self._rows("SELECT * FROM entries WHERE cid = ? AND kind = 'chat' ORDER BY id", [cid])
        return [self._entry(r) for r in rows]

    def latest_cid(self) -> str | None:
        row = self.conn.execute("SELECT cid FROM entries WHERE kind = 'chat' AND cid IS NOT NULL "
                                "AND exit_code IN (0, 8) ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def find_cid(self, text: str) -> tuple[str | None, list[str]]:
        """(the conversation ``text`` names, exactly or by a unique prefix; close ids for a hint)."""
        if self.conn.execute("SELECT 1 FROM entries WHERE cid = ? LIMIT 1", [text]).fetchone():
            return text, []
        like = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = [r[0] for r in self.conn.execute(
            "SELECT DISTINCT cid FROM entries WHERE cid LIKE ? ESCAPE '\\' LIMIT 2", [like])]
        if len(found) == 1:
            return found[0], []
        import difflib

        recent = [r[0] for r in self.conn.execute(
            "SELECT cid FROM entries WHERE cid IS NOT NULL GROUP BY cid ORDER BY max(id) DESC LIMIT 500")]
        return None, found or difflib.get_close_matches(text, recent, n=3, cutoff=0.5)

    def _rows(self, sql: str, params: list[Any]) -> list[Any]:
        import sqlite3

        self.conn.row_factory = sqlite3.Row
        try:
            return self.conn.execute(sql, params).fetchall()
        finally:
            self.conn.row_factory = None

    def _entry(self, r: Any, artifacts: bool = False) -> dict[str, Any]:
        d = dict(r)
        try:
            d["data"] = json.loads(d.get("data") or "{}")
        except ValueError:
            d["data"] = {}
        if d.get("cost"):
            try:
                d["cost"] = json.loads(d["cost"])
            except ValueError:
                pass
        if artifacts:
            d["artifacts"] = [dict(a) for a in self._rows(
                "SELECT path, url, bytes, sha256, content_type, workflow_id FROM artifacts WHERE entry_id = ? "
                "ORDER BY id", [d["id"]])]
        return d

    def _where(self, f: "Filters") -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if f.kind:
            where.append("(e.kind = ? OR e.command = ?)")
            params += [f.kind, f.kind]
        if f.model:
            where.append("e.model = ?")
            params.append(f.model)
        if f.since:
            where.append("e.ts >= ?")
            params.append(f.since)
        if f.before:
            where.append("e.ts < ?")
            params.append(f.before)
        if f.cid:
            where.append("e.cid = ?")
            params.append(f.cid)
        if f.workflow:
            where.append("(e.workflow_id = ? OR e.id IN (SELECT entry_id FROM artifacts WHERE workflow_id = ?))")
            params += [f.workflow, f.workflow]
        if f.text:
            if self.has_fts:
                where.append("e.id IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH ?)")
                params.append(fts_query(f.text))
            else:
                like = "%" + f.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                where.append("(e.prompt LIKE ? ESCAPE '\\' OR e.reply LIKE ? ESCAPE '\\')")
                params += [like, like]
        return where, params


def fts_query(text: str) -> str:
    """Words of ``text`` as FTS5 terms (each quoted, so punctuation and operators are plain text)."""
    words = [w for w in text.split() if w]
    return " ".join('"' + w.replace('"', '""') + '"' for w in words) or '""'


@dataclass
class Filters:
    kind: str | None = None
    model: str | None = None
    since: str | None = None  # ISO time, inclusive
    before: str | None = None  # ISO time, exclusive (rm --older-than)
    cid: str | None = None
    workflow: str | None = None
    text: str | None = None
    limit: int | None = None

    def any(self) -> bool:
        return any(getattr(self, k) for k in ("kind", "model", "since", "before", "cid", "workflow", "text"))


# ----------------------------------------------------------------------------------------- pending entries


_lock = threading.Lock()
_pending: list[tuple[Entry, Path]] = []
_opening: dict[Path, Any] = {}  # path -> thread opening it early, and its result


def _open_early(path: Path) -> None:
    """Import sqlite3 and open the store in a background thread while the command waits on the network."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
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


def track(entry: Entry, settings: Any, no_log: bool = False) -> None:
    """Have :func:`flush` write ``entry`` (unless logging is off or this is a dry run); the store is opened
    in the background meanwhile."""
    if not enabled(settings, no_log) or getattr(settings, "dry_run", False):
        return
    entry.started = time.monotonic()
    path = db_path(getattr(settings, "config_dir", None))
    with _lock:
        _pending.append((entry, path))
        if path not in _opening:
            _open_early(path)


def is_logged(entry: Entry) -> bool:
    with _lock:
        return any(e is entry for e, _ in _pending)


def flush(exit_code: int) -> None:
    """Write the pending entries of this process with ``exit_code`` where they have none. Never raises."""
    with _lock:
        items = list(_pending)
        _pending.clear()
        opening = dict(_opening)
        _opening.clear()
    if not items:
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
            store = store or Store.open(path)
            store.add(entries)
        except Exception as exc:  # noqa: BLE001 - the log never fails a command
            warn_unlogged(path, exc)
        finally:
            if store is not None:
                store.close()


def write(path: Path, entries: list[Entry]) -> list[int]:
    """Write ``entries`` now (recipe runs); a warning instead of an error when it cannot be done."""
    store = None
    try:
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
