"""Money end to end against the emulator: budgets for whole recipe runs (across reruns and shards), cost
approval handled all three ways (terminal yes/no, --approve-up-to, exit 9 then `workflow approve`), out of
credit in a recipe, `recipe plan --estimate`, and `doctor` (passing, refused key, unreachable base URL)."""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import run_sogni

WF = "/v1/creative-agent/workflows"

RECIPE_20 = """\
version: 1
name: twenty
matrix:
  n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
jobs:
  - id: pic
    matrix: true
    image: {prompt: "a heron number {{ matrix.n }}", width: 64, height: 64}
    filename: "heron-{{ matrix.n }}"
"""


def _creates(emulator) -> list[dict]:
    return [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_budget_of_7_starts_exactly_7_of_20_then_a_larger_one_finishes_without_paying_twice(
        emulator, sogni_env, tmp_path):
    recipe = _write(tmp_path, RECIPE_20)
    out = tmp_path / "out"
    res = run_sogni(["recipe", "run", recipe, "-o", out, "--budget", "7", "--concurrency", "3"], sogni_env)
    assert res.returncode == 9, res.stderr
    assert len(_creates(emulator)) == 7
    assert len(res.stdout.splitlines()) == 7
    assert "Budget: 7 of 7 capacity units spent" in res.stderr
    left = re.search(r"Left out \((\d+)\): (.*)", res.stderr)
    assert left and left.group(1) == "13"
    assert len(list(out.glob("heron-*.png"))) == 7

    res = run_sogni(["recipe", "run", recipe, "-o", out, "--budget", "20", "--concurrency", "3"], sogni_env)
    assert res.returncode == 0, res.stderr
    creates = _creates(emulator)
    assert len(creates) == 20  # 13 new ones; the first 7 were not paid for again
    prompts = [c["json"]["input"]["steps"][0]["arguments"]["prompt"] for c in creates]
    assert len(set(prompts)) == 20
    assert "Budget: 20 of 20 capacity units spent (7 by earlier runs)" in res.stderr
    assert len(list(out.glob("heron-*.png"))) == 20

    report = run_sogni(["recipe", "report", out, "--json"], sogni_env)
    doc = json.loads(report.stdout)
    assert doc["succeeded"] == 20 and doc["cost"]["total"] == {"spark": 20.0}
    assert doc["cost"]["by_kind"] == {"image": {"spark": 20.0}}
    balance = run_sogni(["account", "--json"], sogni_env)
    assert json.loads(balance.stdout)["balance"]["spark"]["debit"] == 20


def test_a_budget_applies_per_shard_and_the_report_sums_the_shards(emulator, sogni_env, tmp_path):
    recipe = _write(tmp_path, RECIPE_20)
    summary = tmp_path / "summary.md"
    env = dict(sogni_env, GITHUB_STEP_SUMMARY=str(summary))
    for k in (1, 2):
        res = run_sogni(["recipe", "run", recipe, "-o", tmp_path / f"s{k}", "--shard", f"{k}/2", "--budget", "4",
                         "--concurrency", "2"], env)
        assert res.returncode == 9, res.stderr
        assert "Budget: 4 of 4 capacity units spent" in res.stderr
    assert len(_creates(emulator)) == 8
    res = run_sogni(["recipe", "report", tmp_path / "s1", tmp_path / "s2"], sogni_env)
    assert "Cost: 8 spark capacity units (image 8 spark)" in res.stdout
    md = summary.read_text()
    assert "**Cost: 4 spark capacity units (image 4 spark)**" in md and "| Cost |" in md


def test_out_of_credit_stops_a_recipe_from_starting_jobs(emulator, sogni_env, tmp_path):
    emulator.configure({"balance": 3})
    recipe = _write(tmp_path, RECIPE_20.replace("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]",
                                                "[1, 2, 3, 4, 5, 6]"))
    res = run_sogni(["recipe", "run", recipe, "-o", tmp_path / "o", "--concurrency", "1", "--continue-on-error"],
                    sogni_env)
    assert res.returncode == 9, res.stderr
    assert len(_creates(emulator)) == 4  # three paid, the fourth refused for credit, none after it
    assert "Balance: spark 0" in res.stderr
    assert re.search(r"Left out \(2\): pic\[5\], pic\[6\]", res.stderr)


def test_recipe_plan_estimate_totals_per_token_type(emulator, sogni_env, tmp_path):
    recipe = _write(tmp_path, """\
version: 1
name: mixed
jobs:
  - id: a
    image: {prompt: "a fox", count: 2}
  - id: b
    music: {prompt: "a tune", duration: 10, token_type: sogni}
  - id: c
    chat: {prompt: "hello"}
""")
    res = run_sogni(["recipe", "plan", recipe, "--estimate", "--json"], sogni_env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    est = {j["id"]: j["estimate"] for j in doc["jobs"]}
    assert est["a"]["units"] == 2 and est["b"]["units"] == 3 and est["b"]["token_type"] == "sogni"
    assert est["c"]["previewed"] is False and "chat" in est["c"]["reason"]
    assert doc["estimate"] == {"by_token_type": {"sogni": 3.0, "spark": 2.0}, "previewed": 2, "not_previewed": 1}
    assert not _creates(emulator)
    text = run_sogni(["recipe", "plan", recipe, "--estimate"], sogni_env).stdout
    assert "Total: 3 sogni, 2 spark capacity units (not counting 1 job without a preview)" in text


# ------------------------------------------------------------------------------------------- approvals


def _run_on_terminal(args, env, answer: str, timeout: float = 60):
    """Run sogni with stdin on a pseudo-terminal that types ``answer``."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", *map(str, args)], env=env, stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(slave)
        slave = -1
        os.write(master, answer.encode())
        out, err = proc.communicate(timeout=timeout)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return proc.returncode, out, err


def test_approval_on_a_terminal_yes_runs_it(emulator, sogni_env, tmp_path):
    code, out, err = _run_on_terminal(["image", "a heron [wait]", "-o", tmp_path / "o"], sogni_env, "y\n")
    assert code == 0, err
    assert "waits for cost approval: 1 capacity units (spark)" in err
    assert "Approve 1 capacity units for workflow wf_" in err
    assert out.strip() == str(tmp_path / "o" / "a-heron-wait-1.png") and Path(out.strip()).is_file()
    confirms = [r for r in emulator.requests if r["path"].endswith("/confirm-cost")]
    assert len(confirms) == 1 and confirms[0]["json"]["decision"] == "confirm"


def test_approval_on_a_terminal_defaults_to_no(emulator, sogni_env, tmp_path):
    code, out, err = _run_on_terminal(["image", "a heron [wait]", "-o", tmp_path / "o"], sogni_env, "\n")
    assert code == 9
    assert "Not approved: workflow wf_" in err and "sogni workflow approve wf_" in err
    assert out == "" and not [r for r in emulator.requests if r["path"].endswith("/confirm-cost")]


def test_approve_up_to_approves_without_a_terminal(emulator, sogni_env, tmp_path):
    res = run_sogni(["image", "a heron [wait]", "-n", "2", "-o", tmp_path / "o", "--approve-up-to", "2", "--json"],
                    sogni_env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "completed" and len(doc["artifacts"]) == 2
    assert doc["cost"] == {"units": 2.0, "token_type": "spark"}


def test_exit_9_then_the_printed_command_approves_it(emulator, sogni_env, tmp_path):
    res = run_sogni(["image", "a heron [wait]", "-o", tmp_path / "o"], sogni_env)
    assert res.returncode == 9
    wid = re.search(r"Workflow (wf_\w+) is waiting for cost approval: 1 capacity units", res.stderr).group(1)
    command = re.search(r"`(sogni workflow approve [^`]+)`", res.stderr).group(1)
    assert command == f"sogni workflow approve {wid} --up-to 1"
    approve = run_sogni(shlex.split(command)[1:], sogni_env)
    assert approve.returncode == 0, approve.stderr
    assert approve.stdout.startswith(f"{wid} ")
    again = run_sogni(["workflow", "approve", wid], sogni_env)
    assert again.returncode == 4 and "is not waiting for cost approval" in again.stderr
    watch = run_sogni(["workflow", "watch", wid], sogni_env)
    assert watch.returncode == 0 and watch.stdout.strip() == f"{wid} completed"


def test_estimate_starts_nothing(emulator, sogni_env, tmp_path):
    res = run_sogni(["video", "waves at night", "--duration", "5", "--estimate"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("generate_video: 10 capacity units (spark)")
    assert not _creates(emulator)
    assert run_sogni(["image", "x", "--estimate", "--detach"], sogni_env).returncode == 2


# ------------------------------------------------------------------------------------------- doctor


def test_doctor_passes_on_the_emulator(emulator, sogni_env):
    res = run_sogni(["doctor"], sogni_env)
    assert res.returncode == 0, res.stdout + res.stderr
    names = [line.split()[1] for line in res.stdout.splitlines()]
    assert names[:5] == ["versions", "config", "credentials", "key", "base"]
    assert "ok    key accepted   the key belongs to emulator (emulator@example.invalid)" in res.stdout
    assert not any(line.startswith("fail") for line in res.stdout.splitlines())


def test_doctor_names_the_failing_check_for_a_refused_key(emulator, sogni_env):
    emulator.script([{"match": "/v1/account/me", "action": "status", "status": 401, "times": -1}])
    res = run_sogni(["doctor"], sogni_env)
    assert res.returncode == 3
    assert any(line.startswith("fail  key accepted") for line in res.stdout.splitlines())
    assert "Error: doctor: key accepted check failed" in res.stderr


def test_doctor_names_the_failing_check_for_an_unreachable_base_url(sogni_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = run_sogni(["doctor", "--json"], dict(sogni_env, SOGNI_BASE_URL=f"http://127.0.0.1:{port}"))
    assert res.returncode == 5
    doc = json.loads(res.stdout)
    assert doc["failed"] == ["base URL"]


def test_auth_status_check_against_the_emulator(emulator, sogni_env):
    res = run_sogni(["auth", "status", "--check"], sogni_env)
    assert res.returncode == 0 and "Account: emulator (emulator@example.invalid)" in res.stdout
    emulator.script([{"match": "/v1/account/me", "action": "status", "status": 401}])
    assert run_sogni(["auth", "status", "--check"], sogni_env).returncode == 3


def test_a_chat_whose_hosted_workflow_waits_is_approved_by_policy(emulator, sogni_env, tmp_path):
    res = run_sogni(["chat", "draw a fox [wait]", "--no-stream", "-o", tmp_path / "o"], sogni_env, input="")
    assert res.returncode == 9 and "sogni workflow approve wf_" in res.stderr
    res = run_sogni(["chat", "draw a fox [wait]", "--no-stream", "-o", tmp_path / "o", "--approve-up-to", "1"],
                    sogni_env, input="")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o" / "draw-a-fox-wait-1.png").is_file()


def test_recipe_approvals_by_policy(emulator, sogni_env, tmp_path):
    recipe = _write(tmp_path, """\
version: 1
name: pricey
jobs:
  - id: a
    image: {prompt: "a heron [wait]", count: 2}
  - id: b
    image: {prompt: "a crane"}
    needs: [a]
""")
    res = run_sogni(["recipe", "run", recipe, "-o", tmp_path / "o", "--approve-up-to", "1"], sogni_env)
    assert res.returncode == 9
    assert "is waiting for cost approval: 2 capacity units" in res.stderr and "Balance:" not in res.stderr
    res = run_sogni(["recipe", "run", recipe, "-o", tmp_path / "o", "--approve-up-to", "2"], sogni_env)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in (tmp_path / "o" / ".sogni-run" / "pricey.jsonl").read_text().splitlines()]
    finals = {r["id"]: r for r in lines if r.get("status") == "succeeded"}
    assert len(_creates(emulator)) == 2  # the waiting workflow was approved and followed, not started again
    assert finals["a"]["cost"] == {"units": 2.0, "token_type": "spark"}
    assert finals["b"]["cost"] == {"units": 1.0, "token_type": "spark"}


def test_doctor_compares_with_a_local_emulator(emulator, sogni_env):
    res = run_sogni(["doctor", "--emulator", "--json"], sogni_env)
    assert res.returncode == 0, res.stdout + res.stderr
    names = [c["name"] for c in json.loads(res.stdout)["checks"]]
    assert "base URL" in names and "base URL (emulator)" in names and "key accepted (emulator)" in names



def test_a_durable_run_waiting_for_cost_asks_on_a_terminal(emulator, sogni_env, tmp_path):
    code, out, err = _run_on_terminal(["chat", "--durable", "Draw a cat [wait]", "-o", tmp_path / "o"], sogni_env,
                                      "y\n")
    assert code == 0, err
    assert "waits for cost approval: 1 capacity units (spark)" in err and "Approve? [y/N]" in err
    confirms = [r for r in emulator.requests if r["path"].endswith("/confirm-cost")]
    assert len(confirms) == 1 and confirms[0]["json"]["decision"] == "confirm"
    code, out, err = _run_on_terminal(["chat", "--durable", "Draw a cat [wait]", "-o", tmp_path / "o"], sogni_env,
                                      "\n")
    assert code == 9 and "sogni run approve run_" in err  # no is the default: nothing approved
    assert len([r for r in emulator.requests if r["path"].endswith("/confirm-cost")]) == 1
