"""How many recipe jobs run at once: additive increase, multiplicative decrease.

The run starts at ``--concurrency``. Each 409 or 429 the API answers (the account is busy or rate limited)
halves the number of jobs allowed to run, at most once per :data:`COOLDOWN` seconds so one burst of answers
counts once; each job that succeeds adds ``1/limit``, so the limit grows by one per round of successful
jobs, back up to ``--concurrency``. Running jobs are never stopped: fewer new ones start.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

COOLDOWN = 1.0
BUSY = frozenset({409, 429})

#: Called as ``watch(pace, event)`` when a run's pace starts (``"start"``) and each time the number of jobs
#: allowed at once changes (``"cut"`` or ``"raise"``), from the thread that changed it. A seam for
#: benchmarks and tests that follow a run's concurrency over time; keep it quick.
watch: Callable[["Pace", str], None] | None = None


class Pace:
    def __init__(self, ceiling: int, clock: Callable[[], float] = time.monotonic):
        self.ceiling = max(1, int(ceiling))
        self.limit = float(self.ceiling)
        self.cuts = 0
        self.lowest = self.ceiling
        self._clock = clock
        self._last_cut: float | None = None
        self._lock = threading.Lock()
        self._tell("start")

    def _tell(self, event: str) -> None:
        if watch is not None:
            watch(self, event)

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    def status(self, code: int) -> None:
        """Told every error status the API answers (from any worker thread)."""
        if code not in BUSY:
            return
        with self._lock:
            now = self._clock()
            if self._last_cut is not None and now - self._last_cut < COOLDOWN:
                return
            self._last_cut = now
            self.limit = max(1.0, self.limit / 2)
            self.cuts += 1
            self.lowest = min(self.lowest, self.allowed)
        self._tell("cut")

    def succeeded(self) -> None:
        with self._lock:
            before = self.allowed
            self.limit = min(float(self.ceiling), self.limit + 1.0 / max(1.0, self.limit))
            raised = self.allowed != before
        if raised:
            self._tell("raise")
