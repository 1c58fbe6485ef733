"""`sogni chat` from the outside: exact requests, stdout/stderr, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
from pytest_httpx import IteratorStream

from .conftest import BASE_URL, CANARY_KEY, chunk, sse_body

CHAT_URL = f"{BASE_URL}/v1/chat/completions"


def stream_response(httpx_mock, chunks, done=True, **kw):
    httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([sse_body(chunks, done)]),
                            headers={"content-type": "text/event-stream"}, **kw)


def sent_body(httpx_mock, index=-1):
    reqs = [r for r in httpx_mock.get_requests() if r.url.path == "/v1/chat/completions"]
    return json.loads(reqs[index].content)


def completion(content="Hello there", finish="stop", **extra):
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}]}
    body.update(extra)
    return body


def test_streams_text_and_sends_only_what_was_set(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk(role="assistant", content=""), chunk("Hel"), chunk("lo"), chunk(finish="stop")])
    res = cli("chat", "Say hello")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "Hello\n"
    req = httpx_mock.get_requests()[0]
    assert json.loads(req.content) == {"messages": [{"role": "user", "content": "Say hello"}], "stream": True,
                                       "stream_options": {"include_usage": True}}
    assert req.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert req.headers["api-key"] == CANARY_KEY
    assert req.headers["user-agent"].startswith("sogni-cli/")
    assert req.headers["idempotency-key"]


def test_each_sampling_flag_maps_to_its_field(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "hi", "-m", "qwen-x", "-s", "be brief", "--developer", "dev note", "--max-tokens", "64",
              "--temperature", "0.2", "--top-p", "0.9", "--top-k", "40", "--min-p", "0.05",
              "--repetition-penalty", "1.1", "--frequency-penalty", "0.5", "--presence-penalty", "-0.5",
              "--stop", "END", "--stop", "STOP", "--task-profile", "coding", "--think",
              "--template-kwarg", "budget=128", "--token-type", "spark", "--response-format", "json",
              "--tools", "none", "--tool-choice", "auto")
    assert res.exit_code == 0, res.stderr
    assert sent_body(httpx_mock) == {
        "model": "qwen-x",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "developer", "content": "dev note"},
                     {"role": "user", "content": "hi"}],
        "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
        "repetition_penalty": 1.1, "frequency_penalty": 0.5, "presence_penalty": -0.5, "stop": ["END", "STOP"],
        "task_profile": "coding", "chat_template_kwargs": {"budget": 128, "enable_thinking": True},
        "token_type": "spark", "response_format": {"type": "json_object"}, "sogni_tools": False,
        "tool_choice": "auto",
    }


@pytest.mark.parametrize("flag,value,field,expected", [
    ("--tools", "default", "sogni_tools", True),
    ("--tools", "rich", "sogni_tools", "rich"),
    ("--tools", "creative-agent", "sogni_tools", "creative-agent"),
    ("--tool-choice", "required", "tool_choice", "required"),
    ("--tool-choice", "sogni_generate_image", "tool_choice",
     {"type": "function", "function": {"name": "sogni_generate_image"}}),
])
def test_tool_modes(cli, env_key, httpx_mock, flag, value, field, expected):
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    assert cli("chat", "x", flag, value).exit_code == 0
    assert sent_body(httpx_mock)[field] == expected


def test_no_think_and_profile_model(cli, env_key, httpx_mock, monkeypatch, tmp_path):
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    assert cli("config", "set", "model", "profile-model").exit_code == 0
    assert cli("chat", "x", "--no-think").exit_code == 0
    body = sent_body(httpx_mock)
    assert body["model"] == "profile-model"
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_piped_stdin_is_prepended_with_stdin_flag(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "--stdin", "Summarise", input="line one\nline two\n")
    assert res.exit_code == 0
    assert sent_body(httpx_mock)["messages"] == [{"role": "user", "content": "line one\nline two\n\nSummarise"}]


def test_stdin_alone_is_the_prompt(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    assert cli("chat", input="just stdin").exit_code == 0
    assert sent_body(httpx_mock)["messages"] == [{"role": "user", "content": "just stdin"}]


def test_no_stream(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion("Full answer"))
    res = cli("chat", "x", "--no-stream")
    assert res.exit_code == 0
    assert res.stdout == "Full answer\n"
    assert sent_body(httpx_mock)["stream"] is False


def test_thinking_hidden_unless_asked(cli, env_key, httpx_mock):
    chunks = [chunk("<thi"), chunk("nk>secret plan</th"), chunk("ink>The answer"), chunk(" is 4", finish="stop")]
    stream_response(httpx_mock, chunks)
    res = cli("chat", "2+2")
    assert res.stdout == "The answer is 4\n"
    assert "secret plan" not in res.output
    stream_response(httpx_mock, chunks)
    res = cli("chat", "2+2", "--show-thinking")
    assert res.stdout == "The answer is 4\n"
    assert "secret plan" in res.stderr


def test_reasoning_field_kept_off_stdout(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [
        {"id": "c", "choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}, "finish_reason": None}]},
        chunk("Yes", finish="stop")])
    res = cli("chat", "q")
    assert res.stdout == "Yes\n" and "hmm" not in res.output


def test_json_output(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("Hi"), chunk(" you", finish="stop")])
    res = cli("chat", "x", "--json")
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["choices"][0]["message"]["content"] == "Hi you"
    assert doc["artifacts"] == []


def test_jsonl_events(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("A"), chunk("B", finish="stop"),
                                 {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}])
    res = cli("chat", "x", "--jsonl")
    events = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["delta", "delta"] and kinds[-1] == "done"
    assert "usage" in kinds
    assert "".join(e["text"] for e in events if e["event"] == "delta") == "AB"


def test_no_exec_prints_tool_calls(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [
        chunk(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "sogni_generate_image", "arguments": "{\"prompt\": "}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": "\"a cat\"}"}}]),
        chunk(finish="tool_calls")])
    res = cli("chat", "make a cat", "--no-exec")
    assert res.exit_code == 0, res.stderr
    assert sent_body(httpx_mock)["sogni_tool_execution"] is False
    assert [json.loads(line) for line in res.stdout.splitlines()] == [
        {"id": "call_1", "name": "sogni_generate_image", "arguments": {"prompt": "a cat"}}]


def test_function_with_local_command_loop(cli, env_key, httpx_mock, tmp_path):
    script = tmp_path / "weather.py"
    script.write_text("import json,sys; a=json.load(sys.stdin); print(json.dumps({'city': a['city'], 'temp': 21}))")
    fn = tmp_path / "weather.yaml"
    fn.write_text(f"name: get_weather\ndescription: Weather for a city\nparameters:\n  type: object\n"
                  f"  properties: {{city: {{type: string}}}}\n  required: [city]\n"
                  f"command: [{json.dumps(sys.executable)}, {json.dumps(str(script))}]\n")
    stream_response(httpx_mock, [
        chunk(tool_calls=[{"index": 0, "id": "call_w", "type": "function",
                           "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]),
        chunk(finish="tool_calls")])
    stream_response(httpx_mock, [chunk("It is 21 degrees in Paris.", finish="stop")])
    save = tmp_path / "convo.json"
    res = cli("chat", "Weather in Paris?", "--function", str(fn), "--save-messages", str(save))
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "It is 21 degrees in Paris.\n"
    first, second = (json.loads(r.content) for r in httpx_mock.get_requests())
    assert first["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert second["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    tool_msg = second["messages"][2]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "call_w"
    assert json.loads(tool_msg["content"]) == {"city": "Paris", "temp": 21}
    saved = json.loads(save.read_text())
    assert [m["role"] for m in saved] == ["user", "assistant", "tool", "assistant"]
    assert saved[-1]["content"] == "It is 21 degrees in Paris."


def _calls(*names):
    return [chunk(tool_calls=[{"index": i, "id": f"call_{i}", "type": "function",
                               "function": {"name": n, "arguments": "{}"}} for i, n in enumerate(names)]),
            chunk(finish="tool_calls")]


@pytest.mark.parametrize("name", ["sogni_generate_image", "generate_image"])
def test_manual_loop_knows_sogni_tools_by_either_spelling(cli, env_key, httpx_mock, tmp_path, name):
    """A Sogni tool call next to a local function ends the loop with the calls printed (exit 0), whichever
    spelling the server uses; nothing local runs for it."""
    fn = tmp_path / "f.json"
    fn.write_text(json.dumps({"name": "local_fn", "command": [sys.executable, "-c", "print('ran')"]}))
    stream_response(httpx_mock, _calls(name))
    res = cli("chat", "go", "--function", str(fn), "--no-exec")
    assert res.exit_code == 0, res.stderr
    assert [json.loads(line)["name"] for line in res.stdout.splitlines()] == [name]
    assert len(httpx_mock.get_requests()) == 1


def test_a_call_to_a_function_not_offered_runs_nothing_and_exits_7(cli, env_key, httpx_mock, tmp_path):
    marker = tmp_path / "ran"
    fn = tmp_path / "f.json"
    fn.write_text(json.dumps({"name": "local_fn", "command": [sys.executable, "-c",
                                                              f"open({str(marker)!r}, 'w').write('x')"]}))
    stream_response(httpx_mock, _calls("local_fn", "rm_rf_everything"))
    res = cli("chat", "go", "--function", str(fn))
    assert res.exit_code == 7 and "rm_rf_everything" in res.stderr and "not offer" in res.stderr
    assert not marker.exists()
    stream_response(httpx_mock, _calls("generate_image"))
    res = cli("chat", "go", "--tools", "none", "--function", str(fn))
    assert res.exit_code == 7  # Sogni tools were turned off: not offered either


def test_function_loop_stops_at_max_rounds(cli, env_key, httpx_mock, tmp_path):
    fn = tmp_path / "f.json"
    fn.write_text(json.dumps({"name": "loop", "command": [sys.executable, "-c", "print('again')"]}))
    call = [chunk(tool_calls=[{"index": 0, "id": "c", "type": "function",
                               "function": {"name": "loop", "arguments": "{}"}}]), chunk(finish="tool_calls")]
    for _ in range(3):
        stream_response(httpx_mock, call)
    res = cli("chat", "go", "--function", str(fn), "--max-rounds", "2")
    assert res.exit_code == 8
    assert "2 rounds" in res.stderr and "Hint: Raise --max-rounds" in res.stderr
    assert len(httpx_mock.get_requests()) == 3


def test_messages_file_and_save(cli, env_key, httpx_mock, tmp_path):
    convo = tmp_path / "c.yaml"
    convo.write_text("- role: user\n  content: Hi\n- role: assistant\n  content: Hello!\n")
    stream_response(httpx_mock, [chunk("Fine.", finish="stop")])
    res = cli("chat", "--messages", str(convo), "How are you?")
    assert res.exit_code == 0
    assert sent_body(httpx_mock)["messages"] == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How are you?"}]


def _png(path: Path, size=(64, 48), mode="RGB"):
    from PIL import Image

    Image.new(mode, size, (200, 10, 10) if mode == "RGB" else (200, 10, 10, 128)).save(path)
    return path


def test_vision_images_sent_as_data_uris(cli, env_key, httpx_mock, tmp_path):
    from PIL import Image

    big = tmp_path / "big.jpg"
    Image.new("RGB", (2048, 1024), (0, 90, 200)).save(big, quality=90)
    alpha = _png(tmp_path / "a.png", mode="RGBA")
    stream_response(httpx_mock, [chunk("A blue and a red image.", finish="stop")])
    res = cli("chat", "Describe", "-i", str(big), "-i", str(alpha))
    assert res.exit_code == 0, res.stderr
    parts = sent_body(httpx_mock)["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "Describe"}
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert parts[2]["image_url"]["url"].startswith("data:image/png;base64,")
    import base64
    import io

    img = Image.open(io.BytesIO(base64.b64decode(parts[1]["image_url"]["url"].split(",", 1)[1])))
    assert max(img.size) == 1024 and img.size == (1024, 512)


@pytest.mark.parametrize("make", ["missing", "folder", "text", "truncated", "bomb", "too_many"])
def test_bad_images_rejected_before_sending(cli, env_key, httpx_mock, tmp_path, make):
    args: list[str] = []
    if make == "missing":
        args = ["-i", str(tmp_path / "nope.png")]
    elif make == "folder":
        args = ["-i", str(tmp_path)]
    elif make == "text":
        p = tmp_path / "notes.png"
        p.write_text("not an image at all")
        args = ["-i", str(p)]
    elif make == "truncated":
        from PIL import Image

        p = tmp_path / "t.jpg"
        Image.effect_noise((400, 400), 50).convert("RGB").save(p, quality=95)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
        args = ["-i", str(p)]
    elif make == "bomb":
        import struct
        import zlib

        w = h = 20000
        raw = zlib.compress(b"".join(b"\x00" + bytes((w + 7) // 8) for _ in range(h)), 9)

        def chunk_(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

        p = tmp_path / "bomb.png"
        p.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk_(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                      + chunk_(b"IDAT", raw) + chunk_(b"IEND", b""))
        args = ["-i", str(p)]
    elif make == "too_many":
        p = _png(tmp_path / "ok.png")
        args = [a for _ in range(21) for a in ("-i", str(p))]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = cli("chat", "what is this", *args)
    assert res.exit_code == 2, res.stderr
    assert res.stderr.startswith("Error: ")
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("args,needle", [
    (["--tools", "everything"], "--tools"),
    (["--temperature", "hot"], "temperature"),
    (["--top-p", "7"], "top-p"),
    (["--task-profile", "fun"], "task profile"),
    (["--on-exists", "clobber"], "on-exists"),
])
def test_bad_flags_exit_2_and_send_nothing(cli, env_key, httpx_mock, args, needle):
    res = cli("chat", "x", *args)
    assert res.exit_code == 2
    assert needle in res.stderr
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("content,where", [
    ('[{"role": "user", "content": "hi"},\n {"role": ]', ":2:"),
    ("- role: user\n  content: [unclosed\n- x", ":3:"),
])
def test_invalid_messages_file_reports_line_and_column(cli, env_key, httpx_mock, tmp_path, content, where):
    p = tmp_path / "m.txt"
    p.write_text(content)
    res = cli("chat", "--messages", str(p))
    assert res.exit_code == 2
    assert f"{p}{where}" in res.stderr
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("content,needle", [
    ("description: no name here\n", "no 'name'"),
    ("name: f\ncommand: ls -la\n", "'command' must be"),
])
def test_invalid_function_file(cli, env_key, httpx_mock, tmp_path, content, needle):
    p = tmp_path / "f.yaml"
    p.write_text(content)
    res = cli("chat", "x", "--function", str(p))
    assert res.exit_code == 2 and needle in res.stderr
    assert httpx_mock.get_requests() == []


def test_bad_base_url(cli, monkeypatch, httpx_mock):
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    res = cli("--base-url", "ftp://example.com", "chat", "x")
    assert res.exit_code == 2 and "http" in res.stderr


def test_no_key(cli, httpx_mock, monkeypatch):
    monkeypatch.setenv("SOGNI_BASE_URL", BASE_URL)
    res = cli("chat", "hello")
    assert res.exit_code == 3
    assert "SOGNI_API_KEY" in res.stderr and "sogni auth login" in res.stderr
    assert httpx_mock.get_requests() == []


def test_dry_run_needs_no_key_and_shortens_data_uris(cli, httpx_mock, tmp_path, monkeypatch):
    monkeypatch.setenv("SOGNI_BASE_URL", BASE_URL)
    img = _png(tmp_path / "p.png")
    res = cli("chat", "look", "-i", str(img), "--dry-run")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith(f"POST {CHAT_URL}")
    assert "data:image/jpeg;base64,…(" in res.stdout
    assert httpx_mock.get_requests() == []


def test_dry_run_and_verbose_redact_the_key(cli, env_key, httpx_mock):
    res = cli("--dry-run", "chat", "x")
    assert res.exit_code == 0
    assert "Authorization: Bearer ***" in res.stdout and "api-key: ***" in res.stdout
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("-v", "chat", "x")
    assert res.exit_code == 0
    assert "> POST" in res.stderr and "Bearer ***" in res.stderr


def test_retries_honour_retry_after_and_reuse_idempotency_key(cli, env_key, httpx_mock, sleeps):
    httpx_mock.add_response(url=CHAT_URL, status_code=429, headers={"retry-after-ms": "1500"},
                            json={"error": {"message": "slow down", "type": "rate_limit_error"}})
    httpx_mock.add_response(url=CHAT_URL, status_code=503, headers={"Retry-After": "2"}, json={})
    stream_response(httpx_mock, [chunk("finally", finish="stop")])
    res = cli("chat", "x")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "finally\n"
    assert sleeps == [1.5, 2.0]
    keys = {r.headers["idempotency-key"] for r in httpx_mock.get_requests()}
    assert len(keys) == 1


def test_backoff_without_retry_after_and_body_retry_after(cli, env_key, httpx_mock, sleeps):
    # without Sogni's tools a chat starts no paid work: it is retried like a read
    httpx_mock.add_response(url=CHAT_URL, status_code=502, text="bad gateway")
    httpx_mock.add_response(url=CHAT_URL, status_code=503, json={"status": "error", "message": "restarting",
                                                                  "errorCode": 503, "retryAfter": 3})
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    assert cli("chat", "--tools", "none", "x").exit_code == 0
    assert 0.375 <= sleeps[0] <= 0.5 and sleeps[1] == 3.0


def test_retry_after_capped_at_60(cli, env_key, httpx_mock, sleeps):
    httpx_mock.add_response(url=CHAT_URL, status_code=429, headers={"Retry-After": "3600"}, json={})
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    assert cli("chat", "x").exit_code == 0
    assert sleeps == [60.0]


@pytest.mark.parametrize("status,body,code", [
    (401, {"error": {"message": "bad key", "type": "authentication_error"}}, 3),
    (403, {"status": "error", "message": "forbidden", "errorCode": 403}, 3),
    (402, {"error": {"message": "Unlimited billing is not available", "type": "billing"}}, 9),
    (400, {"status": "error", "message": "feature needs upgrade", "errorCode": 4081}, 9),
    (400, {"error": {"message": "bad field", "type": "invalid_request_error", "code": "invalid"}}, 4),
    (404, {"error": {"message": "model not found"}}, 4),
])
def test_error_envelopes_map_to_exit_codes(cli, env_key, httpx_mock, status, body, code):
    httpx_mock.add_response(url=CHAT_URL, status_code=status, json=body)
    res = cli("chat", "x")
    assert res.exit_code == code
    msg = body.get("error", body)["message"] if isinstance(body.get("error"), dict) else body["message"]
    assert res.stderr.startswith("Error: ") and msg in res.stderr
    assert len(httpx_mock.get_requests()) == 1


def test_5xx_after_retries_is_5(cli, env_key, httpx_mock, sleeps):
    for _ in range(3):
        httpx_mock.add_response(url=CHAT_URL, status_code=500, json={"error": {"message": "boom"}})
    res = cli("chat", "--tools", "none", "x")
    assert res.exit_code == 5 and len(sleeps) == 2


def test_hosted_chat_5xx_is_not_resent(cli, env_key, httpx_mock, sleeps):
    # Sogni's tools are on by default: the API may have started paid work before the 500
    httpx_mock.add_response(url=CHAT_URL, status_code=500, json={"error": {"message": "boom"}})
    res = cli("chat", "x")
    assert res.exit_code == 5 and sleeps == []
    assert len(httpx_mock.get_requests()) == 1
    assert "Error: 500 boom" in res.stderr and "not sent again" in res.stderr


def test_max_retries_flag(cli, env_key, httpx_mock, sleeps):
    httpx_mock.add_response(url=CHAT_URL, status_code=500, json={})
    res = cli("--max-retries", "0", "chat", "x")
    assert res.exit_code == 5 and sleeps == []


def test_connection_errors_retry_then_5(cli, env_key, httpx_mock, sleeps):
    for _ in range(3):
        httpx_mock.add_exception(httpx.ConnectError("refused"), url=CHAT_URL)
    res = cli("chat", "x")
    assert res.exit_code == 5 and len(sleeps) == 2


def test_timeouts_retry_then_6(cli, env_key, httpx_mock, sleeps):
    for _ in range(3):
        httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=CHAT_URL)
    res = cli("chat", "--tools", "none", "x")
    assert res.exit_code == 6 and len(sleeps) == 2


def test_hosted_chat_timeout_is_not_resent(cli, env_key, httpx_mock, sleeps):
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=CHAT_URL)
    res = cli("chat", "x")
    assert res.exit_code == 6 and sleeps == [] and len(httpx_mock.get_requests()) == 1
    assert "not sent again" in res.stderr


def test_error_inside_stream(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("partial "), {"error": {"message": "out of credit",
                                                               "type": "insufficient_balance", "code": 402}}])
    res = cli("chat", "x")
    assert res.exit_code == 9
    assert res.stdout.startswith("partial")
    assert "out of credit" in res.stderr


def test_stream_without_done_keeps_text_and_exits_5(cli, env_key, httpx_mock, sleeps):
    stream_response(httpx_mock, [chunk("half an ans"), chunk("wer")], done=False)
    res = cli("chat", "x")
    assert res.exit_code == 5
    assert res.stdout.startswith("half an answer")
    assert "ended before" in res.stderr
    assert sleeps == []  # nothing is retried once content started


def test_closed_stdout_is_quiet(tmp_path, monkeypatch):
    """`sogni chat … | head -c 1` style: stdout closes early; no traceback."""
    import subprocess

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("SOGNI_")}
    env["SOGNI_CONFIG_DIR"] = str(tmp_path)
    proc = subprocess.run(f"{sys.executable} -m sogni_cli --help | head -c 10", shell=True, env=env,
                          capture_output=True, text=True)
    assert "Traceback" not in proc.stderr


def _png_bytes(size=(32, 24)):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buf, "PNG")
    return buf.getvalue()


def test_hosted_media_followed_deduplicated_and_saved(cli, env_key, httpx_mock, tmp_path):
    wf = f"{BASE_URL}/v1/creative-agent/workflows/wf_1"
    media_url = "https://cdn.sogni.test/runs/wf_1/img-1.png"
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        f"Here it is: {media_url}",
        creative_workflows=[{"workflowId": "wf_1", "status": "queued", "url": "https://elsewhere.test/wf_1",
                             "streamUrl": "https://elsewhere.test/wf_1/stream"}],
        sogni_tool_results=[{"tool": "generate_image", "workflowId": "wf_1", "urls": [media_url]}]))
    events = ('id: 1\nevent: workflow_completed\ndata: {"id": "e1", "sequence": 1, "type": "workflow_completed",'
              ' "workflowId": "wf_1", "status": "completed"}\n\n')
    httpx_mock.add_response(url=f"{wf}/events/stream", stream=IteratorStream([events.encode()]),
                            headers={"content-type": "text/event-stream"})
    httpx_mock.add_response(url=wf, json={"status": "success", "data": {"workflow": {
        "workflowId": "wf_1", "status": "completed",
        "artifacts": [{"id": "a1", "kind": "image", "url": media_url, "mimeType": "image/png"}]}}},
        is_reusable=True)
    png = _png_bytes()
    httpx_mock.add_response(url=media_url, content=png, headers={"content-type": "image/png"})
    out = tmp_path / "out"
    res = cli("chat", "Draw a green square", "--no-stream", "-o", str(out), "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert len(doc["artifacts"]) == 1
    saved = Path(doc["artifacts"][0])
    assert saved.parent == out and saved.read_bytes() == png
    assert not list(out.glob("*.part"))
    media_reqs = [r for r in httpx_mock.get_requests() if r.url.host == "cdn.sogni.test"]
    assert len(media_reqs) == 1
    assert "authorization" not in media_reqs[0].headers and "api-key" not in media_reqs[0].headers
    assert not [r for r in httpx_mock.get_requests() if r.url.host == "elsewhere.test"]
    api_reqs = [r for r in httpx_mock.get_requests() if r.url.host == "api.sogni.test"]
    assert all(r.headers["api-key"] == CANARY_KEY for r in api_reqs)


def test_hosted_media_failed_download_is_exit_8(cli, env_key, httpx_mock, tmp_path, sleeps):
    media_url = "https://cdn.sogni.test/x.png"
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        f"See {media_url}", sogni_tool_results=[{"tool": "generate_image", "urls": [media_url]}]))
    httpx_mock.add_response(url=media_url, status_code=500, is_reusable=True)
    res = cli("chat", "x", "--no-stream", "-o", str(tmp_path / "o"))
    assert res.exit_code == 8
    assert res.stdout.startswith("See ")
    assert not (tmp_path / "o").exists() or not [p for p in (tmp_path / "o").iterdir() if not p.name.endswith(".part")]


def _hosted(httpx_mock, records: dict, text="Done."):
    """A completion naming workflows; each record is served for GET and as a terminal SSE event."""
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        text, creative_workflows=[{"workflowId": wid, "status": "queued"} for wid in records]))
    for wid, rec in records.items():
        wf = f"{BASE_URL}/v1/creative-agent/workflows/{wid}"
        event = json.dumps({"id": f"{wid}-1", "sequence": 1, "type": "workflow_completed", "workflowId": wid,
                            "status": rec["status"]})
        httpx_mock.add_response(url=f"{wf}/events/stream", stream=IteratorStream([f"data: {event}\n\n".encode()]),
                                headers={"content-type": "text/event-stream"}, is_optional=True)
        httpx_mock.add_response(url=wf, json={"status": "success", "data": {"workflow": {"workflowId": wid, **rec}}},
                                is_reusable=True)


@pytest.mark.parametrize("rec,code", [
    ({"status": "waiting_for_user", "waitingReason": "cost_approval_required"}, 9),
    ({"status": "waiting_for_user", "waitingReason": "insufficient_credit"}, 9),
    ({"status": "completed", "artifacts": []}, 7),
    ({"status": "failed", "error": {"message": "gpu fell over"}}, 7),
    ({"status": "cancelled"}, 7),
])
def test_hosted_workflow_end_states_give_the_contract_exit_codes(cli, env_key, httpx_mock, tmp_path, rec, code):
    _hosted(httpx_mock, {"wf_1": rec})
    res = cli("chat", "draw", "--no-stream", "-o", str(tmp_path / "o"))
    assert res.exit_code == code, res.stderr
    assert res.stdout == "Done.\n"
    assert "Error: " in res.stderr


def test_hosted_partial_failure_saves_what_exists_and_exits_8(cli, env_key, httpx_mock, tmp_path):
    url = "https://cdn.sogni.test/wf_1/a.png"
    _hosted(httpx_mock, {"wf_1": {"status": "partial_failure", "artifacts": [{"url": url, "mimeType": "image/png"}]}})
    httpx_mock.add_response(url=url, content=_png_bytes(), headers={"content-type": "image/png"})
    res = cli("chat", "draw", "--no-stream", "-o", str(tmp_path / "o"))
    assert res.exit_code == 8
    assert len(list((tmp_path / "o").glob("*.png"))) == 1


def test_expired_link_is_refreshed_to_the_same_artifact(cli, env_key, httpx_mock, tmp_path):
    """Two workflows: the second's first link expired; the fresh link must be that artifact, not another."""
    a1 = "https://cdn.sogni.test/a/1.png"
    b1_old, b1_new, b2 = ("https://cdn.sogni.test/b/1-old.png", "https://cdn.sogni.test/b/1-new.png",
                          "https://cdn.sogni.test/b/2.png")
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        "Done.", creative_workflows=[{"workflowId": "wf_a"}, {"workflowId": "wf_b"}]))
    for wid in ("wf_a", "wf_b"):
        httpx_mock.add_response(url=f"{BASE_URL}/v1/creative-agent/workflows/{wid}/events/stream",
                                status_code=404, json={}, is_optional=True, is_reusable=True)
    rec_a = {"workflowId": "wf_a", "status": "completed", "artifacts": [{"url": a1, "mimeType": "image/png"}]}
    old_b = {"workflowId": "wf_b", "status": "completed",
             "artifacts": [{"url": b1_old, "mimeType": "image/png"}, {"url": b2, "mimeType": "image/png"}]}
    new_b = dict(old_b, artifacts=[{"url": b1_new, "mimeType": "image/png"}, {"url": b2, "mimeType": "image/png"}])
    httpx_mock.add_response(url=f"{BASE_URL}/v1/creative-agent/workflows/wf_a",
                            json={"status": "success", "data": {"workflow": rec_a}}, is_reusable=True)
    httpx_mock.add_response(url=f"{BASE_URL}/v1/creative-agent/workflows/wf_b",
                            json={"status": "success", "data": {"workflow": old_b}})
    httpx_mock.add_response(url=f"{BASE_URL}/v1/creative-agent/workflows/wf_b",
                            json={"status": "success", "data": {"workflow": old_b}})
    httpx_mock.add_response(url=f"{BASE_URL}/v1/creative-agent/workflows/wf_b",
                            json={"status": "success", "data": {"workflow": new_b}}, is_reusable=True)
    pngs = {a1: _png_bytes((10, 10)), b1_new: _png_bytes((11, 11)), b2: _png_bytes((12, 12))}
    httpx_mock.add_response(url=b1_old, status_code=403)
    for u, data in pngs.items():
        httpx_mock.add_response(url=u, content=data, headers={"content-type": "image/png"})
    res = cli("chat", "draw", "--no-stream", "-o", str(tmp_path / "o"), "--json")
    assert res.exit_code == 0, res.stderr
    saved = [Path(p).read_bytes() for p in json.loads(res.stdout)["artifacts"]]
    assert sorted(saved) == sorted(pngs.values())
