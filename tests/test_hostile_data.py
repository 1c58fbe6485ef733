"""Hostile or malformed data: bounded memory, and the contract's exit codes (2 for bad input files, 5 for bad
server data) instead of a crash (exit 1)."""

from __future__ import annotations

import json
import sys

import httpx
import pytest
from pytest_httpx import IteratorStream

from sogni_cli.api import sse
from sogni_cli.core.errors import ApiError, ExitCode, MalformedResponse, exit_code_for, parse_error_body

from .conftest import BASE_URL, chunk, sse_body

CHAT_URL = f"{BASE_URL}/v1/chat/completions"
WF = "/v1/creative-agent/workflows"
DEEP = 100_000


def _strict_json(line: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(line, parse_constant=refuse)


def _no_traceback(res) -> None:
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr.lower(), res.stderr


# ------------------------------------------------------------------------------------ SSE size limit


@pytest.fixture
def small_events(monkeypatch):
    monkeypatch.setattr(sse, "MAX_EVENT_BYTES", 1024)
    return 1024


def test_one_data_line_without_end_is_refused_once_over_the_limit(small_events):
    dec = sse.SSEDecoder()
    dec.feed(b"data: ")
    fed = 6
    with pytest.raises(MalformedResponse) as info:
        for _ in range(1000):  # 100 kB in all, never a line end
            dec.feed(b"x" * 100)
            fed += 100
    assert fed <= small_events + 100  # refused at the chunk that crossed the limit, not at the end
    assert "an event larger than 1024 bytes from the server" in info.value.message
    assert info.value.exit_code == ExitCode.UNAVAILABLE


def test_many_data_lines_of_one_event_count_together(small_events):
    dec = sse.SSEDecoder()
    with pytest.raises(MalformedResponse):
        for _ in range(100):
            dec.feed(b"data: " + b"y" * 50 + b"\n")  # each line is small, the event is not


def test_a_huge_comment_line_is_refused_too(small_events):
    dec = sse.SSEDecoder()
    with pytest.raises(MalformedResponse):
        for _ in range(100):
            dec.feed(b":" + b"z" * 99)


def test_events_up_to_the_limit_pass_and_earlier_events_ride_on_the_error(small_events):
    dec = sse.SSEDecoder()
    ok = b"data: " + b"a" * (small_events - 1) + b"\n\n"
    assert [len(e.data) for e in dec.feed(ok)] == [small_events - 1]
    with pytest.raises(MalformedResponse) as info:
        dec.feed(b"data: first\n\ndata: " + b"b" * (small_events + 10) + b"\n\n")
    assert [e.data for e in info.value.events] == ["first"]


def test_chat_stream_with_an_oversized_event_is_exit_5_after_writing_what_came(cli, env_key, httpx_mock,
                                                                                small_events):
    body = sse_body([chunk("Hi")], done=False) + b"data: " + b"x" * 5000 + b"\n\n" + b"data: [DONE]\n\n"
    httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([body[i:i + 700]
                                                                                for i in range(0, len(body), 700)]),
                            headers={"content-type": "text/event-stream"})
    res = cli("chat", "hello")
    assert res.exit_code == 5, res.stderr
    assert res.stdout.startswith("Hi")
    assert "an event larger than 1024 bytes from the server" in res.stderr
    _no_traceback(res)


# ------------------------------------------------------------------------------------ workflows


class Scripted:
    """A workflow API: one SSE stream script, then records (the last one repeats)."""

    def __init__(self, httpx_mock, stream: bytes | int, records: list[dict]):
        self.stream = stream
        self.records = records
        self.gets = 0
        httpx_mock.add_callback(self.handle, is_reusable=True, is_optional=True)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == f"{WF}/wf_1/events/stream":
            if isinstance(self.stream, int):
                return httpx.Response(self.stream, json={"error": {"message": "no stream here"}})
            return httpx.Response(200, stream=IteratorStream([self.stream]),
                                  headers={"content-type": "text/event-stream"})
        if path == f"{WF}/wf_1":
            rec = self.records[min(self.gets, len(self.records) - 1)]
            self.gets += 1
            if isinstance(rec, str):  # raw JSON text (NaN, Infinity...)
                return httpx.Response(200, content=rec.encode(), headers={"content-type": "application/json"})
            return httpx.Response(200, json={"status": "success", "data": rec})
        if path == f"{WF}/wf_1/events":
            return httpx.Response(200, json={"status": "success", "data": {"events": "x"}})
        return httpx.Response(404, json={"error": {"message": "not found"}})


