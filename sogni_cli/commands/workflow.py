"""`sogni workflow list|show|events|watch|cancel|download|resume|reseed`: durable creative-agent workflows."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import UsageError
from ..render.output import out, out_json, out_jsonl
from ..core.term import err, stdout_is_tty
from ._common import client, make_app, settings

app = make_app(
    help="Follow, replay, cancel and re-download durable workflows.",
    no_args_is_help=True,
    epilog="""\b
Examples:
  sogni workflow list --limit 10
  sogni workflow show wf_123
  sogni workflow events wf_123 --follow --jsonl
  sogni workflow watch wf_123 && sogni workflow download wf_123 -o out/
  sogni workflow cancel wf_123
  sogni workflow resume wf_123 -o out/
  sogni workflow reseed wf_123 --seed step_1=42 -o out/
  sogni workflow approve wf_123 --up-to 40""",
)


DRY_RUN = typer.Option(False, "--dry-run", help="Print the request instead of sending it.")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="How many.", show_default=False),
    offset: Optional[int] = typer.Option(None, "--offset", min=0, help="Skip this many.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    dry_run: bool = DRY_RUN,
) -> None:
    """List workflows (a table on a terminal, ids one per line when piped)."""
    from ..api import workflows
    from ..render.workflow_view import workflow_table

    recs = workflows.list_workflows(client(ctx, dry_run=dry_run), limit, offset)
    if json_out:
        out_json(recs)
    elif stdout_is_tty():
        out(workflow_table(recs))
    else:
        for r in recs:
            out(workflows.workflow_id(r) or "")


@app.command("show")
def show(
    ctx: typer.Context,
    workflow_id: str = typer.Argument(..., help="Workflow id."),
    json_out: bool = typer.Option(False, "--json", help="Print the record as JSON."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Status, steps and artifacts of a workflow."""
    from ..api import workflows
    from ..render.workflow_view import format_show

    rec = workflows.get(client(ctx, dry_run=dry_run), workflow_id)
    if json_out:
        out_json(rec)
    else:
        out(format_show(rec))


