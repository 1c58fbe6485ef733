"""The progress protocol: what long operations report to. Displays live in the render layer."""

from __future__ import annotations

from typing import Any, Hashable


def format_bytes(n: float | None) -> str:
    """Decimal units, as download tools show them: ``512 B``, ``12.3 MB``, ``1.07 GB``."""
    if n is None:
        return "?"
    n = float(n)
    if n < 1000:
        return f"{int(n)} B"
    for unit, div in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12)):
        if n < div * 1000 or unit == "TB":
            v = n / div
            return f"{v:.2f} {unit}" if unit in ("GB", "TB") else f"{v:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


class ProgressSink:
    """What long operations report to. The base class ignores everything (see :class:`NullProgress`)."""

    def start(self, key: Hashable, total: int | None, label: str) -> None:
        """A task begins (``total`` None when unknown). Starting a known key again resets it."""

    def advance(self, key: Hashable, n: int) -> None:
        """``n`` more units (bytes) done for ``key``."""

    def update(self, key: Hashable, completed: float | None = None, total: float | None = None,
               label: str | None = None) -> None:
        """Set absolute progress (e.g. a workflow at 0..100)."""

    def finish(self, key: Hashable, ok: bool = True) -> None:
        """The task ended (successfully or not)."""

    def note(self, text: str) -> None:
        """A one-line message shown with the progress display."""

    def heartbeat(self) -> None:
        """Called by waiters now and then; plain output prints a line if it has been silent too long."""

    def close(self) -> None:
        """Stop the display."""

    def __enter__(self) -> "ProgressSink":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class NullProgress(ProgressSink):
    """Shows nothing (``--quiet``)."""
