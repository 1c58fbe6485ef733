"""The emulator's account, template, durable-run and workflow-lifecycle routes, over real sockets."""

from __future__ import annotations

import json

import httpx
import pytest

from sogni_cli import emulator as emulator_mod

KEY = {"api-key": "sk-test-emulator"}
WF = "/v1/creative-agent/workflows"
RUNS = "/v1/chat/runs"


@pytest.fixture
def emu():
    e = emulator_mod.start(step_seconds=0.02, balance=100)
    yield e
    e.stop()


@pytest.fixture
def c(emu):
    with httpx.Client(base_url=emu.base_url, headers=KEY, trust_env=False, timeout=10) as client:
        yield client


def data(r: httpx.Response, status: int = 200):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "success"
    return body["data"]


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error"
    return body


def sse(c: httpx.Client, path: str, headers=None, params=None) -> list[dict]:
    frames, cur = [], {}
    with c.stream("GET", path, headers=headers or {}, params=params) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                if cur:
                    frames.append(cur)
                cur = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(":")
                cur[k] = v.strip()
    return frames


def start(c, steps, **extra):
    return data(c.post(WF, json={"input": {"steps": steps}, **extra}), 201)["workflow"]


def finish(c, wid) -> dict:
    sse(c, f"{WF}/{wid}/events/stream")
    return data(c.get(f"{WF}/{wid}"))["workflow"]


IMAGE = {"toolName": "generate_image", "arguments": {"prompt": "a fox", "numberOfVariations": 2}}


# ----------------------------------------------------------------------------- account


def test_account_me_balance_and_subscription(c):
    me = data(c.get("/v1/account/me"))
    assert me["username"] and me["walletAddress"].startswith("0x")
    bal = data(c.get("/v4/account/balance"))
    assert bal["spark"] == {"credit": "100.00", "debit": "0.00", "net": "100.00", "settled": "100.00",
                            "premiumCredit": "0.00"}
    assert set(bal["sogni"]) == {"credit", "debit", "net", "settled"}
    sub = data(c.get("/v1/subscriptions/status"))["subscription"]
    assert sub["status"] == "none" and sub["active"] is False
    assert "capacityUnitsUsed" in data(c.get("/v1/subscriptions/usage"))["usage"]


def test_balance_goes_down_as_media_are_made(c):
    wf = start(c, [IMAGE], token_type="spark")
    assert wf["billingPreview"]["totalEstimatedCapacityUnits"] == 2
    rec = finish(c, wf["workflowId"])
    assert rec["cost"] == {"capacityUnits": 2.0, "tokenType": "spark", "estimatedCapacityUnits": 2}
    bal = data(c.get("/v4/account/balance"))
    assert bal["spark"]["debit"] == "2.00" and bal["spark"]["net"] == "98.00"
    assert data(c.get("/v4/account/balance"))["sogni"]["debit"] == "0.00"


def test_a_workflow_over_the_balance_waits_for_credit_and_resumes_when_there_is_some(c, emu):
    video = {"toolName": "generate_video", "arguments": {"prompt": "waves", "numberOfVariations": 11}}  # 110 units
    rec = finish(c, start(c, [video])["workflowId"])
    assert rec["status"] == "waiting_for_user" and rec["waitingReason"] == "insufficient_credit"
    assert rec["waiting"]["details"]["required"] == 110 and rec["resumable"] is True
    err = error(c.post(f"{WF}/{rec['workflowId']}/resume", json={}), 402)
    assert err["errorCode"] == 123 and err["details"]["available"] == 100
    c.post("/_emulator/config", json={"balance": 500})
    out = data(c.post(f"{WF}/{rec['workflowId']}/resume", json={"token_type": "spark"}))
    assert out["resumed"] is True
    assert finish(c, rec["workflowId"])["status"] == "completed"


# ----------------------------------------------------------------------------- cost approval


