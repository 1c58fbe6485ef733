"""The bash completion engine and its renderer."""

from __future__ import annotations

from .model import Node, Opt, Spec
from .common import Dialect, fill, header, option_keys, sq

__all__ = ["TEMPLATE", "render"]

TEMPLATE = r"""
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
        model|lora)
            _sogni_config_dir
            if [ -r "$_sogni_r/${1}s-cache.txt" ]; then
                while IFS=$' \t\r' read -r line || [ -n "$line" ]; do
                    [[ -n "$line" && "$line" == "$2"* ]] && COMPREPLY+=("$line")
                done < "$_sogni_r/${1}s-cache.txt"
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


def _words(node: Node, pairs: list[tuple[str, str]]) -> str:
    return f"        {sq(node.key)}) _sogni_r={sq(' '.join(name for name, _ in pairs))} ;;"


def _kind(node: Node, opt: Opt) -> str:
    return f"        {'|'.join(sq(k) for k in option_keys(node, opt))}) _sogni_r={sq(opt.kind)} ;;"


def _args(node: Node) -> str:
    return f"        {sq(node.key)}) kinds=({' '.join(sq(k) for k in node.args)}); variadic={int(node.variadic)} ;;"


_DIALECT = Dialect(TEMPLATE, _words, _kind, _args, tools=lambda tools: sq(" ".join(tools)), no_args="        *) ;;")


def render(spec: Spec) -> str:
    """The bash completion script."""
    return header("bash", spec) + fill(_DIALECT, spec)
