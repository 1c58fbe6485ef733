"""The zsh completion engine and its renderer."""

from __future__ import annotations

from .model import PROG, Node, Opt, Spec
from .common import Dialect, fill, header, option_keys, sq

__all__ = ["TEMPLATE", "render"]

TEMPLATE = r"""
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
    (model|lora)
      if [[ -n ${SOGNI_CONFIG_DIR:-} ]]; then
        dir=${SOGNI_CONFIG_DIR/#\~/$HOME}
      elif [[ $OSTYPE == darwin* ]]; then
        dir="$HOME/Library/Application Support/sogni"
      else
        dir="${XDG_CONFIG_HOME:-$HOME/.config}/sogni"
      fi
      if [[ -r $dir/${kind}s-cache.txt ]]; then
        values=(${(f)"$(<$dir/${kind}s-cache.txt)"})
        values=(${values//[[:space:]]/})
        _wanted ${kind}s expl $kind compadd -a values
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


def _words(node: Node, pairs: list[tuple[str, str]]) -> str:
    """NAME:DESCRIPTION items for _describe (a ':' in a name is escaped)."""
    items = " ".join(sq(name.replace(":", "\\:") + (f":{help_}" if help_ else "")) for name, help_ in pairs)
    return f"    ({sq(node.key)}) reply=({items}) ;;"


def _kind(node: Node, opt: Opt) -> str:
    return f"    ({'|'.join(sq(k) for k in option_keys(node, opt))}) REPLY={sq(opt.kind)} ;;"


def _args(node: Node) -> str:
    return f"    ({sq(node.key)}) kinds=({' '.join(sq(k) for k in node.args)}); variadic={int(node.variadic)} ;;"


_DIALECT = Dialect(TEMPLATE, _words, _kind, _args, tools=" ".join, no_args="    (*) ;;")


def render(spec: Spec) -> str:
    """The zsh completion script (an autoloadable ``_sogni`` function file)."""
    return f"#compdef {PROG}\n" + header("zsh", spec) + fill(_DIALECT, spec)