def test_cost_approval_wait_then_confirm_cost(c):
    wf = start(c, [IMAGE], max_estimated_capacity_units=1)
    rec = finish(c, wf["workflowId"])
    assert rec["status"] == "waiting_for_user" and rec["awaitingCostApproval"] is True
    preview = rec["waiting"]["details"]["costApprovalPreview"]
    assert preview["totalEstimatedCapacityUnits"] == 2 and preview["tokenType"] == "spark"
    assert preview["validityUntil"] and preview["perToolBreakdown"][0]["toolName"] == "generate_image"
    wid = rec["workflowId"]
    error(c.post(f"{WF}/{wid}/confirm-cost", json={"decision": "confirm"}), 400)  # no preview
    stale = dict(preview, totalEstimatedCapacityUnits=1)
    assert error(c.post(f"{WF}/{wid}/confirm-cost", json={"acceptedCostPreview": stale}), 409)["errorCode"] \
        == "COST_PREVIEW_STALE"
    fresh = data(c.get(f"{WF}/{wid}"))["workflow"]["waiting"]["details"]["costApprovalPreview"]
    error(c.post(f"{WF}/{wid}/resume", json={}), 409)  # approval goes through confirm-cost
    data(c.post(f"{WF}/{wid}/confirm-cost", json={"decision": "confirm", "acceptedCostPreview": fresh}))
    rec = finish(c, wid)
    assert rec["status"] == "completed" and len(rec["artifacts"]) == 2
    assert error(c.post(f"{WF}/{wid}/confirm-cost", json={"acceptedCostPreview": fresh}), 409)["details"][
        "status"] == "completed"


# ----------------------------------------------------------------------------- resume and reseed


def test_resume_a_partial_failure_makes_only_what_is_missing(c):
    step = {"id": "img", "toolName": "generate_image", "arguments": {"prompt": "[partial] foxes",
                                                                      "numberOfVariations": 4}}
    rec = finish(c, start(c, [step])["workflowId"])
    assert rec["status"] == "partial_failure" and len(rec["artifacts"]) == 2 and rec["resumable"]
    out = data(c.post(f"{WF}/{rec['workflowId']}/resume", json={"billing_mode": "tokens"}))
    assert out["resumed"] is True and out["workflow"]["workflowId"] == rec["workflowId"]
    rec = finish(c, rec["workflowId"])
    assert rec["status"] == "completed" and sorted(a["id"] for a in rec["artifacts"]) == [
        "img-1", "img-2", "img-3", "img-4"]


def test_resume_of_a_workflow_that_is_not_resumable_is_a_409_with_its_state(c):
    rec = finish(c, start(c, [IMAGE])["workflowId"])
    err = error(c.post(f"{WF}/{rec['workflowId']}/resume", json={}), 409)
    assert err["errorCode"] == "WORKFLOW_NOT_RESUMABLE" and err["details"]["status"] == "completed"
    error(c.post(f"{WF}/wf_missing/resume", json={}), 404)


def test_reseed_makes_a_new_workflow_and_replays_with_its_key(c):
    step = {"id": "img", "toolName": "generate_image", "arguments": {"prompt": "a fox", "seed": 1}}
    wid = finish(c, start(c, [step])["workflowId"])["workflowId"]
    bad = error(c.post(f"{WF}/{wid}/reseed", json={"seed_overrides": {"nope": 3}}), 400)
    assert bad["details"]["unknownStepId"] == "nope" and bad["details"]["stepIds"] == ["img"]
    h = {"Idempotency-Key": "reseed-1"}
    out = data(c.post(f"{WF}/{wid}/reseed", json={"seed_overrides": {"img": 7}}, headers=h), 201)
    assert out["reseed"] == {"cloned_from_run_id": wid, "steps": [{"stepId": "img", "seed": 7}]}
    new = out["workflow"]["workflowId"]
    assert new != wid and out["workflow"]["input"]["steps"][0]["arguments"]["seed"] == 7
    again = data(c.post(f"{WF}/{wid}/reseed", json={"seed_overrides": {"img": 7}}, headers=h))
    assert again["idempotent"] is True and again["workflow"]["workflowId"] == new
    other = data(c.post(f"{WF}/{wid}/reseed", json={}), 201)
    assert other["reseed"]["steps"][0]["seed"] != 1


