"""Never pay twice, never forget: paid requests carry a key decided (and recorded) before they leave, run
records keep what they learned, folders are owned, reports and --json tell the whole story.

Each test drives ``sogni`` in a subprocess against the emulator over a socket and scripts the faults with
the emulator's fault queue. Interrupts are sent once the emulator or the record shows the moment they are
about (a create received, a line written), never after a sleep.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import interrupt_when_stalled, wait_for

WF = "/v1/creative-agent/workflows"

ONE = """\
version: 1
name: one
jobs:
  - id: pic
    image: {prompt: "a blue heron", width: 256, height: 256}
    filename: heron
"""


def creates(emulator) -> list[dict]:
    return [r for r in emulator.requests if r["method"] == "POST" and r["path"] == WF]


def made(emulator) -> int:
    """How many workflows the emulator made (idempotent replays are not new ones)."""
    return emulator.store.list(1, 0)["total"]


def record(out: Path, name: str = "one") -> list[dict]:
    path = out / ".sogni-run" / f"{name}.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


def job_lines(out: Path, name: str = "one") -> list[dict]:
    return [r for r in record(out, name) if "id" in r]


def popen(args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sogni_cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, sig=None, timeout: float = 30) -> tuple[int, str, str]:
    try:
        if sig is not None:
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


# --------------------------------------------------------------------------------------------- case 2


def test_a_failed_resume_keeps_the_workflow_id_and_the_next_run_follows_it(emulator, sogni_env, run_sogni,
                                                                          tmp_path):
    (tmp_path / "one.yaml").write_text(ONE)
    out = tmp_path / "out"
    args = ["recipe", "run", tmp_path / "one.yaml", "-o", out]
    # a crash while the download hangs: the record knows the workflow
    emulator.script([{"match": "/media/", "action": "stall_after", "bytes": 2000, "hold": 60}])
    code, _, err = interrupt_when_stalled(emulator, args, sogni_env, out / "heron.png.part", signal.SIGKILL,
                                          min_bytes=2000)
    assert code == -signal.SIGKILL
    wid = next(r["workflow_id"] for r in job_lines(out) if r["status"] == "started")
    emulator.faults.clear()
    # the rerun's attempt to follow it meets 429s until its retries are spent
    emulator.script([{"match": f"{WF}/{wid}", "method": "GET", "action": "status", "status": 429,
                      "retry_after": 0, "times": -1}])
    res = run_sogni(args, sogni_env)
    assert res.returncode == 8, res.stderr
    last = job_lines(out)[-1]
    assert last["status"] == "failed" and last["workflow_id"] == wid  # never replaced by nothing
    emulator.faults.clear()
    res = run_sogni(args, sogni_env)
    assert res.returncode == 0, res.stderr
    assert f"following workflow {wid}" in res.stderr
    assert len(creates(emulator)) == 1 and made(emulator) == 1
    assert job_lines(out)[-1]["workflow_id"] == wid
    assert [r["status"] for r in job_lines(out)].count("failed") == 1  # the failed resume stays in the history


# --------------------------------------------------------------------------------------------- case 3


def test_ctrl_c_during_a_slow_create_in_a_recipe_then_the_rerun_gets_the_same_workflow(emulator, sogni_env,
                                                                                       run_sogni, tmp_path):
    (tmp_path / "one.yaml").write_text(ONE)
    out = tmp_path / "out"
    args = ["recipe", "run", tmp_path / "one.yaml", "-o", out]
    emulator.script([{"match": WF, "method": "POST", "action": "slow", "delay": 5}])
    proc = popen(args, sogni_env)
    wait_for(lambda: creates(emulator) or proc.poll() is not None)
    code, _, err = finish(proc, signal.SIGINT)
    assert code == 130, err
    lines = job_lines(out)
    assert lines[0]["status"] == "starting" and lines[0]["idempotency_key"]
    key = lines[0]["idempotency_key"]
    assert creates(emulator)[0]["headers"]["idempotency-key"] == key  # on disk before it left
    assert f"sogni recipe one · pic · {key[-8:]}" == creates(emulator)[0]["json"]["input"]["title"]
    assert made(emulator) == 1  # the server made it although the answer never arrived
    res = run_sogni(args, sogni_env)
    assert res.returncode == 0, res.stderr
    assert made(emulator) == 1  # the rerun resent the same key and got the same workflow
    assert [r["headers"]["idempotency-key"] for r in creates(emulator)] == [key, key]
    assert (out / "heron.png").is_file()


def test_ctrl_c_during_a_slow_create_of_a_single_command_cancels_the_workflow(emulator, sogni_env, tmp_path):
    out = tmp_path / "out"
    emulator.store.step_seconds = 30  # still running when the cancel arrives
    emulator.script([{"match": WF, "method": "POST", "action": "slow", "delay": 5}])
    proc = popen(["image", "a slow cat", "-o", out], sogni_env)
    wait_for(lambda: creates(emulator) or proc.poll() is not None)
    code, stdout, err = finish(proc, signal.SIGINT)
    assert code == 130, err
    assert stdout == ""
    assert made(emulator) == 1
    (wf,) = emulator.store.list(10, 0)["workflows"]
    wid = wf["workflowId"]
    assert f"Workflow: {wid}" in err and f"Cancelled workflow {wid}" in err
    assert wf["status"] == "cancelled"
    keys = {r["headers"]["idempotency-key"] for r in creates(emulator)}
    assert len(keys) == 1  # the resend that learned the id used the same key


# --------------------------------------------------------------------------------------------- case 4


SIX = """\
version: 1
name: six
matrix:
  n: [1, 2, 3, 4, 5, 6]