def _done(**extra) -> dict:
    rec = {"workflowId": "wf_1", "status": "completed", "steps": [{"id": "s1", "toolName": "generate_image"}],
           "artifacts": [{"id": "a1", "kind": "image", "url": "https://cdn.sogni.test/a.png"}]}
    rec.update(extra)
    return rec


def _frame(text: str, seq: int) -> bytes:
    return f"id: wf_1:{seq}\ndata: {text}\n\n".encode()


NON_FINITE = _frame('{"workflowId": "wf_1", "sequence": 1, "type": "step_progress", "status": "running", '
                    '"data": {"stepId": "s1", "toolName": "generate_image", "status": "running", '
                    '"stepProgress": NaN, "etaSeconds": Infinity}}', 1)
COMPLETED = _frame('{"workflowId": "wf_1", "sequence": 2, "type": "workflow_completed", '
                   '"data": {"workflow": {"status": "completed"}}}', 2)


def test_watch_with_infinite_eta_and_nan_progress(cli, env_key, httpx_mock):
    Scripted(httpx_mock, NON_FINITE + COMPLETED, [_done()])
    res = cli("workflow", "watch", "wf_1")
    assert res.exit_code == 0, res.stderr
    assert "generate_image: running" in res.stderr and "ETA" not in res.stderr and "nan" not in res.stderr
    _no_traceback(res)


def test_events_follow_jsonl_stays_standard_json(cli, env_key, httpx_mock):
    Scripted(httpx_mock, NON_FINITE + COMPLETED, [_done()])
    res = cli("workflow", "events", "wf_1", "--follow", "--jsonl")
    assert res.exit_code == 0, res.stderr
    first = _strict_json(res.stdout.splitlines()[0])
    assert first["type"] == "step_progress"
    assert first.get("progress") is None and first.get("eta_seconds") is None


def test_workflow_event_nested_too_deeply_is_exit_5(cli, env_key, httpx_mock):
    deep = '{"type": "x", "data": ' + "[" * DEEP + "]" * DEEP + "}"
    api = Scripted(httpx_mock, _frame(deep, 1) + COMPLETED, [_done()])
    res = cli("workflow", "watch", "wf_1")
    assert res.exit_code == 5, res.stderr
    assert "nested too deeply" in res.stderr
    assert api.gets == 0  # not worked around by polling
    _no_traceback(res)


def test_workflow_event_over_the_size_limit_is_exit_5(cli, env_key, httpx_mock, small_events):
    big = _frame('{"type": "step_progress", "message": "' + "m" * 4000 + '"}', 1)
    Scripted(httpx_mock, big + COMPLETED, [_done()])
    res = cli("workflow", "watch", "wf_1")
    assert res.exit_code == 5, res.stderr
    assert "an event larger than 1024 bytes from the server" in res.stderr


@pytest.mark.parametrize("bad", [{"artifacts": 5}, {"steps": 5}, {"steps": "x", "artifacts": "y"},
                                 {"input": "x", "steps": None}, {"status": {"a": 1}}])
def test_show_and_list_survive_wrong_field_types(cli, env_key, httpx_mock, bad):
    rec = _done(**bad)
    Scripted(httpx_mock, 404, [rec])
    httpx_mock.add_response(url=f"{BASE_URL}{WF}", method="GET", json={"data": {"workflows": [rec]}},
                            is_optional=True)
    res = cli("workflow", "show", "wf_1")
    assert res.exit_code == 0, res.stderr
    assert "Workflow:  wf_1" in res.stdout
    res = cli("workflow", "list", stdout_tty=True)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[1].split()[0] == "wf_1"