# ----------------------------------------------------------------------------- templates


TEMPLATE = {"name": "fox-card", "description": "A card", "category": "custom",
            "inputs": [{"name": "animal", "type": "string", "required": True},
                       {"name": "count", "type": "integer", "default": 1}],
            "input": {"title": "card", "steps": [{"id": "card", "toolName": "generate_image", "arguments": {
                "prompt": "a {{inputs.animal}} on a card", "numberOfVariations": "{{inputs.count}}"}}]}}


def test_templates_create_list_get_update_fork_run_delete(c):
    listing = data(c.get(f"{WF}/templates", params={"visibility": "public"}))
    assert [t["id"] for t in listing["templates"]] == ["tpl_public_portrait"] and listing["next"] is None
    tpl = data(c.post(f"{WF}/templates", json=TEMPLATE), 201)["template"]
    tid = tpl["id"]
    assert tpl["version"] == 1 and tpl["visibility"] == "private" and tpl["versions"] == [
        {"version": 1, "createdAt": tpl["updatedAt"]}]
    page = data(c.get(f"{WF}/templates", params={"limit": 1}))
    assert len(page["templates"]) == 1 and page["next"] == 1
    tpl2 = data(c.patch(f"{WF}/templates/{tid}", json={"description": "Better"}))["template"]
    assert tpl2["version"] == 2 and [v["version"] for v in tpl2["versions"]] == [1, 2]
    assert data(c.get(f"{WF}/templates/{tid}", params={"version": 1}))["template"]["description"] == "A card"
    wf = data(c.post(f"{WF}/templates/{tid}/run", json={"inputs": {"animal": "fox", "count": 2}}), 201)["workflow"]
    assert wf["templateId"] == tid and wf["templateVersion"] == 2
    assert wf["input"]["steps"][0]["arguments"] == {"prompt": "a fox on a card", "numberOfVariations": 2}
    wf2 = data(c.post(WF, json={"workflow_id": tid, "inputs": {"animal": "cat"}}), 201)["workflow"]
    assert wf2["input"]["steps"][0]["arguments"]["numberOfVariations"] == 1
    fork = data(c.post(f"{WF}/templates/{tid}/fork", json={"newName": "mine"}), 201)["template"]
    assert fork["name"] == "mine" and fork["forkedFrom"] == {"id": tid, "version": 2}
    assert data(c.delete(f"{WF}/templates/{tid}"))["deleted"] is True
    error(c.get(f"{WF}/templates/{tid}"), 404)
    error(c.delete(f"{WF}/templates/tpl_public_portrait"), 403)


def test_template_inputs_are_checked(c):
    tid = data(c.post(f"{WF}/templates", json=TEMPLATE), 201)["template"]["id"]
    err = error(c.post(WF, json={"workflow_id": tid, "inputs": {"animl": "fox"}}), 400)
    assert err["errorCode"] == "UNKNOWN_TEMPLATE_INPUT" and err["details"]["didYouMean"] == ["animal"]
    assert error(c.post(WF, json={"workflow_id": tid, "inputs": {}}), 400)["errorCode"] == "MISSING_TEMPLATE_INPUT"
    error(c.post(WF, json={"workflow_id": tid, "inputs": {"animal": "fox", "count": "two"}}), 400)
    bad = dict(TEMPLATE, input={"steps": [{"toolName": "generate_image", "arguments": {"prompt": "{{inputs.x}}"}}]})
    assert error(c.post(f"{WF}/templates", json=bad), 400)["details"]["undeclared"] == ["x"]
    error(c.post(f"{WF}/templates", json={"name": "x"}), 400)


# ----------------------------------------------------------------------------- durable chat runs


