"""Continue or repeat a workflow that already exists: resume (what failed or waited is made now) and reseed
(the whole workflow again, as a new workflow, with new seeds). Both then follow and download exactly as a
media command does (:func:`sogni_cli.jobs.pipeline.run_media_job` on the existing workflow).

:func:`resume_workflow` is also what a recipe's retry uses: it raises :class:`WorkflowNotResumable` (exit 4,
with ``.status``) when the workflow cannot be continued, so a caller can start a new one instead.
"""

from __future__ import annotations

import difflib
from ..core.ids import new_uuid
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..core.errors import RejectedError, UsageError
from .pipeline import JobResult, PipelineOptions, run_media_job

__all__ = ["RESUMABLE", "WorkflowNotResumable", "resume_workflow", "reseed_workflow", "parse_seeds", "run_template",
           "step_ids"]

#: States a resume request continues (a cost wait is approved instead; running ones are just followed).
RESUMABLE = frozenset({"partial_failure", "failed", "waiting_for_user"})
FOLLOWABLE = frozenset({"queued", "running"})


class WorkflowNotResumable(RejectedError):
    """The workflow is in a state resume cannot continue (``status``: that state)."""

    def __init__(self, message: str, hint: str | None = None, *, status: str | None = None):
        super().__init__(message, hint)
        self.status = status


@dataclass
class _RecordJob:
    """A stand-in job for a workflow made elsewhere: its steps' own arguments name the files."""

    route: str = "workflow"
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    inputs: list[Any] = field(default_factory=list)


def _follow(client: Any, wid: str, tool: str | None, options: PipelineOptions | None, progress: Any,
            emit: Callable[[Any], None] | None, after: str | None = None) -> JobResult:
    opts = replace(options or PipelineOptions(), resume_workflow=wid, follow_after=after)
    return run_media_job(client, _RecordJob(tool=tool), opts, progress=progress, emit=emit)


def _single_tool(rec: dict[str, Any]) -> str | None:
    from .pipeline import _steps

    steps = _steps(rec)
    return steps[0].get("toolName") if len(steps) == 1 else None


def step_ids(rec: dict[str, Any]) -> list[str]:
    from .pipeline import _steps

    return [s["id"] for s in _steps(rec) if isinstance(s.get("id"), str)]


def resume_workflow(client: Any, wid: str, options: PipelineOptions | None = None, *, progress: Any = None,
                    emit: Callable[[Any], None] | None = None, body: dict[str, Any] | None = None) -> JobResult:
    """Resume workflow ``wid`` (partial failure, failure, or a credit wait), then follow and download it.

    A workflow still queued or running is only followed. ``WorkflowNotResumable`` for a completed or
    cancelled workflow, or one waiting for a cost approval (approved, not resumed)."""
    from ..api import workflows

    rec = workflows.get(client, wid)
    status = workflows.status_of(rec)
    if status in RESUMABLE:
        reason = rec.get("waitingReason") if isinstance(rec.get("waitingReason"), str) else None
        if status == "waiting_for_user" and reason != "insufficient_credit":
            raise WorkflowNotResumable(
                f"Workflow {wid} is waiting_for_user ({reason or 'other'}); resume cannot continue it.",
                hint="A cost wait is approved, not resumed." if reason and "cost" in reason else None,
                status=status)
        after = _last_event_id(client, wid)  # the old terminal event must not end the new follow
        workflows.resume(client, wid, body, idempotency_key=new_uuid())
        return _follow(client, wid, _single_tool(rec), options, progress, emit, after)
    elif status not in FOLLOWABLE:
        hint = (f"It has nothing left to make; `sogni workflow reseed {wid}` makes it again with new seeds."
                if status == "completed" else None)
        raise WorkflowNotResumable(f"Workflow {wid} is {status or 'in an unknown state'}; only partial_failure, "
                                   "failed or waiting workflows can be resumed.", hint=hint, status=status)
    return _follow(client, wid, _single_tool(rec), options, progress, emit)


def _last_event_id(client: Any, wid: str) -> str | None:
    from ..api import workflows

    last = None
    for ev in workflows.events(client, wid):
        key = ev.get("sequence") if isinstance(ev.get("sequence"), int) else ev.get("id")
        if key is not None:
            last = str(key)
    return last


