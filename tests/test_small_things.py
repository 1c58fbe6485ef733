"""Small things users notice: short keys, hints that point somewhere, errors that name the flag."""

from __future__ import annotations

import json
import re

from pytest_httpx import IteratorStream

from .conftest import BASE_URL, CANARY_KEY

CHAT_URL = f"{BASE_URL}/v1/chat/completions"


def _completion(text: str, **extra) -> dict:
    return {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            **extra}


# ----------------------------------------------------------------------------- 1. short keys


def test_a_one_character_key_is_refused_and_nothing_is_blanked(cli):
    res = cli("--api-key", "k", "--dry-run", "image", "a fox")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.startswith("Error: The API key from --api-key flag is not a Sogni API key")
    assert "***" not in res.output


def test_a_short_key_from_the_environment_or_stdin_is_refused(cli, monkeypatch):
    res = cli("auth", "login", input="abc")
    assert res.exit_code == 2 and "not a Sogni API key" in res.stderr
    monkeypatch.setenv("SOGNI_API_KEY", "work")
    res = cli("--dry-run", "image", "a fox")
    assert res.exit_code == 2 and "not a Sogni API key" in res.stderr
    assert "wor***flows" not in res.output


def test_a_real_key_is_still_redacted_whole(cli, monkeypatch):
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    res = cli("--dry-run", "image", "a fox")
    assert res.exit_code == 0
    assert "api-key: ***" in res.stdout and "/v1/creative-agent/workflows" in res.stdout


# ----------------------------------------------------------------------------- 2. hints


def test_an_unknown_model_points_at_sogni_models(cli, env_key, httpx_mock):
    httpx_mock.add_response(url=CHAT_URL, method="POST", status_code=404, json={"error": {
        "message": "The model 'gpt-nope' does not exist", "type": "invalid_request_error", "code": "model_not_found"}})
    res = cli("chat", "-m", "gpt-nope", "hi", "--no-stream")
    assert res.exit_code == 4
    assert "Hint: See the available models with `sogni models`." in res.stderr


def test_logout_says_the_environment_key_is_still_used(cli, monkeypatch):
    assert cli("auth", "login", input=CANARY_KEY).exit_code == 0
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    res = cli("auth", "logout")
    assert res.exit_code == 0
    assert "Removed the stored API key" in res.stderr
    assert "Warning: SOGNI_API_KEY is still set" in res.stderr and "still uses it" in res.stderr
    monkeypatch.delenv("SOGNI_API_KEY")
    res = cli("auth", "logout")
    assert "SOGNI_API_KEY" not in res.stderr


def test_a_cost_approval_wait_in_chat_does_not_suggest_a_flag_chat_lacks(cli, env_key, httpx_mock, tmp_path):
    wid = "wf_1"
    rec = {"workflowId": wid, "status": "waiting_for_user", "waitingReason": "cost_approval_required"}
    httpx_mock.add_response(url=CHAT_URL, method="POST", json=_completion(
        "Done.", creative_workflows=[{"workflowId": wid, "status": "queued"}]))
    wf = f"{BASE_URL}/v1/creative-agent/workflows/{wid}"
    event = json.dumps({"id": "e1", "sequence": 1, "type": "workflow_waiting_for_user", "workflowId": wid,
                        "status": "waiting_for_user"})
    httpx_mock.add_response(url=f"{wf}/events/stream", stream=IteratorStream([f"data: {event}\n\n".encode()]),
                            headers={"content-type": "text/event-stream"}, is_optional=True)
    httpx_mock.add_response(url=wf, json={"status": "success", "data": {"workflow": rec}}, is_reusable=True)
    res = cli("chat", "draw", "--no-stream", "-o", str(tmp_path / "o"))
    assert res.exit_code in (4, 9), res.stderr
    assert "--confirm-cost" not in res.stderr
    hint = [line for line in res.stderr.splitlines() if line.startswith("Hint: ")]
    assert hint, res.stderr
    chat_flags = set(re.findall(r"--[a-z][a-z-]+", cli("chat", "--help").stdout))
    for flag in re.findall(r"(?<![\w`])--[a-z][a-z-]+", hint[0].split("`sogni workflow")[0]):
        assert flag in chat_flags, (flag, hint[0])


