"""The shell side of the completion scripts: one fixed completion engine per shell, filled in from the
command tree that :mod:`sogni_cli.completion_gen` walks.

Each module holds its shell's engine template and a ``render(spec) -> str`` that returns the whole script;
:mod:`.common` holds what they share. Use :func:`sogni_cli.completion_gen.render` rather than these directly.
"""

from __future__ import annotations

from typing import Callable

from .model import Spec
from . import bash, fish, powershell, zsh

__all__ = ["RENDERERS"]

RENDERERS: dict[str, Callable[[Spec], str]] = {
    "bash": bash.render,
    "zsh": zsh.render,
    "fish": fish.render,
    "powershell": powershell.render,
}
