"""What the media commands (image, edit, video, music, speech) and ``tools run`` share: the media flags
(contract §6), declared once and added to each command by :func:`media_flags`, and :func:`run_job`, which
turns a command's fields into a :class:`~sogni_cli.jobs.MediaJob`, runs it through the pipeline and prints
the product (saved paths, URLs, text, ``--json`` or ``--jsonl``).
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..core.errors import UsageError
from ..render.output import out, out_json, out_jsonl
from ..core.term import err

from ..core.choices import BILLING_MODES, ON_EXISTS, TOKEN_TYPES, one_of  # noqa: E402

# name -> (type, typer.Option). The order is the order shown in --help.
SHARED: dict[str, tuple[Any, Any]] = {
    "output_dir": (Optional[Path], typer.Option(None, "-o", "--output-dir", help="Folder for the saved files [profile output_dir; default .].", show_default=False)),
    "name_template": (Optional[str], typer.Option(None, "--name", help="File name template: {slug} {index} {count} {tool} {seed} {workflow} {date} {ext} [default {slug}-{index}].", show_default=False)),
    "on_exists": (Optional[str], typer.Option(None, "--on-exists", help=f"When a file exists: {one_of(ON_EXISTS)} [default suffix].", show_default=False)),
    "no_download": (bool, typer.Option(False, "--no-download", help="Print the media URLs instead of saving the files.")),
    "count": (Optional[int], typer.Option(None, "-n", "--count", help="Number of variations (one request, numberOfVariations).", show_default=False)),
    "seed": (Optional[int], typer.Option(None, "--seed", help="Random seed, where the tool takes one.", show_default=False)),
    "model": (Optional[str], typer.Option(None, "--model", help="Model for the tool (see `sogni tools show TOOL`).", show_default=False)),
    "arg": (Optional[List[str]], typer.Option(None, "--arg", help="Any other tool argument, KEY=VALUE (JSON values allowed); repeatable.", show_default=False)),
    "args": (Optional[str], typer.Option(None, "--args", help="Tool arguments as a JSON object, or @FILE.", show_default=False)),
    "token_type": (Optional[str], typer.Option(None, "--token-type", help=f"Pay with {one_of(TOKEN_TYPES)}.", show_default=False)),
    "confirm_cost": (bool, typer.Option(False, "--confirm-cost", help="Approve the estimated cost in advance (confirm_cost).")),
    "billing_mode": (Optional[str], typer.Option(None, "--billing-mode", help=f"Pay from {one_of(BILLING_MODES)} (billing_mode).", show_default=False)),
    "safe_content_filter": (Optional[bool], typer.Option(None, "--safe-content-filter/--no-safe-content-filter", help="Turn the API's safe-content filter on or off (server default when not given).", show_default=False)),
    "max_cost": (Optional[int], typer.Option(None, "--max-cost", metavar="UNITS", help="Refuse to run above this many capacity units.", show_default=False)),
    "agent": (bool, typer.Option(False, "--agent", help="Let the chat model make the tool call (/v1/chat/completions, tool forced).")),
    "json_out": (bool, typer.Option(False, "--json", help="Print one JSON document at the end.")),
    "jsonl": (bool, typer.Option(False, "--jsonl", help="Print JSON events as they happen.")),
    "dry_run": (bool, typer.Option(False, "--dry-run", help="Print the request instead of sending it (no key needed).")),
    "manifest": (Optional[Path], typer.Option(None, "--manifest", help="Append one JSON line per saved file to FILE.", show_default=False)),
    "max_download_size": (Optional[str], typer.Option(None, "--max-download-size", metavar="SIZE", help="Largest file to download, e.g. 500M, 2G [default 2G].", show_default=False)),
    "concurrency": (Optional[int], typer.Option(None, "--concurrency", metavar="N", help="Files downloaded at once [default 16].", show_default=False)),
    "detach": (bool, typer.Option(False, "--detach", help="Print the workflow id and exit once it is created.")),
    "estimate": (bool, typer.Option(False, "--estimate", help="Print the API's cost preview for this exact request; start nothing.")),
    "approve_up_to": (Optional[str], typer.Option(None, "--approve-up-to", metavar="UNITS", help="Approve a cost the workflow waits for when its preview is at most UNITS.", show_default=False)),
    "timeout": (Optional[float], typer.Option(None, "--timeout", help="Give up (exit 6) when the workflow makes no progress for this many seconds.", show_default=False)),
    "no_log": (bool, typer.Option(False, "--no-log", help="Do not write this job to the log.")),
}


@dataclass
class MediaFlags:
    output_dir: Optional[Path] = None
    name_template: Optional[str] = None
    on_exists: Optional[str] = None
    no_download: bool = False
    count: Optional[int] = None
    seed: Optional[int] = None
    model: Optional[str] = None
    arg: List[str] = field(default_factory=list)
    args: Optional[str] = None
    token_type: Optional[str] = None
    confirm_cost: bool = False
    billing_mode: Optional[str] = None
    safe_content_filter: Optional[bool] = None
    max_cost: Optional[int] = None
    agent: bool = False
    json_out: bool = False
    jsonl: bool = False
    dry_run: bool = False
    manifest: Optional[Path] = None
    max_download_size: Optional[str] = None
    concurrency: Optional[int] = None
    detach: bool = False
    estimate: bool = False
    approve_up_to: Optional[str] = None
    timeout: Optional[float] = None
    no_log: bool = False


def media_flags(func):
    """Add the shared media flags to a command; the function receives them as ``flags: MediaFlags``."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "flags"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=typ)
              for name, (typ, opt) in SHARED.items()]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name, None) for name in SHARED}
        values = {k: v for k, v in values.items() if v is not None}
        values["arg"] = list(values.get("arg") or [])
        return func(*args, flags=MediaFlags(**values), **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + shared)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper


