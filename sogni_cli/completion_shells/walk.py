"""Static shell completion scripts for bash, zsh, fish and PowerShell (contract §9).

The command tree is walked once, at generation time: every command, its subcommands, its options (and
whether each takes a value, and what kind of value), and its positional arguments. The result is written
into a small, fixed completion engine for each shell, so completing never starts Python. The engines
and their renderers are in :mod:`sogni_cli.completion_shells`; :func:`render` picks one.

Value kinds: ``value`` (anything; nothing is offered), ``file``, ``dir``, ``model`` (ids from the local
cache ``<config dir>/models-cache.txt`` that ``sogni models`` refreshes, read by the shell at completion
time), ``lora`` (ids from ``<config dir>/loras-cache.txt`` that ``sogni loras`` refreshes), ``tool`` (the hosted tool
catalogue, embedded), ``choice:A B C``. A flag has the empty kind.

Regenerate the shipped scripts with ``python -m sogni_cli.completion_gen --write completions/``.

The tree is read through the command objects' attributes only, so this module does not import the
command-line framework itself; :func:`root_command` builds the root.
Set ``SOGNI_COMPLETION_ALLOW_MISSING=1`` to skip command modules that are not written yet (development
only); otherwise a missing command module is an error.
"""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Any, Iterable

from ..core.errors import SogniError
from .model import PROG, Node, Opt, Spec

__all__ = [
    "SHELLS", "FILE_NAMES", "Opt", "Node", "Spec", "build_spec", "render", "generate",
]

ALLOW_MISSING_ENV = "SOGNI_COMPLETION_ALLOW_MISSING"
SHELLS = ("bash", "zsh", "fish", "powershell")
FILE_NAMES = {"bash": "sogni.bash", "zsh": "_sogni", "fish": "sogni.fish", "powershell": "sogni.ps1"}

# Options whose value is a file (besides options typed as a path) or a folder, by name.
FILE_OPTIONS = frozenset({
    "--messages", "--function", "--image", "-i", "--audio", "--video", "--args", "--manifest",
    "--save-messages", "--lyrics", "--response-format",
})
DIR_OPTIONS = frozenset({"-o", "--output-dir"})
# Options with a fixed set of values, by name.
CHOICE_OPTIONS: dict[str, tuple[str, ...]] = {
    "--tools": ("default", "none", "rich", "creative-agent"),
    "--on-exists": ("suffix", "overwrite", "skip", "error"),
    "--token-type": ("spark", "sogni", "auto"),
    "--task-profile": ("general", "coding", "reasoning"),
    "--tool-choice": ("auto", "none", "required"),
}
# Commands whose -m/--model takes a chat model id (the ids `sogni models` caches).
MODEL_OPTION_COMMANDS = frozenset({("chat",), ("image",), ("edit",), ("video",), ("music",), ("speech",), ("loras",)})
MODEL_OPTIONS = frozenset({"-m", "--model"})
# Options whose value is a LoRA name (the ids `sogni loras` caches; a NAME:STRENGTH value starts with one).
LORA_OPTIONS = frozenset({"--lora"})
# Commands whose first positional argument is a hosted tool name.
TOOL_ARGUMENT_COMMANDS = frozenset({("tools", "show"), ("tools", "run")})
# Commands whose first positional argument is a config.yaml setting name.
SETTING_ARGUMENT_COMMANDS = frozenset({("config", "get"), ("config", "set"), ("config", "unset")})
# Positional arguments that name files, by parameter name (besides arguments typed as a path).
FILE_ARGUMENT_NAMES = frozenset({"file", "files", "path", "paths", "recipe", "recipes", "manifest"})

_WORD = re.compile(r"^[A-Za-z0-9_.:+@%/-]+$")
_DESC_LIMIT = 72


# --------------------------------------------------------------------------------------------- model


# --------------------------------------------------------------------------------------------- walking


def _describe(text: str | None) -> str:
    """One short, ASCII-only line: the first sentence of a help text."""
    if not text:
        return ""
    text = text.replace("\b", "")
    first = ""
    for line in text.strip().splitlines():
        if not line.strip():
            break
        first += " " + line.strip()
    first = " ".join(first.split())
    m = re.search(r"(?<=[.!?])\s", first)
    if m:
        first = first[: m.start()]
    first = unicodedata.normalize("NFKD", first).encode("ascii", "ignore").decode("ascii")
    first = first.replace("`", "'")
    if len(first) > _DESC_LIMIT:
        first = first[: _DESC_LIMIT - 3].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return first


def _choice_kind(values: Iterable[Any]) -> str:
    words = [str(v) for v in values]
    for w in words:
        if not _WORD.match(w):
            raise SogniError(f"Completion: value {w!r} cannot be completed safely (spaces or quotes).")
    return "choice:" + " ".join(words)


def _type_kind(ptype: Any) -> str | None:
    """The kind implied by a parameter type: paths, folders and fixed choices."""
    choices = getattr(ptype, "choices", None)
    if choices is not None and getattr(ptype, "name", "") == "choice":
        return _choice_kind(getattr(c, "value", c) for c in choices)
    if getattr(ptype, "name", "") == "path" or type(ptype).__name__.endswith("Path"):
        if getattr(ptype, "dir_okay", True) and not getattr(ptype, "file_okay", True):
            return "dir"
        return "file"
    return None


