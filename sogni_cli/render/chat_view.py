"""Where chat events go: text to stdout as it streams, or JSON lines, or nothing until the end (--json)."""

from __future__ import annotations

import json
import sys

from ..core.events import Artifact, Delta, Done, Event, Reasoning, ToolCall, ToolResult, Usage


class ChatView:
    def __init__(self, mode: str = "text", *, show_thinking: bool = False, quiet: bool = False):
        self.mode = mode
        self.show_thinking = show_thinking
        self.quiet = quiet
        self._last = "\n"
        self._wrote = False
        self._thinking = False
        self._plain = mode == "text"

    def handle(self, ev: Event) -> None:
        if type(ev) is Delta and self._plain and not self._thinking:  # the usual event: straight to stdout
            text = ev.text
            if text:
                out = sys.stdout
                out.write(text)
                out.flush()
                self._last = text[-1]
                self._wrote = True
            return
        if self.mode == "jsonl":
            if isinstance(ev, Reasoning) and not self.show_thinking:
                return
            sys.stdout.write(json.dumps(ev.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")
            sys.stdout.flush()
            return
        if isinstance(ev, Reasoning):
            if self.show_thinking:
                if not self._thinking:
                    sys.stderr.write("[thinking] ")
                    self._thinking = True
                sys.stderr.write(ev.text)
                sys.stderr.flush()
            return
        if self.mode == "json":
            return
        if isinstance(ev, Delta):
            if self._thinking:
                sys.stderr.write("\n")
                sys.stderr.flush()
                self._thinking = False
            if ev.text:
                out = sys.stdout
                out.write(ev.text)
                out.flush()
                self._last = ev.text[-1]
                self._wrote = True
        elif isinstance(ev, ToolCall):
            if not self.quiet:
                self._end_line()
                args = ev.arguments if isinstance(ev.arguments, str) else json.dumps(ev.arguments, ensure_ascii=False)
                sys.stderr.write(f"Tool call: {ev.name} {args[:200]}\n")
                sys.stderr.flush()
        elif isinstance(ev, ToolResult):
            if not self.quiet:
                sys.stderr.write(f"Tool result: {ev.name} ({len(ev.content)} characters)\n")
                sys.stderr.flush()
        elif isinstance(ev, Artifact):
            self._end_line()
            if ev.path:
                sys.stderr.write(f"Saved: {ev.path}\n")
            elif ev.url:
                sys.stderr.write(f"Media: {ev.url}\n")
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
        if self._thinking:
            sys.stderr.write("\n")
            self._thinking = False
        if self.mode == "text":
            self._end_line()