@app.command("events")
def events(
    ctx: typer.Context,
    workflow_id: str = typer.Argument(..., help="Workflow id."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming new events until the workflow ends."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per line."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Replay a workflow's event log (--follow streams new events)."""
    from ..api import workflows
    from ..render.workflow_view import format_event

    api = client(ctx, dry_run=dry_run)
    if not follow:
        for ev in workflows.events(api, workflow_id):
            out_jsonl(ev) if jsonl else out(format_event(ev))
        return
    for upd in workflows.follow(api, workflow_id):
        if jsonl:
            out_jsonl(upd.to_json())
        else:
            pct = "" if upd.progress is None else f" {int(round(upd.progress * 100))}%"
            out(f"{upd.type or 'update'}  {upd.status or ''}{pct}  {upd.message or ''}".rstrip())


def _exit_for(rec: dict) -> None:
    from ..jobs.pipeline import raise_for_state
    from ..api.workflows import status_of, workflow_id
    from ..core.errors import GenerationFailed, IncompleteError

    raise_for_state(rec, workflow_id(rec) or "", None)
    st = status_of(rec)
    if st == "partial_failure":
        raise IncompleteError(f"Workflow {workflow_id(rec)} finished with some failures.",
                              hint=f"`sogni workflow download {workflow_id(rec)}` saves what was made.")
    if st == "completed" and (not isinstance(rec.get("artifacts"), list) or not rec["artifacts"]):
        raise GenerationFailed(f"Workflow {workflow_id(rec)} completed but produced no media.")


@app.command("watch")
def watch(
    ctx: typer.Context,
    workflow_id: str = typer.Argument(..., help="Workflow id."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Give up (exit 6) after this many seconds without progress.", show_default=False),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print updates as JSON lines."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Show progress until the workflow ends; the exit code follows its final state."""
    from ..api import workflows
    from ..render.workflow_view import WorkflowDisplay

    s = settings(ctx)
    api = client(ctx, dry_run=dry_run)
    display = WorkflowDisplay(sys.stderr, quiet=s.quiet)
    limit = timeout if timeout is not None else (s.read_timeout if s.timeout_set else None)
    if limit is not None and api._http is None:
        api.config.read_timeout = min(api.config.read_timeout, limit)
    try:
        for upd in workflows.follow(api, workflow_id, timeout=limit, on_wait=display.heartbeat):
            display.update(upd)
            if jsonl:
                out_jsonl(upd.to_json())
    finally:
        display.close()
    rec = workflows.get(api, workflow_id)
    if not jsonl:
        out(f"{workflows.workflow_id(rec) or workflow_id} {workflows.status_of(rec) or 'unknown'}")
    _exit_for(rec)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    workflow_id: str = typer.Argument(..., help="Workflow id."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Cancel a running workflow."""
    from ..api import workflows

    rec = workflows.cancel(client(ctx, dry_run=dry_run), workflow_id)
    out(f"{workflows.workflow_id(rec) or workflow_id} {workflows.status_of(rec) or 'cancelled'}")


@app.command("download")
def download(
    ctx: typer.Context,
    workflow_id: str = typer.Argument(..., help="Workflow id."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Folder for the saved files.", show_default=False),
    name_template: Optional[str] = typer.Option(None, "--name", help="File name template (as for the media commands).", show_default=False),
    on_exists: Optional[str] = typer.Option(None, "--on-exists", help="suffix (default), overwrite, skip, error.", show_default=False),
    no_download: bool = typer.Option(False, "--no-download", help="Print the URLs instead."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Append one JSON line per saved file.", show_default=False),
    max_download_size: Optional[str] = typer.Option(None, "--max-download-size", metavar="SIZE", help="Largest file to download.", show_default=False),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", metavar="N", help="Files downloaded at once [default 16].", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    show_preview: bool = typer.Option(False, "--preview", help="Show each saved image on the terminal, a few rows high (stderr, only on a terminal)."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Fetch the artifacts of a finished workflow (fresh URLs; .part files resume with Range).

    Only the .part files of this workflow resume; a file already saved from it (per the output folder's
    .sogni-downloads.json) is listed as the output, not fetched again (except with --on-exists overwrite)."""
    from ..jobs.pipeline import PipelineOptions, download_workflow
    from ..render.progress import make_progress
    from ._media import ON_EXISTS, check_concurrency, parse_size, print_result

    if on_exists is not None and on_exists not in ON_EXISTS:
        raise UsageError(f"Invalid --on-exists value {on_exists!r}", hint="Use one of: " + ", ".join(ON_EXISTS))
    s = settings(ctx)
    api = client(ctx, dry_run=dry_run)
    options = PipelineOptions(output_dir=s.out_dir(output_dir), name=name_template or s.default("name"),
                              on_exists=on_exists or s.default("on_exists") or "suffix", no_download=no_download,
                              manifest=manifest, max_download_size=parse_size(max_download_size),
                              concurrency=check_concurrency(concurrency), checksum=bool(json_out or manifest))
    progress = make_progress(sys.stderr, quiet=s.quiet)

    class _F:
        json_out = False
        jsonl = False

    flags = _F()
    flags.json_out = json_out
    try:
        result = download_workflow(api, workflow_id, options, progress=progress)
    except Exception as exc:
        progress.close()
        if getattr(exc, "result", None) is not None:
            print_result(exc.result, flags)  # type: ignore[attr-defined]
        raise
    finally:
        progress.close()
    print_result(result, flags)
    if show_preview:
        from ._media import preview

        preview(result)
    if not s.quiet and not json_out:
        present = sum(1 for f in result.saved if getattr(f, "present", False))
        got = len(result.saved) - present
        err(f"Saved {got} file(s) from workflow {workflow_id}"
            + (f"; {present} already saved before." if present else "."))


# --------------------------------------------------------------------------------------------- resume, reseed

OUT_DIR = typer.Option(None, "-o", "--output-dir", help="Folder for the saved files.", show_default=False)
NAME = typer.Option(None, "--name", help="File name template (as for the media commands).", show_default=False)
ON_EXISTS_OPT = typer.Option(None, "--on-exists", help="suffix (default), overwrite, skip, error.", show_default=False)
NO_DOWNLOAD = typer.Option(False, "--no-download", help="Print the media URLs instead of saving the files.")
JSON_OUT = typer.Option(False, "--json", help="Print one JSON document at the end.")
JSONL_OUT = typer.Option(False, "--jsonl", help="Print JSON events as they happen.")
MANIFEST = typer.Option(None, "--manifest", help="Append one JSON line per saved file to FILE.", show_default=False)
TOKEN_TYPE = typer.Option(None, "--token-type", help="Pay with spark, sogni or auto.", show_default=False)


def follow_and_save(ctx: typer.Context, action, *, output_dir, name_template, on_exists, no_download, json_out,
                    jsonl, manifest, dry_run) -> None:
    """Run ``action(api, options, progress, emit)`` (which follows a workflow and downloads it) with the media
    commands' display, and print what they print."""
    from ..jobs.pipeline import PipelineOptions
    from ..render.progress import make_progress
    from ..render.workflow_view import Heartbeat, JobProgress, WorkflowDisplay
    from ._media import ON_EXISTS, MediaFlags, print_result

    if json_out and jsonl:
        raise UsageError("--json and --jsonl cannot be combined.")
    if on_exists is not None and on_exists not in ON_EXISTS:
        raise UsageError(f"Invalid --on-exists value {on_exists!r}", hint="Use one of: " + ", ".join(ON_EXISTS))
    s = settings(ctx, dry_run=dry_run)
    api = client(ctx, dry_run=dry_run)
    display = WorkflowDisplay(sys.stderr, quiet=s.quiet)
    progress = JobProgress(make_progress(sys.stderr, quiet=s.quiet), display)
    flags = MediaFlags(json_out=json_out, jsonl=jsonl)

    def on_created(wid: str) -> None:
        if not s.quiet:
            err(f"Workflow: {wid}")

    def emit(event) -> None:
        from ..core.events import WorkflowUpdate

        if isinstance(event, WorkflowUpdate):
            display.update(event)
        if jsonl:
            out_jsonl(event.to_json())

    options = PipelineOptions(output_dir=s.out_dir(output_dir), name=name_template or s.default("name"),
                              on_exists=on_exists or s.default("on_exists") or "suffix", no_download=no_download,
                              manifest=manifest, on_created=on_created,
                              checksum=bool(json_out or jsonl or manifest))
    ticker = Heartbeat(progress)
    try:
        result = action(api, options, progress, emit)
    except Exception as exc:
        ticker.stop()
        progress.close()
        if getattr(exc, "result", None) is not None:
            print_result(exc.result, flags)  # type: ignore[attr-defined]
        raise
    finally:
        ticker.stop()
        progress.close()
    print_result(result, flags)


@app.command("resume")
def resume_cmd(
    ctx: typer.Context,
    workflow_id: str = typer.Argument(..., help="Workflow id (partial_failure, failed, or waiting for credit)."),
    token_type: Optional[str] = TOKEN_TYPE,
    output_dir: Optional[Path] = OUT_DIR,
    name_template: Optional[str] = NAME,
    on_exists: Optional[str] = ON_EXISTS_OPT,
    no_download: bool = NO_DOWNLOAD,
    manifest: Optional[Path] = MANIFEST,
    json_out: bool = JSON_OUT,
    jsonl: bool = JSONL_OUT,
    dry_run: bool = DRY_RUN,
) -> None:
    """Continue a workflow that stopped part-way (only what is missing is made), then download it.

    A completed or cancelled workflow cannot be resumed (exit 4); `reseed` makes it again."""
    from ..jobs.lifecycle import resume_workflow

    body = {"token_type": token_type} if token_type else None
    follow_and_save(ctx, lambda api, o, p, e: resume_workflow(api, workflow_id, o, progress=p, emit=e, body=body),
                    output_dir=output_dir, name_template=name_template, on_exists=on_exists,
                    no_download=no_download, json_out=json_out, jsonl=jsonl, manifest=manifest, dry_run=dry_run)


@app.command("reseed")
def reseed_cmd(
    ctx: typer.Context,
    workflow_id: str = typer.Argument(..., help="Id of a finished workflow."),
    seed: Optional[list[str]] = typer.Option(None, "--seed", metavar="STEP=N", help="Pin a step's seed (repeatable); other steps get new random seeds.", show_default=False),
    token_type: Optional[str] = TOKEN_TYPE,
    output_dir: Optional[Path] = OUT_DIR,
    name_template: Optional[str] = NAME,
    on_exists: Optional[str] = ON_EXISTS_OPT,
    no_download: bool = NO_DOWNLOAD,
    manifest: Optional[Path] = MANIFEST,
    json_out: bool = JSON_OUT,
    jsonl: bool = JSONL_OUT,
    dry_run: bool = DRY_RUN,
) -> None:
    """Run a finished workflow again as a new workflow with new seeds, then download it."""
    from ..jobs.lifecycle import parse_seeds, reseed_workflow

    seeds = parse_seeds(list(seed or []))
    body = {"token_type": token_type} if token_type else None
    follow_and_save(ctx, lambda api, o, p, e: reseed_workflow(api, workflow_id, seeds, o, progress=p, emit=e,
                                                              body=body),
                    output_dir=output_dir, name_template=name_template, on_exists=on_exists,
                    no_download=no_download, json_out=json_out, jsonl=jsonl, manifest=manifest, dry_run=dry_run)


@app.command("approve")
def approve(
    ctx: typer.Context,
    workflow_id: str = typer.Argument(..., help="Workflow id."),
    up_to: Optional[str] = typer.Option(None, "--up-to", metavar="UNITS", help="Approve only when the current preview is at most UNITS.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print the workflow record after the approval."),
    dry_run: bool = DRY_RUN,
) -> None:
    """Approve the cost of a workflow that waits for it (its current preview, fetched again if it expired)."""
    from ..api import workflows
    from ..api.billing import waiting_for_approval
    from ..core.errors import RejectedError
    from ..core.units import parse_units
    from ..jobs.approval import ApprovalPolicy, describe, resolve_wait

    limit = parse_units(up_to, "--up-to")
    s = settings(ctx)
    api = client(ctx, dry_run=dry_run)
    rec = workflows.get(api, workflow_id)
    if not waiting_for_approval(rec):
        status = workflows.status_of(rec) or "unknown"
        reason = rec.get("waitingReason") if status == "waiting_for_user" else None
        raise RejectedError(f"Workflow {workflow_id} is not waiting for cost approval (it is {status}"
                            + (f": {reason}" if reason else "") + ").",
                            hint=f"See `sogni workflow show {workflow_id}`.")
    # Running this command is the approval; --up-to bounds it. Without --up-to the preview shown is approved.
    policy = ApprovalPolicy(up_to=limit if limit is not None else float("inf"), flag="--up-to")
    after = resolve_wait(api, workflow_id, rec, policy)
    if json_out:
        out_json(after)
        return
    out(f"{workflows.workflow_id(after) or workflow_id} {workflows.status_of(after) or 'approved'}")
    if not s.quiet and policy.approved is not None:
        err(f"Approved {describe(policy.approved)}; "
            f"follow it with `sogni workflow watch {workflow_id}`.")