# ----------------------------------------------------------------------------- 3. the flag the user wrote


def test_count_zero_names_the_flag(cli):
    res = cli("--dry-run", "image", "a fox", "-n", "0")
    assert res.exit_code == 2
    assert "-n/--count" in res.stderr and "must be" in res.stderr
    assert not res.stderr.startswith("Error: Invalid generate_image request: 'numberOfVariations'")


# ----------------------------------------------------------------------------- 5. and 6. recipe summaries


def _interrupted_record(out, name: str = "one") -> None:
    """The last line of the run record says the job was interrupted (its workflow still on the server)."""
    f = out / ".sogni-run" / f"{name}.jsonl"
    rec = json.loads(f.read_text().splitlines()[-1])
    rec.update(status="interrupted", outputs=[])
    with open(f, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")


def test_summary_labels_say_what_happened(cli, tmp_cwd, emu, monkeypatch):
    from .conftest import ONE_JOB_RECIPE

    summary = tmp_cwd / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (tmp_cwd / "r.yaml").write_text(ONE_JOB_RECIPE)
    assert cli("recipe", "run", "r.yaml", "-o", "out").exit_code == 0
    assert "| `pic` | image | succeeded |" in summary.read_text()
    # an earlier run's workflow followed to the end: resumed
    (tmp_cwd / "out" / "heron.png").unlink()
    _interrupted_record(tmp_cwd / "out")
    summary.write_text("")
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    assert "| `pic` | image | resumed |" in summary.read_text()
    # nothing left to do: skipped, because it was already done
    summary.write_text("")
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0
    md = summary.read_text()
    assert "| `pic` | image | skipped (already done) |" in md and "(resumed)" not in md
    assert "skipped (already done)" in res.stderr


def test_an_unwritable_step_summary_is_a_warning_and_the_exit_code_stays(cli, tmp_cwd, emu, monkeypatch):
    from .conftest import ONE_JOB_RECIPE

    blocker = tmp_cwd / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(blocker / "summary.md"))
    (tmp_cwd / "r.yaml").write_text(ONE_JOB_RECIPE)
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0
    assert "Warning: could not write the step summary" in res.stderr and "GITHUB_STEP_SUMMARY" in res.stderr


# ----------------------------------------------------------------------------- 7. lists defined once


def test_every_tools_mode_is_accepted_offered_documented_and_in_the_schema(cli, tmp_path):
    from pathlib import Path

    from sogni_cli.core.choices import TOOLS_MODES

    root = Path(__file__).resolve().parent.parent
    assert "creative-tools" in TOOLS_MODES
    help_text = " ".join(cli("chat", "--help").stdout.split()).replace("- ", "-")  # undo wrapping at hyphens
    schema = json.loads((root / "recipes" / "schema.json").read_text())
    chat_tools = json.dumps(schema)
    bash = (root / "completions" / "sogni.bash").read_text()
    for mode in TOOLS_MODES:
        assert mode in help_text, mode
        assert f'"{mode}"' in chat_tools, mode
        assert mode in bash, mode
        res = cli("--dry-run", "--api-key", CANARY_KEY, "chat", "--tools", mode, "hi")
        assert res.exit_code == 0, (mode, res.stderr)


def test_the_help_lists_every_exit_code(cli):
    from sogni_cli.core.errors import ExitCode

    text = " ".join(cli("--help").stdout.split())
    for code in ExitCode:
        if code not in (ExitCode.INTERNAL, ExitCode.TERMINATED):
            assert f" {int(code)} " in text, code
