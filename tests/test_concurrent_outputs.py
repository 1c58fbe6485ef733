"""Several processes saving into one folder: names are claimed by locking their ``.part`` files, files go
into place without replacing one that appeared meanwhile, the download record keeps every process's
entries, and two `recipe run`s never share one run record.

A second writer is simulated in this process: ``flock`` locks belong to an open file, so a part opened and
locked here holds off the downloader exactly as another process would.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sogni_cli.core.errors import UsageError
from sogni_cli.media import downloads as dl
from sogni_cli.core import filewrite
from sogni_cli.media.downloads import ArtifactRef, DownloadOptions, SavedFile, download_all
from sogni_cli.core.filewrite import PartClaim, link_no_clobber, lock_part, locked_folder, try_lock
from sogni_cli.core.progress import NullProgress
from tests.conftest import ONE_JOB_RECIPE as ONE

CDN = "https://cdn.sogni.ai/runs/r_abc"
URL = f"{CDN}/wf_1/step_1-1.png"


def png_bytes(color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


OURS = png_bytes((10, 200, 10))
THEIRS = png_bytes((200, 10, 10))


def ref(wid: str = "wf_1") -> ArtifactRef:
    return ArtifactRef(f"{CDN}/{wid}/step_1-1.png", prompt="A cat", workflow_id=wid, content_type="image/png")


def opts(tmp_path: Path, **kw) -> DownloadOptions:
    kw.setdefault("output_dir", tmp_path / "out")
    return DownloadOptions(**kw)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != dl.RECORD_NAME)


class Holder:
    """Another process's claim on ``NAME.part``: the part open and locked, with its own bytes."""

    def __init__(self, part: Path, data: bytes = b"", sidecar: dict | None = None):
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(data)
        if sidecar is not None:
            dl.write_sidecar(part, sidecar)
        self.fh = open(part, "rb+")
        fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def close(self):
        self.fh.close()


class WritesFinalMeanwhile(NullProgress):
    """When this process's body is complete (after its claim, before the rename), another writer saves
    ``target`` with its own bytes."""

    def __init__(self, target: Path, data: bytes = THEIRS):
        self.target, self.data = target, data
        self.notes: list[str] = []

    def finish(self, key, ok=True):
        if not self.target.exists():
            self.target.write_bytes(self.data)

    def note(self, message):
        self.notes.append(message)


# ----------------------------------------------------------------------------------------- the claim

def test_a_held_part_is_busy_and_free_again_once_released(tmp_path):
    final = tmp_path / "a.png"
    first = lock_part(final)
    assert isinstance(first, PartClaim) and first.part == tmp_path / "a.png.part" and first.part.exists()
    assert lock_part(final) == "busy"
    first.release()
    assert not first.part.exists()  # it held no bytes
    second = lock_part(final)
    assert isinstance(second, PartClaim)
    second.release()
    first.release()  # twice is harmless


def test_a_final_name_that_exists_is_not_claimed_and_leaves_no_part(tmp_path):
    (tmp_path / "a.png").write_bytes(b"saved")
    assert lock_part(tmp_path / "a.png") == "exists"
    assert names(tmp_path) == ["a.png"]
    got = lock_part(tmp_path / "a.png", check_final=False)  # --on-exists overwrite
    assert isinstance(got, PartClaim)
    got.release()


def test_a_symlinked_part_is_unusable(tmp_path):
    (tmp_path / "elsewhere").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", tmp_path / "a.png.part")
    assert lock_part(tmp_path / "a.png") == "unusable"
    assert (tmp_path / "elsewhere").read_bytes() == b"x"


def test_release_keeps_bytes_for_a_resume_and_never_removes_another_writers_part(tmp_path):
    c = lock_part(tmp_path / "a.png")
    c.part.write_bytes(b"half")
    c.release(keep=True)
    assert c.part.read_bytes() == b"half"

    c = lock_part(tmp_path / "a.png")
    assert c.part.read_bytes() == b"half"  # an unlocked part is claimed as it is (and may be resumed)
    c.release(keep=False)
    assert not c.part.exists()

    c = lock_part(tmp_path / "a.png")
    other = tmp_path / "other"
    other.write_bytes(b"theirs")
    os.replace(other, c.part)  # the path now names another file
    c.release(keep=False)
    assert c.part.read_bytes() == b"theirs"


