"""Local function tools (``--function FILE`` with a ``command``): checked before anything is sent, run contained.

A command runs:

- with the call's arguments (JSON) on its standard input, its standard output becoming the tool result;
- for at most the file's ``timeout`` (60 s by default, never more than ``--timeout`` when that is set), after
  which it and everything it started are stopped;
- with at most 1 MiB of output kept: more is cut, the command stopped, and the result marked as an error;
- with an environment without ``SOGNI_*`` variables (the API key among them) unless the file lists them
  under ``env:``; known secrets are also removed from its output before it goes to the model;
- with relative paths in ``command`` taken from the function file's folder (see :func:`resolved_argv`), in the
  current folder.

A failing command (non-zero status, timeout, too much output) is not an error of the run: the model gets an error
result (status and the end of standard error) and stderr gets a warning, and the conversation goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UsageError

#: Seconds a local command may run when its file does not say.
DEFAULT_TIMEOUT = 60.0
#: The most output of one command passed on to the model.
MAX_OUTPUT = 1024 * 1024
_STDERR_TAIL = 2000


@dataclass
class LocalRun:
    content: str  # what goes back to the model as the ``role: tool`` message
    problem: str | None = None  # set when the command failed (the content is then an error result)


def _base_dir(fn: Any) -> Path:
    return Path(fn.source).resolve().parent if getattr(fn, "source", "") else Path.cwd()


def resolved_argv(fn: Any) -> list[str]:
    """The command's argv with relative paths taken from the function file's folder.

    The program is resolved when it names a path (``./tool.sh``, ``bin/tool``; a bare name is looked up on PATH);
    the other entries when a file of that name exists in that folder (``[python3, tool.py]``); anything else
    (an option, a word that is not a file there) is left as it is."""
    argv = list(fn.command or [])
    base = _base_dir(fn)
    for i, item in enumerate(argv):
        if not item or os.path.isabs(item) or item.startswith("-") or (i == 0 and "/" not in item):
            continue
        candidate = base / item
        if i == 0 or candidate.exists():
            argv[i] = str(candidate)
    return argv


def check_functions(functions: list[Any]) -> None:
    """Before anything is sent: no two functions with one name, and every command can be found (exit 2)."""
    seen: dict[str, str] = {}
    for fn in functions:
        if fn.name in seen:
            raise UsageError(f"Two functions are named {fn.name!r}: in {seen[fn.name]} and {fn.source}.",
                             hint="Each --function must have its own name.")
        seen[fn.name] = fn.source
        if not fn.command:
            continue
        program = resolved_argv(fn)[0]
        if os.sep in program or "/" in program:
            ok = os.path.isfile(program) and os.access(program, os.X_OK)
        else:
            ok = shutil.which(program) is not None
        if not ok:
            raise UsageError(f"Function {fn.name}: command not found or not executable: {program}",
                             hint=f"Check 'command' in {fn.source} (relative paths are taken from that file's folder).")


def tool_env(fn: Any) -> dict[str, str]:
    """The command's environment: ours without ``SOGNI_*`` variables, except those the file lists under ``env:``."""
    keep = set(getattr(fn, "env", None) or ())
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("SOGNI_") or k in keep}


def effective_timeout(fn: Any, limit: float | None) -> float:
    own = getattr(fn, "timeout", None) or DEFAULT_TIMEOUT
    return min(own, limit) if limit else own


def _stop(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)  # the command and whatever it started
        else:  # pragma: no cover - other platforms
            proc.kill()
    except (OSError, ProcessLookupError):
        pass


def run_local(fn: Any, arguments: Any, limit: float | None = None) -> LocalRun:
    """Run ``fn``'s command for one call and return what goes back to the model."""
    from ..core.secrets import redact

    payload = (arguments if isinstance(arguments, str) else json.dumps(arguments)).encode("utf-8")
    timeout = effective_timeout(fn, limit)
    argv = resolved_argv(fn)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=tool_env(fn), start_new_session=os.name == "posix")
    except OSError as exc:
        problem = f"could not start {argv[0]}: {exc.strerror or exc}"
        return LocalRun(json.dumps({"error": problem}), problem)
    out = bytearray()
    tail = bytearray()
    over = threading.Event()

    def read_out() -> None:
        assert proc.stdout is not None
        while True:
            piece = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536)
            if not piece:
                return
            room = MAX_OUTPUT - len(out)
            if len(piece) > room:
                out.extend(piece[:room])
                over.set()
                _stop(proc)
                return
            out.extend(piece)

    def read_err() -> None:
        assert proc.stderr is not None
        while True:
            piece = proc.stderr.read1(65536) if hasattr(proc.stderr, "read1") else proc.stderr.read(65536)
            if not piece:
                return
            tail.extend(piece)
            del tail[:-_STDERR_TAIL * 4]

    def write_in() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except (OSError, ValueError):  # the command does not read its input: fine
            pass

    threads = [threading.Thread(target=t, daemon=True) for t in (read_out, read_err, write_in)]
    for t in threads:
        t.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
        proc.wait()
    for t in threads:
        t.join(timeout=5)
    text = redact(out.decode("utf-8", "replace"))
    err_tail = redact(tail.decode("utf-8", "replace"))[-_STDERR_TAIL:].strip()
    if over.is_set():
        problem = f"the command wrote more than {MAX_OUTPUT} bytes; its output was cut there and the command stopped"
        return LocalRun(json.dumps({"error": problem, "output": text}, ensure_ascii=False), problem)
    if timed_out:
        problem = f"the command did not finish within {timeout:g} s and was stopped"
        return LocalRun(json.dumps({"error": problem, "stderr": err_tail}, ensure_ascii=False), problem)
    if proc.returncode != 0:
        problem = f"the command exited with status {proc.returncode}"
        last = err_tail.splitlines()[-1] if err_tail else ""
        shown = problem + (f": {last[:300]}" if last else "")
        return LocalRun(json.dumps({"error": problem, "stderr": err_tail}, ensure_ascii=False), shown)
    return LocalRun(text)
