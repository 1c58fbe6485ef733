"""The global options given before (or after) the command, as parsed once by the root command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Container, Mapping, Optional

# Global options that may also be written after the command; those that take a value.
GLOBAL_VALUE_OPTIONS = frozenset({"--api-key", "--base-url", "--profile", "--timeout", "--max-retries"})
GLOBAL_FLAGS = frozenset({"-q", "--quiet", "-v", "--verbose", "--no-color", "--emulator", "--dry-run"})


@dataclass
class GlobalOptions:
    api_key: Optional[str] = None
    base_url: Optional[str] = None
    profile: Optional[str] = None
    timeout: Optional[float] = None
    max_retries: Optional[int] = None
    quiet: bool = False
    verbose: bool = False
    no_color: bool = False
    emulator: bool = False
    dry_run: bool = False


def command_index(args: list[str]) -> int:
    """Where the command name is in ``args``: after the global options written before it (``len(args)`` when
    there is none)."""
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--" or not tok.startswith("-"):
            break
        i += 2 if tok in GLOBAL_VALUE_OPTIONS else 1
    return i


def hoist_globals(args: list[str], commands: Container[str],
                  own_of: Callable[[str], Mapping[str, bool]]) -> list[str]:
    """Global options written after the command (``sogni chat --timeout 5 hi``) moved before it, unless the
    command has an option of that name itself; nothing after ``--`` is touched.

    ``own_of(name)`` maps each of the command's option names (its subcommands' too) to whether it takes a
    value; it is called only when the command is one of ``commands``.
    """
    i = command_index(args)
    if i >= len(args) or args[i] == "--" or args[i] not in commands:
        return args
    own = own_of(args[i])
    hoisted: list[str] = []
    kept: list[str] = []
    j = i + 1
    while j < len(args):
        tok = args[j]
        if tok == "--":
            kept.extend(args[j:])
            break
        name = tok.split("=", 1)[0] if tok.startswith("--") else tok
        if name in own:
            kept.append(tok)
            if own[name] and "=" not in tok and j + 1 < len(args):
                kept.append(args[j + 1])
                j += 1
        elif name in GLOBAL_VALUE_OPTIONS:
            hoisted.append(tok)
            if "=" not in tok and j + 1 < len(args):
                hoisted.append(args[j + 1])
                j += 1
        elif name in GLOBAL_FLAGS:
            hoisted.append(tok)
        else:
            kept.append(tok)
        j += 1
    return args[:i] + hoisted + [args[i]] + kept


def parameter_source(ctx: Any, param: str) -> Optional[str]:
    """Where the value of ``param`` came from, by name (``COMMANDLINE``, ``ENVIRONMENT``, ``DEFAULT``…), or
    None when ``param`` is not a parameter of ``ctx``'s command."""
    try:
        src = ctx.get_parameter_source(param)
    except Exception:  # noqa: BLE001 - not a parameter of this command
        return None
    return getattr(src, "name", None)
