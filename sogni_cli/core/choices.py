"""Every list of allowed values, defined once.

The commands check against these, their help texts name them, the completion generator offers them and
the recipe schema lists them: a value added here appears everywhere (and the generated files,
``completions/*`` and ``recipes/schema.json``, are checked by the tests to be current).
"""

from __future__ import annotations

#: ``chat --tools``: which Sogni tools the server offers the model (``rich`` is the older name of
#: ``creative-tools``).
TOOLS_MODES: tuple[str, ...] = ("default", "none", "rich", "creative-tools", "creative-agent")
#: How a request is paid for.
TOKEN_TYPES: tuple[str, ...] = ("spark", "sogni", "auto")
#: ``--on-exists``: what to do when a file of the same name exists.
ON_EXISTS: tuple[str, ...] = ("suffix", "overwrite", "skip", "error")
#: ``chat --task-profile``.
TASK_PROFILES: tuple[str, ...] = ("general", "coding", "reasoning")
#: ``chat --tool-choice`` words (a function name is allowed too).
TOOL_CHOICES: tuple[str, ...] = ("auto", "none", "required")
#: How a request is billed (``--billing-mode``).
BILLING_MODES: tuple[str, ...] = ("auto", "subscription", "tokens")
#: Recipe job kinds, in the order the documentation lists them.
JOB_KINDS: tuple[str, ...] = ("chat", "image", "edit", "video", "music", "speech", "tool", "template")


def one_of(values: tuple[str, ...], sep: str = " | ") -> str:
    """``a | b | c``: the values as a help text shows them."""
    return sep.join(values)
