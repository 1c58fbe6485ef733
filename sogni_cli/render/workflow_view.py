"""How workflows look on stderr and stdout: live progress while following, tables for ``workflow list``,
the ``workflow show`` summary and one-line events.

:class:`WorkflowDisplay` is a rich display on a terminal (one line per step: tool, status, percent, ETA) and
plain lines otherwise: one when the status or step changes, at most one every 5 s for progress, and a
heartbeat line at least every 30 s while waiting. ``rich`` is imported only for the terminal display.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Hashable, TextIO

from ..core.term import shown

PLAIN_INTERVAL = 5.0
HEARTBEAT_INTERVAL = 30.0


def _finite(v: Any) -> float | None:
    """A finite number, or None (booleans, text, NaN, infinities and huge integers read as absent)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _pct(progress: Any) -> str:
    p = _finite(progress)
    return "" if p is None else f" {int(round(p * 100))}%"


def _eta(seconds: Any) -> str:
    sec = _finite(seconds)
    if sec is None or sec < 0:
        return ""
    s = int(round(sec))
    return f" (ETA {s // 60}m{s % 60:02d}s)" if s >= 60 else f" (ETA {s}s)"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class WorkflowDisplay:
    """Progress of followed workflows (thread-safe; several workflows may report to one display)."""

    def __init__(self, stream: TextIO, *, quiet: bool = False, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, interval: float = PLAIN_INTERVAL,
                 heartbeat_interval: float = HEARTBEAT_INTERVAL):
        self._stream = stream
        self._quiet = quiet
        self._clock = clock
        self._interval = interval
        self._hb = heartbeat_interval
        self._lock = threading.RLock()
        self._rich = None
        self._tasks: dict[Hashable, Any] = {}
        self._state: dict[Hashable, tuple] = {}
        self._last_line: dict[Hashable, float] = {}
        self._last_output = clock()
        self._current: dict[str, str] = {}  # workflow id -> last status text
        self._closed = False
        if not quiet and (tty if tty is not None else _is_tty(stream)):
            try:
                self._start_rich()
            except Exception:  # pragma: no cover - no usable terminal display
                self._rich = None

    def _start_rich(self) -> None:
        from .console import make_console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        console = make_console(self._stream)
        self._rich = Progress(TextColumn("{task.description}", markup=False), BarColumn(), TaskProgressColumn(),
                              TimeRemainingColumn(), console=console, transient=False)
        self._rich.start()

    def _write(self, line: str) -> None:
        if self._quiet or self._closed:
            return
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass
        self._last_output = self._clock()

    def update(self, upd: Any) -> None:
        """Show a :class:`~sogni_cli.core.events.WorkflowUpdate`."""
        if self._quiet:
            return
        with self._lock:
            wid = upd.workflow_id
            key = (wid, upd.step or upd.tool or "workflow")
            status = upd.status or self._current.get(wid) or "running"
            self._current[wid] = status
            label = shown(f"{upd.tool or 'workflow'} {status}")  # server text: inert
            if self._rich is not None:
                tid = self._tasks.get(key)
                if tid is None:
                    tid = self._tasks[key] = self._rich.add_task(label, total=100)
                kw: dict[str, Any] = {"description": label}
                if _finite(upd.progress) is not None:
                    kw["completed"] = upd.progress * 100
                self._rich.update(tid, **kw)
                from ..api.workflows import TERMINAL

                if status in TERMINAL:
                    self.close()
                return
            state = (status, upd.step, upd.tool)
            now = self._clock()
            changed = self._state.get(key) != state
            if changed or now - self._last_line.get(key, -1e9) >= self._interval:
                self._state[key] = state
                self._last_line[key] = now
                name = upd.tool or "workflow"
                msg = f" - {shown(upd.message)}" if upd.message and changed and upd.type not in ("workflow_progress",) else ""
                self._write(f"{shown(name)}: {shown(status)}{_pct(upd.progress)}{_eta(upd.eta_seconds)}{msg}")

    def heartbeat(self) -> None:
        if self._quiet or self._rich is not None:
            return
        with self._lock:
            if self._clock() - self._last_output >= self._hb:
                active = ", ".join(f"{w} {s}" for w, s in self._current.items()) or "workflow"
                self._write(f"still waiting: {active}")

    def close(self) -> None:
        with self._lock:
            if self._rich is not None and not self._closed:
                self._rich.stop()
            self._closed = True


class JobProgress:
    """The progress sink handed to the pipeline: downloads go to ``sink``; heartbeats also reach the
    workflow display, so plain output never stays silent for more than 30 s."""

    def __init__(self, sink: Any, display: WorkflowDisplay):
        self.sink = sink
        self.display = display

    def start(self, key, total, label):
        self.display.close()
        self.sink.start(key, total, label)

    def advance(self, key, n):
        self.sink.advance(key, n)

    def update(self, key, completed=None, total=None, label=None):
        self.sink.update(key, completed=completed, total=total, label=label)

    def finish(self, key, ok=True):
        self.sink.finish(key, ok)

    def note(self, text):
        self.sink.note(text)

    def heartbeat(self):
        self.display.heartbeat()
        self.sink.heartbeat()

    def close(self):
        self.display.close()
        self.sink.close()


