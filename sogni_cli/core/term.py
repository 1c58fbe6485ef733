"""Terminal-safe text: the one escaper for text that came from a server, a model or a shared file.

:func:`clean_text` is the single function that makes untrusted text inert. Everything written to stderr passes
through it (by :func:`err`); product text on stdout passes through it only when stdout is a terminal
(:func:`for_stdout`), because to a pipe or a file the server's text is the product, unchanged.

These writers look up ``sys.stderr`` at call time so test runners that swap the streams see everything.
"""

from __future__ import annotations

import sys
from typing import Any

_UNSAFE: dict[bool, Any] = {}

# C0 controls (ESC, CR, BEL, backspace…), DEL and the C1 controls (a lone 0x9b is a CSI on some terminals), plus the
# bidirectional overrides and isolates that make text display in an order other than the one it is in.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"


def clean_text(text: str, *, newlines: bool = True, json: bool = False) -> str:
    """Untrusted text made inert for a terminal.

    Control characters, escape sequences (screen clear, window title, clipboard writes, links) and bidirectional
    overrides are shown visibly escaped (``\\x1b``, ``\\u202e``) instead of acting on the screen. Tabs are kept;
    newlines are kept unless ``newlines`` is false — a value shown inside one line (an id, a tool name, a URL)
    must not be able to start a new line that looks like the program's own ``Error:``. ``json``: the text is a
    JSON document, so escapes are written the JSON way (``\\u001b``) and it stays valid JSON.
    """
    rx = _UNSAFE.get(newlines)
    if rx is None:
        import re

        cls = "".join(f"\\x{c:02x}" for c in range(0x20) if chr(c) not in ("\t\n" if newlines else "\t"))
        rx = _UNSAFE[newlines] = re.compile(f"[{cls}\\x7f-\\x9f{_BIDI}]")
    return rx.sub(_escape_json if json else _escape, text)


def _escape(m: Any) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def _escape_json(m: Any) -> str:
    return f"\\u{ord(m.group()):04x}"


def shown(value: Any) -> str:
    """A server/model/recipe value (id, name, URL, arguments) for one line of stderr: escaped, newlines too."""
    return clean_text(str(value), newlines=False)


def for_stdout(text: str) -> str:
    """Product text for stdout: escaped when stdout is a terminal, unchanged to a pipe or a file."""
    return clean_text(text) if stdout_is_tty() else text


def err(text: str) -> None:
    from ..core.secrets import redact

    stream = sys.stderr
    stream.write(clean_text(redact(text)) + "\n")
    stream.flush()


def warn(text: str) -> None:
    err(f"Warning: {text}")


def info(text: str, quiet: bool = False) -> None:
    """A status line on stderr (suppressed by --quiet)."""
    if not quiet:
        err(text)


def stdout_is_tty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False