def _option_kind(path: tuple[str, ...], param: Any) -> str:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    names = set(param.opts) | set(param.secondary_opts)
    if path in MODEL_OPTION_COMMANDS and names & MODEL_OPTIONS:
        return "model"
    if names & LORA_OPTIONS:
        return "lora"
    for name in sorted(names):
        if name in CHOICE_OPTIONS:
            return _choice_kind(CHOICE_OPTIONS[name])
    typed = _type_kind(param.type)
    if typed and typed.startswith("choice:"):
        return typed
    if names & DIR_OPTIONS:
        return "dir"
    if names & FILE_OPTIONS:
        return "file"
    return typed or "value"


def _argument_kind(path: tuple[str, ...], index: int, param: Any) -> str:
    if index == 0 and path in TOOL_ARGUMENT_COMMANDS:
        return "tool"
    if index == 0 and path == ("completion",):
        return _choice_kind(SHELLS)
    if index == 0 and path in SETTING_ARGUMENT_COMMANDS:
        from ..core.config import PROFILE_KEYS

        return _choice_kind(sorted(PROFILE_KEYS))
    typed = _type_kind(param.type)
    if typed:
        return typed
    if param.name in FILE_ARGUMENT_NAMES:
        return "file"
    return "value"


def _context(cmd: Any, name: str, parent: Any) -> Any:
    return cmd.context_class(cmd, info_name=name, parent=parent, **(cmd.context_settings or {}))


def _short_help(cmd: Any) -> str:
    text = getattr(cmd, "short_help", None) or getattr(cmd, "help", None) or ""
    return _describe(text)


def _walk(cmd: Any, path: tuple[str, ...], ctx: Any, nodes: list[Node], missing: list[str],
          skipped: list[str]) -> None:
    node = Node(path=path, help=_short_help(cmd))
    nodes.append(node)
    positional = 0
    for param in cmd.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if getattr(param, "param_type_name", "") == "option":
            node.opts.append(Opt(names=list(param.opts) + list(param.secondary_opts),
                                 help=_describe(getattr(param, "help", None)),
                                 kind=_option_kind(path, param)))
        else:
            node.args.append(_argument_kind(path, positional, param))
            positional += 1
            if param.nargs == -1:
                node.variadic = True
    node.opts.sort(key=lambda o: o.names[0])
    if not hasattr(cmd, "list_commands"):
        return
    if node.args:
        # A group's own positional arguments are not completed: its subcommand comes first.
        node.args, node.variadic = [], False
    from_table = _lazy_modules(cmd)
    for name in sorted(cmd.list_commands(ctx)):
        module, table_help = from_table.get(name, (None, None))
        try:
            sub = cmd.get_command(ctx, name)
        except ModuleNotFoundError as exc:
            if module is None or exc.name != module:
                raise
            missing.append(module)
            skipped.append(" ".join(path + (name,)))
            continue
        if sub is None or getattr(sub, "hidden", False):
            continue
        child = path + (name,)
        node.subs.append((name, _describe(table_help) if table_help else _short_help(sub)))
        _walk(sub, child, _context(sub, name, ctx), nodes, missing, skipped)


def _lazy_modules(cmd: Any) -> dict[str, tuple[str, str]]:
    """name -> (module, one-line help) for a lazily loading group (the root)."""
    table = getattr(cmd, "lazy_commands", None)
    if not isinstance(table, dict):
        return {}
    return {name: (entry[0], entry[1]) for name, entry in table.items()}


def build_spec(root: Any, *, allow_missing: bool | None = None) -> Spec:
    """Walk the command tree from ``root`` (the ``sogni`` command object)."""
    if allow_missing is None:
        allow_missing = os.environ.get(ALLOW_MISSING_ENV, "") not in ("", "0")
    nodes: list[Node] = []
    missing: list[str] = []
    skipped: list[str] = []
    _walk(root, (), _context(root, PROG, None), nodes, missing, skipped)
    if missing and not allow_missing:
        raise SogniError(
            "Cannot build the completion scripts: command module(s) not found: " + ", ".join(missing) + ".",
            hint=f"Every command must be importable (set {ALLOW_MISSING_ENV}=1 only while developing).",
        )
    from .. import catalog

    tools = sorted(catalog.load().names())
    for t in tools:
        _choice_kind([t])  # only plain words
    nodes.sort(key=lambda n: n.path)
    return Spec(nodes=nodes, tools=tools, skipped=skipped)


# --------------------------------------------------------------------------------------------- output


def render(shell: str, spec: Spec) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`) from a walked tree."""
    from . import RENDERERS

    if shell not in RENDERERS:
        raise SogniError(f"Unknown shell {shell!r}: one of {', '.join(SHELLS)}.")
    return RENDERERS[shell](spec)


def generate(shell: str, root: Any) -> str:
    """The completion script for ``shell`` (one of :data:`SHELLS`)."""
    return render(shell, build_spec(root))
