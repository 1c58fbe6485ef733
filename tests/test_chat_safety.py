"""`sogni chat` treats what a model or server says as data: links, escapes, local tools, saved conversations,
odd answers, one output model and shell habits. Each test runs the CLI from outside and checks the exact requests."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
from pytest_httpx import IteratorStream

from .conftest import BASE_URL, CANARY_KEY, chunk, sse_body

CHAT_URL = f"{BASE_URL}/v1/chat/completions"
CDN = "https://cdn.sogni.test"


def stream_response(httpx_mock, chunks, done=True, **kw):
    httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([sse_body(chunks, done)]),
                            headers={"content-type": "text/event-stream"}, **kw)


def completion(content="Hello there", finish="stop", **extra):
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}]}
    body.update(extra)
    return body


def chat_requests(httpx_mock):
    return [json.loads(r.content) for r in httpx_mock.get_requests() if r.url.path == "/v1/chat/completions"]


def png_bytes(size=(8, 8)):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buf, "PNG")
    return buf.getvalue()


def call_chunks(*calls, finish="tool_calls"):
    """Chunks of one reply making tool calls: (id, name, arguments-string) each."""
    out = [chunk(tool_calls=[{"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": args}}])
           for i, (cid, name, args) in enumerate(calls)]
    return out + [chunk(finish=finish)]


# ----------------------------------------------------------------------------- 1. links


def test_a_link_echoed_by_the_model_is_not_fetched_with_tools_none(cli, env_key, httpx_mock, tmp_cwd):
    secret_link = "http://127.0.0.1:9/img.png?d=hunter2"
    stream_response(httpx_mock, [chunk(f"Summary: see {secret_link}", finish="stop")])
    res = cli("chat", "--tools", "none", f"summarise: see {secret_link}")
    assert res.exit_code == 0, res.stderr
    assert len(httpx_mock.get_requests()) == 1  # the completion only
    assert [p.name for p in tmp_cwd.iterdir()] in ([], ["config"])  # config: the log of this chat
    assert f"Not downloaded: {secret_link} (--tools none)" in res.stderr


def test_links_in_a_reply_without_hosted_tools_are_not_fetched(cli, env_key, httpx_mock, tmp_cwd):
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(f"Look: {CDN}/cat.png"))
    res = cli("chat", "--no-stream", "hi")
    assert res.exit_code == 0, res.stderr
    assert len(httpx_mock.get_requests()) == 1
    assert "Not downloaded: https://cdn.sogni.test/cat.png (no hosted tool ran in this reply)" in res.stderr


def test_at_most_20_links_per_reply(cli, env_key, httpx_mock, tmp_path):
    links = [f"{CDN}/m/{i}.png" for i in range(200)]
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        "Made these: " + " ".join(links), sogni_tool_results=[{"tool": "generate_image", "urls": links[:1]}]))
    for link in links[:20]:
        httpx_mock.add_response(url=link, content=png_bytes(), headers={"content-type": "image/png"})
    out = tmp_path / "out"
    res = cli("chat", "--no-stream", "-o", str(out), "draw 200 things")
    assert res.exit_code == 0, res.stderr
    assert len(list(out.glob("*.png"))) == 20
    fetched = [str(r.url) for r in httpx_mock.get_requests() if r.url.host == "cdn.sogni.test"]
    assert sorted(fetched) == sorted(links[:20])
    assert res.stderr.count("over the limit of 20 links per reply") == 180


def test_only_https_links_on_hosts_the_reply_named_or_media_hosts(cli, env_key, httpx_mock, tmp_path):
    ok_named = f"{CDN}/a.png"
    ok_profile = "https://media.example.test/b.png"
    ok_api = f"{BASE_URL}/files/c.png"
    evil_host = "https://evil.test/d.png"
    plain_http = "http://cdn.sogni.test/e.png"
    text = " ".join([ok_named, ok_profile, ok_api, evil_host, plain_http])
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        text, sogni_tool_results=[{"tool": "generate_image", "urls": [ok_named]}]))
    for url in (ok_named, ok_profile, ok_api):
        httpx_mock.add_response(url=url, content=png_bytes(), headers={"content-type": "image/png"})
    assert cli("config", "set", "media_hosts", "media.example.test").exit_code == 0
    out = tmp_path / "out"
    res = cli("chat", "--no-stream", "-o", str(out), "--json", "draw")
    assert res.exit_code == 0, res.stderr
    hosts = sorted(r.url.host for r in httpx_mock.get_requests() if r.url.path.endswith(".png"))
    assert hosts == ["api.sogni.test", "cdn.sogni.test", "media.example.test"]
    doc = json.loads(res.stdout)
    assert len(doc["artifacts"]) == 3
    assert {d["url"] for d in doc["not_downloaded"]} == {evil_host, plain_http}
    assert f"Not downloaded: {evil_host} (host evil.test is not the API's" in res.stderr
    assert f"Not downloaded: {plain_http} (not HTTPS)" in res.stderr
    media = [r for r in httpx_mock.get_requests() if r.url.path.endswith(".png") and r.url.host != "api.sogni.test"]
    assert all("authorization" not in r.headers and "api-key" not in r.headers for r in media)


@pytest.mark.parametrize("flag", ["--no-exec", "--no-download"])
def test_nothing_is_fetched_with_no_exec_or_no_download(cli, env_key, httpx_mock, tmp_cwd, flag):
    link = f"{CDN}/a.png"
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        f"Here: {link}", sogni_tool_results=[{"tool": "generate_image", "urls": [link]}]))
    res = cli("chat", "--no-stream", flag, "draw")
    assert res.exit_code == 0, res.stderr
    assert [r.url.host for r in httpx_mock.get_requests()] == ["api.sogni.test"]
    assert f"Not downloaded: {link} ({flag})" in res.stderr
    assert [p.name for p in tmp_cwd.iterdir()] in ([], ["config"])  # config: the log of this chat


def test_a_hosted_tool_call_seen_in_the_stream_lets_api_links_through(cli, env_key, httpx_mock, tmp_path):
    link = f"{BASE_URL}/media/fox.png"
    stream_response(httpx_mock, call_chunks(("call_1", "sogni_generate_image", '{"prompt":"fox"}'), finish=None)
                    + [chunk(f"Your fox: {link}", finish="stop")])
    httpx_mock.add_response(url=link, content=png_bytes(), headers={"content-type": "image/png"})
    res = cli("chat", "-o", str(tmp_path / "o"), "draw a fox")
    assert res.exit_code == 0, res.stderr
    assert len(list((tmp_path / "o").glob("*.png"))) == 1
    assert res.stdout == f"Your fox: {link}\n"  # the hosted call is not a pending call


# ----------------------------------------------------------------------------- 2. inert text

EVIL = "A\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\u202eB\tC\nD"


def test_reply_escapes_are_escaped_on_a_terminal_and_kept_in_a_pipe(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk(EVIL, finish="stop")])
    res = cli("chat", "hi", "--raw", stdout_tty=True)  # as text; rendered as Markdown: tests/test_history.py
    assert res.exit_code == 0
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout and "\u202e" not in res.stdout
    assert res.stdout == "A\\x1b[2J\\x1b]0;pwned\\x07\\x1b]52;c;ZXZpbA==\\x07\\u202eB\tC\nD\n"
    stream_response(httpx_mock, [chunk(EVIL, finish="stop")])
    res = cli("chat", "hi")
    assert res.stdout == EVIL + "\n"


def test_tool_call_line_on_stderr_is_escaped_and_cannot_forge_an_error(cli, env_key, httpx_mock):
    stream_response(httpx_mock, call_chunks(("c1", "sogni_generate_image", "not json \x1b]52;c;eA==\x07\nError: forged")))
    res = cli("chat", "--no-exec", "draw")
    assert res.exit_code == 0, res.stderr
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr
    assert not [line for line in res.stderr.splitlines() if line.startswith("Error: forged")]
    assert "Tool call: sogni_generate_image not json \\x1b]52;c;eA==\\x07\\x0aError: forged" in res.stderr


def test_json_output_on_a_terminal_stays_valid_json_without_raw_controls(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("x\x9b2J\u202ey", finish="stop")])
    res = cli("chat", "--json", "hi", stdout_tty=True)
    assert "\x9b" not in res.stdout and "\u202e" not in res.stdout
    assert json.loads(res.stdout)["choices"][0]["message"]["content"] == "x\x9b2J\u202ey"


def test_model_ids_with_controls_stay_out_of_the_completion_cache(cli, env_key, httpx_mock, tmp_path):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", json={"object": "list", "data": [
        {"id": "good-model"}, {"id": "evil\x1b]52;c;eA==\x07"}, {"id": "two\nlines"}, {"id": "rtl\u202eldom"}]}, is_reusable=True)
    res = cli("models")
    assert res.exit_code == 0
    cache = (tmp_path / "config" / "models-cache.txt").read_text()
    assert cache == "good-model\n"
    res = cli("models", stdout_tty=True)
    assert "\x1b]52" not in res.stdout and "\u202e" not in res.stdout and "\\x1b]52" in res.stdout


def test_a_recipe_job_id_with_a_newline_cannot_forge_an_error_line():
    from sogni_cli.recipes.display import RunDisplay

    stream = io.StringIO()
    d = RunDisplay(stream, 2, tty=False)
    d.finished("shot[a\nError: forged]", "succeeded", 1.0)
    d.finished("shot[b\x1b[2J]", "failed", 1.0, error="gpu\nError: also forged")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert not [line for line in lines if "forged" in line and line.startswith("Error: forged")]
    assert not [line for line in lines if line.startswith("Error: also")]
    assert "\x1b" not in stream.getvalue()


def test_server_error_message_cannot_forge_a_second_line(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST", status_code=400,
                            json={"error": {"message": "bad\nError: forged\nHint: run rm -rf"}})
    res = cli("chat", "hi")
    assert res.exit_code == 4
    assert [line for line in res.stderr.splitlines() if line.startswith("Error:")] == [
        "Error: 400 bad\\x0aError: forged\\x0aHint: run rm -rf"]


@pytest.mark.parametrize("name,expected", [("../x", "x.png"), ("-rf", "rf.png"), ("cat\u202egnp.exe", "cat-gnp.exe.png"),
                                           ("a\x1b[2Jb", "a-[2Jb.png")])
def test_saved_file_names_have_no_controls_or_bidi_and_no_leading_dash(cli, env_key, httpx_mock, tmp_path, name,
                                                                        expected):
    link = f"{CDN}/a.png"
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        "ok", sogni_tool_results=[{"tool": "generate_image", "urls": [link]}]))
    httpx_mock.add_response(url=link, content=png_bytes(), headers={"content-type": "image/png"})
    out = tmp_path / "out"
    res = cli("chat", "--no-stream", "-o", str(out), "--name", name, "draw")
    assert res.exit_code == 0, res.stderr
    assert [p.name for p in out.glob("*.png")] == [expected]


# ----------------------------------------------------------------------------- 3. local tools


def function_file(tmp_path: Path, name: str, code: str, **extra) -> Path:
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    data = {"name": name, "parameters": {"type": "object", "properties": {}},
            "command": [sys.executable, str(script)], **extra}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def tool_message(httpx_mock, index=1):
    msgs = chat_requests(httpx_mock)[index]["messages"]
    return [m for m in msgs if m["role"] == "tool"][-1]


def test_a_hanging_command_is_stopped_at_its_timeout_and_reported(cli, env_key, httpx_mock, tmp_path):
    fn = function_file(tmp_path, "slow", "import time; time.sleep(30); print('late')", timeout=0.5)
    stream_response(httpx_mock, call_chunks(("c1", "slow", "{}")))
    stream_response(httpx_mock, [chunk("gave up", finish="stop")])
    res = cli("chat", "--function", str(fn), "go")
    assert res.exit_code == 0, res.stderr
    content = json.loads(tool_message(httpx_mock)["content"])
    assert "did not finish within 0.5 s" in content["error"]
    assert "Warning: function slow: the command did not finish within 0.5 s" in res.stderr


def test_the_global_timeout_caps_the_function_timeout(cli, env_key, httpx_mock, tmp_path):
    fn = function_file(tmp_path, "slow", "import time; time.sleep(30)")
    stream_response(httpx_mock, call_chunks(("c1", "slow", "{}")))
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("--timeout", "0.5", "chat", "--function", str(fn), "go")
    assert res.exit_code == 0, res.stderr
    assert "within 0.5 s" in json.loads(tool_message(httpx_mock)["content"])["error"]


def test_output_over_1_mib_is_cut_and_reported_as_an_error(cli, env_key, httpx_mock, tmp_path):
    fn = function_file(tmp_path, "chatty", "import sys\nfor _ in range(100): sys.stdout.write('x' * 100_000)\n")
    stream_response(httpx_mock, call_chunks(("c1", "chatty", "{}")))
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "--function", str(fn), "go")
    assert res.exit_code == 0, res.stderr
    content = json.loads(tool_message(httpx_mock)["content"])
    assert "more than 1048576 bytes" in content["error"]
    assert len(content["output"]) == 1024 * 1024
    assert "Warning: function chatty:" in res.stderr


def test_commands_do_not_see_sogni_variables_unless_listed(cli, env_key, httpx_mock, tmp_path, monkeypatch):
    monkeypatch.setenv("SOGNI_PROFILE_HINT", "listed")
    code = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('SOGNI_')}))")
    fn = function_file(tmp_path, "envdump", code, env=["SOGNI_PROFILE_HINT"])
    stream_response(httpx_mock, call_chunks(("c1", "envdump", "{}")))
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "--function", str(fn), "go")
    assert res.exit_code == 0, res.stderr
    assert json.loads(tool_message(httpx_mock)["content"]) == {"SOGNI_PROFILE_HINT": "listed"}


def test_relative_paths_in_command_are_taken_from_the_function_file(cli, env_key, httpx_mock, tmp_path, tmp_cwd):
    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    (tools / "weather.py").write_text("print('sunny')")
    (tools / "f.yaml").write_text(f"name: weather\ncommand: [{json.dumps(sys.executable)}, weather.py]\n")
    script = tools / "bin" / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    (tools / "g.yaml").write_text("name: hello\ncommand: [bin/hello.sh]\n")
    os.chdir(tmp_path / "tools" / "bin")
    stream_response(httpx_mock, call_chunks(("c1", "weather", "{}"), ("c2", "hello", "{}")))
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "--function", "../f.yaml", "--function", "../g.yaml", "go")
    assert res.exit_code == 0, res.stderr
    msgs = [m for m in chat_requests(httpx_mock)[1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in msgs] == ["sunny\n", "hello\n"]


def test_a_call_to_a_function_not_offered_runs_nothing_and_exits_7(cli, env_key, httpx_mock, tmp_path):
    marker = tmp_path / "ran"
    fn = function_file(tmp_path, "touch", f"open({str(marker)!r}, 'w').write('x')")
    stream_response(httpx_mock, call_chunks(("c1", "touch", "{}"), ("c2", "rm_everything", "{}")))
    res = cli("chat", "--function", str(fn), "--tools", "none", "go")
    assert res.exit_code == 7
    assert not marker.exists()
    assert len(chat_requests(httpx_mock)) == 1
    assert "Error: The model called a function that was not offered (rm_everything); nothing was run." in res.stderr
    assert res.stdout == ""


def test_a_lone_call_to_an_unknown_function_is_not_a_normal_pending_call(cli, env_key, httpx_mock):
    stream_response(httpx_mock, call_chunks(("c1", "x\nError: forged", "{}")))
    res = cli("chat", "--tools", "none", "go")
    assert res.exit_code == 7
    assert res.stdout == ""
    assert not [line for line in res.stderr.splitlines() if line.startswith("Error: forged")]


def test_a_failing_command_goes_back_to_the_model_and_warns(cli, env_key, httpx_mock, tmp_path):
    fn = function_file(tmp_path, "fails", "import sys; sys.stderr.write('first\\nboom: disk on fire\\n'); sys.exit(3)")
    stream_response(httpx_mock, call_chunks(("c1", "fails", "{}")))
    stream_response(httpx_mock, [chunk("sorry", finish="stop")])
    res = cli("chat", "--function", str(fn), "go")
    assert res.exit_code == 0, res.stderr
    content = json.loads(tool_message(httpx_mock)["content"])
    assert content["error"] == "the command exited with status 3"
    assert content["stderr"].endswith("boom: disk on fire")
    assert "Warning: function fails: the command exited with status 3: boom: disk on fire" in res.stderr


def test_no_exec_never_runs_a_local_command(cli, env_key, httpx_mock, tmp_path):
    marker = tmp_path / "ran"
    fn = function_file(tmp_path, "touch", f"open({str(marker)!r}, 'w').write('x')")
    stream_response(httpx_mock, call_chunks(("c1", "touch", "{}")))
    res = cli("chat", "--function", str(fn), "--no-exec", "go")
    assert res.exit_code == 0, res.stderr
    assert not marker.exists()
    assert len(chat_requests(httpx_mock)) == 1
    assert [json.loads(line) for line in res.stdout.splitlines()] == [{"id": "c1", "name": "touch", "arguments": {}}]


@pytest.mark.parametrize("problem", ["missing", "duplicate", "unreadable"])
def test_function_problems_are_found_before_anything_is_sent(cli, env_key, httpx_mock, tmp_path, problem):
    good = function_file(tmp_path, "good", "print(1)")
    if problem == "missing":
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: bad\ncommand: [no-such-program-here, x]\n")
        args = ["--function", str(bad)]
        needle = "command not found or not executable: no-such-program-here"
    elif problem == "duplicate":
        args = ["--function", str(good), "--function", str(good)]
        needle = "Two functions are named 'good'"
    else:
        args = ["--function", str(tmp_path)]
        needle = "is a folder"
    res = cli("chat", *args, "go")
    assert res.exit_code == 2
    assert needle in res.stderr
    assert httpx_mock.get_requests() == []


def test_approve_tools_refuses_without_a_terminal(cli, env_key, httpx_mock, tmp_path):
    fn = function_file(tmp_path, "good", "print(1)")
    res = cli("chat", "--function", str(fn), "--approve-tools", "go", input="")
    assert res.exit_code == 2 and "--approve-tools" in res.stderr
    assert httpx_mock.get_requests() == []


def test_approve_tools_asks_and_a_no_runs_nothing(cli, env_key, httpx_mock, tmp_path):
    marker = tmp_path / "ran"
    fn = function_file(tmp_path, "touch", f"open({str(marker)!r}, 'w').write('x')")
    stream_response(httpx_mock, call_chunks(("c1", "touch", "{}")))
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "--function", str(fn), "--approve-tools", "go", stdin_tty=True)  # the answer: end of input
    assert res.exit_code == 0, res.stderr
    assert not marker.exists()
    assert "Run touch:" in res.stderr and "[y/N]" in res.stderr
    assert json.loads(tool_message(httpx_mock)["content"]) == {"error": "the user declined to run this command"}


# ----------------------------------------------------------------------------- 5. --save-messages


@pytest.mark.parametrize("kind", ["dash", "symlink", "device", "folder"])
def test_save_messages_target_is_checked_before_sending(cli, env_key, httpx_mock, tmp_path, tmp_cwd, kind):
    if kind == "dash":
        target = "-"
    elif kind == "symlink":
        real = tmp_path / "real.json"
        real.write_text("keep me")
        (tmp_path / "link.json").symlink_to(real)
        target = str(tmp_path / "link.json")
    elif kind == "device":
        target = os.devnull
    else:
        target = str(tmp_path)
    res = cli("chat", "--save-messages", target, "hi")
    assert res.exit_code == 2, res.stderr
    assert httpx_mock.get_requests() == []
    assert not (tmp_cwd / "-").exists()
    if kind == "symlink":
        assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "keep me"


def test_save_messages_is_written_when_the_run_fails_after_a_tool_round(cli, env_key, httpx_mock, tmp_path, sleeps):
    fn = function_file(tmp_path, "count", "print('42')")
    stream_response(httpx_mock, call_chunks(("c1", "count", "{}")))
    httpx_mock.add_response(url=CHAT_URL, method="POST", status_code=500, json={"error": {"message": "down"}},
                            is_reusable=True)
    save = tmp_path / "convo.json"
    res = cli("chat", "--function", str(fn), "--save-messages", str(save), "count")
    assert res.exit_code == 5
    saved = json.loads(save.read_text())
    assert saved["incomplete"] is True and "down" in saved["error"]
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant", "tool"]
    assert saved["messages"][2]["content"] == "42\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".convo")] == []
    # a rerun continues from there: the tool's result is sent, the tool is not run again
    httpx_mock.reset()
    stream_response(httpx_mock, [chunk("The count is 42.", finish="stop")])
    res = cli("chat", "--messages", str(save), "--save-messages", str(save))
    assert res.exit_code == 0, res.stderr
    assert chat_requests(httpx_mock)[0]["messages"] == saved["messages"]
    assert [m["role"] for m in json.loads(save.read_text())] == ["user", "assistant", "tool", "assistant"]


# ----------------------------------------------------------------------------- 7. odd answers


def test_an_answer_of_the_wrong_shape_is_exit_5_with_an_excerpt(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST", json={"choices": "oops"})
    res = cli("chat", "--no-stream", "hi")
    assert res.exit_code == 5
    assert res.stdout == ""
    assert 'Error: The chat completion answer has no choices[0].message: {"choices": "oops"}' in res.stderr


@pytest.mark.parametrize("ctype", ["application/json", "text/event-stream"])
def test_a_json_error_with_status_200_on_a_stream_keeps_the_servers_message(cli, env_key, httpx_mock, ctype):
    body = json.dumps({"error": {"message": "model is warming up", "type": "server_error", "code": "model_loading"}})
    httpx_mock.add_response(url=CHAT_URL, method="POST", content=body.encode(), headers={"content-type": ctype})
    res = cli("chat", "hi")
    assert res.exit_code == 5
    assert "model is warming up" in res.stderr
    assert "stream ended before it was complete" not in res.stderr


def test_a_json_error_with_status_200_without_streaming(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST",
                            json={"status": "error", "message": "Insufficient balance", "errorCode": 4078})
    res = cli("chat", "--no-stream", "hi")
    assert res.exit_code == 9
    assert "Insufficient balance" in res.stderr


def test_a_redirect_is_reported_with_its_location(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST", status_code=302,
                            headers={"location": "https://login.example.test/sso"})
    res = cli("chat", "hi")
    assert res.exit_code == 5
    assert "302" in res.stderr and "https://login.example.test/sso" in res.stderr
    assert "HTTP 302" not in res.stderr
    assert len(httpx_mock.get_requests()) == 1


def test_a_base_url_ending_in_v1_is_accepted_with_one_warning(cli, httpx_mock, monkeypatch):
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    monkeypatch.setenv("SOGNI_BASE_URL", f"{BASE_URL}/v1/")
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "hi")
    assert res.exit_code == 0, res.stderr
    assert [str(r.url) for r in httpx_mock.get_requests()] == [CHAT_URL]
    assert res.stderr.count("Warning: the base URL ends in /v1") == 1


# ----------------------------------------------------------------------------- 8. one output model


def test_reasoning_is_in_the_same_place_streamed_and_not(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion("<think>plan it</think>The answer"))
    res = cli("chat", "--think", "--json", "--no-stream", "q")
    plain = json.loads(res.stdout)["choices"][0]["message"]
    stream_response(httpx_mock, [chunk("<think>plan it</think>"), chunk("The answer", finish="stop")])
    res = cli("chat", "--think", "--json", "q")
    streamed = json.loads(res.stdout)["choices"][0]["message"]
    assert plain["content"] == streamed["content"] == "The answer"
    assert plain["reasoning"] == streamed["reasoning"] == "plan it"
    for stream in (False, True):
        if stream:
            stream_response(httpx_mock, [chunk("<think>plan it</think>"), chunk("The answer", finish="stop")])
        else:
            httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion("<think>plan it</think>The answer"))
        res = cli("chat", "--think", "--jsonl", "q", *([] if stream else ["--no-stream"]))
        events = [json.loads(line) for line in res.stdout.splitlines()]
        assert [e["text"] for e in events if e["event"] == "reasoning"] == ["plan it"]
        assert "".join(e["text"] for e in events if e["event"] == "delta") == "The answer"


def test_jsonl_artifacts_come_before_done_which_is_last(cli, env_key, httpx_mock, tmp_path):
    link = f"{CDN}/a.png"
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion(
        f"Here: {link}", sogni_tool_results=[{"tool": "generate_image", "urls": [link]}]))
    httpx_mock.add_response(url=link, content=png_bytes(), headers={"content-type": "image/png"})
    res = cli("chat", "--no-stream", "--jsonl", "-o", str(tmp_path / "o"), "draw")
    assert res.exit_code == 0, res.stderr
    kinds = [json.loads(line)["event"] for line in res.stdout.splitlines()]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert kinds.index("artifact") < kinds.index("done")


def test_streamed_runs_ask_for_and_report_usage(cli, env_key, httpx_mock):
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    stream_response(httpx_mock, [chunk("Hi", finish="stop"), {"id": "c", "choices": [], "usage": usage}])
    res = cli("chat", "--json", "hi")
    assert chat_requests(httpx_mock)[0]["stream_options"] == {"include_usage": True}
    assert json.loads(res.stdout)["usage"] == usage
    stream_response(httpx_mock, [chunk("Hi", finish="stop"), {"id": "c", "choices": [], "usage": usage}])
    res = cli("chat", "--jsonl", "hi")
    assert {"event": "usage", "usage": usage} in [json.loads(line) for line in res.stdout.splitlines()]


@pytest.mark.parametrize("stream", [True, False])
def test_a_reply_cut_at_the_token_limit_warns(cli, env_key, httpx_mock, stream):
    if stream:
        stream_response(httpx_mock, [chunk("Once upon a", finish="length")])
    else:
        httpx_mock.add_response(url=CHAT_URL, method="POST", json=completion("Once upon a", finish="length"))
    res = cli("chat", "--max-tokens", "3", "story", *([] if stream else ["--no-stream"]))
    assert res.exit_code == 0
    assert res.stdout == "Once upon a\n"
    assert "Warning: the reply was cut short at the token limit" in res.stderr


# ----------------------------------------------------------------------------- 9. shell habits


def test_stdin_is_not_read_when_a_prompt_is_given(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "Describe apple", input="banana\ncherry\n")
    assert res.exit_code == 0, res.stderr
    assert chat_requests(httpx_mock)[0]["messages"] == [{"role": "user", "content": "Describe apple"}]


def test_no_stdin_and_the_dash_prompt(cli, env_key, httpx_mock):
    res = cli("chat", "--no-stdin", input="piped text")
    assert res.exit_code == 2 and "Nothing to send" in res.stderr
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "-", input="the prompt from stdin")
    assert res.exit_code == 0, res.stderr
    assert chat_requests(httpx_mock)[0]["messages"] == [{"role": "user", "content": "the prompt from stdin"}]


def test_a_prompt_starting_with_a_dash(cli, env_key, httpx_mock):
    res = cli("chat", "-starts with dash")
    assert res.exit_code == 2
    assert "no user message" in res.stderr and "--" in res.stderr
    assert httpx_mock.get_requests() == []
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "--", "-starts with dash")
    assert res.exit_code == 0, res.stderr
    assert chat_requests(httpx_mock)[0]["messages"] == [{"role": "user", "content": "-starts with dash"}]


def test_global_options_after_the_command(cli, env_key, httpx_mock):
    stream_response(httpx_mock, [chunk("ok", finish="stop")])
    res = cli("chat", "--timeout", "5", "-q", "hi", "--max-retries=0")
    assert res.exit_code == 0, res.stderr
    assert chat_requests(httpx_mock)[0]["messages"] == [{"role": "user", "content": "hi"}]


def test_dry_run_writes_no_file(cli, tmp_path):
    cfg = tmp_path / "config"
    assert cli("--dry-run", "config", "set", "model", "x").exit_code == 0
    assert cli("config", "set", "model", "x", "--dry-run").exit_code == 0
    res = cli("--dry-run", "auth", "login", input="sk-test-a-new-key-123")
    assert res.exit_code == 0, res.stderr
    assert not cfg.exists()
    assert cli("auth", "login", input="sk-test-a-new-key-123").exit_code == 0
    creds = (cfg / "credentials").read_text()
    assert cli("--dry-run", "auth", "logout").exit_code == 0
    assert cli("--dry-run", "config", "unset", "model").exit_code in (0, 2)
    assert (cfg / "credentials").read_text() == creds
    assert not (cfg / "config.yaml").exists()


def test_verbose_logs_bodies_status_and_stream_lines(cli, env_key, httpx_mock, tmp_path):
    from PIL import Image

    img = tmp_path / "p.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(img)
    stream_response(httpx_mock, [chunk("x" * 500, finish="stop")])
    res = cli("-v", "chat", "-i", str(img), "describe")
    assert res.exit_code == 0, res.stderr
    body_lines = [line for line in res.stderr.splitlines() if line.startswith('> {"messages"')]
    assert len(body_lines) == 1
    assert "data:image/jpeg;base64,…(" in body_lines[0] and "/9j/" not in body_lines[0]
    assert "< 200 OK" in res.stderr
    stream_lines = [line for line in res.stderr.splitlines() if line.startswith("< data: ")]
    assert stream_lines[-1] == "< data: [DONE]"
    assert all(len(line) < 300 for line in stream_lines)
    assert CANARY_KEY not in res.stderr
