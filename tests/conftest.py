"""Shared fixtures: run the real CLI in-process, with an isolated config folder and a canary API key.

``cli(*args, input=...)`` runs ``sogni_cli.__main__.run`` (the same funnel as the console script) with
stdin/stdout/stderr swapped, and returns a Result(exit_code, stdout, stderr). An autouse check fails any
test whose CLI output, or any file written under its tmp_path, contains the canary key.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

CANARY_KEY = "sk-test-CANARY-7f3a9c1e55d04b2b"
BASE_URL = "https://api.sogni.test"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class _TTYStringIO(io.StringIO):
    def __init__(self, *a, tty: bool = False, **kw):
        super().__init__(*a, **kw)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


class _BytesStdin(io.TextIOWrapper):
    def __init__(self, data: bytes, tty: bool = False):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


_outputs: list[str] = []


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No real config, key, base URL or sleeps leak in; the canary key never leaks out."""
    for var in list(os.environ):
        if var.startswith("SOGNI_") or var in ("NO_COLOR", "FORCE_COLOR", "GITHUB_STEP_SUMMARY"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SOGNI_CONFIG_DIR", str(tmp_path / "config"))
    from sogni_cli.core import config, secrets

    secrets.clear()
    config.reset_warnings()
    _outputs.clear()
    yield
    leaked = [o for o in _outputs if CANARY_KEY in o]
    assert not leaked, "the API key appeared in CLI output"
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "credentials" and path.stat().st_size < 50_000_000:
            assert CANARY_KEY.encode() not in path.read_bytes(), f"the API key was written to {path}"


@pytest.fixture
def sleeps(monkeypatch):
    """Record retry delays instead of sleeping."""
    recorded: list[float] = []
    import sogni_cli.api.client as client_mod

    monkeypatch.setattr(client_mod, "sleep", recorded.append)
    return recorded


@pytest.fixture
def env_key(monkeypatch):
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    monkeypatch.setenv("SOGNI_BASE_URL", BASE_URL)
    return CANARY_KEY


@pytest.fixture
def cli(monkeypatch):
    """Run the CLI in-process; returns Result. ``input`` may be str or bytes; ``stdin_tty`` fakes a terminal."""

    def run(*args: str, input: str | bytes | None = None, stdin_tty: bool = False, stdout_tty: bool = False,
            stderr_tty: bool = False) -> Result:
        from sogni_cli.__main__ import run as run_cli

        data = input.encode() if isinstance(input, str) else (input or b"")
        stdin = _BytesStdin(data, tty=stdin_tty if input is None else False)
        stdout = _TTYStringIO(tty=stdout_tty)
        stderr = _TTYStringIO(tty=stderr_tty)
        monkeypatch.setattr(sys, "stdin", stdin)
        monkeypatch.setattr(sys, "stdout", stdout)
        monkeypatch.setattr(sys, "stderr", stderr)
        monkeypatch.setattr(sys, "argv", ["sogni", *args])
        try:
            code = run_cli(list(args))
        finally:
            monkeypatch.setattr(sys, "stdin", sys.__stdin__)
            monkeypatch.setattr(sys, "stdout", sys.__stdout__)
            monkeypatch.setattr(sys, "stderr", sys.__stderr__)
        res = Result(code, stdout.getvalue(), stderr.getvalue())
        _outputs.append(res.stdout + res.stderr)
        return res

    return run


def sse_body(chunks: list[dict | str], done: bool = True) -> bytes:
    """An SSE body of OpenAI chunks (dicts are JSON-encoded), optionally ended by [DONE]."""
    import json

    parts = []
    for c in chunks:
        data = c if isinstance(c, str) else json.dumps(c)
        parts.append(f"data: {data}\n\n")
    if done:
        parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def chunk(content: str | None = None, *, finish: str | None = None, role: str | None = None,
          tool_calls: list | None = None, **extra) -> dict:
    delta: dict = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    body.update(extra)
    return body


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


ONE_JOB_RECIPE = """\
version: 1
name: one
jobs:
  - id: pic
    image: {prompt: "a heron at dawn", width: 256, height: 256}
    filename: heron
"""


@pytest.fixture
def emu(monkeypatch):
    """An in-process emulator with fast steps; SOGNI_BASE_URL and the canary key point at it."""
    from sogni_cli import emulator

    e = emulator.start(step_seconds=0.01)
    monkeypatch.setenv("SOGNI_BASE_URL", e.base_url)
    monkeypatch.setenv("SOGNI_API_KEY", CANARY_KEY)
    try:
        yield e
    finally:
        e.stop()


@contextmanager
def serving(srv: Any) -> Iterator[Any]:
    """Run a local ``socketserver`` server (on 127.0.0.1) in a thread for the block; shut it down after."""
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def local_url(srv: Any, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"
