"""The walked command tree that every shell's completion script is rendered from."""

from __future__ import annotations

from dataclasses import dataclass, field

PROG = "sogni"
REGENERATE = "python -m sogni_cli.completion_gen --write completions/"


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
