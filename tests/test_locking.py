"""Claims on names shared between processes, through the public locking functions only.

The same tests run twice: here with the platform's locks, and from tests/test_portability.py in a process
where ``fcntl`` is hidden and Windows' ``msvcrt`` locking takes its place.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fake_msvcrt import install_if_asked

install_if_asked()

from sogni_cli.core.filewrite import PartClaim, folder_lock_fd, lock_part, locked_folder, try_lock  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tests.fake_msvcrt import install_if_asked
    install_if_asked()
    from sogni_cli.core.filewrite import lock_part, locked_folder
    import os
    from tests.fake_msvcrt import ENV
    # the same lock mechanism as the test process, or nothing is proved
    assert (sys.modules.get("fcntl", 0) is None) == (os.environ.get(ENV) == "1")
    what, target = sys.argv[2], Path(sys.argv[3])
    if what == "part":
        claim = lock_part(target)
        print("held" if not isinstance(claim, str) else claim, flush=True)
        sys.stdin.read()
        claim.release()
    else:
        with locked_folder(target):
            print("held", flush=True)
            sys.stdin.read()
""")


class Holder:
    """Another process holding a part (or a folder) until :meth:`let_go`."""

    def __init__(self, what: str, target: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), what, str(target)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def let_go(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0
        self.proc.stdout.close()


def test_a_held_part_is_busy_in_this_process_until_released(tmp_path):
    final = tmp_path / "a.png"
    first = lock_part(final)
    assert isinstance(first, PartClaim)
    assert lock_part(final) == "busy"
    first.release()
    second = lock_part(final)
    assert isinstance(second, PartClaim)
    second.release()


def test_a_part_held_by_another_process_is_busy_until_it_lets_go(tmp_path):
    final = tmp_path / "b.png"
    other = Holder("part", final)
    try:
        assert lock_part(final) == "busy"
    finally:
        other.let_go()
    claim = lock_part(final)
    assert isinstance(claim, PartClaim)
    os.write(claim.fd, b"bytes")
    assert final.with_name("b.png.part").read_bytes() == b"bytes"  # the lock never blocks reading the data
    claim.release(keep=False)


def test_a_folder_held_by_another_process_cannot_be_locked_until_it_lets_go(tmp_path):
    other = Holder("folder", tmp_path)
    fd = folder_lock_fd(tmp_path)
    try:
        assert try_lock(fd) is False
    finally:
        os.close(fd)
    other.let_go()
    with locked_folder(tmp_path):
        fd = folder_lock_fd(tmp_path)
        try:
            assert try_lock(fd) is False  # held by this block
        finally:
            os.close(fd)
    fd = folder_lock_fd(tmp_path)
    try:
        assert try_lock(fd) is True
    finally:
        os.close(fd)


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tests.fake_msvcrt import install_if_asked
    install_if_asked()
    from sogni_cli.media import downloads as dl
    out, who = Path(sys.argv[2]), sys.argv[3]
    sys.stdin.read()  # every writer starts at once
    for i in range(20):
        name = f"{who}-{i}.bin"
        (out / name).write_bytes(name.encode())
        r = dl.ArtifactRef(f"https://cdn.sogni.ai/{who}/{i}.bin", workflow_id=f"wf_{who}", index=i)
        dl.record_saved(out, [(dl.SavedFile(r, out / name, len(name), None, None), dl.identity(r, r.url))])
""")


def test_processes_recording_at_once_keep_every_entry(tmp_path):
    from sogni_cli.media import downloads as dl

    who = ["p0", "p1", "p2", "p3"]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(tmp_path), w], stdin=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in who]
    for p in procs:
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
        p.stderr.close()
    files = dl.read_record(tmp_path)
    assert sorted(files) == sorted(f"{w}-{i}.bin" for w in who for i in range(20))
