"""`sogni recipe run` against the emulator on 127.0.0.1: order, requests, concurrency, failures, resume,
shards, report and the GitHub step summary."""

from __future__ import annotations

import hashlib
import io
import json
import textwrap
import threading
from pathlib import Path



WF = "/v1/creative-agent/workflows"
CHAT = "/v1/chat/completions"


def creates(emu) -> list[dict]:
    return [r for r in emu.requests if r["method"] == "POST" and r["path"] == WF]


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def records(out: Path, name: str) -> list[dict]:
    """The job lines of a run record (its plan lines left out)."""
    rows = [json.loads(ln) for ln in (out / ".sogni-run" / f"{name}.jsonl").read_text().splitlines()]
    return [r for r in rows if "id" in r]


IMAGES = """\
version: 1
name: five
matrix:
  n: [1, 2, 3, 4, 5]
jobs:
  - id: img
    matrix: true
    image: {prompt: "picture number {{ matrix.n }}", width: 256, height: 256}
"""


def test_chat_reply_becomes_the_image_prompt(cli, tmp_cwd, emu):
    write(tmp_cwd / "r.yaml", """\
        version: 1
        name: chain
        jobs:
          - id: script
            chat: {prompt: "Say hello", tools: none}
            save: script.txt
          - id: pic
            image: {prompt: "{{ jobs.script.text }}", width: 512, height: 512}
            filename: pic
        """)
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0, res.stderr
    reqs = emu.requests
    chat_i = next(i for i, r in enumerate(reqs) if r["path"] == CHAT)
    wf = creates(emu)
    assert len(wf) == 1
    assert reqs.index(next(r for r in reqs if r["path"] == WF and r["method"] == "POST")) > chat_i
    assert reqs[chat_i]["json"] == {"messages": [{"role": "user", "content": "Say hello"}], "stream": True,
                                    "stream_options": {"include_usage": True}, "sogni_tools": False}
    title = wf[0]["json"]["input"].pop("title")
    assert title.startswith("sogni recipe chain · pic · ")  # `workflow list` finds the job's workflow
    assert wf[0]["json"] == {"input": {"steps": [{"toolName": "generate_image", "arguments": {
        "prompt": "Echo: Say hello", "width": 512, "height": 512}}]}}
    assert (tmp_cwd / "out" / "script.txt").read_text() == "Echo: Say hello\n"
    png = tmp_cwd / "out" / "pic.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res.stdout.splitlines() == ["out/script.txt", "out/pic.png"]
    recs = {r["id"]: r for r in records(tmp_cwd / "out", "chain")}
    assert recs["script"]["text"] == "Echo: Say hello" and recs["script"]["status"] == "succeeded"
    assert recs["pic"]["outputs"] == [{"path": "pic.png", "sha256": hashlib.sha256(png.read_bytes()).hexdigest(),
                                       "bytes": png.stat().st_size}]
    assert recs["pic"]["workflow_id"] and recs["pic"]["request_hash"].startswith("sha256:")
    assert isinstance(recs["pic"]["duration"], float) and recs["pic"]["error"] is None


def test_concurrency_runs_n_jobs_at_once_and_no_more(cli, tmp_cwd, env_key, monkeypatch):
    from sogni_cli.jobs import pipeline
    from sogni_cli.media.downloads import ArtifactRef, SavedFile

    barrier = threading.Barrier(3, timeout=10)
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def fake_run(client, job, options, *, progress=None, emit=None):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            barrier.wait()  # only passes when three jobs run at the same time
        finally:
            with lock:
                state["now"] -= 1
        path = Path(options.output_dir) / (options.name.replace("{index}", "1") + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"fake")
        return pipeline.JobResult(workflow_id="wf", status="completed", tool=job.tool, saved=[
            SavedFile(ref=ArtifactRef(url="http://x"), path=path, bytes=4, sha256="0", content_type="image/png")])

    monkeypatch.setattr(pipeline, "run_media_job", fake_run)
    write(tmp_cwd / "r.yaml", IMAGES.replace("[1, 2, 3, 4, 5]", "[1, 2, 3, 4, 5, 6]"))
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--concurrency", "3")
    assert res.exit_code == 0, res.stderr
    assert state["max"] == 3
    assert len(res.stdout.splitlines()) == 6


