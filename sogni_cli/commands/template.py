"""`sogni template list|show|create|update|delete|fork|run`: saved workflow templates."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..core.term import err, shown, stdout_is_tty
from ..render.output import out, out_json
from ._common import client, make_app, settings

app = make_app(
    help="Saved workflow templates: list, create, fork, run by name.",
    no_args_is_help=True,
    epilog="""\b
Examples:
  sogni template list
  sogni template create -f portrait.yaml
  sogni template run studio-portrait --input subject="a red fox" --input style=painting -o out/
  sogni template fork studio-portrait --name my-portrait
  sogni template delete my-portrait""",
)

DRY_RUN = typer.Option(False, "--dry-run", help="Print the request instead of sending it.")
JSON = typer.Option(False, "--json", help="Print JSON.")
VERSION = typer.Option(None, "--version", min=1, help="A template version (default: the latest).", show_default=False)


def _summary(t: dict) -> str:
    from ..api.templates import template_id

    n_in = len(t.get("inputs") or []) if isinstance(t.get("inputs"), list) else 0
    parts = [template_id(t) or "?", shown(t.get("name") or ""), f"v{t.get('version', '?')}",
             str(t.get("stability") or ""), str(t.get("visibility") or ""), f"{n_in} input(s)"]
    return "  ".join(p for p in parts if p)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    visibility: Optional[str] = typer.Option(None, "--visibility", help="private | public.", show_default=False),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="How many.", show_default=False),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """List templates: id, name, version, stability, visibility (names one per line when piped)."""
    from ..api import templates
    from ..core.errors import UsageError

    if visibility is not None and visibility not in ("private", "public"):
        raise UsageError(f"Invalid --visibility {visibility!r}: private or public.")
    items = templates.list_templates(client(ctx, dry_run=dry_run), visibility, limit)
    if json_out:
        out_json(items)
        return
    for t in items:
        out(_summary(t) if stdout_is_tty() else shown(t.get("name") or templates.template_id(t) or ""))


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Template name or id."),
    version: Optional[int] = VERSION,
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """A template's versions, stability, inputs and steps."""
    from ..api import templates

    tpl = templates.resolve(client(ctx, dry_run=dry_run), name, version)
    if json_out:
        out_json(tpl)
        return
    out(f"Template:   {shown(tpl.get('name'))} ({templates.template_id(tpl)})")
    if tpl.get("description"):
        out(f"About:      {shown(tpl['description'])}")
    out(f"Version:    {tpl.get('version')}  ({tpl.get('stability') or 'stable'}, {tpl.get('visibility') or 'private'})")
    versions = [str(v.get("version")) for v in tpl.get("versions") or [] if isinstance(v, dict)]
    if versions:
        out(f"Versions:   {', '.join(versions)}")
    fork = tpl.get("forkedFrom") if isinstance(tpl.get("forkedFrom"), dict) else None
    if fork:
        out(f"Forked from: {shown(fork.get('id'))} v{fork.get('version')}")
    out("Inputs:")
    for d in tpl.get("inputs") or []:
        if not isinstance(d, dict):
            continue
        bits = [str(d.get("type") or "string"), "required" if d.get("required") else "optional"]
        if d.get("default") is not None:
            bits.append(f"default {d['default']!r}")
        if d.get("options"):
            bits.append("one of " + "|".join(map(str, d["options"])))
        desc = f"  {shown(d['description'])}" if d.get("description") else ""
        out(f"  {shown(d.get('name'))} ({', '.join(bits)}){desc}")
    inp = tpl.get("input") if isinstance(tpl.get("input"), dict) else {}
    out("Steps:")
    for s in inp.get("steps") or []:
        if isinstance(s, dict):
            out(f"  {shown(s.get('id') or '-')}: {shown(s.get('toolName'))}")


@app.command("create")
def create(
    ctx: typer.Context,
    file: Path = typer.Option(..., "-f", "--file", help="The template as YAML or JSON.", show_default=False),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Save a template from a file (name, description, inputs, steps); prints its id."""
    from ..api import templates

    body = templates.load_file(str(file))
    tpl = templates.create(client(ctx, dry_run=dry_run), body)
    if json_out:
        out_json(tpl)
    else:
        out(templates.template_id(tpl) or "")


@app.command("update")
def update(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Template name or id."),
    file: Path = typer.Option(..., "-f", "--file", help="The fields to change, as YAML or JSON.", show_default=False),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Change a template: the file's fields make a new version."""
    from ..api import templates

    patch = templates.load_file(str(file), partial=True)
    api = client(ctx, dry_run=dry_run)
    tpl = templates.resolve(api, name)
    new = templates.update(api, templates.template_id(tpl) or name, patch)
    if json_out:
        out_json(new)
    else:
        out(f"{templates.template_id(new)} v{new.get('version')}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Template name or id."),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Delete one of your templates (every version)."""
    from ..api import templates

    api = client(ctx, dry_run=dry_run)
    tid = templates.template_id(templates.resolve(api, name)) or name
    answer = templates.delete(api, tid)
    if json_out:
        out_json(answer)
    else:
        out(f"{tid} deleted")


@app.command("fork")
def fork(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Template name or id."),
    new_name: Optional[str] = typer.Option(None, "--name", help="Name of the copy (default: NAME-fork).", show_default=False),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Copy a template (yours or a public one) into a new private template; prints its id."""
    from ..api import templates

    api = client(ctx, dry_run=dry_run)
    tid = templates.template_id(templates.resolve(api, name)) or name
    new = templates.fork(api, tid, new_name)
    if json_out:
        out_json(new)
    else:
        out(templates.template_id(new) or "")


@app.command("run")
def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Template name or id."),
    input: Optional[List[str]] = typer.Option(None, "--input", metavar="KEY=VALUE", help="A template input (repeatable); media inputs may be local files.", show_default=False),
    version: Optional[int] = VERSION,
    token_type: Optional[str] = typer.Option(None, "--token-type", help="Pay with spark, sogni or auto.", show_default=False),
    confirm_cost: bool = typer.Option(False, "--confirm-cost", help="Approve the estimated cost in advance (confirm_cost)."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Folder for the saved files.", show_default=False),
    name_template: Optional[str] = typer.Option(None, "--name", help="File name template (as for the media commands).", show_default=False),
    on_exists: Optional[str] = typer.Option(None, "--on-exists", help="suffix (default), overwrite, skip, error.", show_default=False),
    no_download: bool = typer.Option(False, "--no-download", help="Print the media URLs instead of saving the files."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Append one JSON line per saved file to FILE.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document at the end."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print JSON events as they happen."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Run a template by name with inputs; follow it and save its media like `sogni image`."""
    from ..api import templates
    from ..jobs.lifecycle import run_template
    from .workflow import follow_and_save

    given = templates.parse_inputs(list(input or []))
    s = settings(ctx, dry_run=dry_run)
    api = client(ctx, dry_run=dry_run)
    tpl = templates.resolve(api, name, version)
    inputs = templates.check_inputs(tpl, given)
    extra = {"token_type": token_type or s.token_type, "confirm_cost": True if confirm_cost else None}
    if not s.quiet:
        err(f"Template: {tpl.get('name')} v{tpl.get('version')}")
    follow_and_save(ctx, lambda a, o, p, e: run_template(a, tpl, inputs, o, version=version, extra=extra,
                                                         progress=p, emit=e),
                    output_dir=output_dir, name_template=name_template, on_exists=on_exists,
                    no_download=no_download, json_out=json_out, jsonl=jsonl, manifest=manifest, dry_run=dry_run)
