"""Writing the run record of one ``recipe run`` and reading back what an earlier run knew.

- One run per output folder at a time: the run holds ``OUT/.sogni-run/lock`` for its whole life, whatever
  the recipe, so two runs never write into one folder together.
- Lines are appended with plain ``write`` calls (no buffer that could replay a failed write later). Lines
  that guard money (the plan, ``starting`` before a paid request leaves, ``started`` once its workflow is
  known) are also synced to disk before the caller goes on.
- The first write that fails (disk full, file too large, read-only) is kept in :attr:`RunRecord.error`;
  nothing more is written after it, and the runner stops sending paid requests.
- A line cut short by a full disk is ended with a newline before the next run appends, so it stays one
  unreadable line (ignored) instead of swallowing the next one.

:func:`job_states` reads a record back: the last line of each job, except that a later line never
replaces a known workflow id or key with nothing while the request (hash) and attempt are the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..core.errors import ExitCode, SogniError, UsageError
from ..core.secrets import redact_obj
from .report import RECORD_DIR, read_record_file, record_path

LOCK_NAME = "lock"


class RecordUnwritable(SogniError):
    """The run record cannot be written: no paid request is sent without its line (exit 8, incomplete)."""

    exit_code = ExitCode.INCOMPLETE


def job_key(recipe: str, uid: str, request_hash: str, attempt: int) -> str:
    """The Idempotency-Key of one job's paid request: the same recipe, job instance, request and attempt give
    the same key on every run, machine and shard, so a resend gets the workflow the API already made."""
    text = "\0".join(("sogni-recipe-v1", recipe, uid, request_hash, str(int(attempt))))
    return "sogni-r-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def job_title(recipe: str, uid: str, key: str) -> str:
    """The workflow's title: the job's identity, so ``workflow list`` finds a workflow whose id was lost."""
    return f"sogni recipe {recipe} · {uid} · {key[-8:]}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # pragma: no cover - a write that makes no progress
            raise OSError(28, "No space left on device")
        view = view[n:]


class RunRecord:
    """The record file of one run (``open`` locks the folder; ``close`` lets it go)."""

    def __init__(self, output_dir: Path, recipe_name: str):
        self.root = Path(output_dir)
        self.path = record_path(self.root, recipe_name)
        self.error: OSError | None = None
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._mutex = threading.Lock()

    def open(self) -> None:
        """Lock the output folder and open the record for appending; UsageError when another run holds the
        folder or the record cannot be opened."""
        from ..core.filewrite import open_append, safe_folder, try_lock

        safe_folder(self.root, self.path.parent)  # the record's folder is a real folder inside the output folder
        try:
            lock_fd = os.open(self.path.parent / LOCK_NAME,
                              os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise UsageError(f"Cannot write the run record {self.path}: {exc.strerror or exc}") from None
        if not try_lock(lock_fd):
            os.close(lock_fd)
            raise UsageError(f"another run is using {self.root}; wait for it or use another -o",
                             f"{self.path.parent / LOCK_NAME} is held by a running `sogni recipe run` "
                             "(one run per output folder at a time).")
        try:
            fd = open_append(self.path)  # never through a link, never onto a device
        except UsageError:
            os.close(lock_fd)
            raise
        except OSError as exc:
            os.close(lock_fd)
            raise UsageError(f"Cannot write the run record {self.path}: {exc.strerror or exc}") from None
        self._fd, self._lock_fd = fd, lock_fd
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        _write_all(fd, b"\n")
        except OSError as exc:
            self.error = exc

    def append(self, rec: dict[str, Any], *, sync: bool = False) -> bool:
        """Append one line (``sync``: on disk before returning); False once the record cannot be written."""
        line = (json.dumps(redact_obj(rec), ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._mutex:  # worker threads write ``starting`` and ``started`` lines
            if self._fd is None or self.error is not None:
                return False
            try:
                _write_all(self._fd, line)
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                self.error = exc
                return False
        return True

    def close(self) -> None:
        with self._mutex:
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._fd = self._lock_fd = None

    def describe_error(self) -> str:
        exc = self.error
        return f"{exc.strerror or exc}" if exc is not None else "unknown error"


def job_states(path: Path) -> dict[str, dict[str, Any]]:
    """uid -> what the record knows of the job: its last line, with the workflow id, key and attempt of
    earlier lines kept when the later line lacks them for the same request and attempt."""
    out: dict[str, dict[str, Any]] = {}
    for rec in read_record_file(path):
        prev = out.get(rec["id"])
        if prev is not None and prev.get("request_hash") == rec.get("request_hash") \
                and int(prev.get("attempt") or 0) == int(rec.get("attempt") or 0):
            rec = dict(rec)
            for k in ("workflow_id", "idempotency_key"):
                if not rec.get(k) and prev.get(k):
                    rec[k] = prev[k]
        out[rec["id"]] = rec
    return out


def owners(output_dir: Path) -> dict[str, tuple[str, str]]:
    """Relative path -> (recipe, job instance) for every file a run record in ``output_dir`` says it saved."""
    found: dict[str, tuple[str, str]] = {}
    folder = Path(output_dir) / RECORD_DIR
    if not folder.is_dir():
        return found
    for f in sorted(folder.glob("*.jsonl")):
        try:
            lines = read_record_file(f)
        except UsageError:
            continue
        last: dict[tuple[str, str], dict[str, Any]] = {}
        for rec in lines:
            last[(str(rec.get("recipe", "")), rec["id"])] = rec
        for (recipe, uid), rec in last.items():
            for o in rec.get("outputs") or []:
                found[str(o["path"])] = (recipe, uid)
    return found
