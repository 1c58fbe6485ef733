"""stdout is only for the product; stderr for errors, warnings and progress.

These writers look up ``sys.stdout``/``sys.stderr`` at call time so test runners that swap the streams
see everything. Nothing here imports rich.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def out(text: str = "", end: str = "\n", flush: bool = True) -> None:
    """Write product output to stdout."""
    stream = sys.stdout
    stream.write(text + end)
    if flush:
        stream.flush()


def out_json(obj: Any, *, pretty: bool = True) -> None:
    if pretty:
        out(json.dumps(obj, indent=2, ensure_ascii=False))
    else:
        out(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def out_jsonl(obj: Any) -> None:
    out(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


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
    from ..secrets import redact

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
