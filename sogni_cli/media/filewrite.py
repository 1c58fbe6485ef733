"""Writing a download to disk: hashing as it goes, batched ``writev`` calls, and a helper thread for
large bodies so the network read never waits on the disk."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Callable

WRITE_SIZE = 1 << 20


class _Cancelled(Exception):
    """The batch was interrupted; what arrived stays in the part file."""


class _NoHash:
    """Stands in for sha256 when no one asked for checksums (hashing is ~30% of a loopback download)."""

    def update(self, data: Any) -> None:
        pass

    def hexdigest(self) -> None:
        return None


def _new_hash(opts: Any) -> Any:
    return hashlib.sha256() if (opts.checksum or opts.manifest is not None) else _NoHash()


def _hash_file(path: Path, h: "hashlib._Hash", cancel: threading.Event | None = None) -> int:
    n = 0
    with open(path, "rb", buffering=0) as fh:
        while True:
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            data = fh.read(WRITE_SIZE)
            if not data:
                return n
            h.update(data)
            n += len(data)


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _writev_all(fd: int, pieces: list[bytes]) -> None:
    if len(pieces) == 1 or not hasattr(os, "writev"):
        _write_all(fd, pieces[0] if len(pieces) == 1 else b"".join(pieces))
        return
    written = os.writev(fd, pieces)
    total = sum(len(p) for p in pieces)
    if written < total:  # a short write: finish the rest plainly
        _write_all(fd, memoryview(b"".join(pieces))[written:])


class _Writer:
    """Hashes and writes received chunks in order, in batches of about 1 MiB (one ``writev`` each, no copy).

    For large bodies a helper thread does the hashing and writing (both release the GIL), so the network
    read never waits for them; a bounded queue limits the memory and gives back-pressure. ``close()``
    writes what is left and re-raises a write error; ``abort()`` drops what is left.
    """

    MAX_PIECES = 512  # well under IOV_MAX

    def __init__(self, fd: int, h: Any, on_written: Callable[[int], Any], *, threaded: bool,
                 size: int = WRITE_SIZE, depth: int = 4):
        self.fd = fd
        self.h = h
        self.on_written = on_written
        self.size = size
        self.batch: list[bytes] = []
        self.pending = 0
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        if threaded:
            import queue

            self.todo: Any = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._run, name="sogni-download-writer", daemon=True)
            self.thread.start()

    def _consume(self, batch: list[bytes]) -> None:
        for piece in batch:
            self.h.update(piece)
        _writev_all(self.fd, batch)

    def _run(self) -> None:
        while True:
            batch = self.todo.get()
            if batch is None:
                return
            if self.error is None:
                try:
                    self._consume(batch)
                except BaseException as exc:  # noqa: BLE001 - reported by close()
                    self.error = exc

    def _hand_off(self) -> None:
        if not self.batch:
            return
        batch, n = self.batch, self.pending
        self.batch, self.pending = [], 0
        if self.thread is None:
            self._consume(batch)
        else:
            if self.error is not None:
                raise self.error
            self.todo.put(batch)
        self.on_written(n)

    def add(self, chunk: bytes) -> None:
        self.batch.append(chunk)
        self.pending += len(chunk)
        if self.pending >= self.size or len(self.batch) >= self.MAX_PIECES:
            self._hand_off()

    def close(self) -> None:
        try:
            self._hand_off()
        finally:
            self._stop()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        self.batch, self.pending = [], 0
        self._stop()

    def _stop(self) -> None:
        if self.thread is not None:
            self.todo.put(None)
            self.thread.join()
            self.thread = None