class Heartbeat:
    """Calls ``sink.heartbeat()`` every ``interval`` seconds from a daemon thread until stopped, so plain
    output keeps its at-least-every-30-s line even while a stream is silent."""

    def __init__(self, sink: Any, interval: float = 5.0):
        self._sink = sink
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sogni-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sink.heartbeat()
            except Exception:  # pragma: no cover - never let progress output break the work
                pass

    def stop(self) -> None:
        self._stop.set()


# --------------------------------------------------------------------------------------------- text views


def _field(rec: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = rec.get(k)
        if v not in (None, ""):
            return v
    ts = rec.get("timestamps")
    if isinstance(ts, dict):
        for k in keys:
            if ts.get(k):
                return ts[k]
    return None


def _tools(rec: dict[str, Any]) -> str:
    inp = rec.get("input") if isinstance(rec.get("input"), dict) else {}
    steps = _list(rec.get("steps")) or _list(inp.get("steps"))
    names = [_text(s.get("toolName"), "?") for s in steps if isinstance(s, dict)]
    return ",".join(names) or "-"


def _text(v: Any, default: str = "") -> str:
    """A record value for display: text and numbers as they are, anything else (or nothing) as ``default``."""
    if isinstance(v, str):
        return v or default
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return default


def workflow_table(records: list[dict[str, Any]]) -> str:
    """A plain aligned table: id, status, tools, artifacts, created."""
    from ..api.workflows import workflow_id

    rows = [("ID", "STATUS", "TOOLS", "ARTIFACTS", "CREATED")]
    for r in records:
        rows.append((workflow_id(r) or "?", _text(r.get("status"), "?"), _tools(r),
                     str(len(_list(r.get("artifacts")))), _text(_field(r, "createdAt", "createTime"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def format_show(rec: dict[str, Any]) -> str:
    from ..api.workflows import failure_reason, workflow_id

    lines = [f"Workflow:  {workflow_id(rec) or '?'}", f"Status:    {_text(rec.get('status'), '?')}"]
    if rec.get("title"):
        lines.append(f"Title:     {rec['title']}")
    created = _field(rec, "createdAt", "createTime")
    if created:
        lines.append(f"Created:   {created}")
    updated = _field(rec, "updatedAt", "updateTime")
    if updated:
        lines.append(f"Updated:   {updated}")
    if rec.get("waitingReason"):
        lines.append(f"Waiting:   {rec['waitingReason']}")
    reason = failure_reason(rec) if rec.get("status") in ("failed", "cancelled", "partial_failure",
                                                         "waiting_for_user") else None
    if reason:
        lines.append(f"Reason:    {reason}")
    preview = rec.get("billingPreview")
    if isinstance(preview, dict) and preview.get("totalEstimatedCapacityUnits") is not None:
        lines.append(f"Estimate:  {preview['totalEstimatedCapacityUnits']} capacity units")
    from ..api.billing import cost_of
    from ..core.units import fmt_units

    cost = cost_of(rec)
    if cost is not None:
        lines.append(f"Cost:      {fmt_units(cost['units'])} capacity units"
                     + (f" ({_text(cost['token_type'])})" if cost.get("token_type") else ""))
    steps = [s for s in _list(rec.get("steps")) if isinstance(s, dict)]
    if steps:
        lines.append("Steps:")
        for s in steps:
            prog = _finite(s.get("progress"))
            pct = _pct(prog) if prog is not None and 0 <= prog <= 1 else ""
            lines.append(f"  {_text(s.get('id'), '?')}  {_text(s.get('toolName'), '?')}  "
                         f"{_text(s.get('status'), '?')}{pct}")
    arts = [a for a in _list(rec.get("artifacts")) if isinstance(a, dict)]
    lines.append(f"Artifacts: {len(arts)}")
    for a in arts:
        kind = _text(a.get("kind")) or _text(a.get("mediaType")) or _text(a.get("type"))
        lines.append(f"  {_text(a.get('id'), '?')}  {kind}  {_text(a.get('url'), '(no URL)')}")
    return "\n".join(lines)


def format_event(ev: dict[str, Any]) -> str:
    from ..api.workflows import status_of

    seq = ev.get("sequence")
    ts = _text(ev.get("timestamp"))
    typ = _text(ev.get("type"), "event")
    st = status_of(ev) or ""
    msg = _text(ev.get("message"))
    head = f"{seq:>4} " if isinstance(seq, int) and not isinstance(seq, bool) else ""
    return f"{head}{ts}  {typ}  {st}  {msg}".rstrip()