def test_watch_by_polling_survives_wrong_field_types(cli, env_key, httpx_mock, monkeypatch):
    running = '{"workflowId": "wf_1", "status": "running", "artifacts": 5, "steps": 5, "progress": Infinity}'
    failed = {"workflowId": "wf_1", "status": "failed", "artifacts": 5, "steps": 5,
              "error": {"message": "the model gave up"}}
    Scripted(httpx_mock, 404, [running, failed])
    import sogni_cli.api.workflows as wf

    monkeypatch.setattr(wf, "sleep", lambda s: None)
    res = cli("workflow", "watch", "wf_1")
    assert res.exit_code == 7, res.stderr
    assert "the model gave up" in res.stderr


def test_events_replay_with_events_not_a_list(cli, env_key, httpx_mock):
    Scripted(httpx_mock, 404, [_done()])
    res = cli("workflow", "events", "wf_1")
    assert res.exit_code == 0 and res.stdout == ""


# ------------------------------------------------------------------------------------ chat: server data


@pytest.mark.parametrize("data", ["[" * DEEP + "]" * DEEP, '{"x": ' + "[" * DEEP + "]" * DEEP + "}"])
def test_chat_chunk_nested_too_deeply_is_exit_5(cli, env_key, httpx_mock, data):
    httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([sse_body([chunk("Hi"), data])]),
                            headers={"content-type": "text/event-stream"})
    res = cli("chat", "hello")
    assert res.exit_code == 5, res.stderr
    assert "nested too deeply" in res.stderr
    _no_traceback(res)


@pytest.mark.parametrize("err", [{"message": "bad", "code": {"a": 1}}, {"message": "bad", "code": [1],
                                                                        "type": {"t": 1}},
                                 {"message": {"m": 1}, "code": {"a": 1}, "subscription": {"requiredPlans": 5}}])
def test_error_objects_with_odd_field_types(cli, env_key, httpx_mock, err):
    httpx_mock.add_response(url=CHAT_URL, method="POST", status_code=400, json={"error": err})
    res = cli("chat", "hello")
    assert res.exit_code == 4, res.stderr
    _no_traceback(res)


def test_error_chunk_in_a_stream_with_an_object_code_is_exit_5(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST",
                            stream=IteratorStream([sse_body([{"error": {"message": "exploded", "code": {"x": 1}}}])]),
                            headers={"content-type": "text/event-stream"})
    res = cli("chat", "hello")
    assert res.exit_code == 5, res.stderr
    assert "exploded" in res.stderr


def test_exit_code_for_accepts_any_json_value():
    assert exit_code_for(400, {"a": 1}, {"b": 2}) == ExitCode.REJECTED
    assert exit_code_for(None, ["x"], ["y"]) == ExitCode.UNAVAILABLE
    assert exit_code_for(400, "4078") == ExitCode.BILLING
    assert exit_code_for(400, True) == ExitCode.REJECTED
    err = parse_error_body(429, {"error": {"message": "slow", "code": {}}, "retryAfter": float("nan")})
    assert isinstance(err, ApiError) and err.retry_after is None and err.exit_code == ExitCode.UNAVAILABLE


# ------------------------------------------------------------------------------------ input files


def _laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append(f"messages: [{{role: user, content: *a{levels}}}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("flag", ["--messages", "--function", "--response-format"])
@pytest.mark.parametrize("content, needle", [
    (_laughs(), "expands to more than"),
    ("[" * DEEP + "]" * DEEP, "nested more than"),
    ('{"a": ' + "[" * DEEP + "]" * DEEP + "}", "nested more than"),
    ("[" * 150 + "]" * 150, "nested more than"),
    ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 200)), "nested more than"),
])
def test_hostile_input_files_are_exit_2(cli, env_key, httpx_mock, tmp_path, flag, content, needle):
    p = tmp_path / "in.yaml"
    p.write_text(content)
    args = ("chat", flag, str(p)) if flag == "--messages" else ("chat", "hi", flag, str(p))
    res = cli(*args)
    assert res.exit_code == 2, res.stderr
    assert needle in res.stderr and str(p) in res.stderr
    assert httpx_mock.get_requests() == []


