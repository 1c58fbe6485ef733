"""The fast lane: ``sogni --help`` and the usual ``sogni chat …`` command lines, run without loading the
command-line framework.

The framework (Typer and its click) costs tens of milliseconds to import, which is most of what ``sogni --help``
takes and a tenth of the time to the first token of a chat. The options of the root command and of ``chat``
are read once from the framework, at development time, into :mod:`sogni_cli.fastlane_table` (regenerate
with ``python -m sogni_cli.fastlane --write``; a test fails when it is stale). At run time this module parses
a command line with that table and calls the command's body directly.

It only takes command lines it can parse exactly as the framework would: every word a known option, an
option's value where one is needed, values that convert, at most the command's own positional arguments.
Anything else (``--help`` after the command, a bundled ``-qv``, an unknown option, a bad number, no
arguments at all) goes to the framework, which parses it, or explains what is wrong, as it always did. A test
checks that both give the command the same values, the same global options and the same "given on the
command line" answers for a wide set of command lines.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

#: Commands the fast lane runs: name -> the module whose ``run(ctx, **params)`` is the command's body.
FAST_COMMANDS = {"chat": "sogni_cli.commands.chat_body"}
#: The width the root help is kept for (what the framework uses with a terminal of 80 columns or more, or
#: no terminal at all); other widths are rendered by the framework.
HELP_WIDTH = 78


class _Source:
    """Where a value came from, as the framework names it."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


_COMMANDLINE = _Source("COMMANDLINE")
_DEFAULT = _Source("DEFAULT")