def test_chat_run_text_events_and_resume(c):
    run = data(c.post(RUNS, json={"messages": [{"role": "user", "content": "hello there"}]},
                      headers={"Idempotency-Key": "run-1"}), 201)["run"]
    rid = run["runId"]
    assert run["status"] in ("queued", "running", "completed")
    frames = sse(c, f"{RUNS}/{rid}/events/stream")
    assert frames[0]["event"] == "run_status"
    events = [json.loads(f["data"]) for f in frames[1:]]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run_completed"
    text = "".join(e["payload"]["content"] for e in events if e["type"] == "assistant_message_delta")
    assert text == "Echo: hello there"
    # resume after event 3, by header and by query: nothing is repeated
    later = sse(c, f"{RUNS}/{rid}/events/stream", headers={"Last-Event-ID": "3"}, params={"after": "3"})
    assert [json.loads(f["data"])["sequence"] for f in later[1:]] == list(range(4, len(events) + 1))
    log = data(c.get(f"{RUNS}/{rid}/events", params={"after": 2}))
    assert log["events"][0]["sequence"] == 3
    rec = data(c.get(f"{RUNS}/{rid}"))["run"]
    assert rec["finalResponse"] == {"content": "Echo: hello there", "finishReason": "stop"}
    again = data(c.post(RUNS, json={"messages": [{"role": "user", "content": "hello there"}]},
                        headers={"Idempotency-Key": "run-1"}))
    assert again["idempotent"] is True and again["run"]["runId"] == rid
    assert rid in [r["runId"] for r in data(c.get(RUNS))["runs"]]


def test_chat_run_with_a_tool_waits_for_cost_approval(c):
    body = {"messages": [{"role": "user", "content": "draw a picture of a heron"}],
            "runtime_config": {"requireJobConfirmation": True}}
    rid = data(c.post(RUNS, json=body), 201)["run"]["runId"]
    frames = sse(c, f"{RUNS}/{rid}/events/stream")
    assert json.loads(frames[-1]["data"])["type"] == "run_waiting_for_user"
    run = data(c.get(f"{RUNS}/{rid}"))["run"]
    assert run["status"] == "waiting_for_user" and run["waiting"]["reason"] == "cost_approval_required"
    details = run["waiting"]["details"]
    preview = details["costApprovalPreview"]
    assert set(preview) >= {"totalEstimatedCapacityUnits", "tokenType", "validityUntil", "perToolBreakdown"}
    call = details["toolCallId"]
    assert details["pendingToolCallIds"] == [call]
    error(c.post(f"{RUNS}/{rid}/confirm-cost", json={"tool_call_id": call, "decision": "confirm"}), 400)
    error(c.post(f"{RUNS}/{rid}/confirm-cost", json={"tool_call_id": call, "decision": "confirm",
                                                     "acceptedCostPreview": dict(preview, tokenType="sogni")}), 409)
    fresh = data(c.get(f"{RUNS}/{rid}"))["run"]["waiting"]["details"]["costApprovalPreview"]
    data(c.post(f"{RUNS}/{rid}/confirm-cost", json={"tool_call_id": call, "decision": "confirm",
                                                    "acceptedCostPreview": fresh}))
    sse(c, f"{RUNS}/{rid}/events/stream")
    run = data(c.get(f"{RUNS}/{rid}"))["run"]
    assert run["status"] == "completed" and run["childWorkflowIds"]
    (art,) = run["artifacts"]
    assert art["mediaType"] == "image" and art["workflowId"] == run["childWorkflowIds"][0]
    assert httpx.get(art["url"], trust_env=False).status_code == 200
    assert art["url"] in run["finalResponse"]["content"]


