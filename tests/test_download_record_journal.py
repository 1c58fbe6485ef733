"""The download record's journal: saves append to `.sogni-downloads.jsonl`, readers apply it to the record,
and the journal is folded into the record once it holds more lines than max(64, the record's entries)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from sogni_cli.core import filewrite
from sogni_cli.core.errors import UsageError
from sogni_cli.media import downloads as dl
from sogni_cli.media.downloads import ArtifactRef, SavedFile

CDN = "https://cdn.sogni.ai/runs/r_abc"


@pytest.fixture(autouse=True)
def _fresh_process():
    dl.forget_cached_records()  # each test starts as a new process would
    yield
    dl.forget_cached_records()


class Folder:
    """An output folder, and what a full rewrite of its record after every save would hold."""

    def __init__(self, path: Path, root: Path | None = None):
        self.path = path
        self.root = root
        path.mkdir(parents=True, exist_ok=True)
        self.expected: dict[str, dict] = {}

    def save(self, *items: tuple[str, str, bytes]) -> None:
        batch = []
        for name, wid, body in items:
            (self.path / name).write_bytes(body)
            r = ArtifactRef(f"{CDN}/{wid}/x.png?sig=1", workflow_id=wid, index=1)
            ident = dl.identity(r, r.url)
            batch.append((SavedFile(r, self.path / name, len(body), f"{len(body):064x}", "image/png"), ident))
        dl.record_saved(self.path, batch, root=self.root)
        for (item, ident), (name, _, _) in zip(batch, items):
            st = os.lstat(self.path / name)
            self.expected[name] = dict(ident, bytes=st.st_size, mtime_ns=st.st_mtime_ns, sha256=item.sha256,
                                       content_type="image/png")

    def read(self) -> list[tuple[str, dict]]:
        return list(dl.read_record(self.path).items())

    def want(self) -> list[tuple[str, dict]]:
        return list(self.expected.items())

    @property
    def record(self) -> Path:
        return self.path / dl.RECORD_NAME

    @property
    def journal(self) -> Path:
        return self.path / dl.JOURNAL_NAME


def test_the_record_read_after_many_saves_is_what_a_rewrite_would_hold(tmp_path):
    f = Folder(tmp_path / "out")
    for i in range(150):
        f.save(*[(f"img-{i}-{k}-é.png", f"wf_{i}", b"x" * (k + 1)) for k in range(1 + i % 3)])
        if i % 7 == 0:
            f.save((f"img-{i // 2}-0-é.png", f"wf_again_{i}", b"changed"))  # an entry changes
        assert f.read() == f.want()
    assert f.journal.exists()  # the last saves are in the journal, not yet in the record
    dl.forget_cached_records()  # another process reads the same
    assert f.read() == f.want()


def test_each_save_appends_and_the_journal_is_folded_in_when_it_grows(tmp_path):
    f = Folder(tmp_path / "out")
    f.save(("a.png", "wf_a", b"a"))
    assert f.record.exists() and not f.journal.exists()  # a new record is written whole
    record_inode = os.lstat(f.record).st_ino
    for i in range(64):
        f.save((f"b{i}.png", f"wf_b{i}", b"b"))
        assert os.lstat(f.record).st_ino == record_inode  # not rewritten
    lines = f.journal.read_bytes().splitlines()
    assert len(lines) == 64 and all(json.loads(line)["version"] == dl.IDENTITY_VERSION for line in lines)
    assert json.loads(lines[0]) == {"version": 1, "files": {"b0.png": dict(f.expected["b0.png"])}}
    assert f.read() == f.want()
    journal_before = f.journal.read_bytes()
    f.save(("c.png", "wf_c", b"c"))  # the 65th line: folded into the record, the journal goes
    assert not f.journal.exists() and os.lstat(f.record).st_ino != record_inode
    raw = f.record.read_bytes()
    doc = json.loads(raw)
    assert raw == json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert list(doc["files"].items()) == f.want() == f.read()
    # a crash between the rewrite and the journal's removal: its lines again change nothing
    f.journal.write_bytes(journal_before)
    dl.forget_cached_records()
    assert f.read() == f.want()
    f.save(("d.png", "wf_d", b"d"))
    assert f.read() == f.want()


def test_a_large_record_takes_as_many_journal_lines_as_it_has_entries(tmp_path):
    f = Folder(tmp_path / "out")
    f.save(*[(f"a{i}.png", f"wf_{i}", b"a") for i in range(100)])
    for i in range(100):
        f.save((f"b{i}.png", f"wf_b{i}", b"b"))
    assert len(f.journal.read_bytes().splitlines()) == 100
    f.save(("c.png", "wf_c", b"c"))
    assert not f.journal.exists() and f.read() == f.want()


def test_three_hundred_saves_write_bytes_in_proportion_to_the_record_not_its_square(tmp_path):
    """A rewrite of the whole record after each save wrote ~150 times the final record's size here."""
    f = Folder(tmp_path / "out")
    written = rewrites = 0
    last = (None, 0)
    for i in range(300):
        f.save((f"shot-{i:04d}.png", f"wf_{i}", b"x"))
        st = os.lstat(f.record)
        if (st.st_ino, st.st_size) != last:
            written += st.st_size
            rewrites += 1
            last = (st.st_ino, st.st_size)
        journal = f.journal.stat().st_size if f.journal.exists() else 0
    written += journal
    final = f.record.stat().st_size + journal
    assert rewrites <= 6
    assert written < 4 * final
    assert f.read() == f.want()


