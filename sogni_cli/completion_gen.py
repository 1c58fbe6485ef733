"""Regenerate the shell completion scripts in ``completions/``: ``python -m sogni_cli.completion_gen --write completions/``.

The walker and the four shell renderers live in :mod:`sogni_cli.completion_shells`; this module only adds the
real ``sogni`` root command as the default tree and the command line for writing the files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .completion_shells.model import REGENERATE, Node, Opt, Spec
from .completion_shells.walk import ALLOW_MISSING_ENV, FILE_NAMES, SHELLS, render
from .completion_shells import walk as _walk
from .core.errors import SogniError

__all__ = ["ALLOW_MISSING_ENV", "FILE_NAMES", "REGENERATE", "SHELLS", "Node", "Opt", "Spec", "build_spec",
           "generate", "main", "render", "root_command", "write_all"]


def root_command() -> Any:
    """The root ``sogni`` command object, for walking the command tree."""
    import typer.main

    from .app import app as root_app

    return typer.main.get_command(root_app)


def build_spec(root: Any = None, *, allow_missing: bool | None = None) -> Spec:
    """Walk the command tree from ``root`` (default: the real ``sogni`` command)."""
    return _walk.build_spec(root if root is not None else root_command(), allow_missing=allow_missing)


def generate(shell: str, root: Any = None) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    return render(shell, build_spec(root))


def write_all(folder: str | os.PathLike[str], root: Any = None) -> list[Path]:
    """Write the four scripts into ``folder``; returns the paths written."""
    spec = build_spec(root)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for shell in SHELLS:
        path = out / FILE_NAMES[shell]
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(render(shell, spec))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m sogni_cli.completion_gen",
                                     description="Generate the sogni shell completion scripts.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="DIR", help="write sogni.bash, _sogni, sogni.fish and sogni.ps1 into DIR")
    group.add_argument("--print", metavar="SHELL", choices=SHELLS, help="print one script")
    args = parser.parse_args(argv)
    try:
        if args.write:
            for path in write_all(args.write):
                sys.stderr.write(f"Wrote {path}\n")
        else:
            sys.stdout.write(generate(args.print))
    except SogniError as exc:
        sys.stderr.write(f"Error: {exc.message}\n" + (f"Hint: {exc.hint}\n" if exc.hint else ""))
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
