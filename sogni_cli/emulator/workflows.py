"""Durable creative-agent workflows, progressing with time.

Every workflow's whole life is planned when it is created: a timeline of events at offsets (seconds
after creation). What a request sees is the part of the timeline whose offset has passed, so the
record, the event log and the SSE stream agree without any background thread. Each step takes
``step_seconds`` (ten times that with ``[slow]`` in its arguments); a workflow waits a quarter step
in ``queued`` first.

The planning (markers such as ``[fail]``, ``[partial]``, ``[wait]``, ``[nocredit]``) is in
:mod:`sogni_cli.emulator.plan`; resume, reseed and cost approval in :mod:`sogni_cli.emulator.lifecycle`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from . import bindings
from . import tools as toolcat
from .common import ApiFailure, body_hash, find_data_uri, iso, is_number, new_id
from .plan import Workflow, plan

TERMINAL = {"completed", "failed", "partial_failure", "waiting_for_user", "cancelled"}
TRANSFORMS = {"artifact_url", "artifact_data_uri", "image_url", "video_url", "audio_url", "image_index",
              "video_index", "audio_index", "subtitle_cues", "subtitle_srt", "overlay_items", "asset_ref"}

# Accepted request fields (snake_case, with the camelCase spellings the API also takes).
START_FIELDS = {
    "input": "input", "workflow_id": "workflow_id", "workflowId": "workflow_id", "inputs": "inputs",
    "token_type": "token_type", "tokenType": "token_type", "billing_mode": "billing_mode",
    "billingMode": "billing_mode", "app_source": "app_source", "appSource": "app_source",
    "max_estimated_capacity_units": "max_estimated_capacity_units",
    "maxEstimatedCapacityUnits": "max_estimated_capacity_units", "confirm_cost": "confirm_cost",
    "confirmCost": "confirm_cost", "safe_content_filter": "safe_content_filter",
    "safeContentFilter": "safe_content_filter", "media_references": "media_references",
    "mediaReferences": "media_references", "template_version": "template_version",
    "templateVersion": "template_version",
}


def _bad(message: str, code: Any = 400, details: Any = None) -> ApiFailure:
    return ApiFailure(400, message, code=code, details=details, envelope="sogni")



def check_media_references(refs: Any) -> list[dict[str, Any]]:
    if refs is None:
        return []
    if not isinstance(refs, list):
        raise _bad("media_references must be an array")
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise _bad(f"media_references[{i}] must be an object")
        url = ref.get("url")
        if isinstance(url, str) and url.strip().lower().startswith("data:") or "dataUri" in ref or "data" in ref:
            raise _bad(f"media_references[{i}]: data: URIs are not accepted; upload the file and pass its URL",
                       code=4001)
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise _bad(f"media_references[{i}].url must be an http(s) URL")
    return refs


class WorkflowStore:
    """All workflows of one emulator. ``media_size`` returns an artifact's size (making the file).

    ``max_active`` (None: no limit) is the account's limit on workflows queued or running at once: a start
    beyond it is a 409 "too many active workflows" (an idempotent replay is still answered)."""

    max_active: int | None = None

    def __init__(self, base_url: Callable[[], str], step_seconds: float, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, media_size: Callable[[dict[str, Any]], int] | None = None,
                 account: Any = None):
        self._base_url = base_url
        self.account = account
        self.step_seconds = step_seconds
        self._clock = clock
        self._wall = wall
        self._media_size = media_size
        self._lock = threading.RLock()
        self._flows: dict[str, Workflow] = {}
        self._order: list[str] = []
        self._idem: dict[str, tuple[str, str]] = {}
        self.media: dict[str, tuple[str, str]] = {}  # media path -> (workflow id, artifact id)

    def reset(self) -> None:
        with self._lock:
            self._flows.clear()
            self._order.clear()
            self._idem.clear()
            self.media.clear()

    # ----------------------------------------------------------------- creation
    def start(self, body: Any, idempotency_key: str | None = None, *, templates: Any = None,
              extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
        """Validate a start request; returns (record, reused) where reused means an idempotent replay.

        A body with ``workflow_id`` runs a saved template (``templates.expand`` turns it into steps)."""
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        opts: dict[str, Any] = {}
        for key, value in body.items():
            if key not in START_FIELDS:
                raise _bad(f"unknown field {key!r}")
            opts[START_FIELDS[key]] = value
        extra = dict(extra or {})
        if "workflow_id" in opts:
            if "input" in opts:
                raise _bad("send input or workflow_id, not both")
            if templates is None:
                raise ApiFailure(404, f"workflow template {opts['workflow_id']!r} not found", code=404,
                                 envelope="sogni")
            opts["input"], extra = templates.expand(opts["workflow_id"], opts.get("inputs"),
                                                    opts.get("template_version"))
        elif "inputs" in opts or "template_version" in opts:
            raise _bad("inputs is only used with workflow_id (a saved template)")
        if "input" not in opts:
            raise _bad("input is required (input.steps)")
        self._check_options(opts)
        inp = opts["input"]
        if not isinstance(inp, dict):
            raise _bad("input must be an object")
        for key in inp:
            if key not in ("title", "steps", "description", "plan"):
                raise _bad(f"unknown field input.{key}")
        title = inp.get("title")
        if title is not None and not isinstance(title, str):
            raise _bad("input.title must be a string")
        steps = self._check_steps(inp.get("steps"), opts.get("media_references") or [])
        digest = body_hash(body)
        with self._lock:  # check and create together, so concurrent retries make one workflow
            if idempotency_key:
                seen = self._idem.get(idempotency_key)
                if seen is not None:
                    if seen[0] != digest:
                        raise ApiFailure(409, "Idempotency-Key was already used with a different request body",
                                         code=409, envelope="sogni")
                    return self.snapshot(seen[1]), True
            self.admit()
            record = self.create("creative_workflow", title, {"title": title, "steps": steps} if title is not None
                                 else {"steps": steps}, steps, opts, extra=extra)
            if idempotency_key:
                self._idem[idempotency_key] = (digest, record["workflowId"])
        return record, False

    def admit(self) -> None:
        """Refuse a new workflow while the account has ``max_active`` queued or running."""
        if self.max_active is None:
            return
        with self._lock:
            flows = [self._flows[wid] for wid in self._order if wid in self._flows]
        active = sum(1 for flow in flows if self._state(flow)[0] in ("queued", "running"))
        if active >= self.max_active:
            raise ApiFailure(409, f"Too many active workflows: {active} of {self.max_active} are running; wait for "
                             "one to finish", code="TOO_MANY_ACTIVE_WORKFLOWS",
                             details={"activeWorkflows": active, "limit": self.max_active}, envelope="sogni")

    def _check_options(self, opts: dict[str, Any]) -> None:
        if "token_type" in opts and opts["token_type"] not in ("spark", "sogni", "auto"):
            raise _bad("token_type must be spark, sogni or auto")
        if "billing_mode" in opts and opts["billing_mode"] not in ("auto", "subscription", "tokens"):
            raise _bad("billing_mode must be auto, subscription or tokens")
        if "app_source" in opts and not isinstance(opts["app_source"], str):
            raise _bad("app_source must be a string")
        if "max_estimated_capacity_units" in opts:
            v = opts["max_estimated_capacity_units"]
            if not is_number(v) or v < 1:
                raise _bad("max_estimated_capacity_units must be a positive number")
        for key in ("confirm_cost", "safe_content_filter"):
            if key in opts and not isinstance(opts[key], bool):
                raise _bad(f"{key} must be a boolean")
        if "inputs" in opts and not isinstance(opts["inputs"], dict):
            raise _bad("inputs must be an object")
        check_media_references(opts.get("media_references"))

    def _check_steps(self, steps: Any, refs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        if not isinstance(steps, list) or not steps:
            raise _bad("input.steps must be a non-empty array")
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, step in enumerate(steps):
            where = f"input.steps[{i}]"
            if not isinstance(step, dict):
                raise _bad(f"{where} must be an object")
            for key in step:
                if key not in ("id", "toolName", "arguments", "dependsOn", "title", "label"):
                    raise _bad(f"unknown field {where}.{key}")
            sid = step.get("id", f"step_{i + 1}")
            if not isinstance(sid, str) or not sid:
                raise _bad(f"{where}.id must be a non-empty string")
            if sid in seen:
                raise _bad(f"duplicate step id {sid!r}")
            name = step.get("toolName")
            if not isinstance(name, str):
                raise _bad(f"{where}.toolName is required")
            tool = toolcat.get(name)
            if tool is None:
                raise _bad(f"{where}: unknown tool {name!r}", code="WORKFLOW_VALIDATION_FAILED")
            if tool.route == "execute":
                raise _bad(f"{where}: {tool.name} is a synchronous composition tool; use "
                           "/v1/creative-agent/tools/execute", code="WORKFLOW_VALIDATION_FAILED")
            args = step.get("arguments", {})
            if not isinstance(args, dict):
                raise _bad(f"{where}.arguments must be an object")
            hit = find_data_uri(args)
            if hit:
                raise _bad(f"{where}.arguments.{hit}: data: URIs are not accepted by workflows; upload the file "
                           "and reference its URL", code="PARAMETER_INVALID")
            problems = tool.validate(args)
            if problems:
                raise _bad(f"{where} ({tool.name}): " + "; ".join(problems), code="PARAMETER_INVALID",
                           details={"stepId": sid, "toolName": tool.name, "problems": problems})
            deps = step.get("dependsOn")
            if deps is not None and not isinstance(deps, list):
                raise _bad(f"{where}.dependsOn must be an array")
            bindings.check_depends(tool, sid, args, deps or [], refs or [], seen, where)
            bindings.check_indices(tool, args, bindings.upload_counts(refs or []), _results_before(out), where)
            seen.add(sid)
            clean = {"id": sid, "toolName": tool.name, "arguments": args}
            if deps is not None:
                clean["dependsOn"] = deps
            out.append(clean)
        return out

    def create(self, kind: str, title: str | None, input_: dict[str, Any], steps: list[dict[str, Any]],
               opts: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plan and store a workflow whose steps are already valid; returns its first snapshot."""
        wid = new_id("wf")
        flow = Workflow(wid, kind, title, input_, steps, opts, self._wall(), self._clock())
        flow.extra.update(extra or {})
        plan(flow, self._base_url(), self.step_seconds, self.account)
        with self._lock:
            self._flows[wid] = flow
            self._order.append(wid)
        self.register(flow)
        return self.snapshot(wid, at=0.0)  # the acceptance snapshot

    def register(self, flow: Workflow) -> None:
        """Make the workflow's planned artifacts reachable by their media paths."""
        with self._lock:
            for art in flow.artifacts.values():
                self.media[urlsplit(art["url"]).path] = (flow.id, art["id"])

    def spent(self) -> dict[str, tuple[float, float]]:
        """Per token type: (capacity units of the artifacts made so far, units still to be made)."""
        with self._lock:
            flows = list(self._flows.values())
        out: dict[str, tuple[float, float]] = {}
        for flow in flows:
            if not flow.artifacts:
                continue
            status, seen = self._state(flow)
            made = float(sum(a["_units"] for aid, a in flow.artifacts.items() if aid in seen))
            total = sum(a["_units"] for a in flow.artifacts.values())
            pending = 0.0 if status in TERMINAL else total - made
            token = (flow.billing or {}).get("tokenType") or "spark"
            token = token if token in ("spark", "sogni") else "spark"
            m, p = out.get(token, (0.0, 0.0))
            out[token] = (m + made, p + pending)
        return out

    def made_units(self, flow: Workflow) -> float:
        seen = self._state(flow)[1]
        return float(sum(a["_units"] for aid, a in flow.artifacts.items() if aid in seen))

    def _state(self, flow: Workflow) -> tuple[str, set[str]]:
        """The workflow's status now and the artifacts made so far, read from its timeline without building
        the events (every start looks at every workflow, so this stays cheap)."""
        with self._lock:
            elapsed = self._elapsed(flow)
            line = self._timeline(flow)
        status = "queued"
        made: set[str] = set()
        for ev in line:
            if ev["offset"] > elapsed:
                break
            status = ev["status"]
            if ev["type"] == "artifact_created":
                made.add(ev["data"].get("artifactId"))
        return status, made

    def artifact_urls(self, wid: str) -> list[str]:
        flow = self._get(wid)
        return [a["url"] for a in flow.artifacts.values()]

    # ----------------------------------------------------------------- reading
    def _get(self, wid: str) -> Workflow:
        with self._lock:
            flow = self._flows.get(wid)
        if flow is None:
            raise ApiFailure(404, f"workflow {wid!r} not found", code=404, envelope="sogni")
        return flow

    def _elapsed(self, flow: Workflow) -> float:
        return self._clock() - flow.mono

    def _timeline(self, flow: Workflow) -> list[dict[str, Any]]:
        if flow.cancelled_at is None:
            return flow.timeline
        kept = [e for e in flow.timeline if e["offset"] <= flow.cancelled_at]
        return kept + [{"offset": flow.cancelled_at, "type": "workflow_cancelled", "status": "cancelled",
                        "message": "Workflow cancelled", "data": {"status": "cancelled"}}]

    def _event(self, flow: Workflow, seq: int, ev: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"{flow.id}:{seq}", "workflowId": flow.id, "sequence": seq,
                "timestamp": iso(flow.created + ev["offset"]), "type": ev["type"], "status": ev["status"],
                "message": ev["message"], "data": dict(ev["data"])}

    def events(self, wid: str, after: int = 0, at: float | None = None) -> tuple[list[dict[str, Any]], str,
                                                                               float | None]:
        """Visible events after ``after``; the workflow status; seconds until the next event (None: no more).

        ``at`` looks at the workflow that many seconds after its creation instead of now.
        """
        flow = self._get(wid)
        with self._lock:
            elapsed = self._elapsed(flow) if at is None else at
            line = self._timeline(flow)
        out = []
        status = "queued"
        wait: float | None = None
        for i, ev in enumerate(line):
            if ev["offset"] <= elapsed:
                status = ev["status"]
                if i + 1 > after:
                    out.append(self._event(flow, i + 1, ev))
            else:
                wait = ev["offset"] - elapsed
                break
        return out, status, wait

    def snapshot(self, wid: str, at: float | None = None) -> dict[str, Any]:
        flow = self._get(wid)
        events, status, _ = self.events(wid, at=at)
        step_state = {s["id"]: {"status": "queued", "progress": 0.0, "startedAt": None, "completedAt": None}
                      for s in flow.steps}
        visible_art: list[str] = []
        for ev in events:
            data = ev["data"]
            sid = data.get("stepId")
            st = step_state.get(sid) if sid else None
            if ev["type"] == "artifact_created":
                visible_art.append(data["artifactId"])
            if st is None:
                continue
            if ev["type"] == "step_started":
                st.update(status="running", startedAt=ev["timestamp"])
            elif ev["type"] == "workflow_progress":
                st["progress"] = data.get("stepProgress", st["progress"])
            elif ev["type"] in ("step_completed", "step_failed"):
                st.update(status=data["status"], completedAt=ev["timestamp"],
                          progress=1.0 if ev["type"] == "step_completed" else st["progress"])
        if status in ("cancelled", "failed"):
            for st in step_state.values():
                if st["status"] == "running":
                    st["status"] = "cancelled" if status == "cancelled" else "failed"
                elif st["status"] == "queued":
                    st["status"] = "skipped"
        artifacts = []
        for aid in visible_art:
            art = flow.artifacts[aid]
            if "sizeBytes" not in art and self._media_size is not None:
                art["sizeBytes"] = self._media_size(art["_spec"])
            artifacts.append({k: v for k, v in art.items() if not k.startswith("_")})
        steps = []
        for s in flow.steps:
            st = step_state[s["id"]]
            entry = {**s, **st, "artifactIds": [a for a in visible_art if flow.artifacts[a]["stepId"] == s["id"]]}
            if flow.error and flow.error.get("stepId") == s["id"] and st["status"] == "failed":
                entry["error"] = flow.error
            steps.append(entry)
        progress = events[-1]["data"].get("progress", 0.0) if events else 0.0
        updated = events[-1]["timestamp"] if events else iso(flow.created)
        rec: dict[str, Any] = {
            "workflowId": flow.id, "id": flow.id, "kind": flow.kind, "status": status, "title": flow.title,
            "input": flow.input, "steps": steps, "events": events, "artifacts": artifacts, "progress": progress,
            "createdAt": iso(flow.created), "updatedAt": updated,
            "timestamps": {"createdAt": iso(flow.created), "updatedAt": updated,
                           "completedAt": updated if status in TERMINAL and status != "waiting_for_user" else None},
            "tokenType": flow.options.get("token_type"), "billingMode": flow.options.get("billing_mode"),
            "appSource": flow.options.get("app_source"),
            "safeContentFilter": flow.options.get("safe_content_filter", True),
            "maxEstimatedCapacityUnits": flow.options.get("max_estimated_capacity_units"),
            "confirmCost": flow.options.get("confirm_cost", False),
            "mediaReferences": flow.options.get("media_references", []),
            "billingPreview": flow.billing, "awaitingCostApproval": False, "waitingReason": None,
            "error": flow.error if status in ("failed", "partial_failure") else None,
            "cost": {"capacityUnits": self.made_units(flow), "tokenType": flow.billing.get("tokenType"),
                     "estimatedCapacityUnits": flow.billing.get("totalEstimatedCapacityUnits")},
            "resumable": status in ("failed", "partial_failure")
            or (status == "waiting_for_user" and bool(flow.waiting)
                and flow.waiting["waitingReason"] == "insufficient_credit"),
            **flow.extra,
        }
        if status == "waiting_for_user" and flow.waiting:
            rec["waitingReason"] = flow.waiting["waitingReason"]
            rec["awaitingCostApproval"] = flow.waiting["waitingReason"] == "cost_approval_required"
            rec["message"] = flow.waiting["message"]
            rec["waiting"] = {"reason": flow.waiting["waitingReason"], "message": flow.waiting["message"],
                              "details": dict(flow.waiting.get("details") or {})}
        return rec

    def get_artifact(self, path: str) -> tuple[dict[str, Any], bool] | None:
        """(media spec, visible yet) for a media path, or None."""
        with self._lock:
            ref = self.media.get(path)
        if ref is None:
            return None
        wid, aid = ref
        flow = self._get(wid)
        events, _, _ = self.events(wid)
        visible = any(e["data"].get("artifactId") == aid for e in events if e["type"] == "artifact_created")
        return flow.artifacts[aid]["_spec"], visible

    def list(self, limit: int, offset: int) -> dict[str, Any]:
        with self._lock:
            ids = list(reversed(self._order))
        page = ids[offset:offset + limit]
        recs = []
        for wid in page:
            rec = self.snapshot(wid)
            rec.pop("events", None)
            recs.append(rec)
        return {"workflows": recs, "limit": limit, "offset": offset, "total": len(ids)}

    def cancel(self, wid: str) -> dict[str, Any]:
        flow = self._get(wid)
        with self._lock:
            _, status, _ = self.events(wid)
            if status not in TERMINAL:
                flow.cancelled_at = max(0.0, self._elapsed(flow))
        return self.snapshot(wid)

    def urls(self, wid: str) -> dict[str, str]:
        url = f"{self._base_url()}/v1/creative-agent/workflows/{wid}"
        return {"url": url, "eventsUrl": url + "/events", "streamUrl": url + "/events/stream"}


def _results_before(steps: list[dict[str, Any]]) -> dict[str, int]:
    """How many results of each media kind the earlier steps make (what non-negative indices address)."""
    from .plan import variations

    out: dict[str, int] = {}
    for step in steps:
        tool = toolcat.get(step["toolName"])
        if tool is not None and tool.media:
            out[tool.media] = out.get(tool.media, 0) + variations(step["arguments"])
    return out


def parse_after(value: str | None) -> int:
    """A resume point: a sequence number or an event id ending in ``:<sequence>``."""
    if not value:
        return 0
    tail = value.strip().rsplit(":", 1)[-1].rsplit("_", 1)[-1]
    try:
        return max(0, int(tail))
    except ValueError:
        return 0