# --------------------------------------------------------------------------------------------- parsing


def parse_size(text: str | None) -> int | None:
    """``500M``, ``2G``, ``1.5GB``, ``1048576`` → bytes (binary units)."""
    if text is None:
        return None
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    for suffix, m in (("K", 1024), ("M", 1024 ** 2), ("G", 1024 ** 3), ("T", 1024 ** 4)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    try:
        value = float(t)
    except ValueError:
        raise UsageError(f"Invalid --max-download-size {text!r}", hint="For example 500M or 2G.") from None
    if value <= 0:
        raise UsageError(f"Invalid --max-download-size {text!r}: must be greater than 0.")
    return int(value * mult)


def read_text_arg(value: str, what: str) -> str:
    """``-`` reads stdin; anything else is a file path."""
    if value == "-":
        return sys.stdin.read()
    try:
        return Path(value).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} file not found: {value}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read {what} file {value}: {getattr(exc, 'strerror', None) or exc}") from None


def tool_args(tool: Any, arg_items: list[str], args_text: str | None) -> dict[str, Any]:
    """``--args JSON|@file`` then ``--arg KEY=VALUE`` (values coerced by the tool's parameter types)."""
    from ..catalog import parse_arg

    result: dict[str, Any] = {}
    if args_text:
        text = args_text
        if text.startswith("@"):
            text = read_text_arg(text[1:], "--args")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--args is not valid JSON: {exc}", hint="For example --args '{\"width\": 1024}'.") from None
        if not isinstance(data, dict):
            raise UsageError("--args must be a JSON object of tool arguments.")
        result.update(data)
    for item in arg_items or []:
        key, raw = parse_arg(item)
        result[key] = tool.coerce(key, raw) if tool is not None else _json_or_text(raw)
    return result


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _tool_for(kind: str, fields: dict[str, Any]) -> Any:
    from .. import catalog
    from ..jobs import DEFAULT_TOOL, _video_tool

    cat = catalog.load()
    if kind == "tool":
        return cat.get(str(fields.get("name") or ""))
    if kind == "video":
        return cat.get(_video_tool(fields.get("image") or [], fields.get("audio") or [], fields.get("video") or [], []))
    return cat.get(DEFAULT_TOOL[kind])


# --------------------------------------------------------------------------------------------- running


def flag_labels(ctx: typer.Context) -> dict[str, str]:
    """Each option of the running command by the spellings the user may have typed (``count`` -> ``-n/--count``)."""
    labels: dict[str, str] = {}
    for param in getattr(ctx.command, "params", []):
        opts = [o for o in getattr(param, "opts", []) if o.startswith("-")]
        if opts and param.name:
            labels[param.name] = "/".join(sorted(opts, key=len))
    return labels


