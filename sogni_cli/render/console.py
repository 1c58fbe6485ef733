"""The one way this program makes a Rich console, so colour settings apply everywhere.

``--no-color`` and ``NO_COLOR`` turn off every style (no colour, no bold: plain text); ``FORCE_COLOR``
forces styling even when the stream is not a terminal. Rich is imported here only when a console is made.
"""

from __future__ import annotations

import os
from typing import Any


def make_console(file: Any = None, **kwargs: Any) -> Any:
    from rich.console import Console

    if os.environ.get("NO_COLOR"):
        kwargs.setdefault("color_system", None)
        kwargs.setdefault("no_color", True)
    elif os.environ.get("FORCE_COLOR"):
        kwargs.setdefault("force_terminal", True)
    kwargs.setdefault("highlight", False)
    return Console(file=file, **kwargs)
