"""``sogni preset``: named chat options (system prompt, model, sampling, tools) for ``--preset NAME``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..core.errors import UsageError
from ..core.term import clean_text, err
from ..render.output import out, out_json
from ._common import make_app

EPILOG = """\b
Examples:
  sogni preset save terse -s "Answer in one sentence." -m fast --temperature 0.2
  sogni chat --preset terse "What is DNS?"
  sogni chat --preset terse --temperature 0.9 "A haiku"     (flags still win)
  sogni preset list
  sogni preset show terse
  sogni preset rm terse
"""

app = make_app("Named chat options for `sogni chat --preset NAME` and recipe chat jobs.", epilog=EPILOG,
               no_args_is_help=True)


def _config_dir(ctx: typer.Context) -> Path:
    from ._common import settings

    return settings(ctx, lenient=True).config_dir


def preset_values(args: list[str]) -> dict[str, Any]:
    """The preset options given as `sogni chat` flags in ``args`` (only those on the command line)."""
    import typer.main
    from ..core.options import parameter_source

    from ..core.presets import PRESET_KEYS
    from ._memory import PARAM_OF
    from .chat import app as chat_app
    from .chat_body import template_kwargs

    cmd = typer.main.get_command(chat_app)
    cctx = cmd.make_context("sogni preset save", list(args))
    given = {name for name in cctx.params if parameter_source(cctx, name) == "COMMANDLINE"}
    if cctx.params.get("prompt"):
        raise UsageError("A preset holds options, not a prompt.", hint="sogni preset save NAME -s \"…\" -m MODEL")
    param_keys = {PARAM_OF.get(k, k): k for k in PRESET_KEYS}
    bad = sorted(given - set(param_keys))
    if bad:
        raise UsageError(f"Not a preset option: {', '.join('--' + b.replace('_', '-') for b in bad)}.",
                         hint="Presets hold the system prompt, model, sampling, tools and format options.")
    values: dict[str, Any] = {}
    for param in sorted(given):
        key, value = param_keys[param], cctx.params[param]
        if key == "template_kwargs":
            value = template_kwargs(list(value or []))
        elif key == "stop":
            value = list(value or [])
        elif key == "response_format" and value not in ("json", "text"):
            p = Path(value)
            if not p.is_file():
                raise UsageError(f"--response-format file not found: {value}")
            value = str(p.resolve())
        values[key] = value
    if not values:
        raise UsageError("Nothing to save: give the options as `sogni chat` flags.",
                         hint='sogni preset save terse -s "Answer in one sentence." -m MODEL')
    return values


@app.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def save(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The preset's name.", show_default=False),
    options: Optional[List[str]] = typer.Argument(None, metavar="[CHAT OPTIONS]...", help="Any `sogni chat` option: -s, -m, --temperature, --tools, …", show_default=False),
) -> None:
    """Save the `sogni chat` options that follow as preset NAME (replacing one of that name)."""
    from ..core.presets import check_name, save_preset

    check_name(name, "preset")
    values = preset_values(list(options or []) + list(ctx.args))
    save_preset(_config_dir(ctx), name, values)
    err(f"Saved preset {name}: {', '.join(sorted(values))}.")


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="One JSON object.")) -> None:
    """The saved presets."""
    from ..core.presets import presets

    data = presets(_config_dir(ctx))
    if as_json:
        out_json(data)
        return
    for name in sorted(data):
        out(clean_text(f"{name}  " + " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}"
                                            for k, v in sorted(data[name].items()))))


@app.command()
def show(ctx: typer.Context, name: str = typer.Argument(..., show_default=False)) -> None:
    """One preset, as JSON."""
    from ..core.presets import get_preset

    out_json(get_preset(_config_dir(ctx), name))


@app.command()
def rm(ctx: typer.Context, name: str = typer.Argument(..., show_default=False)) -> None:
    """Remove a preset."""
    from ..core.presets import remove_preset

    remove_preset(_config_dir(ctx), name)
    err(f"Removed preset {name}.")
