"""Sogni's own Python SDK (``sogni-client``, a client nobody here wrote) against the emulator.

Every call the SDK makes over REST is answered in the shape it reads, with no error logged: account, chat
(text, hosted tools, manual tools, vision), synchronous tools, workflows (start, get, list, events, stream with
resume, cancel, resume, reseed), templates, durable chat runs, uploads and models.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging

import httpx
import pytest

sogni_client = pytest.importorskip("sogni_client")

MODEL = "qwen3.6-35b-a3b-gguf-iq4xs"
WF = "/v1/creative-agent/workflows"


@pytest.fixture
def sdk_logs(caplog, emulator):
    """After the test: nothing logged at WARNING or above, no traceback, and every request the SDK made was
    answered (no 404 for a route the emulator lacks, no 4xx for a shape it does not take)."""
    caplog.set_level(logging.DEBUG, logger="sogni_client")
    yield caplog
    bad = [r for r in caplog.records if r.name.startswith("sogni_client") and r.levelno >= logging.WARNING]
    assert not bad, [r.getMessage() for r in bad]
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    failed = [(r["method"], r["path"], r.get("status")) for r in emulator.requests
              if not r["path"].startswith("/_") and not 200 <= (r.get("status") or 0) < 300]
    assert not failed, failed


def run(emulator, body):
    """Run ``body(client)`` with an SDK client (REST only, API key) pointed at the emulator."""
    from sogni_client import SogniClient

    async def main():
        client = await SogniClient.create(api_key="sk-test-sdk", rest_endpoint=emulator.base_url,
                                          disable_socket=True, app_source="sdk-e2e")
        try:
            # the client asks who it is in the background as it starts; let that answer arrive before closing
            for _ in range(500):
                if client.current_account.username:
                    break
                await asyncio.sleep(0.01)
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def png_data_uri() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 200, 30)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_account_answers_what_the_sdk_reads(emulator, sdk_logs):
    async def body(c):
        me = await c.account.me()
        balance = await c.account.refresh_balance()
        sub = await c.account.get_subscription_status()
        usage = await c.account.get_subscription_usage()
        return me, balance, sub, usage, c.current_account.wallet_address

    me, balance, sub, usage, wallet = run(emulator, body)
    assert me["username"] == "emulator" and wallet == me["walletAddress"]
    assert float(balance["spark"]["net"]) > 0 and "premiumCredit" in balance["spark"]
    assert sub["status"] == "none" and isinstance(usage, dict)
    # the client asked who it is as soon as it was created (this was a 404 and a logged traceback before)
    assert [r["path"] for r in emulator.requests].count("/v1/account/me") >= 2


@pytest.mark.parametrize("names", ["prefixed", "flat"])
def test_chat_text_hosted_manual_and_vision(emulator, sdk_logs, names):
    emulator.configure({"tool_names": names})
    from sogni_client.chat import is_sogni_tool_call

    async def body(c):
        text = await c.chat.hosted.create(model=MODEL, messages=[{"role": "user", "content": "hello"}],
                                          sogni_tools=False)
        hosted = await c.chat.hosted.create(model=MODEL, messages=[{"role": "user", "content": "draw a fox"}])
        manual = await c.chat.hosted.create(model=MODEL, messages=[{"role": "user", "content": "draw a fox"}],
                                            sogni_tool_execution=False)
        rich = await c.chat.hosted.create(model=MODEL, messages=[{"role": "user", "content": "draw a fox"}],
                                          sogni_tools="rich", sogni_tool_execution=False)
        vision = await c.chat.hosted.create(model=MODEL, sogni_tools=False, messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": png_data_uri()}}]}])
        wid = hosted["creative_workflows"][0]["workflowId"]
        events = [f async for f in c.workflows.stream_events(wid)]
        record = await c.workflows.get(wid)
        return text, manual, rich, vision, events, record

    text, manual, rich, vision, events, record = run(emulator, body)
    assert text["choices"][0]["message"]["content"] == "Echo: hello"
    (call,) = manual["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == ("sogni_generate_image" if names == "prefixed" else "generate_image")
    # the SDK knows only flat names: in the brief's prefixed world it cannot tell a Sogni call from a custom one
    assert is_sogni_tool_call(call) is (names == "flat")
    assert is_sogni_tool_call(rich["choices"][0]["message"]["tool_calls"][0])  # the rich family is flat in both
    assert "40x20 png" in vision["choices"][0]["message"]["content"]
    assert events[-1]["data"]["status"] == "completed"
    assert record["artifacts"] and record["artifacts"][0]["url"].startswith(emulator.base_url)
    sent = [r for r in emulator.requests if r["path"] == "/v1/chat/completions"]
    assert sent[3]["json"]["sogni_tools"] == "creative-tools"  # the SDK rewrites "rich"


def test_synchronous_tool_and_models(emulator, sdk_logs):
    async def body(c):
        out = await c.chat.hosted.execute_tool(tool="enhance_prompt", arguments={
            "prompt": "a cat", "target_output": "image_prompt", "destination_model": "z-turbo"})
        models = await c.api_client.rest.get("/v1/models")
        return out, models

    out, models = run(emulator, body)
    assert out["data"]["tool"] == "enhance_prompt" and "a cat" in out["data"]["message"]
    assert MODEL in [m["id"] for m in models["data"]]


def test_workflows_start_events_resume_stream_cancel_resume_reseed(emulator, sdk_logs):
    partial = {"id": "img", "toolName": "generate_image",
               "arguments": {"prompt": "[partial] foxes", "numberOfVariations": 2, "seed": 3}}
    slow = {"toolName": "generate_video", "arguments": {"prompt": "[slow] waves"}}

    async def body(c):
        wf = await c.workflows.start(input={"title": "foxes", "steps": [partial]}, idempotency_key="sdk-1",
                                     token_type="spark", billing_mode="auto", safe_content_filter=True)
        again = await c.workflows.start(input={"title": "foxes", "steps": [partial]}, idempotency_key="sdk-1",
                                        token_type="spark", billing_mode="auto", safe_content_filter=True)
        wid = wf["workflowId"]
        first = []
        async for frame in c.workflows.stream_events(wid):
            first.append(frame)
            if len(first) == 3:
                break
        rest = [f async for f in c.workflows.stream_events(wid, last_event_id=first[-1]["id"])]
        log = await c.workflows.events(wid)
        listed = await c.workflows.list(limit=10)
        record = await c.workflows.get(wid)
        resumed = await c.workflows.resume(wid, token_type="spark")
        after = [f async for f in c.workflows.stream_events(wid, last_event_id=len(log))]
        reseed = await c.workflows.reseed(wid, seed_overrides={"img": 9}, idempotency_key="sdk-reseed")
        running = await c.workflows.start(input={"steps": [slow]})
        cancelled = await c.workflows.cancel(running["workflowId"])
        return wf, again, first, rest, log, listed, record, resumed, after, reseed, cancelled

    wf, again, first, rest, log, listed, record, resumed, after, reseed, cancelled = run(emulator, body)
    assert again["workflowId"] == wf["workflowId"]
    seqs = [int(f["id"]) for f in first + rest]
    assert seqs == list(range(1, len(log) + 1))  # resumed without a repeat or a gap
    resume_req = [r for r in emulator.requests if r["path"].endswith("/events/stream")][1]
    assert resume_req["headers"]["last-event-id"] == "3" and resume_req["query"]["after"] == "3"
    assert wf["workflowId"] in [w["workflowId"] for w in listed]
    assert record["status"] == "partial_failure" and len(record["artifacts"]) == 1
    assert resumed["resumed"] is True
    assert after[-1]["data"]["status"] == "completed"
    assert reseed["reseed"] == {"cloned_from_run_id": wf["workflowId"], "steps": [{"stepId": "img", "seed": 9}]}
    assert cancelled["status"] == "cancelled"


def test_templates_crud_fork_and_run(emulator, sdk_logs):
    template = {"name": "card", "inputs": [{"name": "animal", "type": "string", "required": True}],
                "input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "a {{inputs.animal}}"}}]}}

    async def body(c):
        made = await c.workflows.templates.create(template)
        got = await c.workflows.templates.get(made["id"])
        changed = await c.workflows.templates.update(made["id"], {"description": "v2"})
        fork = await c.workflows.templates.fork(made["id"], new_name="card-copy")
        listed = await c.workflows.templates.list(limit=1)
        wf = await c.workflows.start(workflow_id=made["id"], inputs={"animal": "owl"})
        await c.workflows.templates.delete(fork["id"])
        return made, got, changed, fork, listed, wf

    made, got, changed, fork, listed, wf = run(emulator, body)
    assert got["id"] == made["id"] and changed["version"] == 2
    assert fork["name"] == "card-copy" and listed["next_cursor"] == 1 and len(listed["templates"]) == 1
    assert wf["input"]["steps"][0]["arguments"]["prompt"] == "a owl"


def test_chat_runs_stream_resume_cancel_and_confirm_cost(emulator, sdk_logs):
    async def body(c):
        done = await c.chat.runs.create(messages=[{"role": "user", "content": "hi there"}], idempotency_key="r1")
        events = [e async for e in c.chat.runs.stream_events(done["runId"])]
        tail = [e async for e in c.chat.runs.stream_events(done["runId"], last_event_id=events[2]["sequence"])]
        waiting = await c.chat.runs.create(messages=[{"role": "user", "content": "draw a heron"}],
                                           runtime_config={"requireJobConfirmation": True})
        [e async for e in c.chat.runs.stream_events(waiting["runId"])]
        rec = await c.chat.runs.get(waiting["runId"])
        details = rec["waiting"]["details"]
        confirmed = await c.chat.runs.confirm_cost(waiting["runId"], tool_call_id=details["toolCallId"],
                                                   decision="confirm",
                                                   accepted_cost_preview=details["costApprovalPreview"])
        slow = await c.chat.runs.create(messages=[{"role": "user", "content": "draw a [slow] picture"}])
        cancelled = await c.chat.runs.cancel(slow["runId"], reason="stop")
        return events, tail, confirmed, cancelled

    events, tail, confirmed, cancelled = run(emulator, body)
    assert events[-1]["type"] == "run_completed"
    assert [e["sequence"] for e in tail] == [e["sequence"] for e in events[3:]]
    assert confirmed["status"] in ("running", "completed") and confirmed["childWorkflowIds"]
    assert cancelled["status"] == "cancelled"


def test_uploads_with_the_sdk_query(emulator, sdk_logs):
    async def body(c):
        image = await c.projects.upload_url(imageId="i1", jobId="j1", type="referenceImage", contentType="image/png")
        audio = await c.projects.media_upload_url(jobId="j1", type="referenceAudio", contentType="audio/wav")
        await c.api_client.rest.put_bytes(audio, b"RIFFdata", content_type="audio/wav")
        down = await c.projects.media_download_url(jobId="j1", type="referenceAudio", contentType="audio/wav")
        return image, down

    image, down = run(emulator, body)
    assert image.startswith(emulator.base_url + "/_uploads/")
    assert httpx.get(down, trust_env=False).content == b"RIFFdata"
