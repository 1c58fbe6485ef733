"""`sogni recipe run` after an interruption: `started` records, resuming an earlier workflow instead of paying
for a new one, `--force`, records superseding each other, and runs with zero jobs (no key needed)."""

from __future__ import annotations

import _thread
import json
import textwrap
import threading
from pathlib import Path

import pytest

from tests.conftest import CANARY_KEY, ONE_JOB_RECIPE as ONE

WF = "/v1/creative-agent/workflows"





def creates(emu) -> list[dict]:
    return [r for r in emu.requests if r["method"] == "POST" and r["path"] == WF]


def lines(out: Path, name: str = "one") -> list[dict]:
    """The job lines of a run record (its plan lines left out)."""
    rows = [json.loads(ln) for ln in (out / ".sogni-run" / f"{name}.jsonl").read_text().splitlines()]
    return [r for r in rows if "id" in r]


@pytest.fixture
def ctrl_c_once_started(monkeypatch):
    """Ctrl-C (KeyboardInterrupt in the main thread) as soon as a job's `started` line is written."""
    from sogni_cli.recipes import run as run_mod

    original = run_mod.Runner.write_started
    fired = threading.Event()

    def write_then_interrupt(self, pj, oc):
        original(self, pj, oc)
        if not fired.is_set():
            fired.set()
            _thread.interrupt_main()
            assert self.cancel.wait(10)  # the main thread took the interrupt and told the jobs to stop

    monkeypatch.setattr(run_mod.Runner, "write_started", write_then_interrupt)
    return fired


def interrupted_run(cli, tmp_cwd, emu, ctrl_c_once_started) -> str:
    """Run ONE until its workflow exists, press Ctrl-C; return the workflow id from the record."""
    (tmp_cwd / "r.yaml").write_text(ONE)
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 130, res.stderr
    assert ctrl_c_once_started.is_set()
    recs = lines(tmp_cwd / "out")
    assert [r["status"] for r in recs] == ["starting", "started", "interrupted"]
    assert recs[0]["workflow_id"] is None and recs[0]["idempotency_key"] == recs[1]["idempotency_key"]
    wid = recs[1]["workflow_id"]
    assert wid and recs[2]["workflow_id"] == wid
    assert recs[1]["request_hash"] == recs[2]["request_hash"] and recs[1]["request_hash"].startswith("sha256:")
    assert len(creates(emu)) == 1
    assert f"keep running on the server ({wid})" in res.stderr
    return wid  # the fixture interrupts once only: later runs in the test go to the end


def test_ctrl_c_keeps_the_workflow_and_the_rerun_downloads_it_without_a_new_one(cli, tmp_cwd, emu,
                                                                                ctrl_c_once_started):
    wid = interrupted_run(cli, tmp_cwd, emu, ctrl_c_once_started)
    # Ctrl-C does not cancel a recipe's workflows: the rerun collects them
    assert not [r for r in emu.requests if r["path"].endswith("/cancel")]
    assert not (tmp_cwd / "out" / "heron.png").exists()

    before = len(emu.requests)
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    assert len(creates(emu)) == 1  # nothing paid for twice
    later = emu.requests[before:]
    assert any(r["method"] == "GET" and r["path"] == f"{WF}/{wid}" for r in later)
    png = tmp_cwd / "out" / "heron.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res.stdout.splitlines() == ["out/heron.png"]
    assert f"following workflow {wid}" in res.stderr
    last = lines(tmp_cwd / "out")[-1]
    assert last["status"] == "succeeded" and last["workflow_id"] == wid and last["outputs"][0]["path"] == "heron.png"

    # a third run finds it done and sends nothing at all
    before = len(emu.requests)
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0 and "already done" in res.stderr
    assert emu.requests[before:] == []


def test_force_starts_a_new_workflow_instead_of_resuming(cli, tmp_cwd, emu, ctrl_c_once_started):
    wid = interrupted_run(cli, tmp_cwd, emu, ctrl_c_once_started)
    before = len(emu.requests)
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--force")
    assert res.exit_code == 0, res.stderr
    assert len(creates(emu)) == 2
    assert not [r for r in emu.requests[before:] if r["path"].startswith(f"{WF}/{wid}")]
    last = lines(tmp_cwd / "out")[-1]
    assert last["status"] == "succeeded" and last["workflow_id"] not in (None, wid)


