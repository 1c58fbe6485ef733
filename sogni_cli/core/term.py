"""Terminal-safe lines on stderr: every message passes the one redactor and the one escaper.

These writers look up ``sys.stderr`` at call time so test runners that swap the streams see everything.
"""

from __future__ import annotations

import sys


_CONTROL = None


def clean_text(text: str) -> str:
    """Server text made safe for a terminal: control characters (escape sequences, carriage returns, bells)
    shown as ``\\xNN`` instead of acting on the screen; newlines and tabs kept."""
    global _CONTROL
    if _CONTROL is None:
        import re

        _CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


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
