"""The local emulator: routes, validation, workflows over time, media, uploads, auth and faults."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import wave

import httpx
import pytest

from sogni_cli import emulator as emulator_mod
from sogni_cli.emulator.server import Emulator
from sogni_cli.core.errors import UsageError

KEY = {"Authorization": "Bearer sk-test-emulator"}
WF = "/v1/creative-agent/workflows"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def emu():
    e = emulator_mod.start(step_seconds=0.02)
    yield e
    e.stop()


@pytest.fixture
def c(emu):
    with httpx.Client(base_url=emu.base_url, headers=KEY, trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def slow_emu(clock):
    """An emulator on a fake clock: workflows progress only when the test advances time."""
    e = Emulator(step_seconds=1.0, clock=clock).start()
    yield e
    e.stop()


@pytest.fixture
def sc(slow_emu):
    with httpx.Client(base_url=slow_emu.base_url, headers=KEY, trust_env=False, timeout=10) as client:
        yield client


def chat(c, content="hello there", **extra):
    body = {"messages": [{"role": "user", "content": content}], **extra}
    return c.post("/v1/chat/completions", json=body)


def sse_frames(lines):
    """Parse SSE lines into (frames, comments); a frame is a dict of its fields."""
    frames, comments, cur = [], [], {}
    for line in lines:
        if line == "":
            if cur:
                frames.append(cur)
                cur = {}
        elif line.startswith(":"):
            comments.append(line[1:].strip())
        else:
            field, _, value = line.partition(":")
            cur[field] = value[1:] if value.startswith(" ") else value
    if cur:
        frames.append(cur)
    return frames, comments


def stream_chat(c, body):
    with c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("transfer-encoding") == "chunked"
        frames, _ = sse_frames(list(r.iter_lines()))
    return [f["data"] for f in frames]


def start_wf(c, steps, headers=None, **extra):
    return c.post(WF, json={"input": {"title": "t", "steps": steps}, **extra}, headers=headers or {})


def follow(c, wid, headers=None, params=None):
    with c.stream("GET", f"{WF}/{wid}/events/stream", headers=headers or {}, params=params) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        frames, comments = sse_frames(list(r.iter_lines()))
    return frames, comments


def png_data_uri(w, h, fmt="PNG"):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, format=fmt)
    mime = "image/png" if fmt == "PNG" else "image/jpeg" if fmt == "JPEG" else "image/gif"
    return f"data:{mime};base64," + base64.b64encode(buf.getvalue()).decode()


def vision(*urls, text="what is this?"):
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         *({"type": "image_url", "image_url": {"url": u}} for u in urls)]}]


# --------------------------------------------------------------------------- binding and life cycle
@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_refuses_non_loopback_hosts(host):
    with pytest.raises(UsageError) as info:
        emulator_mod.start(host=host)
    assert isinstance(info.value, ValueError)
    assert "loopback" in info.value.message


def test_localhost_binds_loopback_and_context_manager_stops():
    with emulator_mod.start(host="localhost") as e:
        assert e.base_url.startswith("http://127.0.0.1:")
        assert httpx.get(e.base_url + "/v1/models", headers=KEY, trust_env=False).status_code == 200
        url = e.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/models", headers=KEY, trust_env=False, timeout=2)


def test_serve_runs_in_foreground_until_stopped(capsys):
    ready: list[str] = []
    stop = threading.Event()
    got = threading.Event()
    err = io.StringIO()

    def on_ready(url):
        ready.append(url)
        got.set()

    t = threading.Thread(target=emulator_mod.serve, args=("127.0.0.1", 0),
                         kwargs={"latency": 0.0, "step_seconds": 0.01, "out": err, "on_ready": on_ready,
                                 "stop": stop}, daemon=True)
    t.start()
    assert got.wait(5)
    r = httpx.get(ready[0] + "/v1/models", headers=KEY, trust_env=False)
    assert r.status_code == 200
    stop.set()
    t.join(5)
    assert not t.is_alive()
    assert capsys.readouterr().out == ""
    assert ready[0] in err.getvalue() and "GET /v1/models" in err.getvalue()


# --------------------------------------------------------------------------- auth
def test_auth_required_with_the_right_envelopes(emu):
    with httpx.Client(base_url=emu.base_url, trust_env=False) as anon:
        r = anon.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = anon.get("/v1/models")
        assert r.status_code == 401 and "error" in r.json()
        r = anon.get(WF)
        assert r.status_code == 401 and r.json()["status"] == "error" and r.json()["errorCode"] == 401
        r = anon.get("/v1/models", headers={"Authorization": "Bearer"})
        assert r.status_code == 401
        assert anon.get("/v1/models", headers={"api-key": "k"}).status_code == 200
        assert anon.get("/v1/models", headers={"Authorization": "Bearer k"}).status_code == 200


# --------------------------------------------------------------------------- models
def test_models(c):
    body = c.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["qwen3.6-35b-a3b-gguf-iq4xs", "qwen3.5-35b-a3b-abliterated-gguf-q4km"]
    assert all(m["object"] == "model" and m["owned_by"] == "sogni" for m in body["data"])
    assert c.get("/v1/models/qwen3.6-35b-a3b-gguf-iq4xs").json()["id"] == "qwen3.6-35b-a3b-gguf-iq4xs"
    r = c.get("/v1/models/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


# --------------------------------------------------------------------------- chat validation
@pytest.mark.parametrize("body, fragment", [
    ({"messages": [{"role": "user", "content": "x"}], "temprature": 0.5}, "temprature"),
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user"}]}, "content"),
    ({"messages": [{"role": "user", "content": 5}]}, "content"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}}, "stream_options"),
    ({"messages": [{"role": "user", "content": "x"}], "sogni_tools": "everything"}, "sogni_tools"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": "always"}, "tool_choice"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function",
                                                                        "function": {"name": "nope"}}}, "nope"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]}, "tools[0]"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {
        "name": "bad name!"}}]}, "name"),
    ({"messages": [{"role": "user", "content": "x"}], "task_profile": "poetry"}, "task_profile"),
    ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}, "response_format"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r", "tool_call_id": "c1"}]},
     "tool call"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}]}, "tool_call_id"),
    ({"messages": [{"role": "user", "content": "x", "text": "y"}]}, "text"),
])
def test_chat_validation_errors_use_the_openai_envelope(c, body, fragment):
    r = c.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["code"] in ("invalid_parameter", "missing_required_parameter")
    assert fragment in err["message"]


def test_chat_invalid_json_and_unknown_model(c):
    r = c.post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = chat(c, model="gpt-4o")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_hosted_tool_url_arguments_must_be_data_uris(c):
    call = {"id": "c1", "type": "function", "function": {
        "name": "remove_background", "arguments": json.dumps({"source_image_url": "https://example.com/x.png"})}}
    msgs = [{"role": "user", "content": "cut it out"}, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "{}"}]
    r = c.post("/v1/chat/completions", json={"messages": msgs})
    assert r.status_code == 400 and "data: URI" in r.json()["error"]["message"]
    call["function"]["arguments"] = json.dumps({"source_image_url": png_data_uri(4, 4)})
    r = c.post("/v1/chat/completions", json={"messages": msgs})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Tool result received: {}"


# --------------------------------------------------------------------------- vision
def test_vision_images_are_described(c):
    msgs = vision(png_data_uri(640, 480, "JPEG"), png_data_uri(100, 50))
    r = c.post("/v1/chat/completions", json={"messages": msgs})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == \
        "I see 2 image(s): 640x480 jpeg, 100x50 png. Echo: what is this?"


@pytest.mark.parametrize("url, fragment", [
    ("https://example.com/cat.png", "data: URI"),
    ("data:image/gif;base64," + base64.b64encode(b"GIF89a....").decode(), "PNG and JPEG"),
    ("data:image/png;base64,%%%notbase64", "base64"),
    ("data:image/png;base64," + base64.b64encode(b"hello world, not an image").decode(), "not PNG or JPEG"),
])
def test_vision_rejects_bad_images(c, url, fragment):
    r = c.post("/v1/chat/completions", json={"messages": vision(url)})
    assert r.status_code == 400 and fragment in r.json()["error"]["message"]


def test_vision_checks_declared_type_size_and_count(c):
    jpeg_as_png = png_data_uri(10, 10, "JPEG").replace("image/jpeg", "image/png", 1)
    r = c.post("/v1/chat/completions", json={"messages": vision(jpeg_as_png)})
    assert r.status_code == 400 and "does not match" in r.json()["error"]["message"]
    r = c.post("/v1/chat/completions", json={"messages": vision(png_data_uri(1025, 300))})
    assert r.status_code == 400 and "1025x300" in r.json()["error"]["message"]
    r = c.post("/v1/chat/completions", json={"messages": vision(png_data_uri(300, 1100, "JPEG"))})
    assert r.status_code == 400 and "longest side" in r.json()["error"]["message"]
    small = png_data_uri(8, 8)
    assert c.post("/v1/chat/completions", json={"messages": vision(*[small] * 20)}).status_code == 200
    r = c.post("/v1/chat/completions", json={"messages": vision(*[small] * 21)})
    assert r.status_code == 400 and "too many images" in r.json()["error"]["message"]
    big = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * (10 * 1024 * 1024)).decode()
    r = c.post("/v1/chat/completions", json={"messages": vision(big)})
    assert r.status_code == 400 and "10 MB" in r.json()["error"]["message"]
    sys_img = [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": small}}]},
               {"role": "user", "content": "x"}]
    assert c.post("/v1/chat/completions", json={"messages": sys_img}).status_code == 400


# --------------------------------------------------------------------------- chat replies
def test_plain_chat_echo_and_usage(c):
    r = chat(c, "a quiet harbour", sogni_tools=False)
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "qwen3.6-35b-a3b-gguf-iq4xs"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Echo: a quiet harbour"}
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "creative_workflows" not in body


def test_thinking_max_tokens_stop_and_json(c):
    text = chat(c, "why", chat_template_kwargs={"enable_thinking": True}).json()["choices"][0]["message"]["content"]
    assert text == "<think>reasoning about: why</think>Echo: why"
    r = chat(c, "one two three four five", max_tokens=2).json()
    assert r["choices"][0]["message"]["content"] == "Echo: on" and r["choices"][0]["finish_reason"] == "length"
    r = chat(c, "red and blue", stop=[" and"]).json()
    assert r["choices"][0]["message"]["content"] == "Echo: red"
    r = chat(c, "hi", response_format={"type": "json_object"}).json()
    assert json.loads(r["choices"][0]["message"]["content"]) == {"echo": "hi"}
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "n": {"type": "integer"}}}
    r = chat(c, "hi", response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}).json()
    assert json.loads(r["choices"][0]["message"]["content"]) == {"title": "hi", "n": 1}


def test_streamed_chat_shape(c):
    datas = stream_chat(c, {"messages": [{"role": "user", "content": "sing me a slow tune"}], "stream": True,
                            "sogni_tools": False, "stream_options": {"include_usage": True},
                            "chat_template_kwargs": {"enable_thinking": True}})
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    pieces = [ch["choices"][0]["delta"].get("content", "") for ch in chunks[1:] if ch["choices"]]
    assert all(len(p) <= 4 for p in pieces) and len([p for p in pieces if p]) > 5
    assert "".join(pieces) == "<think>reasoning about: sing me a slow tune</think>Echo: sing me a slow tune"
    finals = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
    assert len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len([p for p in pieces if p])


def test_tool_result_reply(c):
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    msgs = [{"role": "user", "content": "use f"}, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42 degrees"}]
    r = c.post("/v1/chat/completions", json={"messages": msgs, "sogni_tools": False}).json()
    assert r["choices"][0]["message"]["content"] == "Tool result received: 42 degrees"


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "metric": {"type": "boolean"},
                                     "unit": {"type": "string", "enum": ["c", "f"]}, "note": {"type": "string"}},
    "required": ["city", "metric", "unit"]}}}


def test_custom_tool_calls_auto_required_and_forced(c):
    r = chat(c, "get_weather for Oslo", tools=[WEATHER], sogni_tools=False).json()
    choice = r["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {"city": "get_weather for Oslo", "metric": True, "unit": "c"}
    assert chat(c, "Oslo", tools=[WEATHER], sogni_tools=False).json()["choices"][0]["finish_reason"] == "stop"
    r = chat(c, "Oslo", tools=[WEATHER], sogni_tools=False, tool_choice="required").json()
    assert r["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    r = chat(c, "get_weather", tools=[WEATHER], sogni_tools=False, tool_choice="none").json()
    assert r["choices"][0]["finish_reason"] == "stop"


def test_streamed_tool_call_deltas(c):
    datas = stream_chat(c, {"messages": [{"role": "user", "content": "Oslo"}], "stream": True, "tools": [WEATHER],
                            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    chunks = [json.loads(d) for d in datas[:-1]]
    deltas = [tc for ch in chunks for tc in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert deltas[0]["id"].startswith("call_") and deltas[0]["function"]["name"] == "get_weather"
    assert all(d["index"] == 0 for d in deltas) and len(deltas) >= 4
    args = "".join(d["function"].get("arguments", "") for d in deltas)
    assert json.loads(args) == {"city": "Oslo", "metric": True, "unit": "c"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_manual_hosted_tool_names(c):
    r = chat(c, "draw a red fox", sogni_tool_execution=False).json()
    call = r["choices"][0]["message"]["tool_calls"][0]
    assert r["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"]["name"] == "sogni_generate_image"
    assert json.loads(call["function"]["arguments"]) == {"prompt": "draw a red fox"}
    r = chat(c, "make a jingle", sogni_tools="creative-tools", sogni_tool_execution=False).json()
    assert r["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "generate_music"
    r = chat(c, "say hello", sogni_tools="rich", sogni_tool_execution=False).json()
    assert r["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "generate_speech"
    forced = {"type": "function", "function": {"name": "sogni_generate_video"}}
    r = chat(c, "waves", tool_choice=forced, sogni_tool_execution=False).json()
    assert r["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "sogni_generate_video"
    forced = {"type": "function", "function": {"name": "generate_video"}}
    r = chat(c, "waves", sogni_tools="creative-agent", tool_choice=forced, sogni_tool_execution=False).json()
    assert r["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "generate_video"
    # speech is not in the default family: plain text
    assert chat(c, "say hello", sogni_tool_execution=False).json()["choices"][0]["finish_reason"] == "stop"
    # tools off: no hosted call, and a hosted name cannot be forced
    assert chat(c, "draw a fox", sogni_tools=False).json()["choices"][0]["message"]["content"] == "Echo: draw a fox"
    r = chat(c, "x", sogni_tools=False, tool_choice={"type": "function", "function": {"name": "generate_image"}})
    assert r.status_code == 400


def test_hosted_execution_creates_a_workflow(c, emu):
    r = chat(c, "a photo of a lighthouse at dusk", token_type="spark", app_source="tests")
    body = r.json()
    wf = body["creative_workflows"][0]
    wid = wf["workflowId"]
    base = f"{emu.base_url}{WF}/{wid}"
    assert wf == {"workflowId": wid, "status": "queued", "url": base, "eventsUrl": base + "/events",
                  "streamUrl": base + "/events/stream"}
    result = body["sogni_tool_results"][0]
    assert result["tool"] == "generate_image" and result["workflowId"] == wid and result["status"] == "queued"
    frames, _ = follow(c, wid)
    assert json.loads(frames[-1]["data"])["status"] == "completed"
    rec = c.get(f"{WF}/{wid}").json()["data"]["workflow"]
    assert rec["kind"] == "hosted_tool_sequence" and rec["tokenType"] == "spark" and rec["appSource"] == "tests"
    url = rec["artifacts"][0]["url"]
    assert url.startswith(emu.base_url + "/media/") and url in body["choices"][0]["message"]["content"]
    assert httpx.get(url, trust_env=False).status_code == 200


def test_hosted_execution_streamed_waits_for_the_media_and_links_them_in_the_text(c, emu):
    datas = stream_chat(c, {"messages": [{"role": "user", "content": "compose a song about rain"}], "stream": True,
                            "stream_options": {"include_usage": True}})
    chunks = [json.loads(d) for d in datas[:-1]]
    assert datas[-1] == "[DONE]"
    # the brief promises creative_workflows only on non-streamed answers: a stream carries none
    assert not any("creative_workflows" in ch or "sogni_tool_results" in ch for ch in chunks)
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
    (url,) = [w for w in text.split() if w.startswith(emu.base_url + "/media/")]
    assert httpx.get(url, trust_env=False).status_code == 200  # the stream ended after the media were made


def test_forced_composition_tool_runs_inline(c):
    forced = {"type": "function", "function": {"name": "compose_lyrics"}}
    r = chat(c, "autumn leaves", sogni_tools="creative-tools", tool_choice=forced).json()
    res = r["sogni_tool_results"][0]
    assert res["tool"] == "compose_lyrics" and "autumn leaves" in res["lyrics"]
    assert "creative_workflows" not in r


def test_chat_idempotency_key_replays_the_answer(c, emu):
    h = {"Idempotency-Key": "chat-key-1"}
    body = {"messages": [{"role": "user", "content": "draw a boat"}]}
    a = c.post("/v1/chat/completions", json=body, headers=h).json()
    b = c.post("/v1/chat/completions", json=body, headers=h).json()
    assert a == b
    assert c.get(WF).json()["data"]["total"] == 1


# --------------------------------------------------------------------------- workflows
def test_workflow_start_shape_and_fields(c):
    r = start_wf(c, [{"id": "a", "toolName": "generate_image", "arguments": {"prompt": "fox", "width": 640,
                                                                             "height": 384, "outputFormat": "jpg",
                                                                             "numberOfVariations": 2}}],
                 token_type="sogni", billing_mode="tokens", app_source="tests", max_estimated_capacity_units=50,
                 confirm_cost=False, safe_content_filter=False,
                 media_references=[{"kind": "image", "url": "https://cdn.example/x.png"}])
    assert r.status_code == 201
    rec = r.json()["data"]["workflow"]
    assert r.json()["status"] == "success"
    assert rec["status"] == "queued" and rec["title"] == "t"
    assert rec["steps"][0]["status"] == "queued" and rec["steps"][0]["toolName"] == "generate_image"
    assert rec["tokenType"] == "sogni" and rec["billingMode"] == "tokens" and rec["safeContentFilter"] is False
    assert rec["maxEstimatedCapacityUnits"] == 50
    assert rec["mediaReferences"][0]["url"] == "https://cdn.example/x.png"
    assert rec["billingPreview"]["totalEstimatedCapacityUnits"] == 2
    for key in ("workflowId", "input", "events", "artifacts", "createdAt", "updatedAt", "error"):
        assert key in rec
    frames, _ = follow(c, rec["workflowId"])
    done = c.get(f"{WF}/{rec['workflowId']}").json()["data"]["workflow"]
    assert done["status"] == "completed"
    arts = done["artifacts"]
    assert len(arts) == 2
    for a in arts:
        assert {"id", "kind", "url", "mimeType", "width", "height", "sizeBytes", "toolName", "stepId"} <= set(a)
        assert (a["kind"], a["mimeType"], a["width"], a["height"], a["stepId"]) == ("image", "image/jpeg", 640, 384,
                                                                                       "a")
        assert a["url"].split("?")[0].endswith(".jpg")
    from PIL import Image

    data = httpx.get(arts[0]["url"], trust_env=False).content
    assert len(data) == arts[0]["sizeBytes"]
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG" and img.size == (640, 384)


@pytest.mark.parametrize("body, fragment", [
    ({"input": {"steps": [{"toolName": "nope", "arguments": {}}]}}, "unknown tool"),
    ({"input": {"steps": [{"toolName": "generate_image", "arguments": {}}]}}, "prompt"),
    ({"input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "x",
                                                                      "numberOfVariations": "two"}}]}},
     "numberOfVariations"),
    ({"input": {"steps": [{"toolName": "compose_lyrics", "arguments": {"prompt": "x"}}]}}, "tools/execute"),
    ({"input": {"steps": [{"toolName": "edit_image", "arguments": {"prompt": "x", "mask_image_url":
                                                                   "data:image/png;base64,AAAA"}}]}}, "data:"),
    ({"input": {"steps": []}}, "steps"),
    ({"input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]}, "colour": 1}, "colour"),
    ({"input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]}, "token_type": "gold"},
     "token_type"),
    ({"input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]},
      "media_references": [{"url": "data:image/png;base64,AAAA"}]}, "data:"),
    ({"input": {"steps": [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]},
      "media_references": [{"url": "ftp://host/x"}]}, "http(s)"),
    ({"input": {"steps": [{"id": "a", "toolName": "generate_image", "arguments": {"prompt": "x"}},
                          {"id": "b", "toolName": "animate_photo", "arguments": {"prompt": "y"},
                           "dependsOn": [{"sourceStepId": "zzz", "targetArgument": "sourceImageIndex",
                                          "transform": "image_index"}]}]}}, "sourceStepId"),
    ({"input": {"steps": [{"id": "a", "toolName": "generate_image", "arguments": {"prompt": "x"}},
                          {"id": "a", "toolName": "generate_image", "arguments": {"prompt": "y"}}]}}, "duplicate"),
    ({}, "input"),
])
def test_workflow_validation_errors_use_the_sogni_envelope(c, body, fragment):
    r = c.post(WF, json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["status"] == "error" and "errorCode" in err
    assert fragment in err["message"]


def test_workflow_accepts_prefixed_names_and_dependencies(c):
    steps = [{"id": "a", "toolName": "sogni_generate_image", "arguments": {"prompt": "x"}},
             {"id": "b", "toolName": "animate_photo", "arguments": {"prompt": "y"},
              "dependsOn": [{"sourceStepId": "a", "targetArgument": "sourceImageIndex", "transform": "image_index"}]}]
    r = start_wf(c, steps)
    assert r.status_code == 201
    wid = r.json()["data"]["workflow"]["workflowId"]
    follow(c, wid)
    rec = c.get(f"{WF}/{wid}").json()["data"]["workflow"]
    assert [a["kind"] for a in rec["artifacts"]] == ["image", "video"]
    assert [s["toolName"] for s in rec["steps"]] == ["generate_image", "animate_photo"]


def test_workflow_idempotency(c):
    steps = [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]
    h = {"Idempotency-Key": "k-1"}
    a = start_wf(c, steps, h)
    b = start_wf(c, steps, h)
    assert a.status_code == 201 and b.status_code == 200 and b.json()["data"]["idempotent"] is True
    assert a.json()["data"]["workflow"]["workflowId"] == b.json()["data"]["workflow"]["workflowId"]
    assert c.get(WF).json()["data"]["total"] == 1
    other = start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "y"}}], h)
    assert other.status_code == 409 and other.json()["status"] == "error"
    assert start_wf(c, steps, {"Idempotency-Key": "k-2"}).status_code == 201
    assert c.get(WF).json()["data"]["total"] == 2


def test_workflow_list_get_events_and_404(c):
    ids = [start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": f"p{i}"}}]).json()["data"]
           ["workflow"]["workflowId"] for i in range(3)]
    page = c.get(WF, params={"limit": 2, "offset": 1}).json()["data"]
    assert [w["workflowId"] for w in page["workflows"]] == [ids[1], ids[0]]
    assert page["total"] == 3
    assert c.get(WF, params={"limit": 0}).status_code == 400
    follow(c, ids[0])
    events = c.get(f"{WF}/{ids[0]}/events").json()["data"]["events"]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "workflow_completed"
    later = c.get(f"{WF}/{ids[0]}/events", params={"after": 3}).json()["data"]["events"]
    assert later == events[3:]
    for path in (f"{WF}/wf_missing", f"{WF}/wf_missing/events", f"{WF}/wf_missing/events/stream"):
        r = c.get(path)
        assert r.status_code == 404 and r.json()["status"] == "error"
    assert c.post(f"{WF}/wf_missing/cancel", json={}).status_code == 404


def test_time_based_progression(sc, slow_emu, clock):
    rec = start_wf(sc, [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]).json()["data"]["workflow"]
    wid = rec["workflowId"]
    get = lambda: sc.get(f"{WF}/{wid}").json()["data"]["workflow"]  # noqa: E731
    assert get()["status"] == "queued"
    clock.advance(0.3)
    now = get()
    assert now["status"] == "running" and now["steps"][0]["status"] == "running" and now["artifacts"] == []
    clock.advance(0.5)
    now = get()
    assert now["steps"][0]["progress"] == 0.5 and now["progress"] == 0.5
    media_path = slow_emu.store.artifact_urls(wid)[0]
    assert httpx.get(media_path, trust_env=False).status_code == 404  # not made yet
    clock.advance(0.5)
    now = get()
    assert now["status"] == "completed" and now["steps"][0]["status"] == "completed" and len(now["artifacts"]) == 1
    assert httpx.get(media_path, trust_env=False).status_code == 200
    types = [e["type"] for e in now["events"]]
    assert types == ["workflow_progress", "workflow_started", "step_started", "workflow_progress",
                     "workflow_progress", "workflow_progress", "artifact_created", "step_completed",
                     "workflow_completed"]


def test_slow_marker_takes_ten_steps(sc, clock):
    wid = start_wf(sc, [{"toolName": "generate_image", "arguments": {"prompt": "x [slow]"}}]).json()["data"][
        "workflow"]["workflowId"]
    clock.advance(5.0)
    assert sc.get(f"{WF}/{wid}").json()["data"]["workflow"]["status"] == "running"
    clock.advance(5.5)
    assert sc.get(f"{WF}/{wid}").json()["data"]["workflow"]["status"] == "completed"


def test_cancel(sc, clock):
    wid = start_wf(sc, [{"id": "a", "toolName": "generate_image", "arguments": {"prompt": "x"}},
                        {"id": "b", "toolName": "generate_image", "arguments": {"prompt": "y"}}]).json()["data"][
        "workflow"]["workflowId"]
    clock.advance(1.3)  # step a done, step b running
    rec = sc.post(f"{WF}/{wid}/cancel", json={}).json()["data"]["workflow"]
    assert rec["status"] == "cancelled"
    assert [s["status"] for s in rec["steps"]] == ["completed", "cancelled"]
    assert len(rec["artifacts"]) == 1
    assert rec["events"][-1]["type"] == "workflow_cancelled"
    clock.advance(10)
    again = sc.get(f"{WF}/{wid}").json()["data"]["workflow"]
    assert again["status"] == "cancelled" and len(again["artifacts"]) == 1
    assert sc.post(f"{WF}/{wid}/cancel", json={}).json()["data"]["workflow"]["status"] == "cancelled"


@pytest.mark.parametrize("prompt, variations, extra, status, n_artifacts, reason", [
    ("ok", 1, {}, "completed", 1, None),
    ("boom [fail]", 1, {}, "failed", 0, None),
    ("half [partial]", 4, {}, "partial_failure", 2, None),
    ("pricey [wait]", 1, {}, "waiting_for_user", 0, "cost_approval_required"),
    ("pricey [wait]", 1, {"confirm_cost": True}, "completed", 1, None),
    ("broke [nocredit]", 1, {}, "waiting_for_user", 0, "insufficient_credit"),
    ("nothing [empty]", 2, {}, "completed", 0, None),
])
def test_special_prompts_reach_each_terminal_state(c, prompt, variations, extra, status, n_artifacts, reason):
    r = start_wf(c, [{"id": "s", "toolName": "generate_image",
                      "arguments": {"prompt": prompt, "numberOfVariations": variations}}], **extra)
    wid = r.json()["data"]["workflow"]["workflowId"]
    frames, _ = follow(c, wid)
    last = json.loads(frames[-1]["data"])
    assert last["status"] == status and frames[-1]["event"] == last["type"]
    rec = c.get(f"{WF}/{wid}").json()["data"]["workflow"]
    assert rec["status"] == status and len(rec["artifacts"]) == n_artifacts
    assert rec["waitingReason"] == reason
    if status == "failed":
        assert "[fail]" in rec["error"]["message"] and rec["steps"][0]["status"] == "failed"
        assert last["type"] == "workflow_failed"
    if reason == "cost_approval_required":
        assert rec["awaitingCostApproval"] is True and rec["billingPreview"]["totalEstimatedCapacityUnits"] == 1
    if status == "partial_failure":
        assert rec["steps"][0]["status"] == "partial_failure" and rec["error"]


def test_capacity_limit_waits_for_approval(c):
    r = start_wf(c, [{"toolName": "generate_video", "arguments": {"prompt": "x"}}], max_estimated_capacity_units=5)
    wid = r.json()["data"]["workflow"]["workflowId"]
    follow(c, wid)
    assert c.get(f"{WF}/{wid}").json()["data"]["workflow"]["waitingReason"] == "cost_approval_required"


def test_sse_frames_resume_and_keepalive(emu, c):
    wid = start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]).json()["data"]["workflow"][
        "workflowId"]
    frames, _ = follow(c, wid)
    seqs = [int(f["id"]) for f in frames]
    assert seqs == list(range(1, len(frames) + 1))
    for f in frames:
        ev = json.loads(f["data"])
        assert f["event"] == ev["type"] and ev["sequence"] == int(f["id"]) and ev["workflowId"] == wid
        assert {"id", "timestamp", "status", "message", "data"} <= set(ev)
        assert "progress" in ev["data"] and "status" in ev["data"]
    resumed, _ = follow(c, wid, headers={"Last-Event-ID": "4"})
    assert [int(f["id"]) for f in resumed] == seqs[4:]
    resumed, _ = follow(c, wid, params={"after": "6"})
    assert [int(f["id"]) for f in resumed] == seqs[6:]
    emu.keepalive = 0.01
    wid = start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "x [slow]"}}]).json()["data"][
        "workflow"]["workflowId"]
    frames, comments = follow(c, wid)
    assert "keepalive" in comments
    assert json.loads(frames[-1]["data"])["status"] == "completed"


def test_media_kinds_are_real_files(c):
    steps = [{"id": "m", "toolName": "generate_music", "arguments": {"prompt": "x", "duration": 120}},
             {"id": "s", "toolName": "generate_speech", "arguments": {"prompt": "hello there friend"}},
             {"id": "v", "toolName": "generate_video", "arguments": {"prompt": "waves", "duration": 4,
                                                                     "aspectRatio": "9:16"}},
             {"id": "w", "toolName": "generate_image", "arguments": {"prompt": "x", "outputFormat": "webp",
                                                                     "aspectRatio": "16:9"}},
             {"id": "d", "toolName": "image_to_3d", "arguments": {}}]
    wid = start_wf(c, steps).json()["data"]["workflow"]["workflowId"]
    follow(c, wid)
    arts = {a["stepId"]: a for a in c.get(f"{WF}/{wid}").json()["data"]["workflow"]["artifacts"]}
    get = lambda a: httpx.get(a["url"], trust_env=False)  # noqa: E731
    r = get(arts["m"])
    assert r.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(r.content)) as w:
        assert w.getnframes() / w.getframerate() == 30.0  # capped
    assert arts["m"]["durationSeconds"] == 120
    with wave.open(io.BytesIO(get(arts["s"]).content)) as w:
        assert 0 < w.getnframes() / w.getframerate() <= 30
    r = get(arts["v"])
    assert r.headers["content-type"] == "video/mp4" and r.content[4:8] == b"ftyp"
    assert b"STAND-IN" in r.content and arts["v"]["width"] < arts["v"]["height"]
    from PIL import Image

    img = Image.open(io.BytesIO(get(arts["w"]).content))
    assert img.format == "WEBP" and img.size == (arts["w"]["width"], arts["w"]["height"]) == (1024, 576)
    r = get(arts["d"])
    assert r.content[:4] == b"glTF" and r.headers["content-type"] == "model/gltf-binary"


# --------------------------------------------------------------------------- media ranges
@pytest.fixture
def artifact(c, emu):
    wid = start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "range me"}}]).json()["data"][
        "workflow"]["workflowId"]
    follow(c, wid)
    return c.get(f"{WF}/{wid}").json()["data"]["workflow"]["artifacts"][0]


def test_media_ranges(emu, artifact):
    url = artifact["url"]
    full = httpx.get(url, trust_env=False)
    data = full.content
    assert full.headers["accept-ranges"] == "bytes" and full.headers["etag"]
    assert int(full.headers["content-length"]) == len(data) == artifact["sizeBytes"]
    r = httpx.get(url, headers={"Range": "bytes=10-19"}, trust_env=False)
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    r = httpx.get(url, headers={"Range": "bytes=100-"}, trust_env=False)
    assert r.status_code == 206 and r.content == data[100:]
    r = httpx.get(url, headers={"Range": "bytes=-5"}, trust_env=False)
    assert r.content == data[-5:]
    r = httpx.get(url, headers={"Range": f"bytes={len(data)}-"}, trust_env=False)
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
    r = httpx.get(url, headers={"Range": "bytes=0-3", "If-Range": '"stale"'}, trust_env=False)
    assert r.status_code == 200 and r.content == data
    r = httpx.get(url, headers={"Range": "bytes=0-3", "If-Range": full.headers["etag"]}, trust_env=False)
    assert r.status_code == 206 and r.content == data[:4]
    r = httpx.head(url, trust_env=False)
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(data) and r.content == b""
    assert httpx.get(emu.base_url + "/media/wf_nope/x.png", trust_env=False).status_code == 404
    media_reqs = [q for q in emu.requests if q["path"].startswith("/media/")]
    assert media_reqs and not any(q["auth_sent"] for q in media_reqs)


# --------------------------------------------------------------------------- uploads
def test_upload_round_trip_without_auth(c, emu):
    q = {"type": "referenceImage", "jobId": "job-1", "imageId": "img-1", "contentType": "image/png"}
    up = c.get("/v1/image/uploadUrl", params=q).json()["data"]["uploadUrl"]
    assert up.startswith(emu.base_url + "/_uploads/")
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    put = httpx.put(up, content=payload, headers={"Content-Type": "image/png"}, trust_env=False)
    assert put.status_code == 200
    down = c.get("/v1/image/downloadUrl", params=q).json()["data"]["downloadUrl"]
    got = httpx.get(down, trust_env=False)
    assert got.content == payload and got.headers["content-type"] == "image/png"
    put_rec = [r for r in emu.requests if r["method"] == "PUT"][0]
    assert put_rec["auth_sent"] is False and put_rec["body_size"] == len(payload)
    bad = httpx.put(up, content=b"x", headers={"Content-Type": "image/jpeg"}, trust_env=False)
    assert bad.status_code == 403
    assert httpx.put(emu.base_url + "/_uploads/never", content=b"x", trust_env=False).status_code == 403
    mq = {"type": "referenceAudio", "jobId": "job-1", "id": "a-1", "contentType": "audio/wav"}
    up = c.get("/v1/media/uploadUrl", params=mq).json()["data"]["uploadUrl"]
    httpx.put(up, content=b"RIFFdata", headers={"Content-Type": "audio/wav"}, trust_env=False)
    down = c.get("/v1/media/downloadUrl", params=mq).json()["data"]["downloadUrl"]
    assert httpx.get(down, trust_env=False).content == b"RIFFdata"
    r = c.get("/v1/image/uploadUrl", params={"type": "referenceImage"})
    assert r.status_code == 400 and "jobId" in r.json()["message"]


# --------------------------------------------------------------------------- tools/execute
@pytest.mark.parametrize("tool, args, key", [
    ("enhance_prompt", {"prompt": "a fox", "target_output": "image_prompt", "destination_model": "z-turbo"}, "prompt"),
    ("compose_lyrics", {"prompt": "rainy days"}, "lyrics"),
    ("compose_instrumental", {"prompt": "calm"}, "prompt"),
    ("compose_script", {"brief": "a chase", "scene_count": 2}, "script"),
    ("compose_workflow", {"brief": "a trip", "scene_count": 2, "include_audio": True}, "plan"),
    ("compose_workflow_template", {"brief": "a trip", "name": "Trip"}, "template_draft"),
])
def test_tools_execute(c, tool, args, key):
    r = c.post("/v1/creative-agent/tools/execute", json={"tool": tool, "arguments": args, "app_source": "t"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["tool"] == tool and data["toolCallId"].startswith("call_") and key in data["result"]
    assert isinstance(data["message"], str) and data["message"]
    if tool == "compose_workflow":
        plan = data["result"]["plan"]
        assert len(plan["steps"]) == 3
        assert start_wf(c, plan["steps"]).status_code == 201  # the plan is a valid workflow


@pytest.mark.parametrize("body, fragment", [
    ({"tool": "generate_image", "arguments": {"prompt": "x"}}, "synchronously"),
    ({"tool": "compose_lyrics", "arguments": {}}, "prompt"),
    ({"tool": "compose_lyrics", "arguments": {"prompt": "x", "mood": "sad"}}, "mood"),
    ({"tool": "compose_lyrics", "arguments": {"prompt": "x"}, "speed": 2}, "speed"),
    ({"arguments": {}}, "tool"),
])
def test_tools_execute_errors(c, body, fragment):
    r = c.post("/v1/creative-agent/tools/execute", json=body)
    assert r.status_code == 400 and r.json()["status"] == "error" and fragment in r.json()["message"]


def test_unknown_route_and_method(c):
    r = c.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["status"] == "error"
    assert c.get("/v1/chat/completions").status_code == 405


# --------------------------------------------------------------------------- faults
def test_status_faults_in_sequence_with_retry_headers(emu, c):
    emu.script([
        {"match": "/v1/chat/completions", "action": "status", "status": 429, "retry_after": 0.05,
         "retry_after_ms": 50},
        {"match": "/v1/chat/completions", "action": "status", "status": 503, "body": "sogni",
         "body_retry_after": 2},
    ])
    r1, r2, r3 = (chat(c, "x", sogni_tools=False) for _ in range(3))
    assert r1.status_code == 429 and r1.headers["retry-after"] == "0.05" and r1.headers["retry-after-ms"] == "50"
    assert r1.json()["error"]["type"] == "rate_limit_exceeded" and r1.json()["error"]["code"] == 429
    assert r2.status_code == 503 and r2.json()["status"] == "error" and r2.json()["retryAfter"] == 2
    assert r3.status_code == 200
    assert [q["fault"] for q in emu.requests] == ["status", "status", None]


def test_fault_matching_method_times_and_default_envelope(emu, c):
    emu.script([{"match": WF, "method": "POST", "action": "status", "status": 500, "times": 2}])
    assert c.get(WF).status_code == 200  # GET does not match
    r = start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "x"}}])
    assert r.status_code == 500 and r.json()["status"] == "error"
    assert start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]).status_code == 500
    assert start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]).status_code == 201
    with pytest.raises(ValueError):
        emu.script([{"action": "explode"}])


def test_drop_fault(emu, c):
    emu.script([{"match": "/v1/models", "action": "drop"}])
    with pytest.raises(httpx.TransportError):
        c.get("/v1/models")
    assert c.get("/v1/models").status_code == 200


def test_reset_after_fault_cuts_the_chat_stream(emu, c):
    emu.script([{"match": "/v1/chat/completions", "action": "reset_after", "chunks": 3}])
    lines = []
    with pytest.raises(httpx.TransportError):
        with c.stream("POST", "/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "a long enough sentence"}], "stream": True,
                "sogni_tools": False}) as r:
            for line in r.iter_lines():
                lines.append(line)
    datas = [ln for ln in lines if ln.startswith("data:")]
    assert len(datas) == 3 and "data: [DONE]" not in lines


def test_reset_after_clean_ends_without_done(emu, c):
    emu.script([{"match": "/v1/chat/completions", "action": "reset_after", "chunks": 2, "clean": True}])
    datas = stream_chat(c, {"messages": [{"role": "user", "content": "a long enough sentence"}], "stream": True,
                            "sogni_tools": False})
    assert len(datas) == 2 and "[DONE]" not in datas


def test_reset_after_cuts_the_workflow_stream(emu, c):
    wid = start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]).json()["data"]["workflow"][
        "workflowId"]
    emu.script([{"match": "/events/stream", "action": "reset_after", "chunks": 2}])
    got = []
    with pytest.raises(httpx.TransportError):
        with c.stream("GET", f"{WF}/{wid}/events/stream") as r:
            for line in r.iter_lines():
                got.append(line)
    assert len([ln for ln in got if ln.startswith("id:")]) == 2


def test_error_in_stream_fault(emu, c):
    emu.script([{"match": "/v1/chat/completions", "action": "error_in_stream", "code": "server_restarting",
                 "message": "backend restarting"}])
    datas = stream_chat(c, {"messages": [{"role": "user", "content": "hello world"}], "stream": True,
                            "sogni_tools": False})
    errors = [json.loads(d) for d in datas if d.startswith("{") and "error" in json.loads(d)]
    assert errors == [{"error": {"message": "backend restarting", "type": "server_error",
                                 "code": "server_restarting"}}]
    assert datas.index(json.dumps(errors[0])) == 2 and datas[-1] == "[DONE]"
    wid = start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "x"}}]).json()["data"]["workflow"][
        "workflowId"]
    emu.script([{"match": "/events/stream", "action": "error_in_stream", "after": 1}])
    frames, _ = follow(c, wid)
    assert len(frames) == 2 and frames[1]["event"] == "error" and "error" in json.loads(frames[1]["data"])


def test_truncate_and_reset_faults_on_media(emu, artifact):
    url = artifact["url"]
    size = artifact["sizeBytes"]
    emu.script([{"match": "/media/", "action": "truncate", "bytes": 100}])
    got = bytearray()
    with pytest.raises(httpx.TransportError):
        with httpx.stream("GET", url, trust_env=False) as r:
            assert int(r.headers["content-length"]) == size
            for part in r.iter_bytes():
                got += part
    assert len(got) == 100
    emu.script([{"match": "/media/", "action": "reset_after", "chunks": 50}])
    got = bytearray()
    with pytest.raises(httpx.TransportError):
        with httpx.stream("GET", url, trust_env=False) as r:
            for part in r.iter_bytes():
                got += part
    assert len(got) == 50
    assert len(httpx.get(url, trust_env=False).content) == size


def test_slow_fault_and_latency(emu, c):
    emu.script([{"match": "/v1/chat/completions", "action": "slow", "delay": 0.05}])
    t0 = time.monotonic()
    datas = stream_chat(c, {"messages": [{"role": "user", "content": "one two three"}], "stream": True,
                            "sogni_tools": False})
    assert time.monotonic() - t0 >= 0.05 * (len(datas) - 1)
    with emulator_mod.start(latency=0.1) as laggy:
        t0 = time.monotonic()
        assert httpx.get(laggy.base_url + "/v1/models", headers=KEY, trust_env=False).status_code == 200
        assert time.monotonic() - t0 >= 0.1


def test_admin_routes(emu, c):
    with httpx.Client(base_url=emu.base_url, trust_env=False) as anon:  # admin needs no key
        r = anon.post("/_emulator/faults", json={"faults": [{"match": "/v1/models", "action": "status",
                                                             "status": 502}]})
        assert r.status_code == 200
        assert anon.get("/_emulator/faults").json()["faults"][0]["status"] == 502
        assert c.get("/v1/models").status_code == 502
        reqs = anon.get("/_emulator/requests").json()["requests"]
        assert [q["path"] for q in reqs] == ["/v1/models"] and reqs[0]["fault"] == "status"
        assert anon.post("/_emulator/faults", json={"faults": [{"action": "nope"}]}).status_code == 400
        start_wf(c, [{"toolName": "generate_image", "arguments": {"prompt": "x"}}])
        assert anon.post("/_emulator/reset").status_code == 200
        assert anon.get("/_emulator/requests").json()["requests"] == []
        assert c.get(WF).json()["data"]["total"] == 0
    assert all(not q["path"].startswith("/_emulator") for q in emu.requests)


def test_recorded_request_shape(emu, c):
    c.post("/v1/chat/completions?x=1", json={"messages": [{"role": "user", "content": "hi"}]},
           headers={"X-Test": "Yes", "api-key": "k2"})
    rec = emu.requests[-1]
    assert rec["method"] == "POST" and rec["path"] == "/v1/chat/completions" and rec["query"] == {"x": "1"}
    assert rec["headers"]["x-test"] == "Yes" and rec["headers"]["api-key"] == "k2"
    assert rec["json"] == {"messages": [{"role": "user", "content": "hi"}]}
    assert isinstance(rec["time"], float) and rec["auth_sent"] is True
    emu.reset()
    assert emu.requests == []


def test_random_fault_rates_are_seeded_and_respect_the_rate():
    from sogni_cli import emulator as emu_mod

    def statuses(seed):
        with emu_mod.start(fault_rates={"429": 0.3, "503": 0.2}, seed=seed) as emu:
            with httpx.Client(base_url=emu.base_url, headers=KEY, trust_env=False, timeout=10) as client:
                return [client.get("/v1/models").status_code for _ in range(200)]

    first, again, other = statuses(1), statuses(1), statuses(2)
    assert first == again and first != other
    assert set(first) == {200, 429, 503}
    assert 40 <= first.count(429) <= 80 and 20 <= first.count(503) <= 60


def test_unknown_fault_rate_is_refused():
    from sogni_cli.emulator.faults import FaultQueue

    with pytest.raises(ValueError):
        FaultQueue({"418": 0.5})
    with pytest.raises(ValueError):
        FaultQueue({"429": 1.5})