def test_a_cancelled_earlier_workflow_is_replaced_by_a_new_one(cli, tmp_cwd, emu, ctrl_c_once_started):
    emu.store.step_seconds = 600  # the first workflow is still running when it is cancelled below
    wid = interrupted_run(cli, tmp_cwd, emu, ctrl_c_once_started)
    emu.store.cancel(wid)
    emu.store.step_seconds = 0.01
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    assert len(creates(emu)) == 2
    assert f"Workflow {wid} is cancelled" in res.stderr and "starting a new workflow" in res.stderr
    last = lines(tmp_cwd / "out")[-1]
    assert last["status"] == "succeeded" and last["workflow_id"] != wid
    assert (tmp_cwd / "out" / "heron.png").is_file()


def _record_line(tmp_cwd: Path, **changes) -> None:
    """Rewrite the run record's last line (a succeeded run) into an earlier state."""
    f = tmp_cwd / "out" / ".sogni-run" / "one.jsonl"
    rec = json.loads(f.read_text().splitlines()[-1])
    rec.update(changes)
    with open(f, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")


@pytest.mark.parametrize("status", ["started", "failed", "interrupted"])
def test_an_unfinished_record_with_the_same_request_follows_its_workflow(cli, tmp_cwd, emu, status):
    (tmp_cwd / "r.yaml").write_text(ONE)
    assert cli("recipe", "run", "r.yaml", "-o", "out").exit_code == 0
    wid = lines(tmp_cwd / "out")[-1]["workflow_id"]
    (tmp_cwd / "out" / "heron.png").unlink()
    _record_line(tmp_cwd, status=status, outputs=[])
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    assert len(creates(emu)) == 1
    assert (tmp_cwd / "out" / "heron.png").is_file()
    assert lines(tmp_cwd / "out")[-1]["workflow_id"] == wid


def test_a_changed_request_or_an_unknown_workflow_starts_a_new_one(cli, tmp_cwd, emu):
    (tmp_cwd / "r.yaml").write_text(ONE)
    assert cli("recipe", "run", "r.yaml", "-o", "out").exit_code == 0
    wid = lines(tmp_cwd / "out")[-1]["workflow_id"]
    _record_line(tmp_cwd, status="started", outputs=[])
    (tmp_cwd / "r.yaml").write_text(ONE.replace("a heron at dawn", "a heron at dusk"))  # a changed request
    assert cli("recipe", "run", "r.yaml", "-o", "out").exit_code == 0
    assert len(creates(emu)) == 2
    second = lines(tmp_cwd / "out")[-1]["workflow_id"]
    assert second != wid
    _record_line(tmp_cwd, status="interrupted", outputs=[], workflow_id="wf_gone")
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    assert "wf_gone is not known" in res.stderr
    assert len(creates(emu)) == 3


def test_the_last_line_for_a_job_is_its_state(tmp_path, cli):
    from sogni_cli.recipes.report import latest, load_records

    out = tmp_path / "o"
    (out / ".sogni-run").mkdir(parents=True)
    base = {"recipe": "r", "kind": "image", "outputs": [], "duration": 1.0, "error": None}
    rows = [dict(base, id="a", status="started", workflow_id="wf_a", time="2026-01-01T00:00:05.000Z"),
            # a clock that stepped back must not let the started line win within one file
            dict(base, id="a", status="succeeded", workflow_id="wf_a", time="2026-01-01T00:00:04.000Z",
                 outputs=[{"path": "a.png"}]),
            dict(base, id="b", status="started", workflow_id="wf_b", time="2026-01-01T00:00:06.000Z")]
    (out / ".sogni-run" / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    final = latest(load_records([str(out)]))
    assert final[("r", "a")]["status"] == "succeeded" and final[("r", "b")]["status"] == "started"
    res = cli("recipe", "report", str(out), "--json")
    doc = json.loads(res.stdout)
    assert doc["total"] == 2 and doc["succeeded"] == 1 and doc["interrupted"] == 1
    assert doc["failed_jobs"] == ["b"]
    assert res.exit_code == 8  # a job that never finished is not a success
    table = cli("recipe", "report", str(out))
    assert "2 jobs: 1 succeeded, 1 interrupted; 1 file" in table.stdout
    # the run's resume logic reads the same way
    from sogni_cli.recipes.run import Runner

    r = Runner.__new__(Runner)
    r.record_file = out / ".sogni-run" / "r.jsonl"
    r.load_previous()
    assert r.previous["a"]["status"] == "succeeded" and r.previous["b"]["status"] == "started"


def _glob_recipe(tmp_cwd: Path) -> None:
    (tmp_cwd / "r.yaml").write_text(textwrap.dedent("""\
        version: 1
        name: none
        jobs:
          - id: a
            matrix: {photo: {glob: "none/*.jpg"}}
            edit: {prompt: x, images: ["{{ matrix.photo }}"]}
        """))


def test_zero_jobs_need_no_key(cli, tmp_cwd):
    _glob_recipe(tmp_cwd)  # no SOGNI_API_KEY and no server at all
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    assert "matches no files" in res.stderr and "no jobs to run" in res.stderr
    assert res.stdout == ""
    plan = json.loads((tmp_cwd / "out" / ".sogni-run" / "none.jsonl").read_text())  # `recipe report` still works
    assert plan["record"] == "plan" and plan["jobs"] == [] and plan["shards"] == 1
    assert cli("recipe", "report", "out").exit_code == 0
    res = cli("recipe", "run", "r.yaml", "-o", "strict", "--strict")
    assert res.exit_code == 2 and "matches no files" in res.stderr
    assert not (tmp_cwd / "strict").exists()


def test_an_empty_shard_needs_no_key(cli, tmp_cwd):
    (tmp_cwd / "r.yaml").write_text(ONE)
    codes = [cli("recipe", "run", "r.yaml", "-o", f"o{k}", "--shard", f"{k}/2") for k in (1, 2)]
    # one shard has the only job (no key: exit 3), the other has nothing to do (exit 0, no key needed)
    assert sorted(c.exit_code for c in codes) == [0, 3]
    empty = next(c for c in codes if c.exit_code == 0)
    assert "no jobs to run in shard" in empty.stderr


def test_a_cancelled_pipeline_sends_nothing_and_a_started_one_leaves_its_workflow(emu, tmp_path):
    from sogni_cli.api.client import make_client
    from sogni_cli.core.config import resolve
    from sogni_cli.jobs import build_job
    from sogni_cli.jobs.pipeline import JobCancelled, PipelineOptions, run_media_job

    client = make_client(resolve(api_key=CANARY_KEY, base_url=emu.base_url))
    job = build_job("image", {"prompt": "a heron", "width": 256, "height": 256})
    stop = threading.Event()
    stop.set()
    with pytest.raises(JobCancelled):
        run_media_job(client, job, PipelineOptions(output_dir=tmp_path, cancel=stop))
    assert emu.requests == []

    stop.clear()
    seen: list[str] = []
    opts = PipelineOptions(output_dir=tmp_path, cancel=stop, on_created=lambda wid: (seen.append(wid), stop.set()))
    with pytest.raises(JobCancelled) as info:
        run_media_job(client, job, opts)
    assert info.value.workflow_id == seen[0]
    assert len(creates(emu)) == 1 and not [r for r in emu.requests if r["path"].endswith("/cancel")]
    assert not list(tmp_path.iterdir())

    # resuming that workflow downloads it without a second POST
    res = run_media_job(client, job, PipelineOptions(output_dir=tmp_path, resume_workflow=seen[0], name="x"))
    assert res.workflow_id == seen[0] and [s.path.name for s in res.saved] == ["x.png"]
    assert len(creates(emu)) == 1
    client.close()


def test_cancel_stops_a_stalled_download_in_a_worker_thread(emu, tmp_path):
    """A job in a worker thread (no KeyboardInterrupt there) stops when its cancel event is set, even while
    the media host holds the connection open; what arrived stays in the .part file."""
    from sogni_cli.api.client import make_client
    from sogni_cli.core.config import resolve
    from sogni_cli.jobs import build_job
    from sogni_cli.jobs.pipeline import JobCancelled, PipelineOptions, run_media_job

    emu.script([{"match": "/media/", "action": "stall_after", "bytes": 3000, "hold": 60}])
    client = make_client(resolve(api_key=CANARY_KEY, base_url=emu.base_url))
    job = build_job("image", {"prompt": "a heron", "width": 512, "height": 512})
    stop = threading.Event()
    seen: list[str] = []
    outcome: list[BaseException] = []

    def work():
        try:
            run_media_job(client, job, PipelineOptions(output_dir=tmp_path, name="h", cancel=stop,
                                                       on_created=seen.append))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    assert emu.stalled.wait(30)
    stop.set()
    t.join(10)  # a guard: without the cancel the read would hang for the fault's 60 s
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], JobCancelled) and outcome[0].workflow_id == seen[0]
    assert not (tmp_path / "h.png").exists() and (tmp_path / "h.png.part").stat().st_size == 3000
    assert not [r for r in emu.requests if r["path"].endswith("/cancel")]
    client.close()
