"""Scripted faults for the emulator.

A fault is a dict consumed in queue order by the first request it matches::

    {"match": "/v1/chat/completions", "method": "POST", "action": "status", "status": 429,
     "retry_after": 0.05, "times": 1}

``match`` is a path prefix or substring (empty or missing matches every request), ``method`` is
optional, ``times`` (default 1) says how many matching requests the fault applies to (``-1``: every
one until reset). Actions:

- ``status``: answer with ``status`` (429, 5xx, 402, ...) and an error body in the ``body`` envelope
  (``"openai"`` or ``"sogni"``; default: the route's own). ``retry_after`` adds ``Retry-After``,
  ``retry_after_ms`` adds ``retry-after-ms``, ``body_retry_after`` adds a body ``retryAfter``;
  ``message``, ``code`` and ``type`` override the error fields.
- ``reset_after``: streams are cut after ``chunks`` SSE frames (the connection closes without the
  final chunk of the chunked body); other bodies after ``bytes`` (or ``chunks``) bytes.
  ``"clean": true`` ends the stream properly instead, just without its terminator (``[DONE]`` or a
  terminal event).
- ``truncate``: send the full ``Content-Length`` but only ``bytes`` bytes of the body, then close.
- ``slow``: sleep ``delay`` seconds between stream frames (before the body for other answers).
- ``stall_after``: send ``bytes`` bytes of a body (or ``chunks`` stream frames), then hold the connection
  open without sending more for ``hold`` seconds (default 60) or until the emulator stops: a download or
  stream that hangs half-way, for interrupting clients.
- ``drop``: close the connection without any answer.
- ``close_after``: answer as usual (a kept-alive answer, no ``Connection: close``), then close the
  connection at once: a server whose idle timeout ends a connection the client means to reuse.
- ``error_in_stream``: a 200 stream that carries an ``error`` object as a data frame after
  ``after`` content frames (default 1), then ``[DONE]`` (``"done": false`` leaves it out).
"""

from __future__ import annotations

import threading
from typing import Any

ACTIONS = {"status", "reset_after", "truncate", "slow", "drop", "error_in_stream", "stall_after", "close_after"}


def validate_fault(fault: Any) -> dict[str, Any]:
    """Check one fault dict and return a normalised copy; raises ``ValueError``."""
    if not isinstance(fault, dict):
        raise ValueError("a fault must be an object")
    action = fault.get("action")
    if action not in ACTIONS:
        raise ValueError(f"unknown fault action {action!r}; expected one of {sorted(ACTIONS)}")
    out = dict(fault)
    match = out.get("match", "")
    if match is None:
        match = ""
    if not isinstance(match, str):
        raise ValueError("fault 'match' must be a string")
    out["match"] = match
    method = out.get("method")
    if method is not None:
        if not isinstance(method, str):
            raise ValueError("fault 'method' must be a string")
        out["method"] = method.upper()
    times = out.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times == 0 or times < -1:
        raise ValueError("fault 'times' must be a positive integer or -1")
    out["times"] = times
    if action == "status":
        status = out.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ValueError("a 'status' fault needs an HTTP error 'status' (400-599)")
        if out.get("body") not in (None, "openai", "sogni"):
            raise ValueError("fault 'body' must be 'openai' or 'sogni'")
    for key in ("chunks", "bytes", "after"):
        if key in out and (not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 0):
            raise ValueError(f"fault {key!r} must be a non-negative integer")
    if action == "truncate" and "bytes" not in out:
        raise ValueError("a 'truncate' fault needs 'bytes'")
    if action == "reset_after" and "chunks" not in out and "bytes" not in out:
        raise ValueError("a 'reset_after' fault needs 'chunks' (or 'bytes')")
    for key in ("delay", "retry_after", "retry_after_ms"):
        if key in out and (not isinstance(out[key], (int, float)) or isinstance(out[key], bool) or out[key] < 0):
            raise ValueError(f"fault {key!r} must be a non-negative number")
    if action == "stall_after" and "bytes" not in out and "chunks" not in out:
        raise ValueError("a 'stall_after' fault needs 'bytes' (or 'chunks')")
    if action == "slow" and "delay" not in out:
        raise ValueError("a 'slow' fault needs 'delay'")
    return out


class FaultQueue:
    """Thread-safe ordered queue of faults, plus optional random faults at set rates.

    ``rates`` maps an action to the fraction of API requests that get it when no queued fault matches:
    ``"429"`` (with ``Retry-After``), ``"503"``, ``"reset"`` (a stream or body cut after a few frames or
    bytes). The draw uses a seeded generator, so a run can be repeated exactly.
    """

    RATE_FAULTS = {
        "429": {"action": "status", "status": 429, "retry_after": 1},
        "503": {"action": "status", "status": 503, "retry_after": 1},
        "reset": {"action": "reset_after", "chunks": 3, "bytes": 1024},
    }

    def __init__(self, rates: dict[str, float] | None = None, seed: int = 0, retry_after: float = 1.0) -> None:
        import random

        self._lock = threading.Lock()
        self._faults: list[dict[str, Any]] = []
        self.rates = {k: float(v) for k, v in (rates or {}).items() if float(v) > 0}
        unknown = set(self.rates) - set(self.RATE_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault rate(s): {', '.join(sorted(unknown))}")
        if any(not 0 <= v <= 1 for v in self.rates.values()):
            raise ValueError("fault rates are fractions between 0 and 1")
        self._random = random.Random(seed)
        self.retry_after = float(retry_after)  # the Retry-After of the random 429 and 503 answers

    def _random_fault(self, path: str) -> dict[str, Any] | None:
        if not self.rates or path.startswith(("/_emulator", "/_uploads")):
            return None
        draw = self._random.random()
        edge = 0.0
        for name, rate in sorted(self.rates.items()):
            edge += rate
            if draw < edge:
                fault = {"match": path, "method": None, "times": 1, **self.RATE_FAULTS[name]}
                if "retry_after" in fault:
                    fault["retry_after"] = self.retry_after
                return fault
        return None

    def add(self, faults: list[dict[str, Any]]) -> None:
        if not isinstance(faults, list):
            raise ValueError("faults must be a list")
        checked = [validate_fault(f) for f in faults]
        with self._lock:
            self._faults.extend(checked)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._faults]

    def take(self, method: str, path: str) -> dict[str, Any] | None:
        """The first fault matching this request (consuming one of its uses), or None."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.get("method") and fault["method"] != method.upper():
                    continue
                match = fault["match"]
                if match and not (path.startswith(match) or match in path):
                    continue
                if fault["times"] != -1:
                    fault["times"] -= 1
                    if fault["times"] <= 0:
                        del self._faults[i]
                return dict(fault)
            return self._random_fault(path)