def test_input_file_over_the_size_limit_is_exit_2(cli, env_key, httpx_mock, tmp_path, monkeypatch):
    from sogni_cli.api import chat

    monkeypatch.setattr(chat, "MAX_INPUT_BYTES", 100)
    p = tmp_path / "m.json"
    p.write_text(json.dumps([{"role": "user", "content": "x" * 200}]))
    res = cli("chat", "--messages", str(p))
    assert res.exit_code == 2 and "over 100 bytes" in res.stderr
    res = cli("chat", "--messages", "-", input=p.read_bytes())
    assert res.exit_code == 2 and "over 100 bytes" in res.stderr
    assert httpx_mock.get_requests() == []


def test_yaml_messages_still_load_and_dates_stay_text(cli, env_key, httpx_mock, tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("base: &b {role: user}\nmessages:\n  - {<<: *b, content: 2024-01-02}\n")
    httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([sse_body([chunk("ok")])]),
                            headers={"content-type": "text/event-stream"})
    res = cli("chat", "--messages", str(p))
    assert res.exit_code == 0, res.stderr
    sent = json.loads(httpx_mock.get_requests()[0].content)
    assert sent["messages"] == [{"role": "user", "content": "2024-01-02"}]


def test_messages_from_stdin_that_is_not_utf8_is_exit_2(cli, env_key, httpx_mock):
    res = cli("chat", "--messages", "-", input=b"- role: user\n  content: caf\xe9 \xff\xfe\n")
    assert res.exit_code == 2, res.stderr
    assert "standard input is not UTF-8 text" in res.stderr
    assert httpx_mock.get_requests() == []


def test_messages_from_stdin_utf8(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([sse_body([chunk("ok")])]),
                            headers={"content-type": "text/event-stream"})
    res = cli("chat", "--messages", "-", input="- role: user\n  content: café\n".encode())
    assert res.exit_code == 0, res.stderr
    assert json.loads(httpx_mock.get_requests()[0].content)["messages"] == [{"role": "user", "content": "café"}]


