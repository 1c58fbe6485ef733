"""stdout is only for the product; stderr for errors, warnings and progress.

These writers look up ``sys.stdout``/``sys.stderr`` at call time so test runners that swap the streams
see everything. Nothing here imports rich.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def out(text: str = "", end: str = "\n", flush: bool = True) -> None:
    """Write product output to stdout (escaped when stdout is a terminal: server text cannot act on it)."""
    from ..core.term import for_stdout

    stream = sys.stdout
    stream.write(for_stdout(text) + end)
    if flush:
        stream.flush()


def _json_out(text: str) -> None:
    """A JSON document to stdout; on a terminal, characters that could act on it are written as JSON escapes."""
    from ..core.term import clean_text, stdout_is_tty

    stream = sys.stdout
    stream.write((clean_text(text, json=True) if stdout_is_tty() else text) + "\n")
    stream.flush()


def out_json(obj: Any, *, pretty: bool = True) -> None:
    if pretty:
        _json_out(json.dumps(obj, indent=2, ensure_ascii=False))
    else:
        _json_out(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def out_jsonl(obj: Any) -> None:
    _json_out(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