class FastContext:
    """What a command body uses of its context: the root's global options (``find_root().obj``), clean-ups run
    when the command ends (``call_on_close``), and whether a parameter was given (``get_parameter_source``)."""

    def __init__(self, obj: Any, params: dict[str, Any], given: set[str]):
        self.obj = obj
        self.params = params
        self.given = given
        self._on_close: list[Callable[[], Any]] = []

    def find_root(self) -> "FastContext":
        return self

    def call_on_close(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        self._on_close.append(fn)
        return fn

    def get_parameter_source(self, name: str) -> Optional[_Source]:
        if name not in self.params:
            return None
        return _COMMANDLINE if name in self.given else _DEFAULT

    def close(self) -> None:
        """Run the clean-ups, last registered first; every one runs even when an earlier one fails."""
        pending, self._on_close = self._on_close, []
        failure: Optional[BaseException] = None
        for fn in reversed(pending):
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - raised below, after the others ran
                failure = failure or exc
        if failure is not None:
            raise failure


class Call:
    """A parsed command line: the command, its parameters (every one, defaults included), the names of those
    given on the command line, and the global options."""

    def __init__(self, command: str, params: dict[str, Any], given: set[str], globals_: dict[str, Any]):
        self.command = command
        self.params = params
        self.given = given
        self.globals = globals_


def _convert(kind: str, value: str) -> Any:
    """A value as the framework converts it; ValueError when it would refuse it (the framework then says why)."""
    if kind == "str":
        return value
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "path":
        if not value:
            raise ValueError("empty path")
        from pathlib import Path

        return Path(value)
    raise ValueError(kind)  # pragma: no cover - a kind the generator does not write


def _parse_options(words: list[str], spec: dict[str, Any], values: dict[str, Any], given: set[str],
                   positional: Optional[list[str]]) -> bool:
    """Parse ``words`` into ``values`` with ``spec``'s options; positional words go to ``positional`` (None:
    none allowed). False when the framework must do it."""
    options = spec["options"]
    multiple = spec["multiple"]
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--" and positional is not None:
            positional.extend(words[i:])
            break
        if word[:1] != "-" or word == "-":
            if positional is None:
                return False
            positional.append(word)
            continue
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        opt = options.get(name)
        if opt is None:
            return False
        dest, kind, const = opt
        if kind == "flag":
            if eq:
                return False
            values[dest] = const
        else:
            if eq:
                raw = inline
            elif i < len(words):
                raw = words[i]
                i += 1
            else:
                return False
            try:
                value = _convert(kind, raw)
            except ValueError:
                return False
            if dest in multiple:
                if dest not in given:
                    values[dest] = []
                values[dest].append(value)
            else:
                values[dest] = value
        given.add(dest)
    return True


def parse(args: list[str], table: Any = None) -> Optional[Call]:
    """``args`` (what follows ``sogni``) as the framework would parse them, or None when it is not a command
    line the fast lane takes."""
    from .core.options import command_index, hoist_globals

    i = command_index(args)
    if i >= len(args) or args[i] not in FAST_COMMANDS:
        return None  # decided before the table is loaded: other commands pay nothing for it
    if table is None:
        from . import fastlane_table as table
    command = args[i]
    spec = table.COMMANDS[command]
    own = {name: opt[1] != "flag" for name, opt in spec["options"].items()}
    args = hoist_globals(args, (command,), lambda _name: own)
    i = command_index(args)
    root_values = dict(table.ROOT["defaults"])
    if not _parse_options(args[:i], table.ROOT, root_values, set(), None):
        return None
    values = dict(spec["defaults"])
    given: set[str] = set()
    positional: list[str] = []
    if not _parse_options(args[i + 1:], spec, values, given, positional):
        return None
    arguments = spec["arguments"]
    if len(positional) > len(arguments):
        return None
    for dest, word in zip(arguments, positional):
        values[dest] = word
        given.add(dest)
    return Call(command, values, given, root_values)


def run(args: list[str]) -> Optional[int]:
    """Run ``args`` in the fast lane and return the exit code, or None (nothing done) when the framework must
    take it."""
    if args in ([], ["--help"], ["-h"]):  # with no arguments at all, the root shows its help too
        return _root_help()
    call = parse(args)
    if call is None:
        return None
    import importlib

    from .core.options import GlobalOptions

    body = importlib.import_module(FAST_COMMANDS[call.command])
    ctx = FastContext(GlobalOptions(**call.globals), call.params, call.given)
    try:
        try:
            body.run(ctx, **call.params)
        finally:
            ctx.close()
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("\n")  # as the framework does before it reports an interruption
        raise KeyboardInterrupt() from None
    return 0


def terminal_columns() -> int:
    """The terminal's width by the rule the framework uses (``COLUMNS``, else the terminal of standard output,
    else 80)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return columns


def _root_help() -> Optional[int]:
    if max(min(terminal_columns(), 80) - 2, 50) != HELP_WIDTH:
        return None
    from .fastlane_table import ROOT_HELP

    sys.stdout.write(ROOT_HELP + "\n")
    return 0


# ------------------------------------------------------------------------------------------ generation


def _param_spec(cmd: Any) -> dict[str, Any]:
    options: dict[str, tuple[str, str, Any]] = {}
    defaults: dict[str, Any] = {}
    multiple: list[str] = []
    arguments: list[str] = []
    kinds = {"text": "str", "str": "str", "integer": "int", "int": "int", "float": "float", "path": "path"}
    for p in cmd.params:
        if p.name == "version":
            continue  # answered before anything else is imported
        if p.envvar or p.callback or getattr(p, "count", False) or p.nargs != 1 or getattr(p, "is_eager", False):
            raise ValueError(f"{p.name}: an option the fast lane cannot parse like the framework")
        if p.param_type_name == "argument":
            arguments.append(p.name)
            defaults[p.name] = p.default
            continue
        if p.is_flag:
            if p.type.name not in ("boolean", "bool"):
                raise ValueError(f"{p.name}: a flag that is not on/off")
            for name in p.opts:
                options[name] = (p.name, "flag", True)
            for name in p.secondary_opts:
                options[name] = (p.name, "flag", False)
        else:
            kind = kinds.get(p.type.name)
            if kind is None:
                raise ValueError(f"{p.name}: values of type {p.type.name} are not converted by the fast lane")
            for name in p.opts:
                options[name] = (p.name, kind, None)
        if p.multiple:
            multiple.append(p.name)
        defaults[p.name] = None if p.multiple else p.default
    return {"options": dict(sorted(options.items())), "defaults": defaults, "multiple": sorted(multiple),
            "arguments": arguments}


def build_table() -> str:
    """The source of :mod:`sogni_cli.fastlane_table`, read from the framework's commands."""
    import pprint

    import typer.main

    from .app import app

    root: Any = typer.main.get_command(app)
    ctx = root.make_context("sogni", ["chat", "x"], resilient_parsing=True)
    commands = {name: _param_spec(root.get_command(ctx, name)) for name in FAST_COMMANDS}
    os.environ.pop("COLUMNS", None)
    formatter = ctx.make_formatter()
    formatter.width = HELP_WIDTH
    root.format_help(ctx, formatter)
    root_help = formatter.getvalue().rstrip("\n")
    return (
        '"""The root command\'s and the fast commands\' options, and the root help, read from the command-line\n'
        'framework. Generated: do not edit; regenerate with ``python -m sogni_cli.fastlane --write``."""\n\n'
        f"ROOT = {pprint.pformat(_param_spec(root), width=110, sort_dicts=False)}\n\n"
        f"COMMANDS = {pprint.pformat(commands, width=110, sort_dicts=False)}\n\n"
        f"ROOT_HELP = {root_help!r}\n"
    )


TABLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastlane_table.py")


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = build_table()
    if args == ["--write"]:
        with open(TABLE_PATH, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        print(f"wrote {TABLE_PATH}")
        return 0
    if args == ["--check"]:
        with open(TABLE_PATH, encoding="utf-8") as fh:
            current = fh.read()
        if current != text:
            print(f"{TABLE_PATH} is stale: run python -m sogni_cli.fastlane --write", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m sogni_cli.fastlane --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
