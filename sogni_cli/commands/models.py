"""`sogni models`: list the chat models."""

from __future__ import annotations

import typer

from ..render.output import out, out_json

from ..core.term import shown, stdout_is_tty
from ._common import client, make_app

app = make_app(
    help="List the available chat models.",
    epilog="""\b
Examples:
  sogni models
  sogni models --json | jq -r '.data[].id'""",
)


@app.command()
def models(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the raw list as JSON."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the request instead of sending it."),
) -> None:
    """List the available chat models (ids one per line when piped, a table on a terminal)."""
    api = client(ctx, dry_run=dry_run)
    data = api.request("GET", "/v1/models") or {}
    items = data.get("data") if isinstance(data, dict) else None
    items = items if isinstance(items, list) else []
    ids = [str(m.get("id") or m.get("modelId") or m.get("name")) for m in items if isinstance(m, dict)]
    _cache(ctx, ids)
    if as_json:
        out_json(data)
        return
    if not stdout_is_tty():
        for mid in ids:
            out(mid)
        return
    from ..render.console import make_console
    from rich.table import Table

    table = Table("Model", "Owner")
    for m in items:
        if isinstance(m, dict):
            table.add_row(shown(m.get("id") or m.get("modelId") or ""), shown(m.get("owned_by") or m.get("displayName") or ""))
    make_console().print(table)


def _cache(ctx: typer.Context, ids: list) -> None:
    """Keep the ids for shell completion (best effort)."""
    from ._common import settings

    try:
        s = settings(ctx)
        s.config_dir.mkdir(parents=True, exist_ok=True)
        import os

        target = s.config_dir / "models-cache.txt"
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        # an id with a control character, a space or a quote is not a model name: kept out of the completion scripts
        safe = [i for i in ids if i and len(i) <= 200 and all(c.isprintable() and not c.isspace() and c not in "'\"`$\\"
                                                              for c in i)]
        tmp.write_text("\n".join(safe) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass
