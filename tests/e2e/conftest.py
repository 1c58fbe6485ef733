"""End-to-end fixtures: a local emulator per test and a way to run ``sogni`` in a subprocess against it.

- ``emulator``: a started :class:`sogni_cli.emulator.Emulator` (fast steps), stopped after the test.
- ``sogni_env``: an environment for subprocesses: SOGNI_BASE_URL (the emulator), SOGNI_API_KEY (an
  e2e canary key), SOGNI_CONFIG_DIR (under tmp_path); no inherited SOGNI_* variables or proxies.
- ``run_sogni(args, env, input=None, timeout=60)``: run ``python -m sogni_cli *args``; also available as
  the ``run_sogni`` fixture.

Everything collected under tests/e2e is marked ``e2e``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

E2E_KEY = "sk-test-CANARY-e2e-0000"
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def emulator():
    from sogni_cli import emulator as emu_mod

    emu = emu_mod.start(step_seconds=0.05)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def sogni_env(tmp_path, emulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOGNI_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update({
        "SOGNI_BASE_URL": emulator.base_url,
        "SOGNI_API_KEY": E2E_KEY,
        "SOGNI_CONFIG_DIR": str(tmp_path / "cfg"),
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "NO_COLOR": "1",
        "PYTHONIOENCODING": "utf-8",
    })
    return env


def run_sogni(args, env, input=None, timeout=60) -> subprocess.CompletedProcess:
    """Run ``python -m sogni_cli *args``; text mode unless ``input`` is bytes."""
    text = not isinstance(input, bytes)
    proc = subprocess.run([sys.executable, "-m", "sogni_cli", *map(str, args)], env=env, input=input,
                          capture_output=True, timeout=timeout, text=text,
                          **({"encoding": "utf-8"} if text else {}))
    key = env.get("SOGNI_API_KEY") or E2E_KEY
    for stream in (proc.stdout, proc.stderr):
        data = stream.encode() if isinstance(stream, str) else (stream or b"")
        assert key.encode() not in data, "the API key appeared in sogni's output"
    return proc


@pytest.fixture(name="run_sogni")
def run_sogni_fixture():
    return run_sogni


def wait_for(predicate, timeout: float = 30.0) -> None:
    """Poll a condition with a bounded wait (a failure guard, not a delay the test relies on)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def interrupt_when_stalled(emulator, args, env, part, sig=None, timeout: float = 30.0, min_bytes: int = 1):
    """Run ``sogni *args``; once the emulator holds a stalled download and ``part`` holds at least
    ``min_bytes`` (the client received and wrote them), send ``sig`` (SIGINT by default).
    Returns (returncode, stdout, stderr)."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "sogni_cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (emulator.stalled.is_set() and part.exists() and part.stat().st_size >= min_bytes)
                 or proc.poll() is not None)
        proc.send_signal(signal.SIGINT if sig is None else sig)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err