def test_a_torn_last_line_is_ignored_and_the_next_save_repairs_the_journal(tmp_path):
    f = Folder(tmp_path / "out")
    f.save(("a.png", "wf_a", b"a"))
    f.save(("b.png", "wf_b", b"b"))
    with open(f.journal, "ab") as fh:
        fh.write(b'{"version":1,"files":{"c.png":{"version":1,"workflow_id":"wf_')  # a crash mid-append
    dl.forget_cached_records()
    assert f.read() == f.want()
    f.save(("d.png", "wf_d", b"d"))
    assert f.read() == f.want()
    assert not f.journal.exists()  # folded in: the torn line is gone
    f.save(("e.png", "wf_e", b"e"))
    assert f.journal.read_bytes().count(b"\n") == 1 and f.read() == f.want()


def test_a_malformed_journal_line_reads_as_a_malformed_record_does(tmp_path):
    f = Folder(tmp_path / "out")
    f.save(("a.png", "wf_a", b"a"))
    f.save(("b.png", "wf_b", b"b"))
    raw = f.journal.read_bytes()
    f.journal.write_bytes(b"{broken\n" + raw)
    dl.forget_cached_records()
    assert dl.read_record(f.path) == {}  # nothing is taken for already saved
    f.save(("c.png", "wf_c", b"c"))  # written again with what this save knows, as for a bad record
    assert not f.journal.exists()
    assert list(json.loads(f.record.read_text())["files"]) == ["c.png"]


def test_entries_of_files_gone_are_dropped_by_the_next_process_to_save(tmp_path):
    f = Folder(tmp_path / "out")
    f.save(("a.png", "wf_a", b"a"))
    f.save(("b.png", "wf_b", b"b"), ("c.png", "wf_c", b"c"))
    os.unlink(f.path / "b.png")
    dl.forget_cached_records()
    f.save(("d.png", "wf_d", b"d"))
    del f.expected["b.png"]
    assert f.read() == f.want()
    assert json.loads(f.journal.read_bytes().splitlines()[-2]) == {"version": 1, "files": {"b.png": None}}


def test_a_journal_that_is_a_link_is_refused_like_the_record(tmp_path):
    f = Folder(tmp_path / "out")
    f.save(("a.png", "wf_a", b"a"))
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"keep\n")
    f.journal.symlink_to(elsewhere)
    dl.forget_cached_records()
    assert dl.read_record(f.path) == {}  # not read through the link
    record = f.record.read_bytes()
    with pytest.raises(filewrite.UnsafePathError, match="symbolic link"):
        f.save(("b.png", "wf_b", b"b"))
    assert elsewhere.read_bytes() == b"keep\n" and f.record.read_bytes() == record and f.journal.is_symlink()


