"""What ``sogni chat --durable`` and ``sogni run watch`` share: follow a chat run's events to stdout (text,
``--json`` or ``--jsonl``), save the media its tools made, and exit with the code its end state means."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..core.errors import ExitStatus
from ..core.term import err
from ..render.output import out, out_json


@dataclass
class RunOutput:
    mode: str = "text"  # text | json | jsonl
    show_thinking: bool = False
    output_dir: Optional[Path] = None
    name: Optional[str] = None
    on_exists: str = "suffix"
    no_download: bool = False
    save_messages: Optional[Path] = None
    approve_up_to: Optional[float] = None  # approve a cost the run waits for when its preview is at most this
    tap: Optional[Callable[[Callable[[Any], None]], Callable[[Any], None]]] = None  # e.g. the history entry's tee


def start_durable(ctx: Any, api: Any, req: Any, opts: RunOutput, *, detach: bool, quiet: bool,
                  dry_run: bool, prompt: str | None) -> None:
    """Start a durable run for ``req``; with ``detach`` print its id, else follow it (see :func:`follow`)."""
    from ..api import runs
    from ..jobs.chat_run import check_durable, start_run

    check_durable(req)
    rec = start_run(api, req, dry_run=dry_run)
    rid = runs.run_id(rec) or ""
    if detach:
        if opts.mode == "json":
            out_json({"run_id": rid, "status": runs.status_of(rec)})
        else:
            out(rid)
        return
    if not quiet:
        err(f"Chat run: {rid}")
    follow(ctx, api, rid, opts, quiet=quiet, prompt=prompt)


def follow_only(ctx: Any, api: Any, rid: str, opts: RunOutput, *, quiet: bool) -> None:
    """Follow an existing run (Ctrl-C stops watching; the run goes on)."""
    follow(ctx, api, rid, opts, quiet=quiet, prompt=None, cancel_on_interrupt=False)


def follow(ctx: Any, api: Any, rid: str, opts: RunOutput, *, quiet: bool, prompt: str | None,
           cancel_on_interrupt: bool = True) -> None:
    from ..api.hosted import HostedMedia
    from ..jobs.chat_run import finish_events, follow_run, raise_for_run
    from ..render.chat_view import ChatView

    view = ChatView(mode=opts.mode, show_thinking=opts.show_thinking, quiet=quiet)
    handle = opts.tap(view.handle) if opts.tap else view.handle
    try:
        outcome = follow_run(api, rid, emit=handle, note=err, cancel_on_interrupt=cancel_on_interrupt)
        while _approve_by_policy(api, rid, outcome.record, opts.approve_up_to, quiet):
            more = follow_run(api, rid, emit=handle, note=err, cancel_on_interrupt=cancel_on_interrupt,
                              after=outcome.last)
            more.text, more.events = outcome.text + more.text, outcome.events + more.events
            outcome = more
        rec = outcome.record
        if rec.get("status") in ("completed", "partial_failure"):
            finish_events(rec, handle)
    finally:
        view.close()
    from ..api import runs

    status = runs.status_of(rec)
    if status not in ("completed", "partial_failure"):
        if opts.mode == "json":
            out_json(_json_doc(rid, rec, outcome.text, []))
        view.finish()
        raise_for_run(rec, rid)
    media = _media_of(rec, HostedMedia)
    saved: list[str] = []
    exit_code = 0
    if media:
        from ..jobs.chat_media import save_hosted_media
        from ..render.progress import make_progress
        from ._common import settings

        s = settings(ctx)
        report = save_hosted_media(
            api, media, prompt=prompt, output_dir=s.out_dir(opts.output_dir), name=opts.name,
            on_exists=opts.on_exists, no_download=opts.no_download, quiet=quiet, emit=handle,
            progress_factory=lambda: make_progress(sys.stderr, quiet=quiet), media_hosts=s.default("media_hosts"),
        )
        saved = report.paths
        exit_code = report.exit_code
    if opts.save_messages is not None:
        from .chat_body import write_conversation

        msgs = rec.get("messages") if isinstance(rec.get("messages"), list) else []
        write_conversation(opts.save_messages, msgs)
    if opts.mode == "json":
        out_json(_json_doc(rid, rec, outcome.text, saved))
    view.finish()
    raise_for_run(rec, rid)
    if exit_code:
        raise ExitStatus(exit_code)


def _approve_by_policy(api: Any, rid: str, rec: dict, up_to: Optional[float], quiet: bool) -> bool:
    """A run waiting for a cost is approved (its preview, unchanged) when the preview is within
    ``--approve-up-to``, or, on a terminal, when the user says yes (default no); True then. Otherwise the
    caller ends with exit 9 and the command that approves it later."""
    from ..core.ids import new_uuid

    from ..api import runs
    from ..api.billing import preview_units
    from ..jobs.approval import describe, terminal_question

    reason, call_id, preview = runs.waiting_details(rec)
    if runs.status_of(rec) != "waiting_for_user" or not call_id or preview is None \
            or reason not in ("cost_approval_required", "cost_reauthorization_required"):
        return False
    units = preview_units(preview)
    if units is not None and up_to is not None and units <= up_to:
        how = "--approve-up-to"
    else:
        ask = terminal_question(sys.stdin, sys.stderr)
        if ask is None or not ask(f"Run {rid} waits for cost approval: {describe(preview)}. Approve? [y/N] "):
            return False
        how = "approved on the terminal"
    runs.confirm_cost(api, rid, tool_call_id=call_id, preview=preview, idempotency_key=new_uuid())
    if not quiet:
        err(f"Approved {describe(preview)} ({how}).")
    return True


def _media_of(rec: dict, HostedMedia: Any) -> Any:
    """Child workflows (followed through the workflow routes), plus artifact links outside them (the run
    record is the API's own record, so its artifact links count like tool records, not like reply text)."""
    from urllib.parse import urlsplit

    wids = [w for w in rec.get("childWorkflowIds") or [] if isinstance(w, str) and w]
    urls = []
    for a in rec.get("artifacts") or []:
        if isinstance(a, dict) and isinstance(a.get("url"), str) and a.get("workflowId") not in wids:
            urls.append(a["url"])
    return HostedMedia(workflow_ids=wids, urls=urls, hosted_ran=bool(wids or urls),
                       record_hosts={urlsplit(u).hostname or "" for u in urls} - {""})


def _json_doc(rid: str, rec: dict, text: str, saved: list[str]) -> dict:
    final = rec.get("finalResponse") if isinstance(rec.get("finalResponse"), dict) else {}
    request = rec.get("request") if isinstance(rec.get("request"), dict) else {}
    return {
        "id": rid, "object": "chat.run", "run_id": rid, "status": rec.get("status"),
        "model": request.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": final.get("content") or text or None},
                     "finish_reason": final.get("finishReason")}],
        "child_workflow_ids": rec.get("childWorkflowIds") or [],
        "artifacts": saved,
    }
