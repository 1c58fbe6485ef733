"""The log end to end: real processes in parallel, continuing conversations with hosted media, Markdown on
a pseudo-terminal."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CHAT = "/v1/chat/completions"

WRITER = """
import sys
from pathlib import Path
from sogni_cli.core import history

for i in range(int(sys.argv[3])):
    e = history.Entry("chat", command="chat", cid=f"w{sys.argv[2]}", prompt=f"writer {sys.argv[2]} entry {i}",
                      reply="ok", exit_code=0)
    history.write(Path(sys.argv[1]), [e])  # one at a time, as each command writes its entry
    if i % 250 == 0:
        history.Store.open(Path(sys.argv[1])).close()  # a reader moving the journal in meanwhile
"""


def test_sixteen_parallel_writers_lose_nothing(tmp_path):
    path = tmp_path / "logs.db"
    env = {**os.environ, "SOGNI_LOGS_WAIT": "60"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "1000"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for w in range(16)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and not err, err.decode()
    from sogni_cli.core import history

    history.Store.open(path).close()
    c = sqlite3.connect(path)
    assert c.execute("SELECT count(*), count(DISTINCT prompt) FROM entries").fetchone() == (16000, 16000)
    per = dict(c.execute("SELECT cid, count(*) FROM entries GROUP BY cid").fetchall())
    assert per == {f"w{w}": 1000 for w in range(16)}
    assert c.execute("SELECT count(*) FROM entries_fts WHERE entries_fts MATCH 'writer'").fetchone()[0] == 16000
    assert history.journal_path(path).stat().st_size == 0


def test_parallel_sogni_processes_are_all_logged(emulator, sogni_env):
    procs = [subprocess.Popen([sys.executable, "-m", "sogni_cli", "chat", "--tools", "none", f"question {i}"],
                              env=sogni_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    cids = set()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Warning" not in err, err
        cids.add(re.search(r"Conversation: (\S+)", err).group(1))
    assert len(cids) == 8
    res = subprocess.run([sys.executable, "-m", "sogni_cli", "logs", "--json", "-n", "100"], env=sogni_env,
                         capture_output=True, text=True, timeout=60)
    logged = json.loads(res.stdout)
    assert sorted(e["prompt"] for e in logged) == sorted(f"question {i}" for i in range(8))
    assert {e["cid"] for e in logged} == cids


def test_continuation_sends_hosted_media_references_back(emulator, sogni_env, run_sogni, tmp_path):
    first = run_sogni(["chat", "--no-stream", "draw an image of a red fox", "-o", tmp_path / "out", "--json"],
                      sogni_env)  # a non-streamed answer names its workflows
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    wid = doc["creative_workflows"][0]["workflowId"]
    second = run_sogni(["chat", "-c", "--tools", "none", "make the image darker", "--json"], sogni_env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["conversation_id"] == doc["conversation_id"]
    body = [r for r in emulator.requests if r["path"] == CHAT][-1]["json"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]
    carried = body["messages"][1]["content"]
    assert f'Creative workflow references: [{{"workflowId": "{wid}"' in carried
    assert "Sogni tool results for continuity: " in carried and '"tool": "generate_image"' in carried
    files = run_sogni(["logs", "files", "--json"], sogni_env)
    [f] = json.loads(files.stdout)
    assert f["exists"] and Path(f["path"]) == Path(doc["artifacts"][0]).resolve()
    assert [e["prompt"] for e in json.loads(run_sogni(["logs", "--json", "--workflow", wid], sogni_env).stdout)] \
        == ["draw an image of a red fox"]


def test_continuation_of_a_streamed_turn_keeps_its_media_links(emulator, sogni_env, run_sogni, tmp_path):
    first = run_sogni(["chat", "draw an image of a red fox", "-o", tmp_path / "out"], sogni_env)
    assert first.returncode == 0, first.stderr
    assert run_sogni(["chat", "-c", "--tools", "none", "make it darker"], sogni_env).returncode == 0
    body = [r for r in emulator.requests if r["path"] == CHAT][-1]["json"]
    carried = body["messages"][1]
    assert carried["role"] == "assistant" and "/media/wf_" in carried["content"]


# ----------------------------------------------------------------------------------------- a pseudo-terminal


def _screen(data: str) -> list[str]:
    """The text a terminal shows after ``data`` (the sequences a live display uses; colours ignored)."""
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(data):
        ch = data[i]
        if ch == "\x1b":
            m = re.match(r"\x1b\[([0-9;?]*)([A-Za-z])", data[i:])
            assert m, repr(data[i:i + 10])
            arg, op = m.group(1), m.group(2)
            if op == "A":
                row = max(0, row - int(arg or 1))
            elif op == "K" and arg == "2":
                lines[row] = []
            i += m.end()
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            while len(lines) <= row:
                lines.append([])
        else:
            line = lines[row]
            while len(line) < col:
                line.append(" ")
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        i += 1
    text = ["".join(x).rstrip() for x in lines]
    while text and not text[-1]:
        text.pop()
    return text


def _rendered(markdown: str, width: int) -> list[str]:
    import io

    from rich.console import Console
    from rich.markdown import Markdown

    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(Markdown(markdown))
    text = [x.rstrip() for x in buf.getvalue().split("\n")]
    while text and not text[-1]:
        text.pop()
    return text


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
@pytest.mark.parametrize("items", [3, 40])  # shorter and longer than the screen
def test_markdown_streams_on_a_terminal_and_ends_as_the_whole(emulator, sogni_env, items):
    import fcntl
    import pty
    import struct
    import termios

    prompt = "Plan\n\n## Steps\n\n" + "\n".join(f"- step **{n}**" for n in range(items)) + \
        "\n\n```python\nprint('done')\n```"
    rows, cols = 24, 80
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**sogni_env, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", "chat", "--tools", "none", prompt], env=env,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    raw = b"".join(chunks).decode("utf-8")
    reply = [r for r in emulator.requests if r["path"] == CHAT]
    assert reply
    assert "\x1b[2J" not in raw  # never clears the screen
    ups = [len(m.group(0)) // len("\x1b[1A") for m in re.finditer(r"(?:\x1b\[1A(?:\x1b\[2K)?)+", raw)]
    assert max(ups or [0]) <= rows  # redraws stay within one screen
    expected = _rendered("Echo: " + prompt, cols)
    assert _screen(raw) == expected
    assert "## Steps" not in raw and "```" not in raw


def test_a_followed_durable_run_is_logged_like_a_chat(emulator, sogni_env, run_sogni):
    res = run_sogni(["chat", "--durable", "Hello durable"], sogni_env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "Echo: Hello durable\n"
    logged = json.loads(run_sogni(["logs", "--json", "-n", "5"], sogni_env).stdout)
    assert [(e["kind"], e["prompt"], e["exit_code"]) for e in logged] == [("chat", "Hello durable", 0)]
    shown = json.loads(run_sogni(["logs", "show", str(logged[0]["id"]), "--json"], sogni_env).stdout)
    assert shown["reply"] == "Echo: Hello durable"
