"""What a recipe will do besides sending requests: the local commands it can run (chat jobs whose function
files have a ``command``), the files it reads from outside its own folder, and the files it uploads.

``recipe validate`` and ``recipe plan`` show this; ``recipe run`` refuses a recipe with local commands
unless ``--allow-commands`` is given. A recipe is someone else's file: running it must never run a program
the reader was not told about.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.errors import UsageError
from .bridge import CHAT_PATH_FIELDS, MEDIA_PATH_FIELDS, _as_list
from .template import Pending


def _inside(path: Path, folder: Path) -> bool:
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == os.path.realpath(folder)
    except ValueError:  # another drive
        return False


def effects(plan: Any) -> dict[str, list[dict[str, Any]]]:
    """``{"commands": [...], "reads_outside": [...], "uploads": [...]}`` for the planned jobs, in job order."""
    base = Path(plan.recipe.base_dir)
    commands: list[dict[str, Any]] = []
    outside: list[dict[str, Any]] = []
    uploads: list[dict[str, Any]] = []
    seen_outside: set[tuple[str, str]] = set()

    def read(uid: str, field: str, value: Any) -> Path | None:
        if isinstance(value, Pending) or value is None:
            return None
        p = Path(str(value)).expanduser()
        p = Path(os.path.normpath(p if p.is_absolute() else base / p))
        if not _inside(p, base) and (uid, str(p)) not in seen_outside:
            seen_outside.add((uid, str(p)))
            outside.append({"job": uid, "field": field, "path": str(p)})
        return p

    for pj in plan.jobs:
        uid, kind, fields = pj.uid, pj.kind, pj.fields or {}
        if kind == "chat":
            for field in CHAT_PATH_FIELDS + ("messages", "response_format"):
                values = _as_list(fields.get(field))
                if field == "response_format":
                    values = [v for v in values if str(v) not in ("json", "text")]
                if field == "messages":
                    values = [v for v in values if isinstance(v, (str, Pending))]
                for value in values:
                    path = read(uid, field, value)
                    if field == "images":
                        uploads.append({"job": uid, "field": field, "path": str(path) if path else str(value)})
                    if field == "functions" and path is not None:
                        commands.extend(_commands(uid, path))
        else:
            for field in MEDIA_PATH_FIELDS:
                for value in _as_list(fields.get(field)):
                    path = read(uid, field, value)
                    uploads.append({"job": uid, "field": field, "path": str(path) if path else str(value)})
    return {"commands": commands, "reads_outside": outside, "uploads": uploads}


def _commands(uid: str, path: Path) -> list[dict[str, Any]]:
    from ..api.chat import load_functions

    try:
        functions = load_functions(str(path))
    except UsageError:
        return []  # reported as a problem of the job by the plan
    return [{"job": uid, "function": f.name, "command": list(f.command), "file": str(path)}
            for f in functions if f.command]


def effects_text(found: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Lines for a terminal: what runs, what is read from elsewhere, what is uploaded ([] when nothing)."""
    from ..core.term import clean_text

    lines: list[str] = []
    if found["commands"]:
        lines.append("Local commands this recipe can run (recipe run needs --allow-commands):")
        for c in found["commands"]:
            argv = " ".join(_quote(a) for a in c["command"])
            lines.append(clean_text(f"  {c['job']}: {c['function']}: {argv}  (from {c['file']})"))
    if found["reads_outside"]:
        lines.append("Files read from outside the recipe's folder:")
        for r in found["reads_outside"]:
            lines.append(clean_text(f"  {r['job']}: {r['field']}: {r['path']}"))
    if found["uploads"]:
        lines.append("Files uploaded:")
        for u in found["uploads"]:
            lines.append(clean_text(f"  {u['job']}: {u['path']}"))
    return lines


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def refuse_commands(found: dict[str, list[dict[str, Any]]], file: str) -> None:
    """The check at the start of ``recipe run``: local commands need ``--allow-commands``."""
    if not found["commands"]:
        return
    listed = "; ".join(f"{c['job']}: {c['function']} runs {' '.join(_quote(a) for a in c['command'])}"
                       for c in found["commands"][:10])
    more = len(found["commands"]) - 10
    raise UsageError(f"{file} runs local commands: {listed}" + (f" (and {more} more)" if more > 0 else "") + ".",
                     hint="Read them (`sogni recipe plan FILE`), then run with --allow-commands if you trust them.")
