"""The command-line framework's own error types, reached through
public names where they exist.

Typer re-exports ``Abort``, ``Exit`` and ``BadParameter`` at its top level; the base classes
(``UsageError``, ``ClickException``) are found from ``BadParameter``'s bases. ``NoArgsIsHelpError`` has no
public name: it is taken from the vendored module when that is there, else recognised by class name, so a
change in the framework's private layout never breaks start-up.
"""

from __future__ import annotations

from typing import Any

import typer

Abort = typer.Abort
Exit = typer.Exit
BadParameter = typer.BadParameter


def _base(cls: type, name: str) -> type:
    for klass in cls.__mro__:
        if klass.__name__ == name:
            return klass
    raise ImportError(f"{name} is not a base of {cls.__name__}")  # pragma: no cover - a framework rewrite


UsageError: Any = _base(BadParameter, "UsageError")
ClickException: Any = _base(BadParameter, "ClickException")

_NoArgsIsHelpError: Any
try:
    from typer._click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError
except ImportError:
    _NoArgsIsHelpError = None


def is_no_args_help(exc: BaseException) -> bool:
    """Whether ``exc`` asks for a command's help because it was run without arguments."""
    if _NoArgsIsHelpError is not None:
        return isinstance(exc, _NoArgsIsHelpError)
    return type(exc).__name__ == "NoArgsIsHelpError" and getattr(exc, "ctx", None) is not None