def test_the_journal_is_not_written_through_a_linked_folder(tmp_path):
    root = tmp_path / "root"
    f = Folder(root / "sub", root=root)
    f.save(("a.png", "wf_a", b"a"))
    f.save(("b.png", "wf_b", b"b"))
    outside = tmp_path / "outside"
    (root / "sub").rename(outside)
    (root / "sub").symlink_to(outside, target_is_directory=True)
    journal = (outside / dl.JOURNAL_NAME).read_bytes()
    for name in ("c.png",):
        (outside / name).write_bytes(b"c")
    r = ArtifactRef(f"{CDN}/wf_c/x.png", workflow_id="wf_c")
    with pytest.raises(UsageError, match="Refused to write into"):
        dl.record_saved(root / "sub", [(SavedFile(r, root / "sub" / "c.png", 1, None, None), dl.identity(r, r.url))],
                        root=root)
    assert (outside / dl.JOURNAL_NAME).read_bytes() == journal
    with pytest.raises(UsageError, match="Refused to write into"):
        filewrite.append_file(root / "sub" / "x.jsonl", b"x\n", root=root)
    assert not (outside / "x.jsonl").exists()


def test_append_file_refuses_a_link_and_appends_to_a_regular_file(tmp_path):
    target = tmp_path / "t.txt"
    target.write_bytes(b"a\n")
    (tmp_path / "link.txt").symlink_to(target)
    with pytest.raises(filewrite.UnsafePathError, match="symbolic link"):
        filewrite.append_file(tmp_path / "link.txt", b"b\n", root=tmp_path)
    filewrite.append_file(target, b"b\n", root=tmp_path)
    filewrite.append_file(tmp_path / "new" / "n.txt", b"c\n", root=tmp_path)
    assert target.read_bytes() == b"a\nb\n" and (tmp_path / "new" / "n.txt").read_bytes() == b"c\n"


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sogni_cli.media import downloads as dl
    out, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sys.stdin.read()  # every writer starts at once
    for i in range(n):
        name = f"{who}-{i}.bin"
        (out / name).write_bytes(name.encode())
        r = dl.ArtifactRef(f"https://cdn.sogni.ai/{who}/{i}.bin", workflow_id=f"wf_{who}", index=i)
        dl.record_saved(out, [(dl.SavedFile(r, out / name, len(name), None, None), dl.identity(r, r.url))])
""")


def test_two_processes_appending_at_once_lose_nothing(tmp_path):
    f = Folder(tmp_path / "out")
    f.save(*[(f"old-{i}.png", f"wf_{i}", b"o") for i in range(200)])  # room for 200 lines
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(f.path), w, "60"], stdin=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in ("p0", "p1")]
    for p in procs:
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
        p.stderr.close()
    lines = f.journal.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 121  # every line whole, none folded in yet
    files = dl.read_record(f.path)
    assert sorted(files) == sorted([f"old-{i}.png" for i in range(200)]
                                   + [f"{w}-{i}.bin" for w in ("p0", "p1") for i in range(60)])
    assert [files[f"p1-{i}.bin"]["index"] for i in range(60)] == list(range(60))


def test_workflow_download_knows_files_whose_entries_are_only_in_the_journal(cli, httpx_mock, env_key, tmp_cwd):
    from tests.test_media_commands import FakeAPI

    api = FakeAPI(httpx_mock, n_artifacts=2)
    second = api.artifacts[1]["url"].split("?")[0].replace("https://cdn.sogni.test", "")
    good = api.media[second]
    api.media[second] = lambda request: httpx.Response(400)
    assert cli("image", "a bird", "-n", "2").exit_code == 8  # the record is written with the first file
    api.media[second] = good
    res = cli("workflow", "download", "wf_t1")
    assert res.exit_code == 0, res.stderr
    assert (tmp_cwd / dl.JOURNAL_NAME).read_bytes().count(b"\n") == 1  # the second file's entry
    hits = len(api.media_hits)
    res = cli("workflow", "download", "wf_t1")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == ["a-bird-1.png", "a-bird-2.png"]
    assert len(api.media_hits) == hits  # nothing fetched again
    assert "2 already saved before" in res.stderr
