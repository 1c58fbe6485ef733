"""The one file writer: temporary name, flush, rename; never through a link, never onto a device, never
outside its root."""

from __future__ import annotations

import os
import stat

import pytest

from sogni_cli.core.errors import ExitCode, UsageError
from sogni_cli.core.filewrite import UnsafePathError, open_append, safe_folder, write_atomic

posix = pytest.mark.skipif(os.name == "nt", reason="POSIX links, pipes and modes")


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_the_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    assert write_atomic(target, '{"x": 1}\n') == target
    assert target.read_text() == '{"x": 1}\n'
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _names(tmp_path) == ["a.json"]


@posix
def test_private_files_get_exactly_their_mode(tmp_path):
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "credentials", "k", mode=0o600)
        write_atomic(tmp_path / "shared", "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "credentials").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644


@posix
def test_a_link_as_the_target_is_refused_and_what_it_points_to_is_untouched(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (tmp_path / "out.txt").symlink_to(victim)
    with pytest.raises(UnsafePathError) as info:
        write_atomic(tmp_path / "out.txt", "new")
    assert info.value.exit_code == ExitCode.USAGE and "symbolic link" in info.value.message
    assert victim.read_text() == "keep" and (tmp_path / "out.txt").is_symlink()
    assert _names(tmp_path) == ["out.txt", "victim.txt"]


@posix
@pytest.mark.parametrize("make, kind", [(os.mkfifo, "a pipe"), (os.mkdir, "a folder")])
def test_a_device_pipe_or_folder_as_the_target_is_refused(tmp_path, make, kind):
    make(tmp_path / "x")
    with pytest.raises(UnsafePathError, match=kind):
        write_atomic(tmp_path / "x", "data")
    assert _names(tmp_path) == ["x"]


@posix
def test_a_linked_folder_below_the_root_is_refused(tmp_path):
    root, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "shots").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        write_atomic(root / "shots" / "deep" / "a.txt", "x", root=root)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_folder(root, root / "shots" / "deep")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        safe_folder(root, root / "shots", create=False)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        open_append(root / "shots" / "log.jsonl", root=root)
    assert _names(elsewhere) == []


def test_missing_folders_below_the_root_are_made(tmp_path):
    root = tmp_path / "out"
    write_atomic(root / "a" / "b" / "c.txt", "x", root=root)
    assert (root / "a" / "b" / "c.txt").read_text() == "x"
    assert safe_folder(root, root / "new", create=False) == root / "new"  # missing: nothing below it yet
    assert not (root / "new").exists()


@posix
def test_the_root_itself_may_be_a_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "root").symlink_to(real, target_is_directory=True)
    write_atomic(tmp_path / "root" / "sub" / "a.txt", "x", root=tmp_path / "root")
    assert (real / "sub" / "a.txt").read_text() == "x"


def test_a_path_outside_the_root_is_refused(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(UnsafePathError, match="outside"):
        write_atomic(root / ".." / "escape.txt", "x", root=root)
    with pytest.raises(UnsafePathError, match="outside"):
        write_atomic(tmp_path / "escape.txt", "x", root=root)
    assert not (tmp_path / "escape.txt").exists()


def test_a_file_where_a_folder_belongs_is_refused(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "shots").write_text("a file")
    with pytest.raises(UsageError, match="not a folder"):
        write_atomic(root / "shots" / "a.txt", "x", root=root)


@posix
def test_append_refuses_links_and_pipes_and_appends_to_files(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        open_append(tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnsafePathError, match="pipe"):
        open_append(tmp_path / "fifo")
    with os.fdopen(open_append(tmp_path / "log"), "a") as fh:
        fh.write("one\n")
    with os.fdopen(open_append(tmp_path / "log"), "a") as fh:
        fh.write("two\n")
    assert (tmp_path / "log").read_text() == "one\ntwo\n" and victim.read_text() == "keep\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    # a write that cannot even start (data of the wrong type) fails before the rename
    with pytest.raises(TypeError):
        write_atomic(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["a.txt"]
