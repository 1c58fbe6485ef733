"""config.yaml as the user wrote it, and ordinary bad input that is never reported as a bug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import BASE_URL, CANARY_KEY

ROOT = Path(__file__).resolve().parent.parent

COMMENTED = """\
# My sogni settings (kept by hand)
profiles:
  default:
    model: first-model    # the one I like
    timeout: 30

  # staging points at the test farm
  staging:
    base_url: "https://api-staging.example"
"""


def _config(tmp_path: Path) -> Path:
    d = tmp_path / "config"
    d.mkdir(exist_ok=True)
    return d / "config.yaml"


# ------------------------------------------------------------------- config set/unset keep the file


def test_config_set_keeps_comments_order_and_formatting(cli, tmp_path):
    path = _config(tmp_path)
    path.write_text(COMMENTED)
    assert cli("config", "set", "model", "second-model").exit_code == 0
    assert path.read_text() == COMMENTED.replace("first-model    # the one I like", "second-model    # the one I like")
    assert cli("config", "set", "image_model", "flux").exit_code == 0
    assert path.read_text() == COMMENTED.replace(
        "model: first-model    # the one I like\n    timeout: 30\n",
        "model: second-model    # the one I like\n    timeout: 30\n    image_model: flux\n")
    assert cli("config", "get", "image_model").stdout == "flux\n"


def test_config_set_in_another_profile_and_a_new_one(cli, tmp_path):
    path = _config(tmp_path)
    path.write_text(COMMENTED)
    assert cli("--profile", "staging", "config", "set", "base_url", "https://other.example").exit_code == 0
    assert path.read_text() == COMMENTED.replace('"https://api-staging.example"', "https://other.example")
    assert cli("--profile", "ci", "config", "set", "max_retries", "5").exit_code == 0
    assert path.read_text() == COMMENTED.replace('"https://api-staging.example"', "https://other.example") + \
        "  ci:\n    max_retries: 5\n"
    assert cli("--profile", "ci", "config", "get", "max_retries").stdout == "5\n"


def test_config_unset_removes_only_that_line(cli, tmp_path):
    path = _config(tmp_path)
    path.write_text(COMMENTED)
    assert cli("config", "unset", "timeout").exit_code == 0
    assert path.read_text() == COMMENTED.replace("    timeout: 30\n", "")
    assert cli("config", "unset", "timeout").exit_code == 2


def test_config_set_on_a_file_of_another_layout_still_works(cli, tmp_path):
    path = _config(tmp_path)
    path.write_text("profiles: {default: {model: a}}\n")
    res = cli("config", "set", "model", "b")
    assert res.exit_code == 0 and "comments are lost" in res.stderr
    assert cli("config", "get", "model").stdout == "b\n"


def test_unknown_keys_refused_on_set_and_warned_about_on_read(cli, tmp_path):
    res = cli("config", "set", "modle", "x")
    assert res.exit_code == 2 and "Did you mean 'model'" in res.stderr
    _config(tmp_path).write_text("profiles:\n  default:\n    modle: x\n    timeout: 5\nprofile: {}\n")
    res = cli("config", "list")
    assert res.exit_code == 0
    assert "unknown setting 'modle' (did you mean 'model'?)" in res.stderr
    assert "unknown top-level key 'profile' (did you mean 'profiles'?)" in res.stderr
    assert "modle" not in res.stdout


def test_unknown_profile_is_the_same_error_from_the_variable_as_from_the_flag(cli, tmp_path, monkeypatch):
    _config(tmp_path).write_text("profiles:\n  default:\n    model: m\n")
    by_flag = cli("--profile", "nope", "--dry-run", "image", "x")
    monkeypatch.setenv("SOGNI_PROFILE", "nope")
    by_env = cli("--dry-run", "image", "x")
    assert by_flag.exit_code == by_env.exit_code == 2
    assert "Unknown profile 'nope' (from --profile)" in by_flag.stderr
    assert "Unknown profile 'nope' (from SOGNI_PROFILE)" in by_env.stderr
    assert by_env.stdout == ""
    # Creating the profile is still allowed through the variable.
    assert cli("config", "set", "model", "m2").exit_code == 0
    assert cli("config", "get", "model").stdout == "m2\n"


def test_config_list_shows_an_invalid_value_as_invalid_with_its_source(cli, tmp_path, monkeypatch):
    _config(tmp_path).write_text("profiles:\n  default:\n    base_url: not-a-url\n    timeout: soon\n")
    res = cli("config", "list")
    assert res.exit_code == 0
    lines = {line.split()[0]: line for line in res.stdout.splitlines()}
    assert "'not-a-url' INVALID" in lines["base_url"] and "(profile default: Invalid base URL" in lines["base_url"]
    assert "https://api.sogni.ai" not in res.stdout
    assert "'soon' INVALID" in lines["timeout"] and "profile default" in lines["timeout"]
    monkeypatch.setenv("SOGNI_TOKEN_TYPE", "gold")
    res = cli("config", "list")
    lines = {line.split()[0]: line for line in res.stdout.splitlines()}
    assert "'gold' INVALID" in lines["token_type"] and "env SOGNI_TOKEN_TYPE" in lines["token_type"]
    # Every other command refuses the invalid value.
    assert cli("--dry-run", "image", "x").exit_code == 2


# ------------------------------------------------------------------- ordinary input, never "a bug"


def test_config_yaml_that_is_not_utf8_names_the_file(cli, tmp_path):
    path = _config(tmp_path)
    path.write_bytes(b"profiles:\n  default:\n    model: caf\xe9\n")
    for args in (("config", "list"), ("--dry-run", "image", "x"), ("config", "set", "model", "y")):
        res = cli(*args)
        assert res.exit_code == 2, args
        assert res.stderr.startswith(f"Error: {path} is not UTF-8 text") and "bug" not in res.stderr
    # `config path` needs only the folder: it still says where the file to mend is.
    res = cli("config", "path")
    assert res.exit_code == 0 and res.stdout == f"{path.parent}\n"


def test_arguments_that_are_not_utf8_name_the_argument(cli):
    res = cli("--dry-run", "chat", "-s", "be brief\udcff", "hi")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("Error: The value of -s ('be brief\\xff') is not valid UTF-8 text.")
    res = cli("--dry-run", "chat", "caf\udce9")
    assert res.exit_code == 2 and "Argument 3 ('caf\\xe9') is not valid UTF-8" in res.stderr
    res = cli("--dry-run", "chat", "--system=x\udcff", "hi")
    assert res.exit_code == 2 and "The value of --system" in res.stderr


def test_a_file_name_that_is_not_utf8_is_still_a_file(cli, tmp_path):
    name = os.fsdecode(b"photo-\xff.png")
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / name)
    res = cli("--dry-run", "--api-key", CANARY_KEY, "chat", "-i", str(tmp_path / name), "what is this")
    assert "not valid UTF-8" not in res.stderr


def test_unwritable_config_folder_for_config_set_and_auth_login(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SOGNI_CONFIG_DIR", str(blocker / "sogni"))
    res = cli("config", "set", "model", "x")
    assert res.exit_code == 2 and res.stderr.startswith("Error: Cannot write ") and "bug" not in res.stderr
    assert "SOGNI_CONFIG_DIR" in res.stderr
    res = cli("auth", "login", input="sk-a-perfectly-fine-key")
    assert res.exit_code == 2 and "bug" not in res.stderr


def test_save_messages_into_a_system_folder_is_a_usage_error(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=f"{BASE_URL}/v1/chat/completions", method="POST", is_optional=True,
                            json={"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                               "finish_reason": "stop"}]})
    res = cli("chat", "hi", "--no-stream", "--save-messages", "/sys/x.json")
    assert res.exit_code == 2, res.stderr
    assert "Error: " in res.stderr and "/sys/" in res.stderr and "bug" not in res.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["config", "path"], ["--help"], ["completion", "bash"]])
def test_stdout_on_a_full_disk_is_one_error_line(tmp_path, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOGNI_")}
    env["SOGNI_CONFIG_DIR"] = str(tmp_path / "cfg")
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "sogni_cli", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "No space left" in lines[0], proc.stderr
