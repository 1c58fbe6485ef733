"""`recipe run` on a real pseudo-terminal: one live area at the bottom, finished jobs scrolled above it, and
the saved paths on stdout never drawn over. The bytes go through a terminal emulator (pyte), and the final
screen is what is asserted."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

import pytest

pyte = pytest.importorskip("pyte", reason="pyte (a test dependency) emulates the terminal")

pytestmark = pytest.mark.e2e

COLS, ROWS = 120, 200
RECIPE = """\
version: 1
name: six
matrix:
  n: [1, 2, 3, 4, 5, 6]
jobs:
  - id: pic
    matrix: true
    image: {prompt: "picture {{ matrix.n }}", width: 512, height: 512}
    output: pics
"""


def _run_on_pty(args, env, cwd):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    data = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                raise AssertionError("no output for 120 s")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(master)
        proc.wait(timeout=60)
    return proc.returncode, data


def test_live_area_keeps_every_saved_path(tmp_path, sogni_env):
    (tmp_path / "r.yaml").write_text(RECIPE)
    env = {**sogni_env, "TERM": "xterm-256color", "COLUMNS": str(COLS), "LINES": str(ROWS)}
    env.pop("NO_COLOR", None)
    code, data = _run_on_pty(["recipe", "run", "r.yaml", "-o", "out", "--concurrency", "2"], env, tmp_path)
    assert code == 0, data.decode(errors="replace")[-3000:]
    raw = data.decode("utf-8", errors="replace")
    assert "\x1b[" in raw  # it did draw a live area (cursor movement), this is not the plain mode
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.Stream(screen)
    stream.feed(raw.replace("\n", "\r\n") if "\r\n" not in raw else raw)
    lines = [ln.rstrip() for ln in screen.display]
    text = [ln for ln in lines if ln]
    paths = [ln for ln in text if re.fullmatch(r"out/pics/pic-\d-1\.png", ln)]
    assert sorted(paths) == [f"out/pics/pic-{n}-1.png" for n in range(1, 7)], "\n".join(text)
    done = [ln for ln in text if re.fullmatch(r"\[\d/6\] pic\[\d\]: done in .+", ln)]
    assert len(done) == 6, "\n".join(text)
    # the live area ends as the final bar, below everything the run printed while it worked
    bar = [i for i, ln in enumerate(lines) if re.search(r"six \[#{28}\] 6/6 done, 0 running", ln)]
    assert len(bar) == 1, "\n".join(text)
    last_path = max(i for i, ln in enumerate(lines) if ln in paths)
    assert bar[0] > last_path
    assert not any(re.search(r"^  pic\[\d\] ", ln) for ln in lines)  # no running-job line left behind
    # the summary table follows the live area
    assert any(ln.startswith("6 jobs: 6 succeeded") for ln in lines[bar[0]:])
