"""Careless input and hostile answers: clear errors, the contract's exit codes, nothing sent or lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import BASE_URL, CANARY_KEY

WF = f"{BASE_URL}/v1/creative-agent/workflows"


@pytest.mark.parametrize("key", [CANARY_KEY + "\nsk-second-key-0000", "sk-ключ-CANARY-1234", CANARY_KEY + " x"])
def test_a_key_that_cannot_be_a_header_is_refused_unsent_and_unshown(cli, httpx_mock, monkeypatch, key):
    monkeypatch.setenv("SOGNI_API_KEY", key)
    monkeypatch.setenv("SOGNI_BASE_URL", BASE_URL)
    res = cli("models")
    assert res.exit_code == 2
    assert "not valid" in res.stderr
    assert key not in res.output and "CANARY" not in res.output and "second-key" not in res.output
    assert httpx_mock.get_requests() == []


def test_login_refuses_a_non_ascii_key(cli, tmp_path):
    res = cli("auth", "login", input="sk-ключ1234")
    assert res.exit_code == 2
    assert not (tmp_path / "config" / "credentials").exists()


def test_credentials_symlink_is_refused_and_its_target_untouched(cli, tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("not mine to chmod")
    os.chmod(target, 0o644)
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "credentials").symlink_to(target)
    res = cli("auth", "status")
    assert res.exit_code == 2 and "symbolic link" in res.stderr
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_credentials_folder_is_refused_and_no_key_left_behind(cli, tmp_path):
    cfg = tmp_path / "config"
    (cfg / "credentials").mkdir(parents=True)
    res = cli("auth", "login", input=CANARY_KEY)
    assert res.exit_code == 2 and "folder" in res.stderr
    assert sorted(p.name for p in cfg.iterdir()) == ["credentials"]


def test_output_folder_that_is_a_file_fails_before_paying(cli, env_key, httpx_mock, tmp_path):
    target = tmp_path / "afile"
    target.write_text("mine")
    res = cli("image", "x", "-o", str(target))
    assert res.exit_code == 2 and "is a file" in res.stderr
    assert httpx_mock.get_requests() == [] and target.read_text() == "mine"


def test_manifest_that_is_a_folder_fails_before_paying(cli, env_key, httpx_mock, tmp_path):
    res = cli("image", "x", "-o", str(tmp_path / "o"), "--manifest", str(tmp_path))
    assert res.exit_code == 2 and "manifest" in res.stderr
    assert httpx_mock.get_requests() == []


def test_save_messages_to_a_folder_fails_before_sending(cli, env_key, httpx_mock, tmp_path):
    res = cli("chat", "hi", "--save-messages", str(tmp_path))
    assert res.exit_code == 2 and "folder" in res.stderr
    assert httpx_mock.get_requests() == []


def test_binary_stdin_is_a_usage_error(cli, env_key, httpx_mock):
    res = cli("chat", input=b"\xff\xfe\x00 not text")
    assert res.exit_code == 2 and "UTF-8" in res.stderr
    assert httpx_mock.get_requests() == []


def test_stdin_for_two_options_is_refused(cli, env_key, httpx_mock):
    res = cli("chat", "-i", "-", "--messages", "-", input=b"[]")
    assert res.exit_code == 2 and "Only one" in res.stderr


def test_server_text_cannot_drive_the_terminal(cli, env_key, httpx_mock):
    evil = "denied\x1b]8;;http://evil\x07click\x1b[2K\rError: all good"
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", status_code=400, json={"error": {"message": evil}})
    res = cli("models")
    assert res.exit_code == 4
    assert "\x1b" not in res.stderr and "\r" not in res.stderr and "\x07" not in res.stderr
    assert "\\x1b]8;;http://evil" in res.stderr


def test_upload_to_plain_http_elsewhere_is_refused(cli, env_key, httpx_mock, tmp_path):
    from PIL import Image

    img = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(img)
    import re

    httpx_mock.add_response(url=re.compile(r".*/v1/image/uploadUrl.*"), method="GET",
                            json={"data": {"uploadUrl": "http://192.0.2.1:9/put"}}, is_optional=True)
    res = cli("edit", "make it blue", "-i", str(img), "-o", str(tmp_path / "o"))
    assert res.exit_code == 5 and "Refused to upload" in res.stderr
    assert not [r for r in httpx_mock.get_requests() if r.method == "PUT"]
    assert not [r for r in httpx_mock.get_requests() if r.url == WF]


def test_started_with_closed_stdout_still_works(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_")}
    env["SOGNI_CONFIG_DIR"] = str(tmp_path)
    proc = subprocess.run(f"{sys.executable} -m sogni_cli --version >&-", shell=True, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 141) and "Traceback" not in proc.stderr
    proc = subprocess.run(f"{sys.executable} -m sogni_cli config path >&- <&-", shell=True, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_timeout_is_a_usage_error(cli, env_key, httpx_mock, value):
    res = cli("--timeout", value, "models")
    assert res.exit_code == 2
    assert httpx_mock.get_requests() == []


def test_json_output_is_valid_even_with_odd_text(cli, env_key, httpx_mock):
    body = {"id": "c", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "\u2028line\u0000nul \U0001F600"},
         "finish_reason": "stop"}]}
    httpx_mock.add_response(url=f"{BASE_URL}/v1/chat/completions", method="POST", json=body)
    res = cli("chat", "x", "--no-stream", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["choices"][0]["message"]["content"].startswith("\u2028line")


def test_profile_values_of_the_wrong_type_fail_before_sending_and_can_be_mended(cli, env_key, httpx_mock, tmp_path):
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "config.yaml").write_text("profiles:\n  default:\n    name: 5\n    timeout: soon\n")
    res = cli("image", "x")
    assert res.exit_code == 2 and "config.yaml" in res.stderr
    assert httpx_mock.get_requests() == []
    assert cli("config", "list").exit_code == 0  # still readable, to mend it
    assert cli("config", "set", "timeout", "30").exit_code == 0
    assert cli("config", "unset", "name").exit_code == 0
    assert "timeout" in cli("config", "list").stdout


def test_record_with_artifacts_of_the_wrong_type_is_no_media_not_a_crash(cli, env_key, httpx_mock, tmp_path):
    rec = {"workflowId": "wf_5", "status": "completed", "artifacts": 5, "steps": "x"}
    httpx_mock.add_response(url=WF, method="POST", status_code=201, json={"status": "success", "data": {"workflow": rec}})
    httpx_mock.add_response(url=f"{WF}/wf_5", json={"status": "success", "data": {"workflow": rec}}, is_reusable=True)
    httpx_mock.add_response(url=f"{WF}/wf_5/events/stream", status_code=404, json={}, is_optional=True,
                            is_reusable=True)
    res = cli("image", "x", "-o", str(tmp_path / "o"))
    assert res.exit_code == 7, res.stderr
    res = cli("workflow", "download", "wf_5", "-o", str(tmp_path / "o"))
    assert res.exit_code == 7, res.stderr
    res = cli("workflow", "show", "wf_5")
    assert res.exit_code == 0, res.stderr


def test_deeply_nested_rest_answer_is_exit_5(cli, env_key, httpx_mock):
    body = ("[" * 100_000 + "]" * 100_000).encode()
    httpx_mock.add_response(url=f"{BASE_URL}/v1/models", content=body, headers={"content-type": "application/json"})
    res = cli("models")
    assert res.exit_code == 5, res.stderr