def test_reset_empties_the_held_part_in_place(tmp_path):
    c = lock_part(tmp_path / "a.png")
    c.part.write_bytes(b"stale bytes")
    dl.write_sidecar(c.part, {"version": 1})
    ino = os.stat(c.part).st_ino
    c.reset()
    assert c.part.read_bytes() == b"" and os.stat(c.part).st_ino == ino and not c.sidecar.exists()
    assert lock_part(tmp_path / "a.png") == "busy"  # still held
    c.release()


# ----------------------------------------------------------------------------- the no-clobber rename

def test_link_no_clobber_refuses_an_existing_name(tmp_path):
    src, dst = tmp_path / "x.part", tmp_path / "x"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        link_no_clobber(src, dst)
    assert dst.read_bytes() == b"old" and src.read_bytes() == b"new"
    dst.unlink()
    link_no_clobber(src, dst)
    assert dst.read_bytes() == b"new" and not src.exists()


def test_without_hard_links_it_falls_back_to_replace_after_a_check(tmp_path, monkeypatch):
    def no_link(a, b, **kw):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    src, dst = tmp_path / "x.part", tmp_path / "x"
    src.write_bytes(b"new")
    dst.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        link_no_clobber(src, dst)
    assert dst.read_bytes() == b"old"
    dst.unlink()
    link_no_clobber(src, dst)
    assert dst.read_bytes() == b"new" and not src.exists()


# ------------------------------------------------------------------------------ downloads, two writers

def test_a_part_held_by_another_process_makes_this_one_take_the_next_name(httpx_mock, tmp_path):
    out = tmp_path / "out"
    # the other process's part names this very artifact: still not ours to resume or to drop
    side = dl.identity(ref(), URL, total=len(THEIRS))
    other = Holder(out / "a-cat-1.png.part", THEIRS[:40], side)
    try:
        httpx_mock.add_response(url=URL, content=OURS, headers={"Content-Type": "image/png"})
        report = download_all([ref()], opts(tmp_path))
        assert report.failed == []
        assert [s.path for s in report.saved] == [out / "a-cat-1-1.png"]
        assert (out / "a-cat-1-1.png").read_bytes() == OURS
        assert (out / "a-cat-1.png.part").read_bytes() == THEIRS[:40]
        assert json.loads((out / "a-cat-1.png.part.json").read_text()) == side
        assert "range" not in httpx_mock.get_requests()[0].headers
        assert names(out) == ["a-cat-1-1.png", "a-cat-1.png.part", "a-cat-1.png.part.json"]
    finally:
        other.close()


def test_an_unlocked_part_of_the_same_artifact_is_still_resumed(httpx_mock, tmp_path):
    out = tmp_path / "out"
    n = 30
    Holder(out / "a-cat-1.png.part", OURS[:n], dl.identity(ref(), URL, total=len(OURS))).close()
    httpx_mock.add_response(url=URL, status_code=206, content=OURS[n:],
                            headers={"Content-Range": f"bytes {n}-{len(OURS) - 1}/{len(OURS)}",
                                     "Content-Type": "image/png"})
    report = download_all([ref()], opts(tmp_path))
    assert report.failed == []
    assert httpx_mock.get_requests()[0].headers["range"] == f"bytes={n}-"
    assert (out / "a-cat-1.png").read_bytes() == OURS
    assert names(out) == ["a-cat-1.png"]


