"""Static shell completion scripts for bash, zsh, fish and PowerShell (contract §9).

The command tree is walked once, at generation time: every command, its subcommands, its options (and
whether each takes a value, and what kind of value), and its positional arguments. The result is written
into a small, fixed completion engine for each shell, so completing never starts Python.

Value kinds: ``value`` (anything; nothing is offered), ``file``, ``dir``, ``model`` (ids from the local
cache ``<config dir>/models-cache.txt`` that ``sogni models`` refreshes, read by the shell at completion
time), ``tool`` (the hosted tool catalogue, embedded), ``choice:A B C``. A flag has the empty kind.

Regenerate the shipped scripts with ``python -m sogni_cli.completion_gen --write completions/``.

The tree is read through the command objects' attributes only, so this module does not import the
command-line framework itself; :func:`sogni_cli.commands.completion.root_command` builds the root.
Set ``SOGNI_COMPLETION_ALLOW_MISSING=1`` to skip command modules that are not written yet (development
only); otherwise a missing command module is an error.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import SogniError

__all__ = [
    "SHELLS", "FILE_NAMES", "Opt", "Node", "Spec", "build_spec", "render", "generate", "write_all", "main",
]

PROG = "sogni"
ALLOW_MISSING_ENV = "SOGNI_COMPLETION_ALLOW_MISSING"
REGENERATE = "python -m sogni_cli.completion_gen --write completions/"
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
MODEL_OPTION_COMMANDS = frozenset({("chat",)})
MODEL_OPTIONS = frozenset({"-m", "--model"})
# Commands whose first positional argument is a hosted tool name.
TOOL_ARGUMENT_COMMANDS = frozenset({("tools", "show"), ("tools", "run")})
# Commands whose first positional argument is a config.yaml setting name.
SETTING_ARGUMENT_COMMANDS = frozenset({("config", "get"), ("config", "set"), ("config", "unset")})
# Positional arguments that name files, by parameter name (besides arguments typed as a path).
FILE_ARGUMENT_NAMES = frozenset({"file", "files", "path", "paths", "recipe", "recipes", "manifest"})

_WORD = re.compile(r"^[A-Za-z0-9_.:+@%/-]+$")
_DESC_LIMIT = 72


# --------------------------------------------------------------------------------------------- model


@dataclass
class Opt:
    names: list[str]  # every spelling: -m, --model; --think, --no-think
    help: str
    kind: str  # "" = flag; otherwise value, file, dir, model, tool, choice:A B C


@dataclass
class Node:
    path: tuple[str, ...]
    help: str = ""
    subs: list[tuple[str, str]] = field(default_factory=list)  # (name, help), sorted
    opts: list[Opt] = field(default_factory=list)
    args: list[str] = field(default_factory=list)  # kinds of the positional arguments, in order
    variadic: bool = False  # the last positional argument repeats

    @property
    def key(self) -> str:
        """'sogni', 'sogni chat', 'sogni tools show': how the shell scripts name the command."""
        return " ".join((PROG,) + self.path)

    def option_words(self) -> list[tuple[str, str]]:
        """(option name, help), sorted by name."""
        return sorted(((n, o.help) for o in self.opts for n in o.names), key=lambda t: t[0])


@dataclass
class Spec:
    nodes: list[Node]  # sorted by path; the root first
    tools: list[str]
    skipped: list[str] = field(default_factory=list)  # commands left out (SOGNI_COMPLETION_ALLOW_MISSING)


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
        from .config import PROFILE_KEYS

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
    if type(cmd).__name__ != "LazyGroup":
        return {}
    from .app import COMMANDS

    return {name: (entry[0], entry[1]) for name, entry in COMMANDS.items()}


def build_spec(root: Any = None, *, allow_missing: bool | None = None) -> Spec:
    """Walk the command tree from ``root`` (default: the real ``sogni`` command)."""
    if root is None:
        from .commands.completion import root_command

        root = root_command()
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
    from . import catalog

    tools = sorted(catalog.load().names())
    for t in tools:
        _choice_kind([t])  # only plain words
    nodes.sort(key=lambda n: n.path)
    return Spec(nodes=nodes, tools=tools, skipped=skipped)


# --------------------------------------------------------------------------------------------- shells


def _sq(text: str) -> str:
    """Single-quoted for bash and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fq(text: str) -> str:
    """Single-quoted for fish."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pq(text: str) -> str:
    """Single-quoted for PowerShell."""
    return "'" + text.replace("'", "''") + "'"


def _header(shell: str, spec: Spec, title: str | None = None) -> str:
    lines = [
        f"{title or shell} completion for {PROG}.",
        f"Generated by `{PROG} completion {shell}` from the command tree; do not edit.",
        f"Regenerate the copies in completions/ with: {REGENERATE}",
        "Installation: see completions/README.md. Model names come from the cache that `sogni models`",
        "writes (<config dir>/models-cache.txt); tool names are the hosted tool catalogue.",
    ]
    if spec.skipped:
        lines.append("INCOMPLETE: commands left out (module missing): " + ", ".join(spec.skipped))
    return "".join(f"# {line}\n" for line in lines)


def _arg_nodes(spec: Spec) -> list[Node]:
    return [n for n in spec.nodes if any(k != "value" for k in n.args)]


def _item(name: str, help_: str) -> str:
    """'NAME DESCRIPTION': names never hold spaces, so the first space splits them."""
    return f"{name} {help_ or name}"


_BASH = r"""
_sogni_subcommands() {
    case "$1" in
@@SUBS@@
        *) _sogni_r='' ;;
    esac
}

