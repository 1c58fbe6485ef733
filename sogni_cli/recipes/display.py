"""Progress of a recipe run on stderr.

On a terminal: one live area at the bottom (an overall bar and one line per running job), redrawn in place
(plain ANSI, no extra dependency); each finished job gets a permanent line scrolled above it. The saved
paths the run prints on stdout go through :meth:`RunDisplay.product`, which lifts the live area, writes the
path and draws the area again below it, so when stdout and stderr share the terminal no path is ever drawn
over or erased. Otherwise: one line per finished job, and a heartbeat line when nothing was printed for 30 s
(so CI does not kill a silent job). ``quiet``: failures only.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, TextIO

from ..core.term import clean_text, shown

HEARTBEAT = 30.0
REDRAW = 0.1
MAX_LINES = 12
BAR = 28


def _fmt_duration(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(s), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _fit(line: str, width: int) -> str:
    """A live-area line as it will show: control characters escaped, cut to one row of ``width``."""
    line = clean_text(line).replace("\n", " ").replace("\t", " ")
    return line if len(line) < width else line[:width - 2] + "…"


class RunDisplay:
    def __init__(self, stream: TextIO, total: int, *, name: str = "", quiet: bool = False, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, heartbeat: float = HEARTBEAT):
        self.stream = stream
        self.total = total
        self.name = name
        self.quiet = quiet
        if tty is None:
            try:
                tty = bool(stream.isatty())
            except (AttributeError, ValueError, OSError):
                tty = False
            import os

            tty = tty and os.environ.get("TERM") != "dumb"
        self.tty = tty and not quiet
        self.clock = clock
        self.heartbeat_every = heartbeat
        self.lock = threading.RLock()
        self.running: dict[str, tuple[float, float | None, str | None]] = {}  # uid -> (start, fraction, status)
        self.done = 0
        self.failed = 0
        self.start = clock()
        self.last_output = self.start
        self.last_draw = 0.0
        self.drawn = 0
        self.closed = False

    # -- writing ----------------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass
        self.last_output = self.clock()

    def _clear(self) -> None:
        if self.tty and self.drawn:
            self._write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def product(self, line: str, stream: TextIO) -> None:
        """A line of the run's product (a saved path) on ``stream`` (stdout), above the live area."""
        with self.lock:
            self._clear()
            try:
                stream.write(line + "\n")
                stream.flush()
            except ValueError:
                pass
            self._draw(force=True)

    def _line(self, text: str) -> None:
        """A permanent line (above the live block on a terminal)."""
        with self.lock:
            self._clear()
            self._write(clean_text(text) + "\n")
            self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        if not self.tty or self.closed:
            return
        now = self.clock()
        if not force and now - self.last_draw < REDRAW:
            return
        self.last_draw = now
        self._clear()
        frac = (self.done / self.total) if self.total else 1.0
        filled = int(frac * BAR)
        lines = [f"{self.name + ' ' if self.name else ''}[{'#' * filled}{'-' * (BAR - filled)}] "
                 f"{self.done}/{self.total} done" + (f", {self.failed} failed" if self.failed else "")
                 + f", {len(self.running)} running, {_fmt_duration(now - self.start)}"]
        items = list(self.running.items())
        for uid, (started, fraction, status) in items[:MAX_LINES]:
            pct = f" {int(fraction * 100)}%" if fraction is not None else ""
            st = f" {status}" if status else ""
            lines.append(f"  {shown(uid)}{shown(st)}{pct} ({_fmt_duration(now - started)})")
        if len(items) > MAX_LINES:
            lines.append(f"  … {len(items) - MAX_LINES} more running")
        # one screen row per line (a wrapped line would make the next redraw miss its top), escaped
        width = self._width()
        lines = [_fit(line, width) for line in lines]
        self._write("\n".join(lines) + "\n")
        self.drawn = len(lines)

    def _width(self) -> int:
        import os

        try:
            return max(20, os.get_terminal_size(self.stream.fileno()).columns)
        except (AttributeError, ValueError, OSError):
            return 80

    # -- events -----------------------------------------------------------------------------------
    def started(self, uid: str) -> None:
        with self.lock:
            self.running[uid] = (self.clock(), None, None)
            self._draw()

    def progress(self, uid: str, fraction: float | None = None, status: str | None = None) -> None:
        with self.lock:
            if uid in self.running:
                start, old, old_status = self.running[uid]
                self.running[uid] = (start, fraction if fraction is not None else old, status or old_status)
                self._draw()

    def finished(self, uid: str, status: str, duration: float, error: str | None = None,
                 detail: str | None = None) -> None:
        with self.lock:
            self.running.pop(uid, None)
            self.done += 1
            if status not in ("succeeded", "resumed"):
                self.failed += 1
            if error:
                self._line(f"Error: {shown(uid)}: {shown(error)}")
            elif not self.quiet:
                extra = f" ({detail})" if detail else ""
                if status == "resumed":
                    self._line(f"[{self.done}/{self.total}] {shown(uid)}: already done{shown(extra)}")
                else:
                    word = "done" if status == "succeeded" else status
                    self._line(f"[{self.done}/{self.total}] {shown(uid)}: {shown(word)} in {_fmt_duration(duration)}"
                               f"{shown(extra)}")
            else:
                self._draw(force=True)

    def note(self, text: str) -> None:
        if not self.quiet:
            self._line(text)

    def tick(self) -> None:
        """Called now and then by the scheduler: redraw, or a heartbeat line when silent for too long."""
        with self.lock:
            if self.tty:
                self._draw()
                return
            if self.quiet or not self.running:
                return
            now = self.clock()
            if now - self.last_output >= self.heartbeat_every:
                self._line(f"still working: {len(self.running)} running, {self.done}/{self.total} done, "
                           f"{_fmt_duration(now - self.start)} so far")

    def close(self) -> None:
        with self.lock:
            if self.tty:
                self._draw(force=True)
            self.closed = True


class PipelineSink:
    """What the media pipeline reports to during a recipe run: notes and heartbeats go to the run's
    display; per-file download bars are left out (the job's line shows its state)."""

    def __init__(self, display: RunDisplay):
        self.display = display

    def start(self, key: Any, total: Any, label: str) -> None:
        pass

    def advance(self, key: Any, n: int) -> None:
        pass

    def update(self, key: Any, completed: Any = None, total: Any = None, label: Any = None) -> None:
        pass

    def finish(self, key: Any, ok: bool = True) -> None:
        pass

    def note(self, text: str) -> None:
        self.display.note(text)

    def heartbeat(self) -> None:
        pass

    def close(self) -> None:
        pass