def test_fail_fast_stops_and_continue_on_error_keeps_going(cli, tmp_cwd, emu):
    text = IMAGES + """\
  - id: after
    image: {prompt: "after {{ jobs.img.files | join }}"}
"""
    (tmp_cwd / "r.yaml").write_text(text)
    fault = {"match": WF, "method": "POST", "action": "status", "status": 400, "message": "bad prompt"}
    emu.script([fault])
    res = cli("recipe", "run", "r.yaml", "-o", "ff", "--concurrency", "1")
    assert res.exit_code == 8
    assert len(creates(emu)) == 1  # nothing started after the failure
    assert "Error: img[1]: 400 bad prompt" in res.stderr
    recs = records(tmp_cwd / "ff", "five")
    assert [(r["id"], r["status"]) for r in recs] == [("img[1]", "starting"), ("img[1]", "failed")]
    assert recs[1]["error"]["exit_code"] == 4
    assert "cancelled" in res.stderr  # the summary lists the jobs that never started
    assert res.stdout == ""

    emu.reset()
    emu.script([fault])
    res = cli("recipe", "run", "r.yaml", "-o", "coe", "--concurrency", "1", "--continue-on-error")
    assert res.exit_code == 8
    assert len(creates(emu)) == 5  # the four others ran; "after" needs all of them, so it was skipped
    status = {r["id"]: r["status"] for r in records(tmp_cwd / "coe", "five")}
    assert status == {"img[1]": "failed", "img[2]": "succeeded", "img[3]": "succeeded", "img[4]": "succeeded",
                      "img[5]": "succeeded", "after": "skipped"}
    assert len(res.stdout.splitlines()) == 4
    assert all(Path(p).is_file() for p in res.stdout.splitlines())


def test_fail_fast_cancels_started_workflows(cli, tmp_cwd, emu, monkeypatch):
    from sogni_cli.recipes import run as run_mod

    write(tmp_cwd / "r.yaml", """\
        version: 1
        name: two
        jobs:
          - id: slow
            video: {prompt: "a long video", duration: 30}
          - id: bad
            chat: {prompt: "x", tools: none}
        """)
    emu.script([{"match": CHAT, "action": "status", "status": 400, "message": "no such model"}])
    created = threading.Event()

    class Wids(dict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            created.set()

    init, chat = run_mod.Runner.__init__, run_mod.Runner._chat

    def patched_init(self, *a, **kw):
        init(self, *a, **kw)
        self.wids = Wids()

    def patched_chat(self, *a, **kw):
        assert created.wait(10)  # fail only once the video's workflow exists
        return chat(self, *a, **kw)

    monkeypatch.setattr(run_mod.Runner, "__init__", patched_init)
    monkeypatch.setattr(run_mod.Runner, "_chat", patched_chat)
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--concurrency", "2")
    assert res.exit_code == 8
    wid = records(tmp_cwd / "out", "two")
    cancels = [r for r in emu.requests if r["method"] == "POST" and r["path"].endswith("/cancel")]
    assert len(cancels) == 1
    status = {r["id"]: r for r in wid}
    assert status["bad"]["status"] == "failed"
    assert cancels[0]["path"] == f"{WF}/{status['slow']['workflow_id']}/cancel"


def test_interrupted_run_resumes_without_sending_twice(cli, tmp_cwd, emu, monkeypatch):
    from sogni_cli.recipes import run as run_mod

    (tmp_cwd / "r.yaml").write_text(IMAGES)
    seen: list[str] = []

    def stop_after_two(rec):
        seen.append(rec["id"])
        if len(seen) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "after_record", stop_after_two)
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--concurrency", "1")
    assert res.exit_code == 130
    first = [r["json"]["input"]["steps"][0]["arguments"]["prompt"] for r in creates(emu)]
    assert len(first) == 2
    monkeypatch.setattr(run_mod, "after_record", None)
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--concurrency", "1")
    assert res.exit_code == 0, res.stderr
    prompts = [r["json"]["input"]["steps"][0]["arguments"]["prompt"] for r in creates(emu)]
    assert len(prompts) == 5 and len(set(prompts)) == 5  # each job sent exactly once over both runs
    assert len(res.stdout.splitlines()) == 5  # the resumed jobs' files are listed too
    assert "already done" in res.stderr

    # a third run sends nothing; a deleted file or a changed request sends that job again
    emu.reset()
    (tmp_cwd / "out" / "img-3-1.png").unlink()
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0
    assert [r["json"]["input"]["steps"][0]["arguments"]["prompt"] for r in creates(emu)] == ["picture number 3"]
    emu.reset()
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--force")
    assert res.exit_code == 0 and len(creates(emu)) == 5


def test_a_record_cut_by_a_crash_is_read_up_to_the_last_whole_line(tmp_path):
    from sogni_cli.recipes.report import read_record_file

    f = tmp_path / "r.jsonl"
    f.write_text('{"id": "a", "status": "succeeded"}\n{"id": "b", "sta')
    assert [r["id"] for r in read_record_file(f)] == ["a"]


def test_shards_are_deterministic_and_keep_components_together():
    from sogni_cli.recipes.shard import assign, check_integrity, components

    uids = [f"n{i}" for i in range(60)]
    deps = {f"n{i}": [f"n{i - 1}"] for i in range(1, 60) if i % 6}  # ten chains of six
    for n in (1, 2, 3, 7):
        a = assign(uids, deps, n)
        assert a == assign(list(reversed(uids)), deps, n)
        assert check_integrity(a, deps) == []
        assert set(a.values()) <= set(range(1, n + 1))
        roots = components(uids, deps)
        for u in uids:
            assert a[u] == a[roots[u]]
    a = assign(uids, deps, 3)
    assert len(set(a.values())) > 1  # the work is spread
    bad = dict(a)
    bad["n1"] = a["n0"] % 3 + 1
    assert check_integrity(bad, deps)


