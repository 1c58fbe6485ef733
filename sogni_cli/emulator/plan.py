"""A workflow's life, planned ahead: the timeline of events (at offsets in seconds after creation) and the
artifacts each step makes.

:func:`plan` plans a new workflow; :func:`run_steps` appends the steps' events from a given offset (also used
to continue a workflow that was resumed or whose cost was approved). Markers in step arguments or the title:
``[fail]`` (the step fails), ``[partial]`` (with numberOfVariations >= 2: half the variations fail), ``[wait]``
(waits for cost approval unless ``confirm_cost``), ``[nocredit]`` (waits: insufficient credit), ``[empty]``
(no artifacts), ``[slow]`` (ten times slower). A resumed workflow recovers: ``[fail]`` and ``[partial]`` no
longer fail.
"""

from __future__ import annotations

import time
from typing import Any

from . import tools as toolcat
from .common import iso, is_number

UNITS = {"image": 1, "video": 10, "audio": 3, "model": 5}
MEDIA_KINDS = {"image", "video", "audio", "model"}
PREVIEW_SECONDS = 600.0


class Workflow:
    def __init__(self, wid: str, kind: str, title: str | None, input_: dict[str, Any], steps: list[dict[str, Any]],
                 options: dict[str, Any], created: float, mono: float):
        self.id = wid
        self.kind = kind
        self.title = title
        self.input = input_
        self.steps = steps
        self.options = options
        self.created = created
        self.mono = mono
        self.timeline: list[dict[str, Any]] = []
        self.artifacts: dict[str, dict[str, Any]] = {}  # artifact id -> record (without sizeBytes until made)
        self.made: dict[str, int] = {}  # step id -> variations made so far (planned)
        self.waiting: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.final_status = "completed"
        self.billing: dict[str, Any] = {}
        self.cancelled_at: float | None = None
        self.extra: dict[str, Any] = {}  # fields added to the record (template id, reseed origin, ...)


def texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def has_marker(value: Any, marker: str) -> bool:
    return any(marker in t.lower() for t in texts(value))


def _dims(args: dict[str, Any], default: tuple[int, int]) -> tuple[int, int]:
    w, h = args.get("width"), args.get("height")
    if is_number(w) and is_number(h):
        return max(16, min(4096, int(w))), max(16, min(4096, int(h)))
    ratio = args.get("aspectRatio") or args.get("ratio")
    if isinstance(ratio, str) and ":" in ratio:
        try:
            a, b = (float(x) for x in ratio.split(":", 1))
            if a > 0 and b > 0:
                longest = max(default)
                if a >= b:
                    return longest, max(16, int(round(longest * b / a / 8)) * 8)
                return max(16, int(round(longest * a / b / 8)) * 8), longest
        except ValueError:
            pass
    if is_number(w):
        return max(16, min(4096, int(w))), default[1]
    if is_number(h):
        return default[0], max(16, min(4096, int(h)))
    return default


def variations(args: dict[str, Any]) -> int:
    n = args.get("numberOfVariations", 1)
    return max(1, min(16, int(n))) if is_number(n) else 1


def preview(flow: Workflow, wall: float) -> dict[str, Any]:
    """The cost preview of the whole workflow (what approval accepts), valid for ten minutes."""
    breakdown = []
    for step in flow.steps:
        tool = toolcat.get(step["toolName"])
        media = tool.media if tool else None
        n = variations(step["arguments"])
        breakdown.append({"stepId": step["id"], "toolName": step["toolName"], "variations": n,
                          "estimatedCapacityUnits": UNITS.get(media or "", 1) * n})
    total = sum(b["estimatedCapacityUnits"] for b in breakdown)
    token_type = flow.options.get("token_type") or "spark"
    return {"totalEstimatedCapacityUnits": total, "tokenType": token_type,
            "billingMode": flow.options.get("billing_mode", "auto"), "estimatedCostUSD": round(total * 0.01, 4),
            "validityUntil": iso(wall + PREVIEW_SECONDS), "perToolBreakdown": breakdown}