def test_a_final_file_appearing_after_the_claim_is_kept_and_this_one_takes_the_next_name(httpx_mock, tmp_path):
    out = tmp_path / "out"
    progress = WritesFinalMeanwhile(out / "a-cat-1.png")
    httpx_mock.add_response(url=URL, content=OURS, headers={"Content-Type": "image/png"})
    report = download_all([ref()], opts(tmp_path), progress=progress)
    assert report.failed == []
    assert [s.path for s in report.saved] == [out / "a-cat-1-1.png"]
    assert (out / "a-cat-1.png").read_bytes() == THEIRS
    assert (out / "a-cat-1-1.png").read_bytes() == OURS
    assert names(out) == ["a-cat-1-1.png", "a-cat-1.png"]
    assert any("saved as a-cat-1-1.png" in n for n in progress.notes)
    assert dl.read_record(out)["a-cat-1-1.png"]["workflow_id"] == "wf_1"
    assert "a-cat-1.png" not in dl.read_record(out)  # the other writer's file is not taken for ours


def test_the_next_name_skips_names_other_processes_hold(httpx_mock, tmp_path):
    out = tmp_path / "out"
    progress = WritesFinalMeanwhile(out / "a-cat-1.png")
    httpx_mock.add_response(url=URL, content=OURS, headers={"Content-Type": "image/png"})
    out.mkdir()
    other = Holder(out / "a-cat-1-1.png.part")
    try:
        report = download_all([ref()], opts(tmp_path), progress=progress)
    finally:
        other.close()
    assert [s.path for s in report.saved] == [out / "a-cat-1-2.png"]
    assert (out / "a-cat-1-2.png").read_bytes() == OURS and (out / "a-cat-1.png").read_bytes() == THEIRS


def test_skip_and_error_keep_their_meaning_when_the_file_appears_meanwhile(httpx_mock, tmp_path):
    out = tmp_path / "out"
    httpx_mock.add_response(url=URL, content=OURS, headers={"Content-Type": "image/png"})
    report = download_all([ref()], opts(tmp_path, on_exists="skip"),
                          progress=WritesFinalMeanwhile(out / "a-cat-1.png"))
    assert report.failed == [] and report.saved[0].skipped and report.saved[0].path == out / "a-cat-1.png"
    assert (out / "a-cat-1.png").read_bytes() == THEIRS and names(out) == ["a-cat-1.png"]

    (out / "a-cat-1.png").unlink()
    httpx_mock.add_response(url=URL, content=OURS, headers={"Content-Type": "image/png"})
    report = download_all([ref()], opts(tmp_path, on_exists="error"),
                          progress=WritesFinalMeanwhile(out / "a-cat-1.png"))
    assert report.saved == [] and "saved by another process" in report.failed[0][1]
    assert (out / "a-cat-1.png").read_bytes() == THEIRS and names(out) == ["a-cat-1.png"]


def test_overwrite_replaces_a_file_that_appeared_meanwhile_last_writer_wins(httpx_mock, tmp_path):
    out = tmp_path / "out"
    httpx_mock.add_response(url=URL, content=OURS, headers={"Content-Type": "image/png"})
    report = download_all([ref()], opts(tmp_path, on_exists="overwrite"),
                          progress=WritesFinalMeanwhile(out / "a-cat-1.png"))
    assert [s.path for s in report.saved] == [out / "a-cat-1.png"]
    assert (out / "a-cat-1.png").read_bytes() == OURS and names(out) == ["a-cat-1.png"]


