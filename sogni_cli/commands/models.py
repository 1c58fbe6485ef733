"""`sogni models`: list the models of a kind (chat by default), cached for completion and checks."""

from __future__ import annotations

import typer

from ..core.errors import UsageError
from ..core.term import shown, stdout_is_tty
from ..render.output import out, out_json
from ._common import client, make_app, settings

app = make_app(
    help="List the available models (chat, image, video, audio).",
    epilog="""\b
Examples:
  sogni models
  sogni models --kind image
  sogni models --kind video --refresh
  sogni models --json | jq -r '.data[].id'""",
)


def _limits(m: dict) -> str:
    limits = m.get("limits") if isinstance(m.get("limits"), dict) else {}
    parts = []
    w, h = limits.get("width"), limits.get("height")
    if isinstance(w, dict) and isinstance(h, dict):
        parts.append(f"{w.get('min')}-{w.get('max')}x{h.get('min')}-{h.get('max')} (default "
                     f"{w.get('default')}x{h.get('default')})")
    d = limits.get("duration")
    if isinstance(d, dict):
        parts.append(f"{d.get('min')}-{d.get('max')} s")
    return ", ".join(parts)


@app.command()
def models(
    ctx: typer.Context,
    kind: str = typer.Option("chat", "--kind", help="chat | image | video | audio."),
    refresh: bool = typer.Option(False, "--refresh", help="Ask the API now instead of using the cache (kept a day)."),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the request instead of sending it."),
) -> None:
    """List the models of a kind: ids one per line when piped; a table (with tiers and sizes) on a terminal."""
    from ..api import catalogues

    if kind not in catalogues.KINDS:
        raise UsageError(f"Invalid --kind {kind!r}: one of {', '.join(catalogues.KINDS)}.")
    s = settings(ctx, dry_run=dry_run)
    items = catalogues.models(client(ctx, dry_run=dry_run), s.config_dir, kind, refresh=refresh)
    if as_json:
        out_json({"object": "list", "data": items})
        return
    if not stdout_is_tty():
        for m in items:
            out(shown(str(m.get("id"))))
        return
    from rich.table import Table

    from ..render.console import make_console

    if kind == "chat":
        table = Table("Model", "Owner")
        for m in items:
            table.add_row(shown(str(m.get("id") or "")), shown(str(m.get("owned_by") or m.get("displayName") or "")))
    else:
        table = Table("Model", "Tier", "Sizes")
        for m in items:
            table.add_row(shown(str(m.get("id"))), shown(str(m.get("tier") or "")), _limits(m))
    make_console().print(table)