_sogni_options() {
    case "$1" in
@@OPTS@@
        *) _sogni_r='' ;;
    esac
}

# The kind of value an option of a command takes; empty for a flag.
_sogni_option_kind() {
    case "$1|$2" in
@@KINDS@@
        *) _sogni_r='' ;;
    esac
}

# The kind of the positional argument number $2 (from 0) of command $1.
_sogni_arg_kind() {
    local kinds=() variadic=0
    case "$1" in
@@ARGS@@
    esac
    if [ "$2" -lt "${#kinds[@]}" ]; then
        _sogni_r="${kinds[$2]}"
    elif [ "$variadic" = 1 ] && [ "${#kinds[@]}" -gt 0 ]; then
        _sogni_r="${kinds[${#kinds[@]}-1]}"
    else
        _sogni_r=''
    fi
}

_sogni_config_dir() {
    if [ -n "${SOGNI_CONFIG_DIR:-}" ]; then
        _sogni_r="${SOGNI_CONFIG_DIR/#\~/$HOME}"
    else
        case "${OSTYPE:-}" in
            darwin*) _sogni_r="$HOME/Library/Application Support/sogni" ;;
            *) _sogni_r="${XDG_CONFIG_HOME:-$HOME/.config}/sogni" ;;
        esac
    fi
}

_sogni_complete_value() {
    local line words=''
    case "$1" in
        file|dir)
            compopt -o filenames 2>/dev/null
            while IFS= read -r line; do
                COMPREPLY+=("$line")
            done < <(if [ "$1" = dir ]; then compgen -d -- "$2"; else compgen -f -- "$2"; fi)
            return 0 ;;
        model)
            _sogni_config_dir
            if [ -r "$_sogni_r/models-cache.txt" ]; then
                while IFS=$' \t\r' read -r line || [ -n "$line" ]; do
                    [[ -n "$line" && "$line" == "$2"* ]] && COMPREPLY+=("$line")
                done < "$_sogni_r/models-cache.txt"
            fi
            return 0 ;;
        tool) words=@@TOOLS@@ ;;
        choice:*) words="${1#choice:}" ;;
        *) return 0 ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$2"))
}