def test_chat_run_cancel_and_data_uris(c):
    body = {"messages": [{"role": "user", "content": "draw a [slow] picture"}]}
    rid = data(c.post(RUNS, json=body), 201)["run"]["runId"]
    run = data(c.post(f"{RUNS}/{rid}/cancel", json={"reason": "changed my mind"}))["run"]
    assert run["status"] == "cancelled" and run["cancellationReason"] == "changed my mind"
    wid = run["childWorkflowIds"][0]
    assert data(c.get(f"{WF}/{wid}"))["workflow"]["status"] == "cancelled"
    vision = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64,AAAA"}}]}]}
    assert "upload" in error(c.post(RUNS, json=vision), 400)["message"]
    error(c.get(f"{RUNS}/run_missing"), 404)


# ----------------------------------------------------------------------------- uploads and strictness


def test_media_upload_url_without_id(c, emu):
    q = {"type": "referenceAudio", "jobId": "job1", "contentType": "audio/wav"}
    url = data(c.get("/v1/media/uploadUrl", params=q))["uploadUrl"]
    assert httpx.put(url, content=b"RIFF", headers={"Content-Type": "audio/wav"}, trust_env=False).status_code == 200
    down = data(c.get("/v1/media/downloadUrl", params=q))["downloadUrl"]
    assert httpx.get(down, trust_env=False).content == b"RIFF"
    error(c.get("/v1/image/uploadUrl", params={"type": "referenceImage", "jobId": "j"}), 400)  # images need imageId


REF = {"id": "media_ref_1", "kind": "audio", "url": "https://cdn.example/a.wav"}
IMG = {"id": "media_ref_2", "kind": "image", "url": "https://cdn.example/a.png"}


@pytest.mark.parametrize("args, ok", [
    ({"audioSourceIndex": 0, "sourceImageIndex": 0}, True),   # sound_to_video counts uploads from 0
    ({"audioSourceIndex": -1}, False),
    ({"sourceImageIndex": 1}, False),
])
def test_index_conventions_are_enforced(c, args, ok):
    step = {"toolName": "sound_to_video", "arguments": {"prompt": "dance", **args}}
    r = c.post(WF, json={"input": {"steps": [step]}, "media_references": [REF, IMG]})
    assert r.status_code == (201 if ok else 400), r.text
    if not ok:
        assert "sound_to_video" in r.json()["message"]


@pytest.mark.parametrize("dep, ok", [
    ({"sourceArtifactIndex": 0, "targetArgument": "audioSourceIndex", "transform": "audio_index",
      "mediaType": "audio"}, True),
    ({"sourceArtifactId": "media_ref_2", "targetArgument": "sourceImageIndex", "transform": "image_index"}, True),
    ({"sourceArtifactIndex": 0, "targetArgument": "audioSourceIndex", "transform": "image_index"}, False),
    ({"sourceArtifactIndex": 0, "targetArgument": "audioSourceIndex", "transform": "audio_index",
      "mediaType": "image"}, False),
    ({"sourceArtifactIndex": 5, "targetArgument": "audioSourceIndex", "transform": "audio_index"}, False),
    ({"sourceArtifactIndex": 1, "targetArgument": "audioSourceIndex", "transform": "image_index"}, False),
])
def test_input_media_bindings_are_checked(c, dep, ok):
    step = {"toolName": "sound_to_video", "arguments": {"prompt": "dance"},
            "dependsOn": [{"sourceStepId": "$input_media", **dep}]}
    r = c.post(WF, json={"input": {"steps": [step]}, "media_references": [REF, IMG]})
    assert r.status_code == (201 if ok else 400), r.text


def test_tool_choice_must_name_an_offered_function(c, emu):
    def forced(name, **kw):
        return c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}],
                                                     "sogni_tool_execution": False, **kw,
                                                     "tool_choice": {"type": "function", "function": {"name": name}}})
    assert forced("sogni_generate_image").status_code == 200
    assert forced("generate_image").status_code == 400
    assert forced("generate_image", sogni_tools="creative-agent").status_code == 200
    assert forced("sogni_generate_image", sogni_tools="creative-agent").status_code == 400
    c.post("/_emulator/config", json={"tool_names": "flat"})
    r = forced("generate_image")
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "generate_image"
    assert forced("sogni_generate_image").status_code == 400