def parse_seeds(items: list[str]) -> dict[str, int]:
    """``STEP=N`` items → {step: seed}; a malformed item is a usage error."""
    seeds: dict[str, int] = {}
    for item in items:
        step, sep, raw = item.partition("=")
        try:
            value = int(raw.strip())
        except ValueError:
            value = -1
        if not sep or not step.strip() or value < 0:
            raise UsageError(f"Invalid --seed {item!r}: expected STEP=N (a step id and a whole number >= 0).")
        seeds[step.strip()] = value
    return seeds


def reseed_workflow(client: Any, wid: str, seeds: dict[str, int] | None = None,
                    options: PipelineOptions | None = None, *, progress: Any = None,
                    emit: Callable[[Any], None] | None = None, body: dict[str, Any] | None = None,
                    on_created: Callable[[str], None] | None = None) -> JobResult:
    """Run finished workflow ``wid`` again with new seeds (``seeds`` pins some steps); follow and download the
    new workflow. An unknown step is refused before anything is sent (exit 2)."""
    from .. import catalog
    from ..api import workflows
    from .pipeline import _steps

    rec = workflows.get(client, wid)
    status = workflows.status_of(rec)
    steps = {s.get("id"): s for s in _steps(rec) if isinstance(s.get("id"), str)}
    for sid in seeds or {}:
        if sid not in steps:
            close = difflib.get_close_matches(sid, list(steps), n=1)
            raise UsageError(f"Workflow {wid} has no step {sid!r}" + (f"; did you mean {close[0]!r}?" if close
                                                                       else "."),
                             hint="Its steps: " + (", ".join(steps) or "none"))
        tool = catalog.load().get(str(steps[sid].get("toolName") or ""))
        if tool is not None and "seed" not in tool.params:
            raise UsageError(f"Step {sid!r} ({tool.name}) takes no seed.")
    if status in FOLLOWABLE:
        raise WorkflowNotResumable(f"Workflow {wid} is still {status}; reseed it once it has finished.",
                                   hint=f"`sogni workflow watch {wid}`", status=status)
    new, _info = workflows.reseed(client, wid, seeds, new_uuid(), body)
    new_id = workflows.workflow_id(new) or ""
    if on_created:
        on_created(new_id)
    return _follow(client, new_id, _single_tool(rec), options, progress, emit)


def upload_template_files(client: Any, tpl: dict[str, Any], inputs: dict[str, Any], *,
                          dry_run: bool = False) -> dict[str, Any]:
    """Media inputs given as local files are uploaded and passed as their signed URLs."""
    from pathlib import Path

    from ..api.templates import declared
    from ..api.uploads import upload_file
    from ..media.inputs import load_media_file

    decls = declared(tpl)
    out = dict(inputs)
    for key, value in inputs.items():
        kind = (decls.get(key) or {}).get("type")
        if kind not in ("image", "video", "audio"):
            continue
        values = value if isinstance(value, list) else [value]
        urls = []
        for v in values:
            if isinstance(v, str) and not v.startswith(("http://", "https://")) and Path(v).exists():
                mf = load_media_file(v, kind)
                urls.append("https://upload.invalid/planned" if dry_run else
                            upload_file(client, kind, mf.mime, mf.read_bytes()))
            else:
                urls.append(v)
        out[key] = urls if isinstance(value, list) else urls[0]
    return out


def run_template(client: Any, tpl: dict[str, Any], inputs: dict[str, Any], options: PipelineOptions | None = None,
                 *, version: int | None = None, extra: dict[str, Any] | None = None, progress: Any = None,
                 emit: Callable[[Any], None] | None = None) -> JobResult:
    """Start saved template ``tpl`` with checked ``inputs`` (one Idempotency-Key for every retry of the
    start), then follow and download the workflow like a media command."""
    from ..api import workflows
    from ..api.templates import start_body

    dry = bool(getattr(getattr(client, "config", None), "dry_run", False))
    inputs = upload_template_files(client, tpl, inputs, dry_run=dry)
    rec = workflows.create(client, start_body(tpl, inputs, version, extra))
    wid = workflows.workflow_id(rec) or ""
    opts = options or PipelineOptions()
    if opts.detach:
        if opts.on_created:
            opts.on_created(wid)
        return JobResult(workflow_id=wid, status=workflows.status_of(rec))
    return _follow(client, wid, _single_tool(rec), opts, progress, emit)
