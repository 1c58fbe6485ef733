"""`sogni completion bash|zsh|fish|powershell`: print a shell completion script (contract §9)."""

from __future__ import annotations

import sys

import typer

from ..core.errors import UsageError
from ._common import make_app

app = make_app(
    help="Print a shell completion script (bash, zsh, fish, powershell).",
    epilog="""\b
The scripts are static (completing never starts Python) and are the same as the files in
completions/. Model names come from a cache that `sogni models` refreshes.

\b
Examples:
  sogni completion bash > ~/.local/share/bash-completion/completions/sogni
  sogni completion zsh > ~/.zfunc/_sogni        (with fpath+=(~/.zfunc) before compinit)
  sogni completion fish > ~/.config/fish/completions/sogni.fish
  sogni completion powershell | Out-String | Invoke-Expression""",
)

_ALIASES = {"pwsh": "powershell", "ps": "powershell"}


@app.command()
def completion(
    ctx: typer.Context,
    shell: str = typer.Argument(..., help="bash, zsh, fish or powershell.", show_default=False),
) -> None:
    """Print a shell completion script (bash, zsh, fish, powershell)."""
    from ..completion_shells.walk import SHELLS, generate

    key = _ALIASES.get(shell.strip().lower(), shell.strip().lower())
    if key not in SHELLS:
        raise UsageError(f"Unknown shell {shell!r}: one of {', '.join(SHELLS)}.", hint="sogni completion bash")
    text = generate(key, ctx.find_root().command)
    sys.stdout.write(text)
    sys.stdout.flush()
