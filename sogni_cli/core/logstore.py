"""The SQLite side of the log: the schema and its migrations, and :class:`Store` (write, query, remove).

Opening the store (for writing) first moves the journal that commands append to into the database.

Versioned with ``PRAGMA user_version``: a new or older database is migrated up inside one ``BEGIN IMMEDIATE``
transaction (so two processes never migrate twice); a database from a newer schema is opened read-only and
never migrated down. WAL mode with a busy timeout; every write is one ``BEGIN IMMEDIATE`` transaction, so
parallel writers queue instead of failing. Full-text search uses FTS5 when this SQLite has it, else LIKE.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .history import SCHEMA_VERSION, LogUnavailable, journal_path

DEFAULT_WAIT = 5.0  # seconds a write waits for another writer before giving up with a warning

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE entries (
            id INTEGER PRIMARY KEY,
            uid TEXT,
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
        "CREATE UNIQUE INDEX entries_uid ON entries(uid)",
        "CREATE INDEX entries_ts ON entries(ts)",
        "CREATE INDEX entries_cid ON entries(cid, id)",
        "CREATE INDEX entries_workflow ON entries(workflow_id)",
        """CREATE TABLE artifacts (
            id INTEGER PRIMARY KEY,
            entry_id INTEGER NOT NULL REFERENCES entries(id),
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


def _wait(env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    try:
        return max(0.0, float(env.get("SOGNI_LOGS_WAIT", DEFAULT_WAIT)))
    except ValueError:
        return DEFAULT_WAIT


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
        self.fold_error: str | None = None  # why the journal could not be moved in, when it could not

    @classmethod
    def open(cls, path: Path, *, create: bool = True, wait: float | None = None) -> "Store":
        import sqlite3

        wait = _wait() if wait is None else wait
        if not create and not path.exists() and not journal_path(path).exists():
            raise LogUnavailable(f"no log yet at {path}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.exists()
            conn = sqlite3.connect(str(path), timeout=wait, isolation_level=None, check_same_thread=False)
            if new:
                os.chmod(path, 0o600)  # prompts and replies are private, like the journal
        except (OSError, sqlite3.Error) as exc:
            raise LogUnavailable(f"cannot open {path}: {exc}") from None
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=wait, isolation_level=None,
                                       check_same_thread=False)
                return cls(conn, path, version, True)
            if version < SCHEMA_VERSION:
                version = cls._migrate(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise LogUnavailable(f"{path}: {exc}") from None
        store = cls(conn, path, version, False)
        try:
            store.fold()
        except (OSError, sqlite3.Error) as exc:  # the entries stay in the journal for the next reader
            store.fold_error = str(exc)
        return store

    def fold(self) -> int:
        """Move the journal's entries into the database: taken out of the journal under its exclusive lock
        (brief: appenders wait only for that), then added in one transaction; put back if that fails."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: entries were written to the database directly
            return 0
        journal = journal_path(self.path)
        try:
            fd = os.open(journal, os.O_RDWR | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return 0
        try:
            import stat

            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{journal} is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            raw = b"".join(chunks)
            if raw:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        if not raw:
            return 0
        moved = 0

        def rows() -> Iterator[dict[str, Any]]:
            # one line at a time: a journal of thousands of entries is never held parsed all at once
            nonlocal moved
            for line in raw.splitlines():
                try:
                    row = json.loads(line.decode("utf-8", "replace"))
                except ValueError:
                    continue  # a line cut short by a crash
                if isinstance(row, dict) and row.get("ts") and row.get("kind"):
                    moved += 1
                    yield row

        try:
            self.add(rows())
        except BaseException:
            fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                while raw:
                    raw = raw[os.write(fd, raw):]
            finally:
                os.close(fd)
            raise
        return moved

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
    def add(self, entries: Iterable[Any]) -> list[int]:
        """Write entries in one transaction; their ids."""
        if self.read_only:
            raise LogUnavailable(f"{self.path} was written by a newer sogni (schema {self.version}, this one knows "
                                 f"{SCHEMA_VERSION}); it is read-only here")
        ids: list[int] = []
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for e in entries:
                r = e if isinstance(e, dict) else e.row()
                cur = c.execute(
                    "INSERT OR IGNORE INTO entries(uid, ts, kind, command, cid, model, tool, workflow_id, prompt,"
                    " reply, exit_code, duration, cost, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (r.get("uid"), r["ts"], r["kind"], r.get("command"), r.get("cid"), r.get("model"), r.get("tool"),
                     r.get("workflow_id"), r.get("prompt"), r.get("reply"), r.get("exit_code"), r.get("duration"),
                     r.get("cost"), r.get("data") or "{}"))
                if not cur.rowcount:  # already moved in from the journal once
                    continue
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