def _add(flow: Workflow, offset: float, type_: str, wf_status: str, message: str, /, **data: Any) -> None:
    flow.timeline.append({"offset": offset, "type": type_, "status": wf_status, "message": message, "data": data})


def plan(flow: Workflow, base: str, step_seconds: float, account: Any = None) -> None:
    """Plan a new workflow: queued, then a wait (cost approval, credit) or its steps."""
    everything = [flow.title, [s["arguments"] for s in flow.steps]]
    flow.billing = preview(flow, time.time())
    total = flow.billing["totalEstimatedCapacityUnits"]
    _add(flow, 0.0, "workflow_progress", "queued", "Workflow queued", progress=0.0, status="queued")
    t = step_seconds / 4
    confirm = flow.options.get("confirm_cost") is True
    limit = flow.options.get("max_estimated_capacity_units")
    if has_marker(everything, "[nocredit]"):
        flow.waiting = {"waitingReason": "insufficient_credit", "message": "Not enough credit to run this workflow",
                        "details": {"required": total, "tokenType": flow.billing["tokenType"]}}
    elif (has_marker(everything, "[wait]") or (is_number(limit) and total > limit)) and not confirm:
        why = f"above the limit of {limit}" if is_number(limit) and total > limit else "needs approval"
        flow.waiting = {"waitingReason": "cost_approval_required",
                        "message": f"Estimated cost {total} capacity units {why}; confirm the cost to run it",
                        "details": {"costApprovalPreview": flow.billing}}
    elif account is not None and account.available(flow.billing["tokenType"]) < total:
        left = account.available(flow.billing["tokenType"])
        flow.waiting = {"waitingReason": "insufficient_credit",
                        "message": f"Not enough credit: {total} capacity units needed, {max(0.0, left):g} left",
                        "details": {"required": total, "available": max(0.0, left),
                                    "tokenType": flow.billing["tokenType"]}}
    if flow.waiting:
        wait_at(flow, t)
        return
    run_steps(flow, base, step_seconds, t)


def wait_at(flow: Workflow, t: float) -> None:
    assert flow.waiting is not None
    _add(flow, t, "workflow_waiting_for_user", "waiting_for_user", flow.waiting["message"],
         waitingReason=flow.waiting["waitingReason"], status="waiting_for_user", progress=0.0)
    flow.final_status = "waiting_for_user"


