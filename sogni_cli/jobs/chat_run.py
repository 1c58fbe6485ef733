"""Durable chat runs end to end: the run body from a chat request, uploads instead of inline media, and the
run's event log turned into the chat events every output mode already understands.

Durable runs take no ``data:`` URIs: vision images (``-i``) and any inline media in ``--messages`` are
uploaded first and referenced by their signed URL. The run is started with an ``Idempotency-Key`` chosen
before the first attempt, so a retried start never makes a second run.
"""

from __future__ import annotations

import base64
from ..core.ids import new_uuid, random_hex
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.errors import (
    BillingError,
    GenerationFailed,
    IncompleteError,
    RejectedError,
    UsageError,
)
from ..core.events import Artifact, Delta, Done, Event, ToolCall, ToolResult

__all__ = ["RunOutcome", "run_body", "upload_inline_media", "start_run", "follow_run", "raise_for_run",
           "events_of"]

#: Chat options a durable run cannot carry (the run API has no field for them).
UNSUPPORTED = {"response_format": "--response-format", "no_exec": "--no-exec", "stop": "--stop",
               "repetition_penalty": "--repetition-penalty", "frequency_penalty": "--frequency-penalty",
               "presence_penalty": "--presence-penalty"}


@dataclass
class RunOutcome:
    run_id: str
    record: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    events: int = 0
    last: int = 0  # the sequence of the last event delivered


def check_durable(req: Any) -> None:
    """Options that have no place in a durable run are refused before anything is sent."""
    bad = [flag for attr, flag in UNSUPPORTED.items() if getattr(req, attr, None) not in (None, False, [], {})]
    if any(f.command for f in getattr(req, "functions", []) or []):
        bad.append("--function with a local command")
    if getattr(req, "template_kwargs", None):
        bad.append("--template-kwarg")
    if getattr(req, "tools", None) not in (None, "default"):
        bad.append("--tools")
    if bad:
        raise UsageError(f"--durable cannot be combined with {', '.join(bad)}.",
                         hint="Durable runs execute server-side; drop the option or run without --durable.")


def _parse_data_uri(uri: str) -> tuple[str, bytes]:
    head, _, payload = uri.partition(",")
    mime = head[5:].split(";", 1)[0] or "application/octet-stream"
    try:
        data = base64.b64decode(payload, validate=False) if ";base64" in head else payload.encode("utf-8")
    except ValueError:
        raise UsageError("A message holds an inline data: URI that cannot be decoded.") from None
    return mime, data


def upload_inline_media(client: Any, value: Any, *, dry_run: bool = False) -> Any:
    """``value`` with every ``data:`` URI replaced by the URL of an upload of its bytes."""
    from ..api.uploads import upload_file

    job_id = f"cli-run-{random_hex(12)}"
    cache: dict[str, str] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, str) and v[:5].lower() == "data:":
            if v not in cache:
                mime, data = _parse_data_uri(v)
                kind = mime.split("/", 1)[0]
                kind = kind if kind in ("image", "audio", "video") else "image"
                cache[v] = ("https://upload.invalid/planned" if dry_run else
                            upload_file(client, kind, mime, data, job_id=job_id, item_id=random_hex(16)))
            return cache[v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)