def run_job(ctx: typer.Context, kind: str, fields: dict[str, Any], flags: MediaFlags) -> Any:
    """Build the job from ``fields`` + ``flags``, run it and print the product; the JobResult (None with
    --detach or --dry-run)."""
    from ..jobs import build_job
    from ..jobs.pipeline import PipelineOptions, run_media_job
    from ..render.progress import make_progress
    from ..render.workflow_view import Heartbeat, JobProgress, WorkflowDisplay
    from ._common import client, settings

    if flags.json_out and flags.jsonl:
        raise UsageError("--json and --jsonl cannot be combined.")
    if flags.estimate and flags.detach:
        raise UsageError("--estimate starts nothing, so it cannot be combined with --detach.")
    from ..core.units import parse_units

    approve_up_to = parse_units(flags.approve_up_to, "--approve-up-to")
    if flags.on_exists is not None and flags.on_exists not in ON_EXISTS:
        raise UsageError(f"Invalid --on-exists value {flags.on_exists!r}", hint="Use one of: " + ", ".join(ON_EXISTS))
    s = settings(ctx, dry_run=flags.dry_run)
    fields = {k: v for k, v in fields.items() if v is not None and v != []}
    for key in ("count", "seed", "model"):
        value = getattr(flags, key)
        if value is not None:
            fields[key] = value
    if "model" not in fields and kind == "image" and s.default("image_model"):
        fields["model"] = s.default("image_model")
    from ._memory import log_wants_hashes, media_entry, media_result, resolve_media_model

    resolve_media_model(s, fields)
    tool = _tool_for(kind, fields)
    extra = tool_args(tool, flags.arg, flags.args)
    if extra:
        fields["args"] = extra
    fields["token_type"] = flags.token_type or s.token_type
    if flags.confirm_cost:
        fields["confirm_cost"] = True
    if flags.max_cost is not None:
        fields["max_cost"] = flags.max_cost
    if flags.billing_mode is not None:
        fields["billing_mode"] = flags.billing_mode
    if flags.safe_content_filter is not None:
        fields["safe_content_filter"] = flags.safe_content_filter
    job = build_job(kind, fields, base_dir=Path("."), labels=flag_labels(ctx))
    from ..jobs.catalogue_check import check_job

    check_job(job, s.config_dir)  # the cached catalogue refuses unknown or incompatible models and LoRAs
    if flags.agent and job.route == "execute":
        raise UsageError(f"{job.tool} runs synchronously; --agent applies to media tools only.")

    on_exists = flags.on_exists or s.default("on_exists") or "suffix"
    if on_exists not in ON_EXISTS:
        raise UsageError(f"Invalid on_exists setting {on_exists!r}", hint="Use one of: " + ", ".join(ON_EXISTS))
    timeout = flags.timeout if flags.timeout is not None else (s.read_timeout if s.timeout_set else None)
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be greater than 0.")
    dry = s.dry_run
    api = client(ctx, dry_run=flags.dry_run, require_key=not dry)
    if timeout is not None and api._http is None:  # a silent stream must not outlast the no-progress limit
        api.config.read_timeout = min(api.config.read_timeout, timeout)

    if flags.estimate:
        print_estimate(api, job, flags)
        return
    quiet = s.quiet
    display = WorkflowDisplay(sys.stderr, quiet=quiet or dry)
    progress = JobProgress(make_progress(sys.stderr, quiet=quiet or dry), display)

    seen: dict[str, str] = {}

    def on_created(wid: str) -> None:
        seen["workflow_id"] = wid
        if flags.detach and not (flags.json_out or flags.jsonl):
            out(wid)
        elif not quiet:
            err(f"Workflow: {wid}")

    def emit(event: Any) -> None:
        from ..core.events import WorkflowUpdate

        log.event(event)
        if isinstance(event, WorkflowUpdate):
            display.update(event)
        if flags.jsonl:
            out_jsonl(event.to_json())

    log = media_entry(s, kind, job, flags.no_log)
    options = PipelineOptions(
        output_dir=s.out_dir(flags.output_dir), name=flags.name_template or s.default("name"), on_exists=on_exists,
        no_download=flags.no_download, manifest=flags.manifest, max_download_size=parse_size(flags.max_download_size),
        detach=flags.detach, timeout=timeout, agent=flags.agent, on_created=on_created,
        checksum=bool(flags.json_out or flags.jsonl or flags.manifest or log_wants_hashes(log)),
        concurrency=check_concurrency(flags.concurrency),
        approve=approver(approve_up_to),
    )
    ticker = Heartbeat(progress)
    try:
        result = run_media_job(api, job, options, progress=progress, emit=emit)
    except Exception as exc:
        partial = getattr(exc, "result", None)
        ticker.stop()
        progress.close()
        from ..jobs.approval import is_out_of_credit, out_of_credit

        explained = out_of_credit(api, exc) if is_out_of_credit(exc) else exc  # type: ignore[arg-type]
        if flags.json_out:  # one document, also for a failure: the workflow id, the exit code, the error
            out_json(failure_json(explained, partial, seen.get("workflow_id")))
        elif partial is not None:
            print_result(partial, flags, quiet=quiet)
        if explained is not exc:
            raise explained from None
        raise
    finally:
        ticker.stop()
        progress.close()
    media_result(log, result)
    if flags.detach:
        if flags.json_out:
            out_json({"workflow_id": result.workflow_id, "status": result.status, "tool": result.tool,
                      "arguments": result.arguments, "artifacts": []})
        return None
    if result.status == "skipped" and not quiet:
        err(f"All {len(result.saved)} file(s) already exist (--on-exists skip): nothing was sent.")
    print_result(result, flags, quiet=quiet)
    return result