def run_steps(flow: Workflow, base: str, step_seconds: float, t: float, *, recover: bool = False,
              started: bool = False) -> None:
    """Append the events of every step that still has work, from offset ``t``.

    ``recover``: a resumed run, where the markers that made steps fail no longer do.
    """
    d0 = step_seconds
    flow.waiting = None
    if not started:
        _add(flow, t, "workflow_started", "running", "Workflow resumed" if recover else "Workflow started",
             progress=0.0, status="running")
    n_steps = len(flow.steps)
    partial = False
    flow.error = None
    for i, step in enumerate(flow.steps):
        args = step["arguments"]
        name = step["toolName"]
        sid = step["id"]
        tool = toolcat.get(name)
        media = tool.media if tool else None
        n = variations(args)
        done = flow.made.get(sid, 0)
        if done >= n or (recover and sid in flow.made and (media not in MEDIA_KINDS or has_marker(args, "[empty]"))):
            continue
        d = d0 * (10 if has_marker(args, "[slow]") else 1)
        _add(flow, t, "step_started", "running", f"{name} started", stepId=sid, toolName=name, status="running",
             progress=round(i / n_steps, 4), stepProgress=0.0)
        if has_marker(args, "[fail]") and not recover:
            t += d / 2
            flow.made.setdefault(sid, 0)
            flow.error = {"code": "GPU_WORKER_FAILED", "message": f"{name} failed: the prompt asked for [fail]",
                          "classification": "provider", "retryable": True, "stepId": sid, "toolName": name}
            _add(flow, t, "step_failed", "running", flow.error["message"], stepId=sid, toolName=name, status="failed",
                 progress=round(i / n_steps, 4), error=flow.error)
            _add(flow, t, "workflow_failed", "failed", flow.error["message"], status="failed",
                 progress=round(i / n_steps, 4), error=flow.error)
            flow.final_status = "failed"
            return
        for k in (1, 2, 3):
            _add(flow, t + d * k / 4, "workflow_progress", "running", f"{name} {k * 25}%", stepId=sid, toolName=name,
                 status="running", progress=round((i + k / 4) / n_steps, 4), stepProgress=k / 4)
        t += d
        target = n
        step_status = "completed"
        if has_marker(args, "[empty]") or media not in MEDIA_KINDS:
            target = 0
        elif has_marker(args, "[partial]") and n >= 2 and not recover:
            target = n // 2
            step_status = "partial_failure"
            partial = True
        for k in range(done, target):
            art = _artifact(base, flow, sid, name, media or "", args, k)
            flow.artifacts[art["id"]] = art
            _add(flow, t, "artifact_created", "running", f"{name} made {art['kind']} {k + 1}", stepId=sid,
                 toolName=name, status="running", progress=round((i + 1) / n_steps, 4), artifactId=art["id"],
                 url=art["url"])
        flow.made[sid] = max(done, target)
        msg = f"{name} completed" if step_status == "completed" else f"{name}: {n - target} of {n} variations failed"
        _add(flow, t, "step_completed", "running", msg, stepId=sid, toolName=name, status=step_status,
             progress=round((i + 1) / n_steps, 4), stepProgress=1.0)
    if partial:
        flow.final_status = "partial_failure"
        flow.error = {"code": "GPU_WORKER_FAILED", "message": "Some variations failed", "classification":
                      "transient", "retryable": True}
        _add(flow, t, "workflow_completed", "partial_failure", "Workflow finished with some failures",
             status="partial_failure", progress=1.0)
    else:
        flow.final_status = "completed"
        _add(flow, t, "workflow_completed", "completed", "Workflow completed", status="completed", progress=1.0)


def _artifact(base: str, flow: Workflow, sid: str, name: str, media: str, args: dict[str, Any],
              k: int) -> dict[str, Any]:
    aid = f"{sid}-{k + 1}"
    prompt = args.get("prompt") or args.get("description") or args.get("imagePrompt") or ""
    art: dict[str, Any] = {"id": aid, "kind": media, "toolName": name, "stepId": sid, "index": k}
    if media == "image":
        from .media import image_format

        w, h = _dims(args, (1024, 1024))
        _, mime, ext = image_format(args.get("outputFormat"))
        art.update(width=w, height=h, mimeType=mime)
    elif media == "video":
        w, h = _dims(args, (768, 512))
        fmt = args.get("outputFormat") if args.get("outputFormat") in ("mp4", "mov") else "mp4"
        ext, mime = fmt, "video/mp4" if fmt == "mp4" else "video/quicktime"
        dur = args.get("duration") if is_number(args.get("duration")) else 5
        art.update(width=w, height=h, durationSeconds=dur, mimeType=mime)
    elif media == "audio":
        ext, mime = "wav", "audio/wav"
        if is_number(args.get("duration")):
            dur = args["duration"]
        elif name == "generate_speech":
            dur = max(1.0, min(30.0, round(len(str(prompt).split()) * 0.4, 1)))
        else:
            dur = 30
        art.update(durationSeconds=dur, mimeType=mime)
    else:
        ext, mime = "glb", "model/gltf-binary"
        art.update(mimeType=mime)
    art["url"] = f"{base}/media/{flow.id}/{aid}.{ext}?expires=1800&signature=emulator"
    art["_spec"] = {"kind": media, "width": art.get("width"), "height": art.get("height"),
                    "duration": art.get("durationSeconds"), "format": ext, "prompt": prompt,
                    "id": f"{flow.id}/{aid}"}
    art["_units"] = UNITS.get(media, 1)
    return art
