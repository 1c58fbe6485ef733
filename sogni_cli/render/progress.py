"""Progress on stderr (contract §4): rich bars on a terminal, plain rate-limited lines otherwise.

Every sink is thread-safe: downloads report from worker threads. ``rich`` is imported only when a
terminal display is actually made.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Hashable, TextIO

from ..core.progress import NullProgress, ProgressSink, format_bytes
from ..core.term import clean_text, shown

PLAIN_LINE_INTERVAL = 5.0
HEARTBEAT_INTERVAL = 30.0


class _Task:
    __slots__ = ("label", "total", "done", "last_print", "running")

    def __init__(self, label: str, total: float | None, now: float):
        self.label = label
        self.total = total
        self.done = 0.0
        self.last_print = now
        self.running = True


class PlainProgress(ProgressSink):
    """Plain lines for logs and CI: ``label: 45% (12.3 MB/27.0 MB)``.

    At most one line per task every 5 s, a final line per task, and — when :meth:`heartbeat` is called
    — a line at least every 30 s while anything is running.
    """

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic, *, unit: str = "bytes",
                 line_interval: float = PLAIN_LINE_INTERVAL, heartbeat_interval: float = HEARTBEAT_INTERVAL):
        self._stream = stream
        self._clock = clock
        self._unit = unit
        self._line_interval = line_interval
        self._heartbeat_interval = heartbeat_interval
        self._lock = threading.RLock()
        self._tasks: dict[Hashable, _Task] = {}
        self._last_output = clock()
        self._closed = False

    # -- formatting -------------------------------------------------------------------------------
    def _amount(self, task: _Task) -> str:
        if self._unit == "bytes":
            if task.total:
                pct = min(100, int(task.done * 100 / task.total))
                return f"{pct}% ({format_bytes(task.done)}/{format_bytes(task.total)})"
            return format_bytes(task.done)
        if task.total:
            pct = min(100, int(task.done * 100 / task.total))
            return f"{pct}%"
        return f"{task.done:g}"

    def _write(self, line: str) -> None:
        if self._closed:
            return
        try:
            self._stream.write(clean_text(line) + "\n")  # labels and notes carry server text
            self._stream.flush()
        except (OSError, ValueError):  # a closed stderr must not break the work
            pass
        self._last_output = self._clock()

    # -- ProgressSink -----------------------------------------------------------------------------
    def start(self, key: Hashable, total: int | None, label: str) -> None:
        with self._lock:
            self._tasks[key] = _Task(label, total, self._clock())

    def advance(self, key: Hashable, n: int) -> None:
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                return
            task.done += n
            self._maybe_print(task)

    def update(self, key: Hashable, completed: float | None = None, total: float | None = None,
               label: str | None = None) -> None:
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                task = self._tasks[key] = _Task(label or str(key), total, self._clock())
            if label is not None:
                task.label = label
            if total is not None:
                task.total = total
            if completed is not None:
                task.done = completed
            self._maybe_print(task)

    def _maybe_print(self, task: _Task) -> None:
        now = self._clock()
        if now - task.last_print >= self._line_interval:
            task.last_print = now
            self._write(f"{task.label}: {self._amount(task)}")

    def finish(self, key: Hashable, ok: bool = True) -> None:
        with self._lock:
            task = self._tasks.pop(key, None)
            if task is None:
                return
            if ok:
                size = format_bytes(task.done) if self._unit == "bytes" else "100%"
                self._write(f"{task.label}: done ({size})")
            else:
                self._write(f"{task.label}: failed ({self._amount(task)})")

    def note(self, text: str) -> None:
        with self._lock:
            self._write(text)

    def heartbeat(self) -> None:
        with self._lock:
            if not self._tasks:
                return
            now = self._clock()
            if now - self._last_output < self._heartbeat_interval:
                return
            n = len(self._tasks)
            if self._unit == "bytes":
                total = sum(t.done for t in self._tasks.values())
                self._write(f"still working: {n} running, {format_bytes(total)} so far")
            else:
                self._write(f"still working: {n} running")

    def close(self) -> None:
        with self._lock:
            self._closed = True


class RichProgress(ProgressSink):
    """One rich bar per task on a terminal."""

    def __init__(self, stream: TextIO, *, unit: str = "bytes"):
        from .console import make_console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self._console = make_console(stream)
        if unit == "bytes":
            columns = (TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                       TransferSpeedColumn(), TimeRemainingColumn())
        else:
            columns = (TextColumn("{task.description}", markup=False), BarColumn(), TaskProgressColumn(),
                       TimeRemainingColumn())
        self._progress = Progress(*columns, console=self._console, transient=False)
        self._lock = threading.RLock()
        self._ids: dict[Hashable, Any] = {}
        self._started = False
        self._closed = False

    def _ensure(self) -> None:
        if not self._started and not self._closed:
            self._progress.start()
            self._started = True

    def start(self, key: Hashable, total: int | None, label: str) -> None:
        with self._lock:
            self._ensure()
            old = self._ids.get(key)
            if old is not None:
                self._progress.update(old, completed=0, total=total, description=shown(label))
                self._progress.start_task(old)
            else:
                self._ids[key] = self._progress.add_task(shown(label), total=total)

    def advance(self, key: Hashable, n: int) -> None:
        with self._lock:
            tid = self._ids.get(key)
            if tid is not None:
                self._progress.advance(tid, n)

    def update(self, key: Hashable, completed: float | None = None, total: float | None = None,
               label: str | None = None) -> None:
        with self._lock:
            self._ensure()
            tid = self._ids.get(key)
            if tid is None:
                tid = self._ids[key] = self._progress.add_task(shown(label or key), total=total)
            kwargs: dict[str, Any] = {}
            if completed is not None:
                kwargs["completed"] = completed
            if total is not None:
                kwargs["total"] = total
            if label is not None:
                kwargs["description"] = shown(label)
            self._progress.update(tid, **kwargs)

    def finish(self, key: Hashable, ok: bool = True) -> None:
        with self._lock:
            tid = self._ids.pop(key, None)
            if tid is None:
                return
            task = self._progress._tasks.get(tid)  # noqa: SLF001 - read-only peek for the final total
            if ok and task is not None:
                self._progress.update(tid, total=task.completed, completed=task.completed)
            elif task is not None:
                self._progress.update(tid, description=f"{task.description} (failed)")
            self._progress.stop_task(tid)

    def note(self, text: str) -> None:
        with self._lock:
            self._console.print(clean_text(text), markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        with self._lock:
            if self._started and not self._closed:
                self._progress.stop()
            self._closed = True


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def make_progress(stream: TextIO | None = None, quiet: bool = False, force_plain: bool = False,
                  clock: Callable[[], float] = time.monotonic, *, unit: str = "bytes") -> ProgressSink:
    """The progress display for ``stream`` (stderr by default): nothing when quiet, rich bars on a
    terminal, plain rate-limited lines otherwise. ``unit`` is ``"bytes"`` or ``"percent"``."""
    if stream is None:
        stream = sys.stderr
    if quiet:
        return NullProgress()
    if not force_plain and _is_tty(stream):
        import os

        if os.environ.get("TERM") != "dumb":
            return RichProgress(stream, unit=unit)
    return PlainProgress(stream, clock, unit=unit)
