"""`sogni loras`: the LoRAs, their strength ranges and the models each works with (cached)."""

from __future__ import annotations

from typing import Optional

import typer

from ..core.term import clean_text, stdout_is_tty
from ..render.output import out, out_json
from ._common import client, make_app, settings

app = make_app(
    help="List LoRAs, their strength ranges and the models they work with.",
    epilog="""\b
Examples:
  sogni loras
  sogni loras --model z-turbo
  sogni loras --personal --refresh
  sogni image "a fox" --model z-turbo --lora film-grain:0.7""",
)


def _range(r: dict, constraints: dict) -> str:
    lo = r.get("minStrength", constraints.get("minStrength"))
    hi = r.get("maxStrength", constraints.get("maxStrength"))
    default = r.get("defaultStrength")
    text = f"{lo}..{hi}" if lo is not None or hi is not None else ""
    return text + (f" (default {default})" if default is not None else "")


@app.command()
def loras(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", help="Only the LoRAs this model can load.", show_default=False),
    personal: bool = typer.Option(False, "--personal", help="Include your own imported LoRAs."),
    refresh: bool = typer.Option(False, "--refresh", help="Ask the API now instead of using the cache (kept a day)."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the request instead of sending it."),
) -> None:
    """List LoRAs: ids one per line when piped; a table with strength ranges and models on a terminal."""
    from ..api import catalogues

    s = settings(ctx, dry_run=dry_run)
    got = catalogues.loras(client(ctx, dry_run=dry_run), s.config_dir, personal=personal, refresh=refresh)
    items = [r for r in got["items"] if personal or not r.get("personal")]
    if model:
        items = [r for r in items if not r.get("modelIds") or model in r.get("modelIds")]
    if as_json:
        out_json({"loras": items, "constraints": got["constraints"]})
        return
    if not stdout_is_tty():
        for r in items:
            out(clean_text(str(r.get("loraId"))))
        return
    from rich.table import Table

    from ..render.console import make_console

    table = Table("LoRA", "Strength", "Models", "Name")
    for r in items:
        table.add_row(clean_text(str(r.get("loraId"))), _range(r, got["constraints"]),
                      clean_text(", ".join(map(str, r.get("modelIds") or []))) or "any",
                      clean_text(str(r.get("name") or "")) + (" (personal)" if r.get("personal") else ""))
    make_console().print(table)
