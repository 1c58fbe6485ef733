"""Checks made before anything is sent, and the key kept out of every output even when a server echoes it."""

from __future__ import annotations

import json

import pytest
from pytest_httpx import IteratorStream

from .conftest import BASE_URL, CANARY_KEY, chunk, sse_body

WF = f"{BASE_URL}/v1/creative-agent/workflows"


@pytest.mark.parametrize("template", ["{bogus}", "{index", "{seed:zz}"])
def test_bad_name_template_is_refused_before_sending(cli, env_key, httpx_mock, tmp_path, template):
    res = cli("image", "a cat", "-o", str(tmp_path), "--name", template)
    assert res.exit_code == 2, res.stderr
    assert res.stderr.startswith("Error: ")
    assert httpx_mock.get_requests() == []


def test_bad_name_template_fails_a_dry_run_too(cli, httpx_mock, tmp_path, monkeypatch):
    monkeypatch.setenv("SOGNI_BASE_URL", BASE_URL)
    res = cli("--dry-run", "image", "a cat", "--name", "{bogus}")
    assert res.exit_code == 2 and res.stdout == ""


@pytest.mark.parametrize("existing,argv", [
    ("a-cat-1.jpg", ["image", "a cat"]),            # the server could answer JPEG: the name is taken
    ("a-cat-1.webp", ["image", "a cat"]),
    ("a-song-1.wav", ["music", "a song"]),
    ("a-cat-2.png", ["image", "a cat", "-n", "2"]),
])
def test_on_exists_error_checks_every_possible_name_before_sending(cli, env_key, httpx_mock, tmp_path, existing,
                                                                     argv):
    (tmp_path / existing).write_bytes(b"mine")
    res = cli(*argv, "-o", str(tmp_path), "--on-exists", "error")
    assert res.exit_code == 2, res.stderr
    assert existing in res.stderr
    assert httpx_mock.get_requests() == []
    assert (tmp_path / existing).read_bytes() == b"mine"


def _store_key(cli, key):
    assert cli("auth", "login", input=key).exit_code == 0


def test_key_from_credentials_file_is_redacted_when_a_stream_error_quotes_it(cli, httpx_mock, monkeypatch):
    monkeypatch.setenv("SOGNI_BASE_URL", BASE_URL)
    _store_key(cli, CANARY_KEY)
    body = sse_body([chunk("hi "), {"error": {"message": f"bad key {CANARY_KEY}", "type": "authentication_error"}}])
    httpx_mock.add_response(url=f"{BASE_URL}/v1/chat/completions", stream=IteratorStream([body]),
                            headers={"content-type": "text/event-stream"})
    res = cli("chat", "x")
    assert res.exit_code == 3
    assert "bad key ***" in res.stderr  # the autouse check also fails the test on any leak


def test_key_redacted_when_a_workflow_failure_quotes_it(cli, httpx_mock, monkeypatch, tmp_path):
    monkeypatch.setenv("SOGNI_BASE_URL", BASE_URL)
    _store_key(cli, CANARY_KEY)
    rec = {"workflowId": "wf_1", "status": "failed", "error": {"message": f"failed for key {CANARY_KEY}"}}
    httpx_mock.add_response(url=WF, method="POST", status_code=201, json={"status": "success", "data": {"workflow": rec}})
    httpx_mock.add_response(url=f"{WF}/wf_1", json={"status": "success", "data": {"workflow": rec}},
                            is_reusable=True, is_optional=True)
    httpx_mock.add_response(url=f"{WF}/wf_1/events/stream", status_code=404, json={}, is_optional=True,
                            is_reusable=True)
    res = cli("image", "x", "-o", str(tmp_path / "o"))
    assert res.exit_code == 7
    assert "failed for key ***" in res.stderr


def test_recipe_records_and_summary_redact_the_key(cli, env_key, httpx_mock, monkeypatch, tmp_path):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nname: leak\njobs:\n  - id: one\n    image: {prompt: a cat}\n")
    rec = {"workflowId": "wf_2", "status": "failed", "error": {"message": f"echo {CANARY_KEY}"}}
    httpx_mock.add_response(url=WF, method="POST", status_code=201, json={"status": "success", "data": {"workflow": rec}})
    httpx_mock.add_response(url=f"{WF}/wf_2", json={"status": "success", "data": {"workflow": rec}},
                            is_reusable=True, is_optional=True)
    httpx_mock.add_response(url=f"{WF}/wf_2/events/stream", status_code=404, json={}, is_optional=True,
                            is_reusable=True)
    out = tmp_path / "out"
    res = cli("recipe", "run", str(recipe), "-o", str(out))
    assert res.exit_code == 8
    records = list((out / ".sogni-run").glob("*.jsonl"))
    assert records
    lines = [json.loads(x) for x in records[0].read_text().splitlines()]
    assert lines and "***" in json.dumps(lines)
    assert CANARY_KEY not in summary.read_text()  # the autouse check covers every file under tmp_path too


@pytest.mark.parametrize("lora,expected", [("detail:0.8", (["detail"], [0.8])), ("detail", (["detail"], None))])
def test_lora_flag(cli, env_key, httpx_mock, tmp_path, lora, expected):
    res = cli("--dry-run", "image", "a cat", "--lora", lora)
    assert res.exit_code == 0, res.stderr
    body = json.loads(res.stdout.split("\n\n", 1)[1])
    args = body["input"]["steps"][0]["arguments"]
    assert args["loras"] == expected[0] and args.get("loraStrengths") == expected[1]


def test_auth_status_without_a_key_is_an_error(cli):
    res = cli("auth", "status")
    assert res.exit_code == 3 and res.stdout == ""
    assert res.stderr.startswith("Error: No API key found")


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 520, 522, 524])
def test_every_retry_status_is_retried(cli, env_key, httpx_mock, sleeps, status):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", status_code=status, json={})
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", json={"object": "list", "data": [{"id": "m1"}]})
    res = cli("models")
    assert res.exit_code == 0 and res.stdout == "m1\n"
    assert len(sleeps) == 1


@pytest.mark.parametrize("status", [400, 404, 409, 410, 422])  # a 409 is a conflict (a busy account aside)
def test_other_4xx_are_not_retried(cli, env_key, httpx_mock, sleeps, status):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", status_code=status, json={"error": {"message": "no"}})
    res = cli("models")
    assert res.exit_code == 4 and sleeps == []


@pytest.mark.parametrize("argv,method,path", [
    (["workflow", "list"], "GET", "/v1/creative-agent/workflows"),
    (["workflow", "show", "wf_1"], "GET", "/v1/creative-agent/workflows/wf_1"),
    (["workflow", "events", "wf_1"], "GET", "/v1/creative-agent/workflows/wf_1/events"),
    (["workflow", "watch", "wf_1"], "GET", "/v1/creative-agent/workflows/wf_1"),
    (["workflow", "cancel", "wf_1"], "POST", "/v1/creative-agent/workflows/wf_1/cancel"),
    (["workflow", "download", "wf_1"], "GET", "/v1/creative-agent/workflows/wf_1"),
])
def test_dry_run_after_each_workflow_subcommand(cli, httpx_mock, monkeypatch, argv, method, path):
    monkeypatch.setenv("SOGNI_BASE_URL", BASE_URL)
    res = cli(*argv, "--dry-run")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith(f"{method} {BASE_URL}{path}")
    assert httpx_mock.get_requests() == []
