"""What happens to a workflow after it started: resume, reseed and cost approval.

- ``POST …/workflows/{id}/resume`` continues a ``partial_failure`` or ``failed`` workflow (only the work that
  did not finish runs again, and it recovers), or one waiting for credit once the balance allows it. Any
  other state is a 409 ``WORKFLOW_NOT_RESUMABLE`` carrying the state; a workflow waiting for cost approval
  is resumed by ``confirm-cost`` instead. Answers ``{workflow, resumed}``.
- ``POST …/workflows/{id}/reseed`` runs a finished workflow again as a new workflow with new seeds
  (``seed_overrides: {stepId: seed}`` pins some). An unknown step (or one whose tool takes no seed) is a
  400; a workflow that has not finished is a 409. ``Idempotency-Key`` replays the first answer
  (``idempotent: true``). Answers ``{workflow, reseed: {cloned_from_run_id, steps: [{stepId, seed}]}}``.
- ``POST …/workflows/{id}/confirm-cost`` ``{decision: "confirm"|"cancel", acceptedCostPreview}`` answers a
  ``cost_approval_required`` wait: a confirm needs the preview sent back unchanged (400 without it, 409 when
  it expired or changed; the workflow record then carries a fresh one). Answers ``{workflow}``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from . import tools as toolcat
from .common import ApiFailure, body_hash, is_int, parse_iso
from .plan import preview, run_steps, wait_at

BILLING_KEYS = {"token_type": "token_type", "tokenType": "token_type", "billing_mode": "billing_mode",
                "billingMode": "billing_mode", "app_source": "app_source", "appSource": "app_source"}


def _bad(message: str, code: Any = "PARAMETER_INVALID", status: int = 400, details: Any = None) -> ApiFailure:
    return ApiFailure(status, message, code=code, details=details, envelope="sogni")


def _billing(body: Any, allowed: set[str]) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in BILLING_KEYS:
            out[BILLING_KEYS[key]] = value
        elif key not in allowed:
            raise _bad(f"unknown field {key!r}")
    if "token_type" in out and out["token_type"] not in ("spark", "sogni", "auto"):
        raise _bad("token_type must be spark, sogni or auto")
    if "billing_mode" in out and out["billing_mode"] not in ("auto", "subscription", "tokens"):
        raise _bad("billing_mode must be auto, subscription or tokens")
    return out


def _not_now(wid: str, status: str, what: str) -> ApiFailure:
    return _bad(f"workflow {wid} is {status}; {what}", code="WORKFLOW_NOT_RESUMABLE", status=409,
                details={"workflowId": wid, "status": status})


def resume(store: Any, wid: str, body: Any) -> dict[str, Any]:
    flow = store._get(wid)
    opts = _billing(body, set())
    with store._lock:
        _, status, _ = store.events(wid)
        now = store._elapsed(flow)
        if status == "waiting_for_user" and flow.waiting:
            reason = flow.waiting["waitingReason"]
            if reason in ("cost_approval_required", "cost_reauthorization_required"):
                raise _not_now(wid, f"waiting for cost approval ({reason})",
                               f"approve it with POST /v1/creative-agent/workflows/{wid}/confirm-cost")
            if reason == "insufficient_credit":
                flow.options.update(opts)
                flow.billing = preview(flow, store._wall())
                need = flow.billing["totalEstimatedCapacityUnits"]
                acct = store.account
                left = acct.available(flow.billing["tokenType"]) if acct is not None else need
                if left < need:
                    raise ApiFailure(402, f"Insufficient balance: {need} capacity units needed, {max(0, left):g} "
                                          "available", code=123, envelope="sogni",
                                     details={"required": need, "available": max(0, left),
                                              "tokenType": flow.billing["tokenType"]})
                run_steps(flow, store._base_url(), store.step_seconds, now, recover=True)
                store.register(flow)
                return {"workflow": store.snapshot(wid), "resumed": True}
        if status not in ("failed", "partial_failure"):
            raise _not_now(wid, status, "only partial_failure, failed and waiting_for_user (credit) workflows "
                                        "can be resumed")
        flow.options.update(opts)
        run_steps(flow, store._base_url(), store.step_seconds, now, recover=True)
        store.register(flow)
    return {"workflow": store.snapshot(wid), "resumed": True}


def _seed_for(wid: str, sid: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{wid}|{sid}|{salt}".encode()).digest()[:4], "big")


def reseed(store: Any, wid: str, body: Any, key: str | None) -> tuple[dict[str, Any], int]:
    flow = store._get(wid)
    opts = _billing(body, {"seed_overrides", "seedOverrides"})
    overrides = (body or {}).get("seed_overrides", (body or {}).get("seedOverrides")) if isinstance(body, dict) \
        else None
    if overrides is not None and not isinstance(overrides, dict):
        raise _bad("seed_overrides must be an object of step id -> seed")
    overrides = overrides or {}
    by_id = {s["id"]: s for s in flow.steps}
    for sid, seed in overrides.items():
        if sid not in by_id:
            raise _bad(f"seed_overrides: workflow {wid} has no step {sid!r} (steps: {', '.join(by_id)})",
                       details={"unknownStepId": sid, "stepIds": list(by_id)})
        tool = toolcat.get(by_id[sid]["toolName"])
        if tool is None or "seed" not in tool.params:
            raise _bad(f"seed_overrides: step {sid!r} ({by_id[sid]['toolName']}) takes no seed")
        if not is_int(seed) or seed < 0:
            raise _bad(f"seed_overrides.{sid} must be a non-negative integer")
    digest = body_hash({"wid": wid, "body": body})
    with store._lock:
        if key:
            seen = store._idem.get("reseed:" + key)
            if seen is not None:
                if seen[0] != digest:
                    raise ApiFailure(409, "Idempotency-Key was already used with a different request body",
                                     code=409, envelope="sogni")
                return dict(seen[2], workflow=store.snapshot(seen[1]), idempotent=True), 200
        _, status, _ = store.events(wid)
        if status not in ("completed", "partial_failure", "failed"):
            raise _not_now(wid, status, "only a finished workflow can be reseeded")
        steps, seeds = [], []
        salt = f"{time.time_ns()}"
        for s in flow.steps:
            tool = toolcat.get(s["toolName"])
            args = dict(s["arguments"])
            if tool is not None and "seed" in tool.params:
                args["seed"] = overrides.get(s["id"], _seed_for(wid, s["id"], salt))
                seeds.append({"stepId": s["id"], "seed": args["seed"]})
            steps.append(dict(s, arguments=args))
        options = dict(flow.options, **opts)
        options["confirm_cost"] = True  # the original was approved already
        title = flow.title
        inp = dict(flow.input, steps=steps)
        info = {"cloned_from_run_id": wid, "steps": seeds}
        record = store.create(flow.kind, title, inp, steps, options, extra={"reseededFrom": wid})
        if key:
            store._idem["reseed:" + key] = (digest, record["workflowId"], {"reseed": info})
    return {"workflow": record, "reseed": info}, 201


def confirm_cost(store: Any, wid: str, body: Any) -> dict[str, Any]:
    flow = store._get(wid)
    if body is not None and not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    body = body or {}
    decision = body.get("decision", "confirm")
    if decision not in ("confirm", "cancel"):
        raise _bad("decision must be confirm or cancel")
    with store._lock:
        _, status, _ = store.events(wid)
        reason = flow.waiting["waitingReason"] if flow.waiting else None
        if status != "waiting_for_user" or reason not in ("cost_approval_required", "cost_reauthorization_required"):
            raise _bad(f"workflow {wid} is not waiting for cost approval (it is {status})",
                       code="NOT_AWAITING_COST_APPROVAL", status=409, details={"workflowId": wid, "status": status})
        if decision == "cancel":
            store.cancel(wid)
            return {"workflow": store.snapshot(wid)}
        accepted = body.get("acceptedCostPreview", body.get("accepted_cost_preview"))
        if not isinstance(accepted, dict):
            raise _bad("acceptedCostPreview is required to confirm (send back the preview from the workflow record)")
        current = flow.billing
        expired = (parse_iso(str(current.get("validityUntil") or "")) or 0) < store._wall()
        if expired or accepted.get("totalEstimatedCapacityUnits") != current.get("totalEstimatedCapacityUnits") \
                or accepted.get("validityUntil") != current.get("validityUntil"):
            flow.billing = preview(flow, store._wall())
            flow.waiting["details"] = {"costApprovalPreview": flow.billing}
            why = "expired" if expired else "does not match the current preview"
            raise _bad(f"the accepted cost preview {why}; read the workflow again for a fresh preview",
                       code="COST_PREVIEW_STALE", status=409, details={"costApprovalPreview": flow.billing})
        flow.options["confirm_cost"] = True
        run_steps(flow, store._base_url(), store.step_seconds, store._elapsed(flow))
        store.register(flow)
    return {"workflow": store.snapshot(wid)}


_ = wait_at