jobs:
  - id: pic
    matrix: true
    image: {prompt: "picture {{ matrix.n }}", width: 64, height: 64}
"""


def _file_size_limit(limit: int):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_record_that_cannot_be_written_stops_paying_and_says_what_a_rerun_does(emulator, sogni_env, run_sogni,
                                                                                tmp_path):
    (tmp_path / "six.yaml").write_text(SIX)
    out = tmp_path / "out"
    args = ["recipe", "run", tmp_path / "six.yaml", "-o", out, "--concurrency", "3"]
    # The disk fills up part-way: no file the run writes may grow past 6,000 bytes (the images fit, the
    # record does not: it fails after three or four jobs).
    proc = subprocess.run([sys.executable, "-m", "sogni_cli", *map(str, args)], env=sogni_env, capture_output=True,
                          text=True, timeout=60, preexec_fn=_file_size_limit(6000))
    assert proc.returncode == 8, proc.stderr
    assert "Traceback" not in proc.stderr and "Internal error" not in proc.stderr
    assert "Cannot write the run record" in proc.stderr and "No new workflow was started after that" in proc.stderr
    assert "run the same command" in proc.stderr and "does not pay twice" in proc.stderr
    first = creates(emulator)
    assert 1 <= len(first) < 6  # it stopped sending once the record failed
    for r in first:  # every workflow still running is listed with its id (or the key that finds it)
        wid = next(w["workflowId"] for w in emulator.store.list(50, 0)["workflows"]
                   if w["title"] == r["json"]["input"]["title"])
        assert wid in proc.stderr or r["headers"]["idempotency-key"] in proc.stderr or \
            emulator.store.snapshot(wid)["status"] in ("completed",)
    import re

    listed = set(re.findall(r"workflow (wf_\w+)", proc.stderr))
    made_ids = {w["workflowId"] for w in emulator.store.list(50, 0)["workflows"]}
    assert listed <= made_ids
    # space again: the rerun finishes the job set and pays for no job twice
    res = run_sogni(args, sogni_env)
    assert res.returncode == 0, res.stderr
    assert made(emulator) == 6
    assert len(res.stdout.splitlines()) == 6


def test_a_record_on_a_full_device_sends_nothing(emulator, sogni_env, run_sogni, tmp_path):
    """No byte can be written (a file size limit of 0 stands in for a full disk: the record is never written
    through a link to /dev/full, which the file writer refuses)."""
    import resource
    import subprocess
    import sys

    (tmp_path / "one.yaml").write_text(ONE)
    out = tmp_path / "out"

    def no_space() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    res = subprocess.run([sys.executable, "-m", "sogni_cli", "recipe", "run", str(tmp_path / "one.yaml"), "-o",
                          str(out)], env=sogni_env, capture_output=True, text=True, timeout=60, preexec_fn=no_space)
    assert res.returncode == 8, res.stderr
    assert "Cannot write the run record" in res.stderr and "nothing was sent" in res.stderr
    assert emulator.requests == []


# --------------------------------------------------------------------------------------------- case 5


def _recipe(tmp_path: Path, name: str, prompt: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        name: {name}
        jobs:
          - id: pic
            image: {{prompt: "{prompt}", width: 64, height: 64}}
        """))
    return path