def test_function_command_with_non_utf8_output(cli, env_key, httpx_mock, tmp_path):
    fn = tmp_path / "f.json"
    fn.write_text(json.dumps({"name": "raw", "command": [
        sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe done')"]}))
    call = [chunk(tool_calls=[{"index": 0, "id": "c1", "type": "function",
                               "function": {"name": "raw", "arguments": "{}"}}]), chunk(finish="tool_calls")]
    for chunks in (call, [chunk("Done.", finish="stop")]):
        httpx_mock.add_response(url=CHAT_URL, method="POST", stream=IteratorStream([sse_body(chunks)]),
                                headers={"content-type": "text/event-stream"})
    res = cli("chat", "go", "--function", str(fn))
    assert res.exit_code == 0, res.stderr
    second = json.loads(httpx_mock.get_requests()[1].content)
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "c1", "name": "raw",
                                      "content": "ok \ufffd\ufffd done"}


# ------------------------------------------------------------------------------------ recipes


def test_matrix_product_over_the_cap_is_a_positioned_problem_found_before_expanding(cli, tmp_cwd, monkeypatch):
    from sogni_cli.recipes import expand, schema

    seen: list[int] = []
    real = expand.matrix_cells

    def spy(*a, **kw):
        cells, globbed = real(*a, **kw)
        seen.append(len(cells))
        return cells, globbed

    monkeypatch.setattr(expand, "matrix_cells", spy)
    axis = "[" + ", ".join(str(i) for i in range(11)) + "]"
    (tmp_cwd / "r.yaml").write_text("version: 1\nmatrix:\n" + "".join(f"  {n}: {axis}\n" for n in "abcd")
                                    + "jobs:\n  - id: j\n    matrix: true\n    chat: \"{{matrix.a}}\"\n")
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 2, res.stderr
    assert f"r.yaml:2:1: the recipe matrix has {11 ** 4} cells" in res.stderr
    assert f"at most {schema.MAX_MATRIX_CELLS}" in res.stderr
    assert max(seen, default=0) <= schema.MAX_MATRIX_CELLS


def test_job_matrix_over_the_cap(cli, tmp_cwd, monkeypatch):
    from sogni_cli.recipes import schema

    monkeypatch.setattr(schema, "MAX_MATRIX_CELLS", 10)
    (tmp_cwd / "r.yaml").write_text("version: 1\njobs:\n  - id: j\n    matrix:\n      a: [1, 2, 3]\n"
                                    "      b: [1, 2, 3]\n      include: [{a: 9, b: 9}, {a: 8, b: 8}]\n"
                                    "    chat: x\n")
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 2, res.stderr
    assert "r.yaml:4:5: the matrix of job 'j' has 11 cells (its axes multiplied plus its include entries)" \
        in res.stderr


def test_total_job_runs_over_the_cap(cli, tmp_cwd, monkeypatch):
    from sogni_cli.recipes import schema

    monkeypatch.setattr(schema, "MAX_JOB_RUNS", 50)
    jobs = "".join(f"  - id: j{i}\n    matrix: true\n    chat: x\n" for i in range(3))
    (tmp_cwd / "r.yaml").write_text("version: 1\nmatrix:\n  a: [1, 2, 3, 4, 5]\n  b: [1, 2, 3, 4]\njobs:\n" + jobs)
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 2, res.stderr
    assert "r.yaml:5:1: the recipe expands to 60 job runs" in res.stderr and "at most 50" in res.stderr
    (tmp_cwd / "r.yaml").write_text("version: 1\nmatrix:\n  a: [1, 2, 3, 4, 5]\n  b: [1, 2, 3]\njobs:\n" + jobs)
    assert cli("recipe", "validate", "r.yaml").exit_code == 0


def test_recipe_nested_too_deeply_is_a_problem_not_a_crash(cli, tmp_cwd):
    (tmp_cwd / "r.yaml").write_text("version: 1\njobs:\n  - id: j\n    chat: {prompt: x, template_kwargs: "
                                    + "{a: " * 700 + "1" + "}" * 700 + "}\n")
    res = cli("recipe", "validate", "r.yaml")
    assert res.exit_code == 2, res.stderr
    assert "r.yaml:4:" in res.stderr and "nested more than 100 levels" in res.stderr
    _no_traceback(res)


def test_report_markdown_with_a_damaged_record_line(cli, tmp_cwd):
    rec_dir = tmp_cwd / "out" / ".sogni-run"
    rec_dir.mkdir(parents=True)
    good = {"recipe": "r", "id": "a", "kind": "chat", "status": "succeeded", "outputs": [], "time": "t1"}
    bad = dict(good, id="b", outputs="x")
    (rec_dir / "r.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    res = cli("recipe", "report", "out", "--markdown")
    assert res.exit_code == 2, res.stderr
    assert "out/.sogni-run/r.jsonl:2: invalid run record line: 'outputs' must be a list" in res.stderr
    _no_traceback(res)


@pytest.mark.parametrize("field, value", [("status", 5), ("duration", "x"), ("outputs", [5]),
                                          ("outputs", [{"path": 1}])])
def test_report_names_the_damaged_field(cli, tmp_cwd, field, value):
    rec_dir = tmp_cwd / "out" / ".sogni-run"
    rec_dir.mkdir(parents=True)
    (rec_dir / "r.jsonl").write_text(json.dumps({"recipe": "r", "id": "a", "status": "succeeded", field: value})
                                     + "\n")
    res = cli("recipe", "report", "out")
    assert res.exit_code == 2, res.stderr
    assert "r.jsonl:1: invalid run record line" in res.stderr


# ------------------------------------------------------------------------------------ emulator -q


@pytest.mark.parametrize("args, logged", [(("emulator", "-q"), False), (("emulator", "--quiet"), False),
                                          (("-q", "emulator"), False), (("emulator",), True)])
def test_emulator_quiet_option(cli, monkeypatch, args, logged):
    import threading

    from sogni_cli import emulator as emu

    real = emu.serve
    calls: list[dict] = []

    def serve(*a, on_ready=None, **kw):
        stop = threading.Event()
        calls.append(kw)

        def ready(url: str) -> None:
            on_ready(url)
            httpx.get(url + "/v1/models", headers={"Authorization": "Bearer any"}, trust_env=False, timeout=10)
            stop.set()

        return real(*a, on_ready=ready, stop=stop, **kw)

    monkeypatch.setattr(emu, "serve", serve)
    res = cli(*args, "--port", "0")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("SOGNI_BASE_URL=http://127.0.0.1:")
    assert calls[0]["quiet"] is (not logged)
    assert ("/v1/models" in res.stderr) is logged