def approver(up_to: float | None) -> Any:
    """The cost-approval hook for a command: ``--approve-up-to``, else the question on a terminal, else exit 9."""
    from ..jobs.approval import ApprovalPolicy, resolve_wait, terminal_question

    policy = ApprovalPolicy(up_to=up_to, ask=terminal_question(sys.stdin, sys.stderr), note=err)
    return lambda client, wid, rec: resolve_wait(client, wid, rec, policy)


def print_estimate(api: Any, job: Any, flags: Any) -> None:
    """``--estimate``: the API's preview of exactly this request on stdout; nothing is started."""
    from ..core.term import clean_text
    from ..jobs.approval import breakdown_lines
    from ..jobs.estimate import estimate_job

    est = estimate_job(api, job, agent=flags.agent)
    if flags.json_out or flags.jsonl:
        doc = {"tool": job.tool, "arguments": job.arguments, **est.to_json()}
        out_jsonl({"event": "estimate", **doc}) if flags.jsonl else out_json(doc)
        return
    if est.preview is None:
        out(clean_text(f"{job.tool}: no cost preview ({est.reason})."))
        return
    out(clean_text(f"{job.tool}: {est.line()}"))
    for line in breakdown_lines(est.preview):
        out(clean_text(line))


def _cost_event(result: Any) -> Any:
    from ..api.billing import cost_of
    from ..core.events import Cost

    if result.record is None:
        return None
    cost = cost_of(result.record) or {}
    return Cost(workflow_id=result.workflow_id, units=cost.get("units"), token_type=cost.get("token_type"))


def check_concurrency(value: Optional[int]) -> Optional[int]:
    """``--concurrency`` for downloads: None (the default) or at least 1."""
    if value is not None and value < 1:
        raise UsageError(f"--concurrency must be at least 1, got {value}.")
    return value


def failure_json(exc: BaseException, partial: Any, workflow_id: str | None) -> dict[str, Any]:
    """The ``--json`` document of a command that failed: what was saved, the workflow, the exit code, the error."""
    from ..core.errors import ExitCode, SogniError
    from ..core.secrets import redact

    doc: dict[str, Any] = partial.to_json() if partial is not None else {"workflow_id": None, "status": None,
                                                                         "artifacts": []}
    doc["workflow_id"] = doc.get("workflow_id") or workflow_id
    doc["status"] = doc.get("status") or getattr(exc, "workflow_status", None) or "error"
    code = int(exc.exit_code) if isinstance(exc, SogniError) else int(ExitCode.INTERNAL)
    message = exc.message if isinstance(exc, SogniError) else f"Internal error: {exc.__class__.__name__}: {exc}"
    hint = exc.hint if isinstance(exc, SogniError) else None
    doc["exit_code"] = code
    doc["error"] = {"message": redact(message), "hint": redact(hint) if hint else None}
    return doc


def print_result(result: Any, flags: Any, quiet: bool = False) -> None:
    """stdout: paths in order (or URLs, or text); ``--json`` one document; ``--jsonl`` the final events."""
    from ..core.events import Delta, Done

    cost = _cost_event(result)
    if flags.json_out:
        out_json(result.to_json())
        return
    if flags.jsonl:
        for text in result.texts:
            out_jsonl(Delta(text=text).to_json())
        if cost is not None:
            out_jsonl(cost.to_json())
        out_jsonl(Done(finish_reason=result.status).to_json())
        return
    if cost is not None and cost.units is not None and not quiet:
        from ..core.units import fmt_units

        err(f"Cost: {fmt_units(cost.units)} capacity units" + (f" ({cost.token_type})" if cost.token_type else ""))
    for s in result.saved:  # one write for all the lines, not one per file
        out(str(s.path), flush=False)
    for u in result.urls:
        out(u, flush=False)
    for text in result.texts:
        out(text.rstrip("\n"), flush=False)
    sys.stdout.flush()


PREVIEW_HELP = "Show each saved image on the terminal, a few rows high (stderr, only on a terminal)."


def preview(result: Any) -> None:
    """``--preview``: the saved images on stderr when it is a terminal (see render/preview.py)."""
    if result is None:
        return
    from ..render.preview import show

    show([s.path for s in getattr(result, "saved", []) or []])
