"""Unit tests (CliRunner + pytest-httpx) for durable runs, templates, reseed and the catalogue cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import BASE_URL

RUN = f"{BASE_URL}/v1/chat/runs/run_1"


def _frame(seq: int, type_: str, **payload) -> str:
    ev = {"sequence": seq, "type": type_, "at": "2026-01-01T00:00:00Z", "payload": payload}
    return f"id: {seq}\nevent: {type_}\ndata: {json.dumps(ev)}\n\n"


def _stream(*frames: str) -> bytes:
    return ('event: run_status\ndata: {"status": "running"}\n\n' + "".join(frames)).encode()


def test_run_watch_resumes_after_the_last_event_and_skips_repeats(cli, env_key, httpx_mock):
    """A stream that ends early is resumed after the last event delivered (header and query); events a
    server sends again are not repeated."""
    httpx_mock.add_response(url=f"{RUN}/events/stream", match_headers={"Accept": "text/event-stream"},
                            headers={"content-type": "text/event-stream"},
                            content=_stream(_frame(1, "run_started"),
                                            _frame(2, "assistant_message_delta", content="Hel")))
    httpx_mock.add_response(url=RUN, json={"data": {"run": {"runId": "run_1", "status": "running"}}})
    httpx_mock.add_response(url=f"{RUN}/events/stream?after=2", match_headers={"Last-Event-ID": "2"},
                            headers={"content-type": "text/event-stream"},
                            content=_stream(_frame(2, "assistant_message_delta", content="Hel"),
                                            _frame(3, "assistant_message_delta", content="lo"),
                                            _frame(4, "assistant_message_completed", content="Hello",
                                                   finishReason="stop"),
                                            _frame(5, "run_completed", status="completed")))
    httpx_mock.add_response(url=RUN, json={"data": {"run": {
        "runId": "run_1", "status": "completed", "childWorkflowIds": [], "artifacts": [],
        "finalResponse": {"content": "Hello", "finishReason": "stop"}}}})
    res = cli("run", "watch", "run_1")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "Hello\n"


def test_run_watch_of_a_failed_run_exits_7(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=f"{RUN}/events/stream", headers={"content-type": "text/event-stream"},
                            content=_stream(_frame(1, "run_failed", status="failed", failureReason="boom")))
    httpx_mock.add_response(url=RUN, json={"data": {"run": {"runId": "run_1", "status": "failed",
                                                            "failureReason": "boom"}}})
    res = cli("run", "watch", "run_1")
    assert res.exit_code == 7 and "run_1 failed: boom" in res.stderr


def test_durable_start_sends_one_key_and_no_data_uris(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/chat/runs", method="POST", status_code=201,
                            json={"data": {"run": {"runId": "run_1", "status": "queued"}}})
    res = cli("chat", "--durable", "--detach", "--temperature", "0.5", "--think", "Hi")
    assert res.exit_code == 0 and res.stdout == "run_1\n"
    req = httpx_mock.get_requests()[0]
    assert req.headers["idempotency-key"]
    body = json.loads(req.content)
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["sampling"] == {"temperature": 0.5, "think": True}
    assert set(body) <= {"messages", "sampling", "token_type"}


def test_reseed_of_an_unknown_step_is_a_usage_error(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/creative-agent/workflows/wf_1", json={"data": {"workflow": {
        "workflowId": "wf_1", "status": "completed",
        "input": {"steps": [{"id": "s1", "toolName": "generate_image", "arguments": {"prompt": "x"}}]}}}})
    res = cli("workflow", "reseed", "wf_1", "--seed", "s1=abc")
    assert res.exit_code == 2 and "STEP=N" in res.stderr
    res = cli("workflow", "reseed", "wf_1", "--seed", "s2=1")
    assert res.exit_code == 2 and "has no step 's2'" in res.stderr and "Its steps: s1" in res.stderr
    assert all(r.method == "GET" for r in httpx_mock.get_requests())


def test_template_inputs_are_typed_and_checked(cli, env_key, httpx_mock):
    tpl = {"id": "tpl_1", "name": "t", "version": 1, "inputs": [
        {"name": "n", "type": "integer", "required": True}, {"name": "flag", "type": "boolean"},
        {"name": "style", "type": "string", "options": ["a", "b"]}],
        "input": {"steps": [{"id": "s", "toolName": "generate_image", "arguments": {"prompt": "x"}}]}}
    httpx_mock.add_response(url=f"{BASE_URL}/v1/creative-agent/workflows/templates/tpl_1", json={"data": {"template": tpl}},
                            is_reusable=True)
    res = cli("template", "run", "tpl_1", "--input", "n=two")
    assert res.exit_code == 2 and "'n' must be a whole number" in res.stderr
    res = cli("template", "run", "tpl_1", "--input", "n=2", "--input", "style=c")
    assert res.exit_code == 2 and "must be one of a, b" in res.stderr
    res = cli("template", "run", "tpl_1", "--input", "flag=yes")
    assert res.exit_code == 2 and "needs input 'n'" in res.stderr
    assert all(r.method == "GET" for r in httpx_mock.get_requests())
    from sogni_cli.api.templates import check_inputs

    assert check_inputs(tpl, {"n": "2", "flag": "yes", "style": "b"}) == {"n": 2, "flag": True, "style": "b"}


def test_catalogue_cache_refuses_an_unknown_model_offline(cli, env_key, httpx_mock):
    cfg = Path(os.environ["SOGNI_CONFIG_DIR"])
    cfg.mkdir(parents=True, exist_ok=True)
    import time

    (cfg / "catalogue-cache.json").write_text(json.dumps({"models": {"image": {"at": time.time(), "items": [
        {"id": "z-image-hd", "kind": "image"}, {"id": "z-turbo", "kind": "image"}]}}}), encoding="utf-8")
    res = cli("image", "a fox", "--model", "z-image", "--dry-run")
    assert res.exit_code == 2 and "no image model 'z-image'" in res.stderr and "did you mean 'z-image-hd'" in res.stderr
    assert httpx_mock.get_requests() == []


def test_bash_completes_lora_names_from_the_cache(tmp_path):
    from sogni_cli import completion_gen as gen

    from .test_completion import complete

    script = tmp_path / "sogni.bash"
    script.write_text(gen.generate("bash"), encoding="utf-8")
    config = Path(os.environ["SOGNI_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "loras-cache.txt").write_text("film-grain\npixel-art\n", encoding="utf-8")
    (config / "models-cache.txt").write_text("z-turbo\nwan22\n", encoding="utf-8")
    assert complete(script, "sogni", "image", "x", "--lora", "pi") == ["pixel-art"]
    assert complete(script, "sogni", "video", "x", "--model", "w") == ["wan22"]