_sogni() {
    local IFS=$' \t\n' cur="${COMP_WORDS[COMP_CWORD]}" node=sogni word kind i=1 npos=0 ddash=0 _sogni_r=''
    COMPREPLY=()
    while [ "$i" -lt "$COMP_CWORD" ]; do
        word="${COMP_WORDS[i]}"
        if [ "$ddash" = 0 ] && [ "$word" = "--" ]; then
            ddash=1
        elif [ "$ddash" = 0 ] && [[ "$word" == -?* ]]; then
            if [[ "$word" != *=* ]]; then
                _sogni_option_kind "$node" "$word"
                kind="$_sogni_r"
                if [ -n "$kind" ]; then
                    # The value follows: "--opt VALUE", or "--opt = VALUE" when bash splits at "=".
                    if [ $((i + 1)) -eq "$COMP_CWORD" ]; then
                        [ "$cur" = "=" ] && cur=''
                        _sogni_complete_value "$kind" "$cur"
                        return 0
                    fi
                    if [ "${COMP_WORDS[i+1]}" = "=" ]; then
                        if [ $((i + 2)) -eq "$COMP_CWORD" ]; then
                            _sogni_complete_value "$kind" "$cur"
                            return 0
                        fi
                        i=$((i + 1))
                    fi
                    i=$((i + 1))
                fi
            fi
        else
            _sogni_subcommands "$node"
            if [ "$npos" = 0 ] && [ -n "$_sogni_r" ] && [[ " $_sogni_r " == *" $word "* ]]; then
                node="$node $word"
            else
                npos=$((npos + 1))
            fi
        fi
        i=$((i + 1))
    done

    if [ "$ddash" = 0 ] && [[ "$cur" == --?*=* ]]; then
        _sogni_option_kind "$node" "${cur%%=*}"
        if [ -n "$_sogni_r" ]; then
            word="${cur%%=*}="
            _sogni_complete_value "$_sogni_r" "${cur#*=}"
            [ "${#COMPREPLY[@]}" -gt 0 ] && COMPREPLY=("${COMPREPLY[@]/#/$word}")
            return 0
        fi
    fi
    if [ "$ddash" = 0 ] && [[ "$cur" == -* ]]; then
        _sogni_options "$node"
        COMPREPLY=($(compgen -W "$_sogni_r" -- "$cur"))
        return 0
    fi
    _sogni_subcommands "$node"
    if [ "$npos" = 0 ] && [ -n "$_sogni_r" ]; then
        COMPREPLY=($(compgen -W "$_sogni_r" -- "$cur"))
        return 0
    fi
    _sogni_arg_kind "$node" "$npos"
    _sogni_complete_value "$_sogni_r" "$cur"
    return 0
}

complete -F _sogni sogni
"""


def _bash(spec: Spec) -> str:
    subs, opts, kinds, args = [], [], [], []
    for n in spec.nodes:
        key = _sq(n.key)
        if n.subs:
            subs.append(f"        {key}) _sogni_r={_sq(' '.join(name for name, _ in n.subs))} ;;")
        if n.opts:
            opts.append(f"        {key}) _sogni_r={_sq(' '.join(name for name, _ in n.option_words()))} ;;")
        for o in n.opts:
            if o.kind:
                pats = "|".join(_sq(f"{n.key}|{name}") for name in o.names)
                kinds.append(f"        {pats}) _sogni_r={_sq(o.kind)} ;;")
    for n in _arg_nodes(spec):
        values = " ".join(_sq(k) for k in n.args)
        args.append(f"        {_sq(n.key)}) kinds=({values}); variadic={int(n.variadic)} ;;")
    body = (_BASH.replace("@@SUBS@@", "\n".join(subs)).replace("@@OPTS@@", "\n".join(opts))
            .replace("@@KINDS@@", "\n".join(kinds)).replace("@@ARGS@@", "\n".join(args) or "        *) ;;")
            .replace("@@TOOLS@@", _sq(" ".join(spec.tools))))
    return _header("bash", spec) + body


_ZSH = r"""
_sogni_subcommands() {
  case $1 in
@@SUBS@@
    (*) reply=() ;;
  esac
}

_sogni_options() {
  case $1 in
@@OPTS@@
    (*) reply=() ;;
  esac
}

# The kind of value an option of a command takes; empty for a flag.
_sogni_option_kind() {
  case "$1|$2" in
@@KINDS@@
    (*) REPLY='' ;;
  esac
}