def test_overwrite_while_another_process_holds_the_part_writes_aside_and_replaces(httpx_mock, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-cat-1.png").write_bytes(THEIRS)
    other = Holder(out / "a-cat-1.png.part", b"their half")
    try:
        httpx_mock.add_response(url=URL, content=OURS, headers={"Content-Type": "image/png"})
        report = download_all([ref()], opts(tmp_path, on_exists="overwrite"))
        assert [s.path for s in report.saved] == [out / "a-cat-1.png"]
        assert (out / "a-cat-1.png").read_bytes() == OURS
        assert (out / "a-cat-1.png.part").read_bytes() == b"their half"
        assert names(out) == ["a-cat-1.png", "a-cat-1.png.part"]  # no temporary part left
    finally:
        other.close()


def test_skip_and_error_with_a_held_part_send_nothing(httpx_mock, tmp_path):
    out = tmp_path / "out"
    other = Holder(out / "a-cat-1.png.part")
    try:
        report = download_all([ref()], opts(tmp_path, on_exists="skip"))
        assert report.failed == [] and report.saved[0].skipped and report.saved[0].path == out / "a-cat-1.png"
        with pytest.raises(UsageError, match="being saved by another process"):
            download_all([ref()], opts(tmp_path, on_exists="error"))
    finally:
        other.close()
    assert httpx_mock.get_requests() == []
    assert names(out) == ["a-cat-1.png.part"]


def test_claims_not_used_are_let_go(httpx_mock, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-cat-1.png").write_bytes(THEIRS)
    refs = [ArtifactRef(f"{CDN}/wf_2/x.png", index=1, count=2, prompt="A cat", content_type="image/png"),
            ref()]
    with pytest.raises(UsageError):  # the second name exists: nothing is sent, the first claim goes
        download_all(refs, opts(tmp_path, on_exists="error", name_template="a-cat-{count}"))
    assert names(out) == ["a-cat-1.png"]
    assert isinstance(lock_part(out / "a-cat-2.png"), PartClaim)


def test_without_fcntl_everything_still_saves(httpx_mock, tmp_path, monkeypatch):
    monkeypatch.setattr(filewrite, "_fcntl", None)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "a-cat-1.png").write_bytes(THEIRS)
    httpx_mock.add_response(url=URL, content=OURS, headers={"Content-Type": "image/png"})
    report = download_all([ref()], opts(tmp_path))
    assert [s.path for s in report.saved] == [out / "a-cat-1-1.png"]
    assert (out / "a-cat-1-1.png").read_bytes() == OURS and (out / "a-cat-1.png").read_bytes() == THEIRS


# ----------------------------------------------------------------------------------- the download record

def test_the_record_merges_what_another_process_wrote_meanwhile(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for n in ("a.png", "b.png", "c.png"):
        (out / n).write_bytes(n.encode())

    def saved(name: str, wid: str):
        r = ArtifactRef(f"{CDN}/{wid}/x.png", workflow_id=wid)
        return SavedFile(r, out / name, 5, None, "image/png"), dl.identity(r, r.url)

    dl.record_saved(out, [saved("a.png", "wf_a")])
    # another process read the record, added its own file and wrote it back
    doc = json.loads((out / dl.RECORD_NAME).read_text())
    doc["files"]["b.png"] = dict(saved("b.png", "wf_b")[1], bytes=5, mtime_ns=os.lstat(out / "b.png").st_mtime_ns)
    dl.write_json_atomic(out / dl.RECORD_NAME, doc)
    dl.record_saved(out, [saved("c.png", "wf_c")])
    files = dl.read_record(out)
    assert sorted(files) == ["a.png", "b.png", "c.png"]
    assert [files[k]["workflow_id"] for k in sorted(files)] == ["wf_a", "wf_b", "wf_c"]


def test_a_large_record_is_one_compact_json_document_kept_across_rewrites(tmp_path):
    """A folder of many files (a long recipe run adds to the record after every job): once the journal is
    folded in, the record is one compact JSON document, entries in the order they were first saved."""
    out = tmp_path / "out"
    out.mkdir()
    names = [f"shot-{i}-é.png" for i in range(300)]  # well over one written piece, non-ASCII names
    for n in names:
        (out / n).write_bytes(b"x")

    def saved(name: str, i: int):
        r = ArtifactRef(f"{CDN}/wf_{i}/x.png", workflow_id=f"wf_{i}")
        return SavedFile(r, out / name, 1, "ab" * 32, "image/png"), dl.identity(r, r.url)

    for start in range(0, 300, 100):
        dl.record_saved(out, [saved(n, i) for i, n in enumerate(names[start:start + 100], start)])
    raw = (out / dl.RECORD_NAME).read_bytes()
    doc = json.loads(raw)
    assert raw == json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert doc["version"] == dl.IDENTITY_VERSION and list(doc["files"]) == names
    assert [doc["files"][n]["workflow_id"] for n in names] == [f"wf_{i}" for i in range(300)]
    assert {doc["files"][n]["sha256"] for n in names} == {"ab" * 32}


def test_the_record_is_written_under_a_lock_on_the_folder(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"x")
    seen: list[bool] = []
    from sogni_cli.media import dlrecord

    real = dlrecord.write_record_file

    def spy(path, files, **kw):
        fd = os.open(out, os.O_RDONLY)
        try:
            seen.append(try_lock(fd))  # another opener of the folder cannot lock it now
        finally:
            os.close(fd)
        real(path, files, **kw)

    monkeypatch.setattr(dlrecord, "write_record_file", spy)
    r = ArtifactRef(URL, workflow_id="wf_1")
    dl.record_saved(out, [(SavedFile(r, out / "a.png", 1, None, None), dl.identity(r, URL))])
    assert seen == [False]
    with locked_folder(out):
        fd = os.open(out, os.O_RDONLY)
        try:
            assert try_lock(fd) is False
        finally:
            os.close(fd)
    fd = os.open(out, os.O_RDONLY)
    try:
        assert try_lock(fd) is True  # let go after the block
    finally:
        os.close(fd)


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sogni_cli.media import downloads as dl
    out, who = Path(sys.argv[1]), sys.argv[2]
    sys.stdin.read()  # every writer starts at once
    for i in range(30):
        name = f"{who}-{i}.bin"
        (out / name).write_bytes(name.encode())
        r = dl.ArtifactRef(f"https://cdn.sogni.ai/{who}/{i}.bin", workflow_id=f"wf_{who}", index=i)
        dl.record_saved(out, [(dl.SavedFile(r, out / name, len(name), None, None), dl.identity(r, r.url))])
""")


def test_processes_saving_at_once_keep_every_record_entry(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    who = ["p0", "p1", "p2", "p3", "p4"]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(out), w], stdin=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in who]
    for p in procs:
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
        p.stderr.close()
    files = dl.read_record(out)
    assert sorted(files) == sorted(f"{w}-{i}.bin" for w in who for i in range(30))
    assert all(files[f"{w}-{i}.bin"]["workflow_id"] == f"wf_{w}" for w in who for i in range(30))


# ---------------------------------------------------------------------------------- recipe run record





def test_a_second_recipe_run_on_the_same_folder_stops_before_sending(cli, tmp_cwd, emu):
    (tmp_cwd / "r.yaml").write_text(ONE)
    record = tmp_cwd / "out" / ".sogni-run" / "one.jsonl"
    lock = record.parent / "lock"  # one lock per output folder, whatever the recipe
    record.parent.mkdir(parents=True)
    running = open(lock, "a")  # the first run holds the folder
    try:
        assert try_lock(running.fileno())
        res = cli("recipe", "run", "r.yaml", "-o", "out")
        assert res.exit_code == 2, res.output
        assert "another run is using out; wait for it or use another -o" in res.stderr
        assert [r for r in emu.requests if r["method"] == "POST"] == []
        assert not record.exists()
    finally:
        running.close()
    res = cli("recipe", "run", "r.yaml", "-o", "out")  # once it ended, the folder is free
    assert res.exit_code == 0, res.output
    assert len([r for r in emu.requests if r["method"] == "POST"]) == 1
    assert (tmp_cwd / "out" / "heron.png").is_file()
    fh = open(lock, "a")  # and the finished run let it go
    try:
        assert try_lock(fh.fileno())
    finally:
        fh.close()


def test_the_run_record_is_held_while_the_run_runs(cli, tmp_cwd, emu, monkeypatch):
    from sogni_cli.recipes import run as run_mod

    (tmp_cwd / "r.yaml").write_text(ONE)
    held: list[bool] = []

    def check(rec):
        fh = open(tmp_cwd / "out" / ".sogni-run" / "lock", "a")
        try:
            held.append(not try_lock(fh.fileno()))
        finally:
            fh.close()

    monkeypatch.setattr(run_mod, "after_record", check)
    assert cli("recipe", "run", "r.yaml", "-o", "out").exit_code == 0
    assert held == [True]
