"""Nothing is written outside the output folder: a folder below ``-o`` that is a symbolic link is refused
(before anything is paid for when the folder is known in advance), end to end against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt",
                                                  reason="needs symbolic links")]

WF = "/v1/creative-agent/workflows"
SHOTS = """\
version: 1
name: shots
jobs:
  - id: pic
    image: {prompt: "a blue heron", width: 256, height: 256}
    output: shots
    filename: heron
"""
SAVED = """\
version: 1
name: saved
jobs:
  - id: pic
    image: {prompt: "a blue heron", width: 256, height: 256}
    filename: heron
  - id: caption
    chat: {prompt: "say hi"}
    save: notes/caption.txt
"""


def _posts(emulator) -> list:
    return [r for r in emulator.requests if r["method"] == "POST"
            and r["path"] in (WF, "/v1/chat/completions", "/v1/creative-agent/tools/execute")]


def _everything_in(folder) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_linked_job_folder_inside_the_output_folder_is_refused_before_paying(emulator, sogni_env, run_sogni,
                                                                                tmp_path):
    (tmp_path / "r.yaml").write_text(SHOTS)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "shots").symlink_to(elsewhere, target_is_directory=True)
    res = run_sogni(["recipe", "run", tmp_path / "r.yaml", "-o", out], sogni_env)
    assert res.returncode == 2, res.stderr
    assert "Error:" in res.stderr and "shots" in res.stderr and "symbolic link" in res.stderr
    assert "Traceback" not in res.stderr
    assert _posts(emulator) == []  # nothing was started, nothing paid
    assert _everything_in(elsewhere) == []


def test_a_linked_save_folder_or_record_folder_is_refused_before_paying(emulator, sogni_env, run_sogni, tmp_path):
    (tmp_path / "r.yaml").write_text(SAVED)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "notes").symlink_to(elsewhere, target_is_directory=True)
    res = run_sogni(["recipe", "run", tmp_path / "r.yaml", "-o", out], sogni_env)
    assert res.returncode == 2, res.stderr
    assert "notes" in res.stderr and "symbolic link" in res.stderr
    assert _posts(emulator) == []
    assert _everything_in(elsewhere) == []
    (out / "notes").unlink()
    (out / ".sogni-run").symlink_to(elsewhere, target_is_directory=True)
    res = run_sogni(["recipe", "run", tmp_path / "r.yaml", "-o", out], sogni_env)
    assert res.returncode == 2, res.stderr
    assert ".sogni-run" in res.stderr and "symbolic link" in res.stderr
    assert _posts(emulator) == []
    assert _everything_in(elsewhere) == []


def test_a_folder_replaced_by_a_link_while_the_job_runs_gets_nothing(sogni_env, tmp_path):
    """The job folder does not exist when the run starts; it becomes a link to another place while the
    workflow runs. The download refuses it: no file and no download record lands outside ``-o``."""
    from sogni_cli import emulator as emu_mod

    emu = emu_mod.start(step_seconds=1.0)
    try:
        env = dict(sogni_env, SOGNI_BASE_URL=emu.base_url)
        (tmp_path / "r.yaml").write_text(SHOTS)
        out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
        elsewhere.mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "recipe", "run", str(tmp_path / "r.yaml"),
                                 "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: any(r["method"] == "POST" and r["path"] == WF for r in emu.requests)
                     or proc.poll() is not None)
            if not (out / "shots").exists():
                (out / "shots").symlink_to(elsewhere, target_is_directory=True)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        emu.stop()
    assert proc.returncode == 8, stderr
    assert "symbolic link" in stderr and "Traceback" not in stderr
    assert stdout == ""
    assert _everything_in(elsewhere) == []


def test_the_download_record_journal_across_processes_and_never_through_a_link(emulator, sogni_env, run_sogni,
                                                                                 tmp_path):
    """Each run after the first appends its entries to `.sogni-downloads.jsonl`; `workflow download` in
    another process sees them; a journal that is a link is neither read nor written through."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    args = ["image", "a red fox", "--width", "256", "--height", "256", "-o", out]
    res = run_sogni(args, sogni_env)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == [".sogni-downloads.json", "a-red-fox-1.png"]
    res = run_sogni(args, sogni_env)
    assert res.returncode == 0, res.stderr
    wid = res.stderr.split("Workflow: ", 1)[1].split()[0]
    assert res.stdout.splitlines() == [str(out / "a-red-fox-1-1.png")]
    journal = out / ".sogni-downloads.jsonl"
    assert journal.read_bytes().count(b"\n") == 1 and b"a-red-fox-1-1.png" in journal.read_bytes()
    before = len(emulator.requests)
    res = run_sogni(["workflow", "download", wid, "-o", out], sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [str(out / "a-red-fox-1-1.png")]  # known from the journal alone
    assert not [r for r in emulator.requests[before:] if r["path"].startswith("/media/")]

    target = elsewhere / "notes.txt"
    target.write_bytes(b"mine\n")
    journal.unlink()
    journal.symlink_to(target)
    res = run_sogni(args, sogni_env)
    assert res.returncode == 0, res.stderr
    assert "could not update the download record" in res.stderr and "symbolic link" in res.stderr
    assert "Traceback" not in res.stderr
    assert target.read_bytes() == b"mine\n" and journal.is_symlink()