# The kind of the positional argument number $2 (from 0) of command $1.
_sogni_arg_kind() {
  local -a kinds
  local variadic=0
  case $1 in
@@ARGS@@
  esac
  if (( $2 < ${#kinds} )); then
    REPLY=${kinds[$2 + 1]}
  elif (( variadic && ${#kinds} )); then
    REPLY=${kinds[-1]}
  else
    REPLY=''
  fi
}

_sogni_complete_value() {
  local kind=$1 dir expl
  local -a values
  case $kind in
    (file) _files ;;
    (dir) _files -/ ;;
    (model)
      if [[ -n ${SOGNI_CONFIG_DIR:-} ]]; then
        dir=${SOGNI_CONFIG_DIR/#\~/$HOME}
      elif [[ $OSTYPE == darwin* ]]; then
        dir="$HOME/Library/Application Support/sogni"
      else
        dir="${XDG_CONFIG_HOME:-$HOME/.config}/sogni"
      fi
      if [[ -r $dir/models-cache.txt ]]; then
        values=(${(f)"$(<$dir/models-cache.txt)"})
        values=(${values//[[:space:]]/})
        _wanted models expl 'model' compadd -a values
      fi ;;
    (tool)
      values=(@@TOOLS@@)
      _wanted tools expl 'tool' compadd -a values ;;
    (choice:*)
      values=(${=${kind#choice:}})
      _wanted values expl 'value' compadd -a values ;;
  esac
}

_sogni() {
  local node=sogni word REPLY=''
  local -i i=2 npos=0 ddash=0
  local -a reply names _sogni_items
  while (( i < CURRENT )); do
    word=${words[i]}
    if (( ! ddash )) && [[ $word == -- ]]; then
      ddash=1
    elif (( ! ddash )) && [[ $word == -?* ]]; then
      if [[ $word != *=* ]]; then
        _sogni_option_kind "$node" "$word"
        if [[ -n $REPLY ]]; then
          if (( i + 1 == CURRENT )); then
            _sogni_complete_value "$REPLY"
            return
          fi
          (( i++ ))
        fi
      fi
    else
      _sogni_subcommands "$node"
      names=(${reply%%:*})
      if (( npos == 0 && ${#names} && ${names[(Ie)$word]} )); then
        node="$node $word"
      else
        (( npos++ ))
      fi
    fi
    (( i++ ))
  done

  if (( ! ddash )) && [[ $PREFIX == --?*=* ]]; then
    _sogni_option_kind "$node" "${PREFIX%%=*}"
    if [[ -n $REPLY ]]; then
      compset -P '*='
      _sogni_complete_value "$REPLY"
      return
    fi
  fi
  if (( ! ddash )) && [[ $PREFIX == -* ]]; then
    _sogni_options "$node"
    _sogni_items=("${reply[@]}")
    _describe -t options 'option' _sogni_items
    return
  fi
  _sogni_subcommands "$node"
  if (( npos == 0 && ${#reply} )); then
    _sogni_items=("${reply[@]}")
    _describe -t commands 'command' _sogni_items
    return
  fi
  _sogni_arg_kind "$node" $npos
  _sogni_complete_value "$REPLY"
}

if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
  _sogni "$@"
else
  compdef _sogni sogni
fi
"""


def _zsh_items(pairs: list[tuple[str, str]]) -> str:
    return " ".join(_sq(name.replace(":", "\\:") + (f":{help_}" if help_ else "")) for name, help_ in pairs)


def _zsh(spec: Spec) -> str:
    subs, opts, kinds, args = [], [], [], []
    for n in spec.nodes:
        key = _sq(n.key)
        if n.subs:
            subs.append(f"    ({key}) reply=({_zsh_items(n.subs)}) ;;")
        if n.opts:
            opts.append(f"    ({key}) reply=({_zsh_items(n.option_words())}) ;;")
        for o in n.opts:
            if o.kind:
                pats = "|".join(_sq(f"{n.key}|{name}") for name in o.names)
                kinds.append(f"    ({pats}) REPLY={_sq(o.kind)} ;;")
    for n in _arg_nodes(spec):
        values = " ".join(_sq(k) for k in n.args)
        args.append(f"    ({_sq(n.key)}) kinds=({values}); variadic={int(n.variadic)} ;;")
    body = (_ZSH.replace("@@SUBS@@", "\n".join(subs)).replace("@@OPTS@@", "\n".join(opts))
            .replace("@@KINDS@@", "\n".join(kinds)).replace("@@ARGS@@", "\n".join(args) or "    (*) ;;")
            .replace("@@TOOLS@@", " ".join(spec.tools)))
    return f"#compdef {PROG}\n" + _header("zsh", spec) + body


_FISH = r"""
function __sogni_subcommands
    switch "$argv[1]"
@@SUBS@@
    end
end

function __sogni_options
    switch "$argv[1]"
@@OPTS@@
    end
end

# The kind of value an option of a command takes; nothing for a flag.
function __sogni_option_kind
    switch "$argv[1]|$argv[2]"
@@KINDS@@
    end
end

# The kind of the positional argument number $argv[2] (from 0) of command $argv[1].
function __sogni_arg_kind
    set -l kinds
    set -l variadic 0
    switch "$argv[1]"
@@ARGS@@
    end
    set -l idx (math $argv[2] + 1)
    if test $idx -le (count $kinds)
        echo $kinds[$idx]
    else if test $variadic = 1; and test (count $kinds) -gt 0
        echo $kinds[-1]
    end
end

function __sogni_complete_value
    set -l kind $argv[1]
    set -l cur $argv[2]
    switch "$kind"
        case file
            __fish_complete_path "$cur"
        case dir
            __fish_complete_directories "$cur"
        case model
            set -l dir
            if test -n "$SOGNI_CONFIG_DIR"
                set dir (string replace -r -- '^~' "$HOME" "$SOGNI_CONFIG_DIR")
            else if test (uname) = Darwin
                set dir "$HOME/Library/Application Support/sogni"
            else if test -n "$XDG_CONFIG_HOME"
                set dir "$XDG_CONFIG_HOME/sogni"
            else
                set dir "$HOME/.config/sogni"
            end
            if test -r "$dir/models-cache.txt"
                string trim < "$dir/models-cache.txt" | string match -v -- ''
            end
        case tool
            printf '%s\n' @@TOOLS@@
        case 'choice:*'
            string split ' ' -- (string replace -- 'choice:' '' "$kind")
    end
end

function __sogni_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l node sogni
    set -l npos 0
    set -l ddash 0
    set -l n (count $tokens)
    set -l i 2
    while test $i -le $n
        set -l word $tokens[$i]
        if test $ddash = 0; and test "$word" = '--'
            set ddash 1
        else if test $ddash = 0; and string match -q -- '-?*' "$word"
            if not string match -q -- '*=*' "$word"
                set -l kind (__sogni_option_kind "$node" "$word")
                if test -n "$kind"
                    if test $i -eq $n
                        __sogni_complete_value "$kind" "$cur"
                        return
                    end
                    set i (math $i + 1)
                end
            end
        else
            set -l subs (__sogni_subcommands "$node" | string replace -r '\t.*' '')
            if test $npos = 0; and contains -- "$word" $subs
                set node "$node $word"
            else
                set npos (math $npos + 1)
            end
        end
        set i (math $i + 1)
    end

    if test $ddash = 0; and string match -qr -- '^--[^=]+=' "$cur"
        set -l opt (string replace -r -- '=.*' '' "$cur")
        set -l kind (__sogni_option_kind "$node" "$opt")
        if test -n "$kind"
            for value in (__sogni_complete_value "$kind" (string replace -r -- '^[^=]*=' '' "$cur"))
                echo "$opt=$value"
            end
            return
        end
    end
    if test $ddash = 0; and string match -q -- '-*' "$cur"
        __sogni_options "$node"
        return
    end
    set -l subs (__sogni_subcommands "$node")
    if test $npos = 0; and test (count $subs) -gt 0
        printf '%s\n' $subs
        return
    end
    set -l kind (__sogni_arg_kind "$node" $npos)
    __sogni_complete_value "$kind" "$cur"
end

complete -c sogni -e
complete -c sogni -f -a '(__sogni_complete)'
"""


def _fish_items(pairs: list[tuple[str, str]]) -> str:
    return " \\\n                ".join(_fq(name) + (f"\\t{_fq(help_)}" if help_ else "") for name, help_ in pairs)


def _fish(spec: Spec) -> str:
    subs, opts, kinds, args = [], [], [], []
    for n in spec.nodes:
        key = _fq(n.key)
        if n.subs:
            subs.append(f"        case {key}\n            printf '%s\\n' {_fish_items(n.subs)}")
        if n.opts:
            opts.append(f"        case {key}\n            printf '%s\\n' {_fish_items(n.option_words())}")
        for o in n.opts:
            if o.kind:
                pats = " ".join(_fq(f"{n.key}|{name}") for name in o.names)
                kinds.append(f"        case {pats}\n            echo {_fq(o.kind)}")
    for n in _arg_nodes(spec):
        values = " ".join(_fq(k) for k in n.args)
        args.append(f"        case {_fq(n.key)}\n            set kinds {values}\n            set variadic {int(n.variadic)}")
    body = (_FISH.replace("@@SUBS@@", "\n".join(subs)).replace("@@OPTS@@", "\n".join(opts))
            .replace("@@KINDS@@", "\n".join(kinds)).replace("@@ARGS@@", "\n".join(args))
            .replace("@@TOOLS@@", " ".join(spec.tools)))
    return _header("fish", spec) + body


_POWERSHELL = r"""
Register-ArgumentCompleter -Native -CommandName 'sogni' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    # Items are 'NAME DESCRIPTION': names never hold spaces.
    function SogniSubcommands([string]$node) {
        switch -Exact -CaseSensitive ($node) {
@@SUBS@@
        }
        return @()
    }

    function SogniOptions([string]$node) {
        switch -Exact -CaseSensitive ($node) {
@@OPTS@@
        }
        return @()
    }

    # The kind of value an option of a command takes; empty for a flag.
    function SogniOptionKind([string]$node, [string]$option) {
        switch -Exact -CaseSensitive ("$node|$option") {
@@KINDS@@
        }
        return ''
    }

    # The kind of the positional argument number $index (from 0) of command $node.
    function SogniArgKind([string]$node, [int]$index) {
        $kinds = @()
        $variadic = $false
        switch -Exact -CaseSensitive ($node) {
@@ARGS@@
        }
        if ($index -lt $kinds.Count) { return $kinds[$index] }
        if ($variadic -and $kinds.Count -gt 0) { return $kinds[-1] }
        return ''
    }

    function SogniValues([string]$kind, [string]$word) {
        if ($kind -eq 'file' -or $kind -eq 'dir') {
            $found = @([System.Management.Automation.CompletionCompleters]::CompleteFilename($word))
            if ($kind -eq 'dir') { $found = @($found | Where-Object { $_.ResultType -eq 'ProviderContainer' }) }
            return $found
        }
        $values = @()
        if ($kind -eq 'model') {
            $dir = $env:SOGNI_CONFIG_DIR
            if (-not $dir) {
                if ($IsMacOS) { $dir = Join-Path $HOME 'Library/Application Support/sogni' }
                elseif ($env:APPDATA) { $dir = Join-Path $env:APPDATA 'sogni' }
                elseif ($env:XDG_CONFIG_HOME) { $dir = Join-Path $env:XDG_CONFIG_HOME 'sogni' }
                else { $dir = Join-Path $HOME '.config/sogni' }
            }
            $file = Join-Path $dir 'models-cache.txt'
            if (Test-Path -LiteralPath $file -PathType Leaf) {
                $values = @(Get-Content -LiteralPath $file | ForEach-Object { $_.Trim() } | Where-Object { $_ })
            }
        } elseif ($kind -eq 'tool') {
            $values = @(@@TOOLS@@)
        } elseif ($kind.StartsWith('choice:')) {
            $values = @($kind.Substring(7) -split ' ')
        }
        foreach ($value in $values) {
            if ($value.StartsWith($word, [System.StringComparison]::OrdinalIgnoreCase)) {
                [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $value)
            }
        }
    }

    $words = @($commandAst.CommandElements |
        Where-Object { $_.Extent.EndOffset -lt $cursorPosition } |
        ForEach-Object { $_.Extent.Text })
    $node = 'sogni'
    $npos = 0
    $ddash = $false
    $i = 1
    while ($i -lt $words.Count) {
        $w = [string]$words[$i]
        if (-not $ddash -and $w -ceq '--') {
            $ddash = $true
        } elseif (-not $ddash -and $w.Length -gt 1 -and $w.StartsWith('-')) {
            if (-not $w.Contains('=')) {
                $kind = SogniOptionKind $node $w
                if ($kind) {
                    if ($i + 1 -ge $words.Count) { return SogniValues $kind $wordToComplete }
                    $i++
                }
            }
        } else {
            $subs = @(SogniSubcommands $node | ForEach-Object { ($_ -split ' ', 2)[0] })
            if ($npos -eq 0 -and $subs -ccontains $w) { $node = "$node $w" } else { $npos++ }
        }
        $i++
    }

    $word = [string]$wordToComplete
    if (-not $ddash -and $word -match '^(--[^=]+)=(.*)$') {
        $opt = $Matches[1]
        $rest = $Matches[2]
        $kind = SogniOptionKind $node $opt
        if ($kind) {
            foreach ($r in @(SogniValues $kind $rest)) {
                $text = "$opt=" + $r.CompletionText
                [System.Management.Automation.CompletionResult]::new($text, $r.ListItemText, 'ParameterValue', $r.ToolTip)
            }
            return
        }
    }
    if (-not $ddash -and $word.StartsWith('-')) {
        foreach ($item in @(SogniOptions $node)) {
            $name, $desc = $item -split ' ', 2
            if ($name.StartsWith($word, [System.StringComparison]::Ordinal)) {
                [System.Management.Automation.CompletionResult]::new($name, $name, 'ParameterName', $desc)
            }
        }
        return
    }
    $subs = @(SogniSubcommands $node)
    if ($npos -eq 0 -and $subs.Count -gt 0) {
        foreach ($item in $subs) {
            $name, $desc = $item -split ' ', 2
            if ($name.StartsWith($word, [System.StringComparison]::OrdinalIgnoreCase)) {
                [System.Management.Automation.CompletionResult]::new($name, $name, 'Command', $desc)
            }
        }
        return
    }
    SogniValues (SogniArgKind $node $npos) $word
}
"""


def _ps_items(pairs: list[tuple[str, str]]) -> str:
    return ",\n                ".join(_pq(_item(name, help_)) for name, help_ in pairs)


def _powershell(spec: Spec) -> str:
    subs, opts, kinds, args = [], [], [], []
    for n in spec.nodes:
        key = _pq(n.key)
        if n.subs:
            subs.append(f"            {key} {{ return @(\n                {_ps_items(n.subs)}) }}")
        if n.opts:
            opts.append(f"            {key} {{ return @(\n                {_ps_items(n.option_words())}) }}")
        for o in n.opts:
            if o.kind:
                for name in o.names:
                    kinds.append(f"            {_pq(f'{n.key}|{name}')} {{ return {_pq(o.kind)} }}")
    for n in _arg_nodes(spec):
        values = ", ".join(_pq(k) for k in n.args)
        variadic = "$true" if n.variadic else "$false"
        args.append(f"            {_pq(n.key)} {{ $kinds = @({values}); $variadic = {variadic} }}")
    body = (_POWERSHELL.replace("@@SUBS@@", "\n".join(subs)).replace("@@OPTS@@", "\n".join(opts))
            .replace("@@KINDS@@", "\n".join(kinds)).replace("@@ARGS@@", "\n".join(args))
            .replace("@@TOOLS@@", ", ".join(_pq(t) for t in spec.tools)))
    return _header("powershell", spec, "PowerShell") + body


# --------------------------------------------------------------------------------------------- output


def render(shell: str, spec: Spec) -> str:
    renderers = {"bash": _bash, "zsh": _zsh, "fish": _fish, "powershell": _powershell}
    if shell not in renderers:
        raise SogniError(f"Unknown shell {shell!r}: one of {', '.join(SHELLS)}.")
    return renderers[shell](spec)


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
