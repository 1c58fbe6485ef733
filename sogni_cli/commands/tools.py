"""`sogni tools list|show|run`: the hosted tool catalogue, and any tool run with exact arguments."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..core.errors import UsageError
from ..render.output import out, out_json
from ._common import make_app
from ._media import MediaFlags, media_flags, run_job

app = make_app(
    help="The hosted tool catalogue; run any tool with exact arguments.",
    no_args_is_help=True,
    epilog="""\b
Examples:
  sogni tools list
  sogni tools list --family default --json
  sogni tools show generate_image
  sogni tools show upscale_image --json        (JSON Schema of the arguments)
  sogni tools run upscale_image -i photo.jpg --arg scale=4
  sogni tools run compose_lyrics --arg prompt="a song about rain"
  sogni tools run sogni_generate_image --args '{"prompt": "a fox", "width": 512}'""",
)

ROUTES = {"workflow": "Workflow steps (POST /v1/creative-agent/workflows)",
          "execute": "Synchronous composition (POST /v1/creative-agent/tools/execute)"}


@app.command("list")
def list_tools(
    family: Optional[str] = typer.Option(None, "--family", help="Only one family: default, creative-tools, creative-agent.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the tools, grouped by how they run."""
    from .. import catalog

    cat = catalog.load()
    tools = cat.tools
    if family:
        fams = sorted({f for t in cat.tools for f in t.families})
        if family not in fams:
            raise UsageError(f"Unknown family {family!r}", hint="Families: " + ", ".join(fams))
        tools = cat.family(family)
    if json_out:
        out_json([{"name": t.name, "aliases": t.aliases, "route": t.route, "group": t.group, "media": t.media,
                   "families": t.families, "inputs": t.inputs, "description": t.description} for t in tools])
        return
    first = True
    for route, title in ROUTES.items():
        group = [t for t in tools if t.route == route]
        if not group:
            continue
        if not first:
            out("")
        first = False
        out(f"{title}:")
        width = max(len(t.name) for t in group)
        for t in group:
            alias = f" (also {', '.join(t.aliases)})" if t.aliases else ""
            out(f"  {t.name.ljust(width)}  {t.description}{alias}")


def _allowed(p) -> str:
    bits = []
    if p.enum is not None:
        bits.append(", ".join(str(v) for v in p.enum))
    if p.minimum is not None or p.maximum is not None:
        lo = "" if p.minimum is None else f"{p.minimum:g}"
        hi = "" if p.maximum is None else f"{p.maximum:g}"
        bits.append(f"{lo}..{hi}")
    if p.max_length is not None or p.min_length is not None:
        bits.append(f"length {p.min_length or 0}..{'' if p.max_length is None else p.max_length}")
    if p.items and p.items.get("enum"):
        bits.append("items: " + ", ".join(str(v) for v in p.items["enum"]))
    if p.min_items is not None or p.max_items is not None:
        bits.append(f"{p.min_items or 0}..{'' if p.max_items is None else p.max_items} items")
    return "; ".join(bits) or "-"


@app.command("show")
def show(
    name: str = typer.Argument(..., help="Tool name (flat or sogni_-prefixed)."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON Schema of the arguments."),
) -> None:
    """Show a tool's parameters: name, type, required, allowed values, description."""
    from .. import catalog

    tool = catalog.load().require(name)
    if json_out:
        out_json(tool.json_schema())
        return
    out(f"{tool.name}: {tool.description}")
    route = "workflow step" if tool.route == "workflow" else "synchronous (tools/execute)"
    out(f"Runs as: {route}; makes: {tool.media or '-'}" + (f"; aliases: {', '.join(tool.aliases)}" if tool.aliases else ""))
    if tool.inputs:
        ins = ", ".join(f"{k} → {v or '(uses the upload)'}" for k, v in tool.inputs.items())
        out(f"Media inputs: {ins}")
    if tool.note:
        out(f"Note: {tool.note}")
    if tool.open_params:
        out("Parameters are not published; any JSON object is accepted.")
        return
    rows = [("NAME", "TYPE", "REQUIRED", "ALLOWED", "DESCRIPTION")]
    for p in tool.params.values():
        typ = p.type + (f"[{p.items.get('type', '')}]" if p.type == "array" and p.items else "")
        rows.append((p.name, typ, "yes" if p.required else "no", _allowed(p), p.description))
    limits = (40, 12, 8, 60, 200)
    cells = [[c if len(c) <= lim else c[: lim - 1] + "…" for c, lim in zip(row, limits)] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(4)]
    out("")
    for r in cells:
        out("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])


@app.command("run")
@media_flags
def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Tool name (flat or sogni_-prefixed)."),
    image: Optional[List[str]] = typer.Option(None, "-i", "--image", help="Image file to upload (repeatable).", show_default=False),
    audio: Optional[List[str]] = typer.Option(None, "--audio", metavar="FILE", help="Audio file to upload (repeatable).", show_default=False),
    video: Optional[List[str]] = typer.Option(None, "--video", metavar="FILE", help="Video file to upload (repeatable).", show_default=False),
    flags: MediaFlags = None,  # type: ignore[assignment]
) -> None:
    """Run any tool with exact arguments (--arg KEY=VALUE, --args JSON|@file), validated first."""
    run_job(ctx, "tool", {"name": name, "images": image, "audio": audio, "video": video}, flags)
