"""Durable chat runs: ``/v1/chat/runs[...]``.

A run answers like a chat completion whose hosted tools run as child workflows, but every step is an event
in a replayable log: ``run_created, run_queued, run_started, llm_round_started, assistant_message_delta
(payload.content), tool_call_proposed, tool_call_dispatched, tool_call_progress, artifact_created,
tool_call_resolved, llm_round_completed, assistant_message_completed, run_completed | run_partial_failure |
run_failed | run_cancelled``; a run that needs cost approval (``confirm_cost`` not true and ``runtime_config.
requireJobConfirmation``, an estimate above ``max_estimated_capacity_units``, or ``[wait]`` in the prompt)
stops with ``billing_preview_updated, run_awaiting_cost_confirmation, run_waiting_for_user`` and
``waiting: {reason: cost_approval_required, message, details: {toolCallId, pendingToolCallIds,
costApprovalPreview}}`` until ``confirm-cost``.

Events are ``{sequence, type, at, payload}``; the SSE stream (``/events/stream``, resumable with
``Last-Event-ID`` or ``?after=``) frames each with ``id: <sequence>`` and ``event: <type>``, opens with a
``run_status`` frame, and closes after a terminal event or a wait. ``/events?after=`` answers the log as JSON.
Durable runs refuse ``data:`` URIs anywhere (upload first).
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from . import chat
from . import tools as toolcat
from .common import ApiFailure, body_hash, find_data_uri, iso, is_number, new_id, parse_iso
from .plan import has_marker

if TYPE_CHECKING:  # pragma: no cover
    from .server import Handler

RUN_FIELDS = {"messages", "tools", "tool_choice", "model", "sampling", "media_references", "media_context",
              "max_estimated_capacity_units", "confirm_cost", "session_id", "client_message_id", "token_type",
              "billing_mode", "app_source", "runtime_config"}
TERMINAL = {"run_completed": "completed", "run_partial_failure": "partial_failure", "run_failed": "failed",
            "run_cancelled": "cancelled"}
STATUS_OF = {"run_created": "queued", "run_queued": "queued", "run_started": "running", "run_resumed": "running",
             "run_waiting_for_user": "waiting_for_user", **TERMINAL}


def _bad(message: str, status: int = 400, code: Any = None, details: Any = None) -> ApiFailure:
    return ApiFailure(status, message, code=code if code is not None else status, details=details, envelope="sogni")



class Run:
    def __init__(self, rid: str, body: dict[str, Any], wall: float, mono: float):
        self.id = rid
        self.body = body
        self.created = wall
        self.mono = mono
        self.events: list[dict[str, Any]] = []  # {due (monotonic), type, payload}, in due order
        self.child_workflows: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.pending: dict[str, Any] | None = None  # the tool call waiting for cost approval
        self.cost_idem: dict[str, tuple[str, dict[str, Any]]] = {}


class RunStore:
    def __init__(self, workflows: Any, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        self.workflows = workflows
        self._clock = clock
        self._wall = wall
        self._lock = threading.RLock()
        self._runs: dict[str, Run] = {}
        self._order: list[str] = []
        self._idem: dict[str, tuple[str, str]] = {}

    def reset(self) -> None:
        with self._lock:
            self._runs.clear()
            self._order.clear()
            self._idem.clear()

    # ----------------------------------------------------------------- creation
    def create(self, body: Any, key: str | None) -> tuple[dict[str, Any], bool]:
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        for k in body:
            if k not in RUN_FIELDS:
                raise _bad(f"unknown field {k!r}")
        hit = find_data_uri(body, "request")
        if hit:
            raise _bad(f"{hit}: durable runs do not accept data: URIs; upload the media and send its URL",
                       code=4001)
        chat_body = self._chat_body(body)
        try:
            reply = chat.complete(chat_body, chat.ChatContext(None))
        except ApiFailure as exc:
            raise _bad(exc.message, exc.status, details=exc.details) from None
        digest = body_hash(body)
        with self._lock:
            if key:
                seen = self._idem.get(key)
                if seen is not None:
                    if seen[0] != digest:
                        raise _bad("Idempotency-Key was already used with a different request body", 409)
                    return self.snapshot(seen[1]), True
            run = Run(new_id("run"), body, self._wall(), self._clock())
            self._runs[run.id] = run
            self._order.append(run.id)
            if key:
                self._idem[key] = (digest, run.id)
            self._plan(run, reply)
        return self.snapshot(run.id), False

    @staticmethod
    def _chat_body(body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if isinstance(messages, list):  # vision images are URLs here (uploads); the reply does not look at them
            messages = [dict(m, content=[p for p in m["content"] if not (isinstance(p, dict) and
                                                                         p.get("type") == "image_url")]
                             or "[image]") if isinstance(m, dict) and isinstance(m.get("content"), list) else m
                        for m in messages]
        out: dict[str, Any] = {"messages": messages, "sogni_tools": "creative-agent",
                               "sogni_tool_execution": False}
        for k in ("tools", "tool_choice", "model"):
            if k in body:
                out[k] = body[k]
        sampling = body.get("sampling")
        if sampling is not None and not isinstance(sampling, dict):
            raise _bad("sampling must be an object")
        for k in ("temperature", "max_tokens", "top_p", "top_k", "min_p"):
            if isinstance(sampling, dict) and k in sampling:
                out[k] = sampling[k]
        if isinstance(sampling, dict) and sampling.get("think") is not None:
            out["chat_template_kwargs"] = {"enable_thinking": bool(sampling["think"])}
        return out

    def _at(self, run: Run, offset: float, type_: str, **payload: Any) -> float:
        run.events.append({"due": run.mono + offset, "type": type_, "payload": payload})
        return offset

    def _plan(self, run: Run, reply: Any, start: float = 0.0, first: bool = True) -> None:
        t = start
        if first:
            self._at(run, t, "run_created", status="queued")
            self._at(run, t, "run_queued", status="queued")
            t += self.workflows.step_seconds / 4
            self._at(run, t, "run_started", status="running")
        self._at(run, t, "llm_round_started", round=1)
        calls = reply.tool_calls
        hosted = [c for c in calls if toolcat.get(c["name"]) is not None and c["name"] not in self._custom(run)]
        if not hosted:
            self._say(run, t, reply.content or "", reply.finish_reason, calls)
            return
        call = hosted[0]
        args = json.loads(call["arguments"] or "{}")
        tool = toolcat.get(call["name"])
        assert tool is not None
        run.tool_calls.append({"id": call["id"], "name": call["name"], "arguments": args})
        self._at(run, t, "tool_call_proposed", toolCallId=call["id"], toolName=tool.name, arguments=args)
        self._at(run, t, "llm_round_completed", round=1, finishReason="tool_calls")
        preview = self._preview(run, tool, args)
        body = run.body
        limit = body.get("max_estimated_capacity_units")
        rc = body.get("runtime_config") if isinstance(body.get("runtime_config"), dict) else {}
        wants = (rc.get("requireJobConfirmation") is True or (is_number(limit) and
                 preview["totalEstimatedCapacityUnits"] > limit) or has_marker(body.get("messages"), "[wait]"))
        if wants and body.get("confirm_cost") is not True:
            run.pending = {"toolCallId": call["id"], "tool": tool.name, "arguments": args, "preview": preview}
            self._at(run, t, "billing_preview_updated", preview=preview)
            self._at(run, t, "run_awaiting_cost_confirmation", toolCallId=call["id"], costApprovalPreview=preview)
            self._at(run, t, "run_waiting_for_user", status="waiting_for_user", reason="cost_approval_required",
                     message=f"Approve {preview['totalEstimatedCapacityUnits']} capacity units to run {tool.name}",
                     details=self._wait_details(run))
            return
        self._dispatch(run, call["id"], tool, args, t)

    @staticmethod
    def _custom(run: Run) -> set[str]:
        tools = run.body.get("tools") or []
        return {t.get("function", {}).get("name") for t in tools if isinstance(t, dict)}

    def _preview(self, run: Run, tool: Any, args: dict[str, Any]) -> dict[str, Any]:
        from .plan import UNITS, variations

        units = UNITS.get(tool.media or "", 1) * variations(args)
        return {"totalEstimatedCapacityUnits": units, "tokenType": run.body.get("token_type") or "spark",
                "validityUntil": iso(self._wall() + 600),
                "perToolBreakdown": [{"toolName": tool.name, "estimatedCapacityUnits": units}]}

    @staticmethod
    def _wait_details(run: Run) -> dict[str, Any]:
        assert run.pending is not None
        return {"toolCallId": run.pending["toolCallId"], "pendingToolCallIds": [run.pending["toolCallId"]],
                "costApprovalPreview": run.pending["preview"]}

    def _dispatch(self, run: Run, call_id: str, tool: Any, args: dict[str, Any], t: float) -> None:
        opts = {k: run.body[k] for k in ("token_type", "billing_mode", "app_source", "media_references")
                if k in run.body}
        opts["confirm_cost"] = True
        steps = [{"id": "step_1", "toolName": tool.name, "arguments": args}]
        prompt = str(args.get("prompt") or tool.name)
        rec = self.workflows.create("chat_run_tool", prompt[:80], {"title": prompt[:80], "steps": steps,
                                                                   "source": "chat_run"}, steps, opts,
                                    extra={"runId": run.id})
        wid = rec["workflowId"]
        run.child_workflows.append(wid)
        flow = self.workflows._get(wid)
        self._at(run, t, "tool_call_dispatched", toolCallId=call_id, toolName=tool.name, workflowId=wid)
        end = t
        status = "completed"
        urls = []
        for ev in flow.timeline:
            at = t + ev["offset"]
            end = max(end, at)
            data = ev["data"]
            if ev["type"] == "workflow_progress" and ev["status"] == "running":
                self._at(run, at, "tool_call_progress", toolCallId=call_id, toolName=tool.name, workflowId=wid,
                         jobIndex=0, jobProgress=data.get("progress", 0.0), jobEtaSeconds=None)
            elif ev["type"] == "artifact_created":
                art = flow.artifacts[data["artifactId"]]
                urls.append(art["url"])
                self._at(run, at, "artifact_created", artifact={
                    "id": art["id"], "workflowId": wid, "stepId": art["stepId"], "url": art["url"],
                    "mediaType": art["kind"], "toolName": tool.name, "mimeType": art.get("mimeType")})
            elif ev["type"] in ("workflow_completed", "workflow_failed", "workflow_waiting_for_user"):
                status = ev["status"]
        ok = status in ("completed", "partial_failure")
        result = {"success": ok, "workflowId": wid, "media_type": tool.media, "urls": urls}
        if not ok:
            result["error"] = (flow.error or {}).get("message") or f"workflow {status}"
        self._at(run, end, "tool_call_resolved", toolCallId=call_id, toolName=tool.name, result=result,
                 status=status)
        self._at(run, end, "llm_round_started", round=2)
        text = (f"Made {len(urls)} {tool.media or 'result'}(s) with {tool.name}: " + " ".join(urls)) if urls \
            else f"{tool.name} did not finish ({status})."
        final = {"completed": "run_completed", "partial_failure": "run_partial_failure"}.get(status, "run_failed")
        self._say(run, end, text, "stop", [], final=final, failure=None if ok else result.get("error"))

    def _say(self, run: Run, t: float, text: str, finish: str | None, calls: list[dict[str, Any]],
             final: str = "run_completed", failure: str | None = None) -> None:
        gap = self.workflows.step_seconds / 20
        for i in range(0, len(text), 16):
            t += gap
            self._at(run, t, "assistant_message_delta", content=text[i:i + 16])
        self._at(run, t, "assistant_message_completed", content=text, finishReason=finish,
                 toolCalls=[{"id": c["id"], "name": c["name"], "arguments": c["arguments"]} for c in calls])
        payload: dict[str, Any] = {"status": TERMINAL[final]}
        if failure:
            payload["failureReason"] = failure
        self._at(run, t, final, **payload)

    # ----------------------------------------------------------------- reading
    def get(self, rid: str) -> Run:
        with self._lock:
            run = self._runs.get(rid)
        if run is None:
            raise _bad(f"chat run {rid!r} not found", 404)
        return run

    def events(self, rid: str, after: int = 0) -> tuple[list[dict[str, Any]], str, float | None]:
        """(visible events after ``after``, the run's status, seconds until the next one or None)."""
        run = self.get(rid)
        now = self._clock()
        out, status, wait = [], "queued", None
        with self._lock:
            line = list(run.events)
        for i, ev in enumerate(line):
            if ev["due"] > now:
                wait = ev["due"] - now
                break
            status = STATUS_OF.get(ev["type"], status)
            if i + 1 > after:
                out.append({"sequence": i + 1, "type": ev["type"], "at": iso(run.created + ev["due"] - run.mono),
                            "payload": dict(ev["payload"])})
        return out, status, wait

    def snapshot(self, rid: str, with_events: bool = False) -> dict[str, Any]:
        run = self.get(rid)
        events, status, _ = self.events(rid)
        text, finish, failure, cancel, arts, results = "", None, None, None, [], []
        waiting = None
        for ev in events:
            p = ev["payload"]
            if ev["type"] == "assistant_message_completed":
                text, finish = p.get("content") or "", p.get("finishReason")
            elif ev["type"] == "artifact_created":
                arts.append(p["artifact"])
            elif ev["type"] == "tool_call_resolved":
                results.append({"toolCallId": p["toolCallId"], "toolName": p["toolName"], "result": p["result"]})
            elif ev["type"] == "run_failed":
                failure = p.get("failureReason")
            elif ev["type"] == "run_cancelled":
                cancel = p.get("reason")
            elif ev["type"] == "run_waiting_for_user":
                details = self._wait_details(run) if run.pending else p["details"]  # a refreshed preview wins
                waiting = {"reason": p["reason"], "message": p["message"], "details": details}
        body = run.body
        updated = events[-1]["at"] if events else iso(run.created)
        rec: dict[str, Any] = {
            "runId": run.id, "id": run.id, "status": status, "schemaVersion": 1,
            "scope": {"ownerWalletAddress": "0x000000000000000000000000000000000000e0e0",
                      "tokenType": body.get("token_type") or "spark", "appSource": body.get("app_source")},
            "request": body, "messages": list(body.get("messages") or []) + (
                [{"role": "assistant", "content": text}] if finish else []),
            "toolCalls": list(run.tool_calls), "toolResults": results,
            "mediaContext": body.get("media_context") or {}, "artifacts": arts,
            "childWorkflowIds": list(run.child_workflows),
            "finalResponse": {"content": text, "finishReason": finish} if finish else None,
            "waiting": waiting if status == "waiting_for_user" else None,
            "billingPreview": run.pending["preview"] if run.pending else None,
            "failureReason": failure, "cancellationReason": cancel,
            "timestamps": {"createdAt": iso(run.created), "updatedAt": updated,
                           "completedAt": updated if status in TERMINAL.values() else None},
        }
        if with_events:
            rec["events"] = events
        return rec

    def list(self, limit: int, offset: int) -> dict[str, Any]:
        with self._lock:
            ids = list(reversed(self._order))
        return {"runs": [self.snapshot(r) for r in ids[offset:offset + limit]], "limit": limit, "offset": offset,
                "total": len(ids)}

    # ----------------------------------------------------------------- changes
    def cancel(self, rid: str, body: Any) -> dict[str, Any]:
        run = self.get(rid)
        reason = body.get("reason") if isinstance(body, dict) else None
        with self._lock:
            _, status, _ = self.events(rid)
            if status == "cancelled":
                return self.snapshot(rid)
            if status in TERMINAL.values():
                raise _bad(f"chat run {rid} is {status}; it cannot be cancelled", 409,
                           details={"runId": rid, "status": status})
            now = self._clock()
            run.events = [e for e in run.events if e["due"] <= now]
            for wid in run.child_workflows:
                self.workflows.cancel(wid)
            run.pending = None
            self._at(run, now - run.mono, "run_cancelled", status="cancelled", reason=reason or "cancelled by the user")
        return self.snapshot(rid)

    def confirm_cost(self, rid: str, body: Any, key: str | None) -> dict[str, Any]:
        run = self.get(rid)
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        with self._lock:
            if key and key in run.cost_idem:
                digest, answer = run.cost_idem[key]
                if digest != body_hash(body):
                    raise _bad("Idempotency-Key was already used with a different request body", 409)
                return answer
            _, status, _ = self.events(rid)
            if status != "waiting_for_user" or run.pending is None:
                raise _bad(f"chat run {rid} is not waiting for cost approval (it is {status})", 409,
                           code="NOT_AWAITING_COST_APPROVAL", details={"runId": rid, "status": status})
            if body.get("tool_call_id") != run.pending["toolCallId"]:
                raise _bad(f"tool_call_id must be {run.pending['toolCallId']!r} (the call waiting for approval)")
            decision = body.get("decision")
            if decision not in ("confirm", "cancel"):
                raise _bad("decision must be confirm or cancel")
            now = self._clock() - run.mono
            pending = run.pending
            if decision == "cancel":
                run.pending = None
                self._at(run, now, "run_cost_confirmation_resolved", toolCallId=pending["toolCallId"],
                         decision="cancel")
                self._at(run, now, "run_cancelled", status="cancelled", reason=body.get("reason") or "cost declined")
            else:
                accepted = body.get("acceptedCostPreview")
                if not isinstance(accepted, dict):
                    raise _bad("acceptedCostPreview is required to confirm (send back the preview unchanged)")
                preview = pending["preview"]
                expired = (parse_iso(str(preview.get("validityUntil"))) or 0) < self._wall()
                if expired or accepted != preview:
                    tool = toolcat.get(pending["tool"])
                    pending["preview"] = self._preview(run, tool, pending["arguments"])
                    raise _bad("the accepted cost preview " + ("expired" if expired else "does not match") +
                               "; read the run again for a fresh preview", 409, code="COST_PREVIEW_STALE",
                               details={"costApprovalPreview": pending["preview"]})
                run.pending = None
                self._at(run, now, "run_cost_confirmation_resolved", toolCallId=pending["toolCallId"],
                         decision="confirm")
                self._at(run, now, "run_resumed", status="running")
                tool = toolcat.get(pending["tool"])
                args = dict(pending["arguments"], **(body.get("overrides") or {}))
                self._dispatch(run, pending["toolCallId"], tool, args, now)
            answer = self.snapshot(rid)
            if key:
                run.cost_idem[key] = (body_hash(body), answer)
        return answer


# --------------------------------------------------------------------------- routes
def _int(query: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(query.get(key, default))
    except ValueError:
        raise _bad(f"{key} must be an integer") from None
    if not lo <= value <= hi:
        raise _bad(f"{key} must be between {lo} and {hi}")
    return value


def route(h: "Handler", method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> None:
    from .workflows import parse_after

    store: RunStore = h.emu.runs
    parts = path[len("/v1/chat/runs"):].strip("/").split("/")
    parts = [p for p in parts if p]

    def ok(data: Any, status: int = 200) -> None:
        h.send_json(status, {"status": "success", "data": data})

    def only(m: str) -> None:
        if method != m:
            raise ApiFailure(405, f"{method} is not allowed on {path}", code=405)

    if not parts:
        if method == "POST":
            run, reused = store.create(body, headers.get("idempotency-key"))
            ok({"run": run, **({"idempotent": True} if reused else {})}, 200 if reused else 201)
        elif method == "GET":
            ok(store.list(_int(query, "limit", 20, 1, 100), _int(query, "offset", 0, 0, 10**9)))
        else:
            raise ApiFailure(405, f"{method} is not allowed on {path}", code=405)
        return
    rid, rest = parts[0], parts[1:]
    if not rest:
        only("GET")
        ok({"run": store.snapshot(rid)})
    elif rest == ["events"]:
        only("GET")
        events, status, _ = store.events(rid, parse_after(query.get("after")))
        ok({"runId": rid, "status": status, "events": events})
    elif rest == ["events", "stream"]:
        only("GET")
        stream(h, rid, parse_after(headers.get("last-event-id") or query.get("after")))
    elif rest == ["cancel"]:
        only("POST")
        ok({"run": store.cancel(rid, body)})
    elif rest == ["confirm-cost"]:
        only("POST")
        ok({"run": store.confirm_cost(rid, body, headers.get("idempotency-key"))})
    else:
        raise ApiFailure(404, f"no route for {path}", code=404)


def stream(h: "Handler", rid: str, after: int) -> None:
    emu = h.emu
    store: RunStore = emu.runs
    store.get(rid)  # 404 before the stream starts
    h.sse_start()
    h.sse_frame("event: run_status\ndata: " + json.dumps({"runId": rid, "status": store.events(rid)[1]}) + "\n\n")
    last_write = time.monotonic()
    while not emu.stopping.is_set():
        events, status, wait = store.events(rid, after)
        for ev in events:
            h.sse_frame(f"id: {ev['sequence']}\nevent: {ev['type']}\ndata: {json.dumps(ev)}\n\n")
            after = ev["sequence"]
            last_write = time.monotonic()
        if (status in TERMINAL.values() or status == "waiting_for_user") and wait is None:
            break
        emu.stopping.wait(min(emu.keepalive, 0.1 if wait is None else max(0.001, min(wait, 0.1))))
        if time.monotonic() - last_write >= emu.keepalive:
            h.sse_comment("keepalive")
            last_write = time.monotonic()
    h.sse_end()
