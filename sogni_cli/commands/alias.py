"""``sogni alias``: short names for models, resolved wherever a model is named."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.term import clean_text, err
from ..render.output import out, out_json
from ._common import make_app

EPILOG = """\b
Examples:
  sogni alias set fast qwen3.6-35b-a3b-gguf-iq4xs
  sogni chat -m fast "Hello"
  sogni alias list
  sogni alias rm fast
"""

app = make_app("Short names for models (used by -m/--model, presets, recipes and profiles).", epilog=EPILOG,
               no_args_is_help=True)


def _config_dir(ctx: typer.Context) -> Path:
    from ._common import settings

    return settings(ctx, lenient=True).config_dir


@app.command("set")
def set_(ctx: typer.Context, name: str = typer.Argument(..., show_default=False),
         model: str = typer.Argument(..., help="The model id it stands for.", show_default=False)) -> None:
    """Make NAME stand for MODEL."""
    from ..core.presets import set_alias

    set_alias(_config_dir(ctx), name, model)
    err(f"{name} -> {model}")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="One JSON object.")) -> None:
    """The aliases, one per line: NAME MODEL."""
    from ..core.presets import aliases

    data = aliases(_config_dir(ctx))
    if as_json:
        out_json(data)
        return
    for name in sorted(data):
        out(clean_text(f"{name}  {data[name]}"))


@app.command()
def rm(ctx: typer.Context, name: str = typer.Argument(..., show_default=False)) -> None:
    """Remove an alias."""
    from ..core.presets import remove_alias

    remove_alias(_config_dir(ctx), name)
    err(f"Removed alias {name}.")
