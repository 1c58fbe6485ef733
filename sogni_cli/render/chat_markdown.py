"""A chat reply shown as Markdown on a terminal while it streams (headings, lists, tables, code in colour).

The reply is redrawn in place, at most :data:`FPS` times a second, by one Rich ``Live`` display: while it
streams only its last screenful is drawn (so nothing scrolls away half-drawn and nothing flickers), and when
it ends the whole reply is drawn once more, so the screen holds exactly the Markdown of the whole text.
Everything that is not reply text goes through the plain view (stderr lines, thinking, tool calls).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

FPS = 12


class _Tail:
    """The Markdown of ``text``: only its last screenful while streaming, all of it at the end."""

    def __init__(self) -> None:
        self.text = ""
        self.full = False

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.markdown import Markdown
        from rich.segment import Segment

        md = Markdown(self.text)
        if self.full:
            yield md
            return
        lines = console.render_lines(md, options, pad=False)
        keep = max(1, (options.height or console.size.height) - 1)
        for line in lines[-keep:]:
            yield from line
            yield Segment.line()


class MarkdownChatView:
    mode = "text"

    def __init__(self, plain: Any, *, console: Any = None, clock: Callable[[], float] = time.monotonic):
        self.plain = plain
        self.console = console
        self.clock = clock
        self._tail = _Tail()
        self._parts: list[str] = []
        self._live: Any = None
        self._last = 0.0

    def handle(self, ev: Any) -> None:
        if getattr(ev, "kind", None) != "delta":
            self.plain.handle(ev)
            return
        if not ev.text:
            return
        if self._live is None:
            self._start()
        self._parts.append(ev.text)
        now = self.clock()
        if now - self._last >= 1.0 / FPS:
            self._draw()
            self._last = now

    def _start(self) -> None:
        from rich.live import Live

        from ..core.events import Delta
        from .console import make_console

        self.plain.handle(Delta(""))  # ends a thinking line on stderr, writes nothing to stdout
        console = self.console or make_console(sys.stdout)
        self._live = Live(self._tail, console=console, auto_refresh=False, transient=False,
                          redirect_stdout=False, redirect_stderr=True)
        self._live.start()

    def _draw(self) -> None:
        from ..core.term import clean_text

        self._tail.text = clean_text("".join(self._parts))
        self._live.refresh()

    def close(self) -> None:
        if self._live is not None:
            from ..core.term import clean_text

            self._tail.text = clean_text("".join(self._parts))
            self._tail.full = True
            try:
                self._live.stop()
            finally:
                self._live = None
        self.plain.close()

    def finish(self) -> None:
        self.plain.finish()
