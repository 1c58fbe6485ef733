"""Where chat events go: text to stdout as it streams, or JSON lines, or nothing until the end (--json).

One output model for streamed and non-streamed replies: reasoning never goes into the text (stderr with
--show-thinking; ``reasoning`` events in --jsonl; ``reasoning`` in --json), and in --jsonl the ``done`` event is
held back until :meth:`ChatView.finish`, so every ``artifact`` event comes before it and ``done`` is always last.
On a terminal the reply text is shown inert (escape sequences escaped); to a pipe or file it is written unchanged.
Names, arguments and URLs on stderr are always escaped.
"""

from __future__ import annotations

import json
import sys

from ..core.events import Artifact, Delta, Done, Event, Reasoning, ToolCall, ToolResult, Usage
from ..core.term import clean_text, shown, stdout_is_tty


class ChatView:
    def __init__(self, mode: str = "text", *, show_thinking: bool = False, quiet: bool = False):
        self.mode = mode
        self.show_thinking = show_thinking
        self.quiet = quiet
        self._last = "\n"
        self._wrote = False
        self._thinking = False
        self._plain = mode == "text"
        self._escape = stdout_is_tty()
        self._done: Done | None = None

    def handle(self, ev: Event) -> None:
        if type(ev) is Delta and self._plain and not self._thinking:  # the usual event: straight to stdout
            text = ev.text
            if text:
                out = sys.stdout
                out.write(clean_text(text) if self._escape else text)
                out.flush()
                self._last = text[-1]
                self._wrote = True
            return
        if self.mode == "jsonl":
            if isinstance(ev, Done):
                self._done = ev  # written by finish(), after any artifact events
                return
            line = json.dumps(ev.to_json(), ensure_ascii=False, separators=(",", ":"))
            sys.stdout.write((clean_text(line, json=True) if self._escape else line) + "\n")
            sys.stdout.flush()
            return
        if isinstance(ev, Reasoning):
            if self.show_thinking:
                if not self._thinking:
                    sys.stderr.write("[thinking] ")
                    self._thinking = True
                sys.stderr.write(clean_text(ev.text))
                sys.stderr.flush()
            return
        if isinstance(ev, Delta):
            if self.mode == "json":
                return
            if self._thinking:
                sys.stderr.write("\n")
                sys.stderr.flush()
                self._thinking = False
            if ev.text:
                out = sys.stdout
                out.write(clean_text(ev.text) if self._escape else ev.text)
                out.flush()
                self._last = ev.text[-1]
                self._wrote = True
        elif isinstance(ev, ToolCall):
            if not self.quiet:
                self._end_line()
                args = ev.arguments if isinstance(ev.arguments, str) else json.dumps(ev.arguments, ensure_ascii=False)
                sys.stderr.write(f"Tool call: {shown(ev.name)} {shown(args[:200])}\n")
                sys.stderr.flush()
        elif isinstance(ev, ToolResult):
            if not self.quiet:
                sys.stderr.write(f"Tool result: {shown(ev.name)} ({len(ev.content)} characters)\n")
                sys.stderr.flush()
        elif isinstance(ev, Artifact):
            self._end_line()
            if ev.path:
                sys.stderr.write(f"Saved: {shown(ev.path)}\n")
            elif ev.url:
                sys.stderr.write(f"Not downloaded: {shown(ev.url)} (--no-download)\n")
            sys.stderr.flush()
        elif isinstance(ev, (Done, Usage)):
            if isinstance(ev, Done):
                self._end_line()

    def _end_line(self) -> None:
        if self._wrote and self._last != "\n":
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._last = "\n"

    def close(self) -> None:
        """The reply has ended (or failed): end the thinking line and the text line."""
        if self._thinking:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._thinking = False
        if self.mode == "text":
            self._end_line()

    def finish(self) -> None:
        """Everything about the run has been shown: write the held ``done`` event (--jsonl)."""
        if self.mode == "jsonl" and self._done is not None:
            done, self._done = self._done, None
            sys.stdout.write(json.dumps(done.to_json(), separators=(",", ":")) + "\n")
            sys.stdout.flush()