def run_body(req: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``/v1/chat/runs`` body for a chat request: only what the user set."""
    body: dict[str, Any] = {"messages": messages}
    if req.model:
        body["model"] = req.model
    sampling: dict[str, Any] = {}
    for name in ("temperature", "max_tokens", "top_p", "top_k", "min_p"):
        if getattr(req, name) is not None:
            sampling[name] = getattr(req, name)
    if req.task_profile:
        sampling["taskProfile"] = req.task_profile
    if req.think is not None:
        sampling["think"] = req.think
    if sampling:
        body["sampling"] = sampling
    if req.functions:
        body["tools"] = [f.tool() for f in req.functions]
    if req.tool_choice:
        body["tool_choice"] = (req.tool_choice if req.tool_choice in ("auto", "none", "required")
                               else {"type": "function", "function": {"name": req.tool_choice}})
    if req.token_type:
        body["token_type"] = req.token_type
    if req.billing_mode:
        body["billing_mode"] = req.billing_mode
    runtime: dict[str, Any] = {}
    if req.safe_content_filter is not None:
        runtime["safeContentFilter"] = req.safe_content_filter
    if runtime:
        body["runtime_config"] = runtime
    if getattr(req, "confirm_cost", False):
        body["confirm_cost"] = True
    return body


def start_run(client: Any, req: Any, *, dry_run: bool = False) -> dict[str, Any]:
    """Upload inline media, then start the run with a key decided now (the same on every retry)."""
    from ..api import runs
    from ..api.chat import initial_messages

    messages = upload_inline_media(client, initial_messages(req), dry_run=dry_run)
    key = new_uuid()
    return runs.create(client, run_body(req, messages), key)


def events_of(ev: dict[str, Any]) -> list[Event]:
    """The chat events one run event stands for (empty for bookkeeping events)."""
    t = ev.get("type")
    p = ev.get("payload") if isinstance(ev.get("payload"), dict) else {}
    if t == "assistant_message_delta" and isinstance(p.get("content"), str):
        return [Delta(p["content"])]
    if t == "tool_call_proposed":
        return [ToolCall(str(p.get("toolCallId") or ""), str(p.get("toolName") or ""), p.get("arguments"))]
    if t == "tool_call_resolved":
        import json

        return [ToolResult(str(p.get("toolCallId") or ""), str(p.get("toolName") or ""),
                           json.dumps(p.get("result"), ensure_ascii=False))]
    if t == "artifact_created" and isinstance(p.get("artifact"), dict):
        a = p["artifact"]
        return [Artifact(url=a.get("url") if isinstance(a.get("url"), str) else None,
                         workflow_id=a.get("workflowId") if isinstance(a.get("workflowId"), str) else None,
                         tool=a.get("toolName") if isinstance(a.get("toolName"), str) else None)]
    return []


def follow_run(client: Any, rid: str, *, emit: Callable[[Event], None], on_raw: Callable[[dict], None] | None = None,
               on_wait: Callable[[], None] | None = None, cancel_on_interrupt: bool = True,
               note: Callable[[str], None] | None = None, after: int = 0) -> RunOutcome:
    """Follow run ``rid`` to its end or a wait; Ctrl-C (or SIGTERM) cancels it on the server first."""
    from ..api import runs

    outcome = RunOutcome(run_id=rid, last=after)
    final_text: str | None = None
    try:
        for ev in runs.follow(client, rid, on_wait=on_wait, after=after):
            outcome.events += 1
            if isinstance(ev.get("sequence"), int):
                outcome.last = ev["sequence"]
            if on_raw:
                on_raw(ev)
            for chat_ev in events_of(ev):
                if isinstance(chat_ev, Delta):
                    outcome.text += chat_ev.text
                if not isinstance(chat_ev, Artifact):  # saved (or listed) once the run ends
                    emit(chat_ev)
            if ev.get("type") == "assistant_message_completed":
                p = ev.get("payload") if isinstance(ev.get("payload"), dict) else {}
                final_text = p.get("content") if isinstance(p.get("content"), str) else final_text
    except BaseException as exc:
        if not isinstance(exc, Exception) and cancel_on_interrupt:
            try:
                runs.cancel(client, rid, reason="interrupted")
                if note:
                    note(f"Cancelled chat run {rid}.")
            except Exception as cexc:
                if note:
                    note(f"Could not cancel chat run {rid}: {getattr(cexc, 'message', cexc)}")
        raise
    outcome.record = runs.get(client, rid)
    if final_text is not None and not outcome.text:
        outcome.text = final_text
    return outcome


def raise_for_run(rec: dict[str, Any], rid: str) -> None:
    """The exit a run's end state means: waiting (cost 9, other 4), failed/cancelled 7, partial 8."""
    from ..api import runs

    status = runs.status_of(rec)
    if status == "waiting_for_user":
        reason, _, preview = runs.waiting_details(rec)
        units = (preview or {}).get("totalEstimatedCapacityUnits")
        cost = f" (estimated {units} capacity units)" if units is not None else ""
        if reason == "insufficient_credit":
            raise BillingError(f"Chat run {rid} is waiting for credit{cost}.",
                               hint="Add credits or change the token type (--token-type spark|sogni).")
        if reason in ("cost_approval_required", "cost_reauthorization_required"):
            raise BillingError(f"Chat run {rid} is waiting for cost approval{cost}.",
                               hint=f"Approve it with `sogni run approve {rid}`, then `sogni run watch {rid}` (or start "
                                    "again with --approve-up-to UNITS).")
        raise RejectedError(f"Chat run {rid} is waiting for you ({reason or 'other'}).",
                            hint=f"See `sogni run show {rid}`.")
    if status in ("failed", "cancelled"):
        why = rec.get("failureReason") or rec.get("cancellationReason")
        raise GenerationFailed(f"Chat run {rid} {status}" + (f": {why}" if why else "."))
    if status == "partial_failure":
        raise IncompleteError(f"Chat run {rid} finished with some failures.", hint=f"See `sogni run show {rid}`.")


def finish_events(rec: dict[str, Any], emit: Callable[[Event], None]) -> None:
    """Custom function calls the run ended on are shown like a plain chat's; then the end marker."""
    final = rec.get("finalResponse") if isinstance(rec.get("finalResponse"), dict) else {}
    emit(Done(final.get("finishReason") if isinstance(final.get("finishReason"), str) else rec.get("status")))