def test_another_recipe_never_replaces_a_recorded_file_without_overwrite(emulator, sogni_env, run_sogni, tmp_path):
    out = tmp_path / "out"
    a, b = _recipe(tmp_path, "alpha", "a red fox"), _recipe(tmp_path, "beta", "a grey wolf")
    res = run_sogni(["recipe", "run", a, "-o", out], sogni_env)
    assert res.returncode == 0, res.stderr
    pic = out / "pic-1.png"
    before = pic.read_bytes()
    res = run_sogni(["recipe", "run", b, "-o", out], sogni_env)
    assert res.returncode == 2, res.stderr
    assert "pic-1.png: saved by recipe 'alpha' job pic; job pic of 'beta' would replace it" in res.stderr
    assert len(creates(emulator)) == 1 and pic.read_bytes() == before  # nothing sent, nothing replaced
    res = run_sogni(["recipe", "run", b, "-o", out, "--on-exists", "suffix"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert pic.read_bytes() == before and res.stdout.splitlines() == [str(out / "pic-1-1.png")]
    res = run_sogni(["recipe", "run", b, "-o", out, "--on-exists", "overwrite", "--retry", "pic"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert pic.read_bytes() != before


def test_two_recipes_cannot_run_into_one_folder_at_once(emulator, sogni_env, run_sogni, tmp_path):
    out = tmp_path / "out"
    a, b = _recipe(tmp_path, "alpha", "a red fox"), _recipe(tmp_path, "beta", "a grey wolf")
    emulator.script([{"match": "/media/", "action": "stall_after", "bytes": 100, "hold": 60}])
    proc = popen(["recipe", "run", a, "-o", out], sogni_env)
    try:
        wait_for(lambda: emulator.stalled.is_set() or proc.poll() is not None)
        res = run_sogni(["recipe", "run", b, "-o", out], sogni_env)
        assert res.returncode == 2, res.stderr
        assert "another run is using" in res.stderr
        assert len(creates(emulator)) == 1
    finally:
        finish(proc, signal.SIGINT)


# --------------------------------------------------------------------------------------------- case 6


def test_on_exists_skip_with_every_file_present_sends_nothing(emulator, sogni_env, run_sogni, tmp_path):
    out = tmp_path / "out"
    res = run_sogni(["image", "a quiet lake", "-n", "2", "-o", out], sogni_env)
    assert res.returncode == 0, res.stderr
    paths = res.stdout.splitlines()
    before = len(emulator.requests)
    res = run_sogni(["image", "a quiet lake", "-n", "2", "-o", out, "--on-exists", "skip"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == paths
    assert emulator.requests[before:] == []

    (tmp_path / "r.yaml").write_text(ONE.replace("filename: heron", "filename: heron\n    on_exists: skip"))
    rout = tmp_path / "rout"
    args = ["recipe", "run", tmp_path / "r.yaml", "-o", rout]
    assert run_sogni(args, sogni_env).returncode == 0
    import shutil

    shutil.rmtree(rout / ".sogni-run")  # the files are there, the record is not
    before = len(emulator.requests)
    res = run_sogni(args, sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [str(rout / "heron.png")]
    assert emulator.requests[before:] == []
    (last,) = job_lines(rout)
    assert last["status"] == "succeeded" and last["outputs"][0]["path"] == "heron.png" and last["outputs"][0]["sha256"]


# --------------------------------------------------------------------------------------------- case 10


def test_json_on_a_failed_media_command_prints_one_document(emulator, sogni_env, run_sogni, tmp_path):
    res = run_sogni(["image", "[fail] a broken cat", "-o", tmp_path / "o", "--json"], sogni_env)
    assert res.returncode == 7, res.stderr
    doc = json.loads(res.stdout)
    wid = emulator.store.list(1, 0)["workflows"][0]["workflowId"]
    assert doc["workflow_id"] == wid and doc["exit_code"] == 7
    assert doc["status"] == "failed" and doc["artifacts"] == []
    assert wid in doc["error"]["message"] and "failed" in doc["error"]["message"]
    assert res.stderr.count("Error:") == 1


# --------------------------------------------------------------------------------------------- case 11


def test_report_counts_jobs_that_never_started_and_missing_shards(emulator, sogni_env, run_sogni, tmp_path):
    (tmp_path / "r.yaml").write_text(SIX.replace("picture {{ matrix.n }}", "picture {{ matrix.n }} [fail]"))
    out = tmp_path / "o"
    res = run_sogni(["recipe", "run", tmp_path / "r.yaml", "-o", out, "--concurrency", "1"], sogni_env)
    assert res.returncode == 8
    rep = run_sogni(["recipe", "report", out, "--json"], sogni_env)
    assert rep.returncode == 8
    doc = json.loads(rep.stdout)
    assert doc["total"] == 6 and doc["failed"] == 1 and doc["not_started"] == 5

    (tmp_path / "s.yaml").write_text(SIX)
    outs = [tmp_path / f"s{k}" for k in (1, 2, 3)]
    for k in (1, 2):  # shard 3 of 3 never ran
        res = run_sogni(["recipe", "run", tmp_path / "s.yaml", "-o", outs[k - 1], "--shard", f"{k}/3"], sogni_env)
        assert res.returncode == 0, res.stderr
    rep = run_sogni(["recipe", "report", outs[0], outs[1]], sogni_env)
    assert rep.returncode == 8
    assert "missing shard 3/3" in rep.stdout
    doc = json.loads(run_sogni(["recipe", "report", outs[0], outs[1], "--json"], sogni_env).stdout)
    assert doc["missing_shards"] == [{"recipe": "six", "shard": "3/3"}]


# --------------------------------------------------------------------------------------------- case 12


def test_a_partial_failure_is_reported_not_followed_again_and_retry_picks_it_up(emulator, sogni_env, run_sogni,
                                                                               tmp_path):
    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        version: 1
        name: part
        jobs:
          - id: pics
            image: {prompt: "[partial] two foxes", width: 64, height: 64, count: 2}
          - id: none
            image: {prompt: "[empty] nothing", width: 64, height: 64}
          - id: fine
            image: {prompt: "a fine fox", width: 64, height: 64}
        """))
    out = tmp_path / "o"
    args = ["recipe", "run", tmp_path / "r.yaml", "-o", out, "--continue-on-error"]
    res = run_sogni(args, sogni_env)
    assert res.returncode == 8
    assert len(creates(emulator)) == 3
    before = len(emulator.requests)
    res = run_sogni(args, sogni_env)
    assert res.returncode == 8
    assert emulator.requests[before:] == []  # neither followed again nor paid again
    assert "--retry pics" in res.stderr and "--retry none" in res.stderr
    pics_wid = next(r["workflow_id"] for r in job_lines(out, "part") if r["id"] == "pics" and r.get("workflow_id"))
    res = run_sogni(["recipe", "run", tmp_path / "r.yaml", "-o", out, "--retry", "pic*"], sogni_env)
    # the partly failed workflow is resumed through the API (only what failed is made again): no new workflow
    assert [r["path"] for r in emulator.requests if r["method"] == "POST" and r["path"].endswith("/resume")] == [
        f"{WF}/{pics_wid}/resume"]
    assert len(creates(emulator)) == 3
    assert res.returncode == 8, res.stderr  # `none` is still reported failed from the record
    assert [r["status"] for r in job_lines(out, "part") if r["id"] == "pics"][-1] == "succeeded"
    res = run_sogni(args + ["--retry-failed"], sogni_env)
    # `none` completed with no media: nothing to resume, so a new workflow is started for it alone
    assert len(creates(emulator)) == 4
    assert creates(emulator)[-1]["json"]["input"]["steps"][0]["arguments"]["prompt"] == "[empty] nothing"


# ---------------------------------------------------------------------------- recipe chat jobs


CHAT_ONE = """\
version: 1
name: talk
jobs:
  - id: note
    chat: {prompt: "Say hello"}
    save: note.txt
"""


def test_a_recipe_chat_job_sends_the_key_it_recorded_and_the_same_key_on_a_rerun(emulator, sogni_env, run_sogni,
                                                                                tmp_path):
    (tmp_path / "talk.yaml").write_text(CHAT_ONE)
    out = tmp_path / "out"
    args = ["recipe", "run", tmp_path / "talk.yaml", "-o", out]
    emulator.script([{"match": "/v1/chat/completions", "action": "status", "status": 400}])
    first = run_sogni(args, sogni_env)
    assert first.returncode == 8, first.stderr  # a run with a failed job is incomplete
    starting = [r for r in record(out, "talk") if r.get("status") == "starting"]
    assert len(starting) == 1 and starting[0]["idempotency_key"]
    key = starting[0]["idempotency_key"]
    second = run_sogni(args, sogni_env)
    assert second.returncode == 0, second.stderr
    chats = [r for r in emulator.requests if r["path"] == "/v1/chat/completions"]
    assert [c["headers"].get("idempotency-key") for c in chats] == [key, key]
    assert (out / "note.txt").read_text().startswith("Echo: Say hello")
