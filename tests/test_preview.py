"""`--preview`: saved images shown on stderr when it is a terminal; never on stdout, never in a pipe."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

TERM_VARS = ("KITTY_WINDOW_ID", "TERM_PROGRAM", "LC_TERMINAL", "TERM", "COLORTERM", "NO_COLOR")


@pytest.fixture
def term(monkeypatch):
    for v in TERM_VARS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("COLORTERM", "truecolor")
    return monkeypatch


def _paths(res, tmp_cwd):
    lines = res.stdout.splitlines()
    assert lines and all(re.fullmatch(r"[^\x1b]+\.(png|jpg|webp)", ln) for ln in lines), res.stdout
    return lines


@pytest.mark.parametrize("env, marker", [
    ({"KITTY_WINDOW_ID": "1"}, "\x1b_Ga=T,f=100,r=8"),
    ({"TERM_PROGRAM": "ghostty"}, "\x1b_Ga=T,f=100"),
    ({"TERM_PROGRAM": "iTerm.app"}, "\x1b]1337;File=inline=1;"),
    ({"LC_TERMINAL": "iTerm2"}, "\x1b]1337;File=inline=1;"),
    ({"TERM": "xterm-kitty"}, "▀"),  # kitty named only in TERM: not trusted, half-blocks instead
    ({}, "▀"),
])
def test_image_preview_on_a_terminal(cli, term, tmp_cwd, emu, env, marker):
    for k, v in env.items():
        term.setenv(k, v)
    res = cli("image", "a red fox", "-n", "2", "-o", "out", "--preview", stderr_tty=True)
    assert res.exit_code == 0, res.stderr
    paths = _paths(res, tmp_cwd)
    assert len(paths) == 2
    assert "\x1b" not in res.stdout  # stdout has the paths only
    if marker != "▀":
        assert res.stderr.count(marker) == 2
    else:
        rows = [ln for ln in res.stderr.splitlines() if "▀" in ln]
        assert len(rows) == 2 * 8  # two images, eight rows each
        assert "\x1b[38;2;" in res.stderr and "48;2;" in res.stderr  # true colour, upper and lower pixel


def test_no_preview_when_stderr_is_not_a_terminal(cli, term, tmp_cwd, emu):
    term.setenv("KITTY_WINDOW_ID", "1")
    res = cli("image", "a red fox", "-o", "out", "--preview", stdout_tty=True)  # stderr is a pipe
    assert res.exit_code == 0, res.stderr
    assert "\x1b" not in res.stderr and "▀" not in res.stderr and "\x1b" not in res.stdout


def test_no_preview_without_the_flag_or_without_colour(cli, term, tmp_cwd, emu):
    res = cli("image", "a red fox", "-o", "out", stderr_tty=True)
    assert "▀" not in res.stderr
    term.setenv("NO_COLOR", "1")
    res = cli("image", "a red fox", "-o", "out", "--preview", stderr_tty=True)
    assert res.exit_code == 0 and "▀" not in res.stderr and "(no preview)" in res.stderr


def test_edit_and_workflow_download_preview(cli, term, tmp_cwd, emu):
    Image.new("RGB", (64, 64), (10, 200, 10)).save(tmp_cwd / "in.png")
    term.setenv("TERM_PROGRAM", "iTerm.app")
    res = cli("edit", "make it blue", "-i", "in.png", "-o", "out", "--preview", "--json", stderr_tty=True)
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)  # --json stays clean
    assert res.stderr.count("\x1b]1337;File=") == len(doc["artifacts"]) == 1
    wid = doc["workflow_id"]
    res = cli("workflow", "download", wid, "-o", "again", "--preview", stderr_tty=True)
    assert res.exit_code == 0, res.stderr
    assert res.stderr.count("\x1b]1337;File=") == 1 and "\x1b" not in res.stdout


def test_kitty_escape_is_chunked():
    from sogni_cli.render.preview import kitty

    text = kitty(b"x" * 10000, rows=5)
    chunks = re.findall(r"\x1b_G([^;]*);([^\x1b]*)\x1b\\", text)
    assert chunks[0][0] == "a=T,f=100,r=5,q=2,m=1" and chunks[-1][0] == "m=0"
    assert all(len(c[1]) <= 4096 for c in chunks) and len(chunks) == 4
