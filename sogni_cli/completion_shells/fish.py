"""The fish completion engine and its renderer."""

from __future__ import annotations

from .model import Node, Opt, Spec
from .common import Dialect, fill, header, option_keys

__all__ = ["TEMPLATE", "render"]

TEMPLATE = r"""
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
        case model lora
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
            if test -r "$dir/$kind"s-cache.txt
                string trim < "$dir/$kind"s-cache.txt | string match -v -- ''
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


def _fq(text: str) -> str:
    """Single-quoted for fish."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _words(node: Node, pairs: list[tuple[str, str]]) -> str:
    """NAME<tab>DESCRIPTION lines, one argument per line."""
    items = " \\\n                ".join(_fq(name) + (f"\\t{_fq(help_)}" if help_ else "") for name, help_ in pairs)
    return f"        case {_fq(node.key)}\n            printf '%s\\n' {items}"


def _kind(node: Node, opt: Opt) -> str:
    return f"        case {' '.join(_fq(k) for k in option_keys(node, opt))}\n            echo {_fq(opt.kind)}"


def _args(node: Node) -> str:
    values = " ".join(_fq(k) for k in node.args)
    return f"        case {_fq(node.key)}\n            set kinds {values}\n            set variadic {int(node.variadic)}"


_DIALECT = Dialect(TEMPLATE, _words, _kind, _args, tools=" ".join)


def render(spec: Spec) -> str:
    """The fish completion script."""
    return header("fish", spec) + fill(_DIALECT, spec)
