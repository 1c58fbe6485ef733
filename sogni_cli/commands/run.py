"""`sogni run list|show|watch|cancel|approve`: durable chat runs (started with `sogni chat --durable`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.errors import RejectedError, UsageError
from ..core.term import err, for_stdout, shown, stdout_is_tty
from ..render.output import out, out_json
from ._common import client, make_app, settings

app = make_app(
    help="List, follow, cancel and approve durable chat runs.",
    no_args_is_help=True,
    epilog="""\b
Examples:
  sogni chat --durable --detach "Draw a lighthouse"   (prints the run id)
  sogni run list
  sogni run watch run_123 -o out/
  sogni run approve run_123 && sogni run watch run_123
  sogni run cancel run_123""",
)

DRY_RUN = typer.Option(False, "--dry-run", help="Print the request instead of sending it.")
JSON = typer.Option(False, "--json", help="Print JSON.")


def _row(rec: dict) -> str:
    from ..api.runs import run_id, status_of

    final = rec.get("finalResponse") if isinstance(rec.get("finalResponse"), dict) else {}
    text = shown(final.get("content") or "").replace("\n", " ")
    created = (rec.get("timestamps") or {}).get("createdAt") if isinstance(rec.get("timestamps"), dict) else None
    return "  ".join(x for x in (run_id(rec) or "?", status_of(rec) or "unknown", str(created or ""),
                                 text[:60]) if x)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, max=100, help="How many (1-100).", show_default=False),
    offset: Optional[int] = typer.Option(None, "--offset", min=0, help="Skip this many.", show_default=False),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """List chat runs, newest first (ids one per line when piped)."""
    from ..api import runs

    page = runs.list_runs(client(ctx, dry_run=dry_run), limit, offset)
    if json_out:
        out_json(page)
        return
    for rec in page["runs"]:
        out(_row(rec) if stdout_is_tty() else (runs.run_id(rec) or ""))


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="Run id."),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Status, reply, tool calls, artifacts and what the run waits for."""
    from ..api import runs

    rec = runs.get(client(ctx, dry_run=dry_run), run_id)
    if json_out:
        out_json(rec)
        return
    out(f"Run:      {runs.run_id(rec) or run_id}")
    out(f"Status:   {runs.status_of(rec) or 'unknown'}")
    request = rec.get("request") if isinstance(rec.get("request"), dict) else {}
    if request.get("model"):
        out(f"Model:    {shown(request['model'])}")
    for call in rec.get("toolCalls") or []:
        if isinstance(call, dict):
            out(f"Tool:     {shown(call.get('name'))} ({shown(call.get('id'))})")
    for wid in rec.get("childWorkflowIds") or []:
        out(f"Workflow: {shown(wid)}")
    for art in rec.get("artifacts") or []:
        if isinstance(art, dict) and art.get("url"):
            out(f"Artifact: {shown(art['url'])}")
    reason, _call_id, preview = runs.waiting_details(rec)
    if runs.status_of(rec) == "waiting_for_user":
        units = (preview or {}).get("totalEstimatedCapacityUnits")
        out(f"Waiting:  {shown(reason or 'other')}" + (f" ({units} capacity units)" if units is not None else ""))
    for key, label in (("failureReason", "Failure"), ("cancellationReason", "Cancelled")):
        if rec.get(key):
            out(f"{label}: {shown(rec[key])}")
    final = rec.get("finalResponse") if isinstance(rec.get("finalResponse"), dict) else {}
    if final.get("content"):
        out("")
        out(for_stdout(str(final["content"])))


@app.command("watch")
def watch(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="Run id."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Folder for media made by the run's tools.", show_default=False),
    name: Optional[str] = typer.Option(None, "--name", help="File name template for saved media.", show_default=False),
    on_exists: str = typer.Option("suffix", "--on-exists", help="suffix | overwrite | skip | error."),
    no_download: bool = typer.Option(False, "--no-download", help="List media URLs on stderr instead of saving."),
    show_thinking: bool = typer.Option(False, "--show-thinking", help="Show reasoning on stderr."),
    json_out: bool = typer.Option(False, "--json", help="Print the final reply (plus \"artifacts\") as JSON."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print one JSON event per line as things happen."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Replay a run's reply and follow it to the end (Ctrl-C stops watching; the run goes on)."""
    from ._durable import RunOutput, follow_only

    if json_out and jsonl:
        raise UsageError("--json and --jsonl cannot be used together.")
    if on_exists not in ("suffix", "overwrite", "skip", "error"):
        raise UsageError(f"Invalid --on-exists {on_exists!r}: one of suffix, overwrite, skip, error.")
    s = settings(ctx, dry_run=dry_run)
    api = client(ctx, dry_run=dry_run)
    follow_only(ctx, api, run_id, RunOutput(mode="json" if json_out else "jsonl" if jsonl else "text",
                                            show_thinking=show_thinking, output_dir=output_dir, name=name,
                                            on_exists=on_exists, no_download=no_download), quiet=s.quiet)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="Run id."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why (kept with the run).", show_default=False),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Cancel a run (and the workflows its tools started)."""
    from ..api import runs

    rec = runs.cancel(client(ctx, dry_run=dry_run), run_id, reason)
    if json_out:
        out_json(rec)
    else:
        out(f"{runs.run_id(rec) or run_id} {runs.status_of(rec) or 'cancelled'}")


@app.command("approve")
def approve(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="Run id."),
    up_to: Optional[str] = typer.Option(None, "--up-to", metavar="UNITS", help="Approve only when the preview is at most UNITS.", show_default=False),
    decline: bool = typer.Option(False, "--decline", help="Refuse the cost instead (the run is cancelled)."),
    json_out: bool = JSON,
    dry_run: bool = DRY_RUN,
) -> None:
    """Approve the cost a run is waiting on (the preview it showed, unchanged); the run goes on."""
    from ..core.ids import new_uuid

    from ..api import runs

    s = settings(ctx, dry_run=dry_run)
    api = client(ctx, dry_run=dry_run)
    rec = runs.get(api, run_id)
    _reason, call_id, preview = runs.waiting_details(rec)
    if runs.status_of(rec) != "waiting_for_user" or not call_id or (preview is None and not decline):
        raise RejectedError(f"Chat run {run_id} is not waiting for cost approval (it is "
                            f"{runs.status_of(rec) or 'unknown'}).", hint=f"See `sogni run show {run_id}`.")
    units = (preview or {}).get("totalEstimatedCapacityUnits")
    if up_to is not None and not decline:
        from ..core.units import parse_units

        limit = parse_units(up_to, "--up-to")
        if limit is not None and (not isinstance(units, (int, float)) or units > limit):
            from ..core.errors import BillingError

            raise BillingError(f"Chat run {run_id} waits for {units} capacity units, more than --up-to {up_to}; "
                               "nothing was approved.", hint=f"`sogni run approve {run_id}` approves it as shown.")
    rec = runs.confirm_cost(api, run_id, tool_call_id=call_id, preview=preview or {},
                            decision="cancel" if decline else "confirm", idempotency_key=new_uuid())
    if json_out:
        out_json(rec)
        return
    out(f"{runs.run_id(rec) or run_id} {runs.status_of(rec) or 'unknown'}")
    if not s.quiet and not decline:
        err(f"Approved {units} capacity units. Follow it with `sogni run watch {run_id}`.")