def test_shards_and_report_merge(cli, tmp_cwd, emu):
    (tmp_cwd / "r.yaml").write_text(IMAGES)
    outs = []
    for k in (1, 2):
        res = cli("recipe", "run", "r.yaml", "-o", f"out{k}", "--shard", f"{k}/2")
        assert res.exit_code == 0, res.stderr
        outs += res.stdout.splitlines()
    assert len(outs) == 5 and len(set(outs)) == 5
    assert len(creates(emu)) == 5
    shards = {r["id"]: r["shard"] for k in (1, 2) for r in records(tmp_cwd / f"out{k}", "five")}
    assert len(shards) == 5 and set(shards.values()) <= {"1/2", "2/2"}
    res = cli("recipe", "report", "out1", "out2", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["total"] == 5 and doc["succeeded"] == 5 and doc["files"] == 5
    assert sorted(j["id"] for j in doc["jobs"]) == [f"img[{i}]" for i in range(1, 6)]
    table = cli("recipe", "report", "out1", "out2")
    assert "5 jobs: 5 succeeded; 5 files" in table.stdout
    # a failed job in one shard makes the merged report fail
    rec = tmp_cwd / "out2" / ".sogni-run" / "five.jsonl"
    last = json.loads(rec.read_text().splitlines()[-1])
    last.update(status="failed", error={"message": "boom", "exit_code": 7}, time="9999")
    with open(rec, "a") as fh:
        fh.write(json.dumps(last) + "\n")
    res = cli("recipe", "report", "out1", "out2", "--markdown")
    assert res.exit_code == 8
    assert f"| `{last['id']}` | image | failed |" in res.stdout and "boom" in res.stdout
    assert cli("recipe", "report", "nowhere").exit_code == 2


def test_github_step_summary(cli, tmp_cwd, emu, monkeypatch):
    summary = tmp_cwd / "summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (tmp_cwd / "r.yaml").write_text(IMAGES)
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0
    md = summary.read_text()
    assert md.startswith("previous step\n### ✅ sogni recipe `five`\n")
    assert "**5 jobs: 5 succeeded; 5 files;" in md
    assert "| Job | Kind | Status | Files | Time | Cost | Error |" in md
    for i in range(1, 6):
        assert f"| `img[{i}]` | image | succeeded | `img-{i}-1.png` |" in md


def test_nothing_is_sent_for_an_invalid_recipe_or_without_a_key(cli, tmp_cwd, emu, monkeypatch):
    (tmp_cwd / "r.yaml").write_text(IMAGES.replace("width: 256", "width: wide"))
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 2 and emu.requests == []
    assert not (tmp_cwd / "out").exists()
    (tmp_cwd / "r.yaml").write_text(IMAGES)
    monkeypatch.delenv("SOGNI_API_KEY")
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 3 and emu.requests == []


def test_glob_matching_nothing_runs_zero_jobs(cli, tmp_cwd, emu):
    write(tmp_cwd / "r.yaml", """\
        version: 1
        jobs:
          - id: a
            matrix: {photo: {glob: "none/*.jpg"}}
            edit: {prompt: x, images: ["{{ matrix.photo }}"]}
        """)
    res = cli("recipe", "run", "r.yaml", "-o", "out")
    assert res.exit_code == 0 and "matches no files" in res.stderr and emu.requests == []
    assert cli("recipe", "run", "r.yaml", "-o", "out", "--strict").exit_code == 2


def test_progress_display():
    from sogni_cli.recipes.display import RunDisplay

    now = [0.0]
    plain = io.StringIO()
    d = RunDisplay(plain, 2, tty=False, clock=lambda: now[0])
    d.started("a")
    now[0] = 31.0
    d.tick()
    d.finished("a", "succeeded", 31.0, detail="1 file(s)")
    assert plain.getvalue().splitlines() == ["still working: 1 running, 0/2 done, 31.0 s so far",
                                            "[1/2] a: done in 31.0 s (1 file(s))"]
    term = io.StringIO()
    d = RunDisplay(term, 2, name="r", tty=True, clock=lambda: now[0])
    d.started("a")
    d.progress("a", 0.5, "running")
    d.finished("b", "failed", 1.0, error="boom")
    text = term.getvalue()
    assert "Error: b: boom" in text
    assert "r [##############--------------] 1/2 done, 1 failed, 1 running" in text
    assert "  a running 50%" in text


def test_a_run_leaves_no_job_threads_behind(cli, tmp_cwd, emu):
    """Job threads are reused within a run and all end with it (a long-lived process running many recipes
    does not collect idle threads)."""
    before = {t for t in threading.enumerate() if t.name.startswith("recipe-worker")}
    write(tmp_cwd / "r.yaml", IMAGES)
    res = cli("recipe", "run", "r.yaml", "-o", "out", "--concurrency", "3")
    assert res.exit_code == 0, res.stderr
    assert len(creates(emu)) == 5
    workers = [t for t in threading.enumerate() if t.name.startswith("recipe-worker") and t not in before]
    for t in workers:  # those still here are on their way out
        t.join(10)
    assert not any(t.is_alive() for t in workers)
