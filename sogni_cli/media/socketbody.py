"""Large plain-HTTP bodies read straight off the socket (see :func:`plain_socket`).

Reading a body without the HTTP layer saves two copies of every byte: where the platform has ``splice``
(Linux) the bytes go from the socket to the file inside the kernel, and a checksum, when one is wanted, is
computed by a thread reading the file just behind the writer; elsewhere 1 MiB buffers are filled with
``recv_into``, written, and hashed by a thread over the same buffers. Whatever arrived is on disk before
an error is raised, so a resume starts at the right byte.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Any, Callable

from ..core.filewrite import _Cancelled, _NoHash, _write_all

#: errno values of a failing disk (not a failing connection) while the body is written
_DISK_ERRNOS = frozenset(e for e in (getattr(errno, n, None) for n in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG", "EIO"))
                         if e is not None)
SOCKET_BODY_MIN = 8 << 20  # smaller bodies go through the HTTP layer
RECV_SIZE = 1 << 20


class _Closed(Exception):
    """The connection ended before the announced length (the part keeps what arrived)."""


def _plain_socket(response: Any, remaining: int) -> Any:
    """The socket under a plain-HTTP/1.1 answer whose body (``remaining`` bytes, no content coding) is
    large enough to read straight off it, or None (TLS, HTTP/2, a test transport, a small body).

    Reading the body without the HTTP layer saves two copies of every byte; the HTTP layer first hands
    over what it had already buffered, and the connection is closed afterwards, never reused."""
    if (remaining < SOCKET_BODY_MIN or response.http_version != "HTTP/1.1"
            or response.headers.get("transfer-encoding")):
        return None  # small, not HTTP/1.1, or framed in chunks that only the HTTP layer undoes
    stream = getattr(response, "extensions", {}).get("network_stream")
    if stream is None or stream.get_extra_info("ssl_object") is not None:
        return None
    sock = stream.get_extra_info("socket")
    return sock if sock is not None and hasattr(sock, "recv_into") else None


def _from_socket(sock: Any, fd: int, remaining: int, h: Any, timeout: float, advance: Callable[[int], Any],
                 cancel: threading.Event) -> int:
    """Read ``remaining`` bytes from ``sock`` into the file ``fd``; returns the bytes written.

    Each 1 MiB buffer is filled with ``recv_into`` and written with one ``write``; when a checksum is
    wanted a helper thread hashes the same buffers (hashlib releases the GIL), so hashing never holds up
    the network or the disk; a small ring of buffers bounds the memory. Raises ``TimeoutError``/``OSError``
    (connection) or :class:`_Closed` (the peer stopped early) after writing what arrived, so a resume
    starts at the right byte."""
    import queue

    hashing = not isinstance(h, _NoHash)
    if SPLICE:
        reader = _reopen_for_reading(fd) if hashing else None
        if not hashing or reader is not None:
            return _splice_from(sock, fd, remaining, timeout, advance, cancel, h if hashing else None, reader)
    ring = [memoryview(bytearray(RECV_SIZE)) for _ in range(4 if hashing else 1)]
    free: "queue.SimpleQueue[int]" = queue.SimpleQueue()
    for i in range(len(ring)):
        free.put(i)
    todo: "queue.SimpleQueue[tuple[int, int] | None]" = queue.SimpleQueue()
    hasher: threading.Thread | None = None
    if hashing:
        def hash_loop() -> None:
            while True:
                item = todo.get()
                if item is None:
                    return
                h.update(ring[item[0]][:item[1]])
                free.put(item[0])

        hasher = threading.Thread(target=hash_loop, name="sogni-download-hash", daemon=True)
        hasher.start()
    sock.settimeout(timeout)
    done = 0
    try:
        while remaining > 0:
            i = free.get()
            view = ring[i]
            pos = 0
            ended: BaseException | None = None
            try:
                while pos < RECV_SIZE and remaining > 0:
                    if cancel.is_set():
                        raise _Cancelled()
                    n = sock.recv_into(view[pos:pos + min(RECV_SIZE - pos, remaining)])
                    if n == 0:
                        raise _Closed(f"the body ended early ({remaining} bytes missing)")
                    pos += n
                    remaining -= n
            except BaseException as exc:  # write what arrived, then report why it stopped
                ended = exc
            if pos:
                _write_all(fd, view[:pos])
                done += pos
                advance(pos)
            if hashing:
                todo.put((i, pos))
            else:
                free.put(i)
            if ended is not None:
                raise ended
    finally:
        if hasher is not None:
            todo.put(None)
            hasher.join()
    return done


SPLICE = hasattr(os, "splice") and hasattr(os, "SPLICE_F_MOVE")


def _reopen_for_reading(fd: int) -> int | None:
    """A second, read-only descriptor on the file open as ``fd`` (Linux), or None."""
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


class _HashBehind:
    """Hashes a file as it grows, from a thread reading just behind the writer (the page cache still holds
    what was written), so the checksum never slows the transfer down."""

    def __init__(self, h: Any, reader: int, start: int):
        self.h = h
        self.reader = reader
        self.written = start
        self.done = start
        self.finished = False
        self.cond = threading.Condition()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sogni-download-hash", daemon=True)
        self.thread.start()

    def wrote(self, n: int) -> None:
        with self.cond:
            self.written += n
            self.cond.notify()

    def _run(self) -> None:
        buf = memoryview(bytearray(RECV_SIZE))
        try:
            while True:
                with self.cond:
                    while self.done >= self.written and not self.finished:
                        self.cond.wait()
                    target, finished = self.written, self.finished
                while self.done < target:
                    n = os.preadv(self.reader, [buf[:min(RECV_SIZE, target - self.done)]], self.done)
                    if n <= 0:
                        raise OSError("the file is shorter than what was written to it")
                    self.h.update(buf[:n])
                    self.done += n
                if finished:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by close()
            self.error = exc

    def close(self) -> None:
        with self.cond:
            self.finished = True
            self.cond.notify()
        self.thread.join()
        os.close(self.reader)
        if self.error is not None:
            raise self.error


def _splice_from(sock: Any, fd: int, remaining: int, timeout: float, advance: Callable[[int], Any],
                 cancel: threading.Event, h: Any = None, reader: int | None = None) -> int:
    """:func:`_from_socket` where the platform has ``splice`` (Linux): the bytes go from the socket to the
    file through a pipe inside the kernel, never copied into this process. With ``h`` (and ``reader``, a
    read-only descriptor on the same file), a thread hashes the file just behind the writer."""
    import fcntl
    import socket
    import struct

    behind = _HashBehind(h, reader, os.lseek(fd, 0, os.SEEK_CUR)) if h is not None and reader is not None else None
    r, w = os.pipe()
    try:
        try:
            fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), RECV_SIZE)
        except OSError:
            pass  # the default pipe size works too, in smaller steps
        # A blocking socket with a receive timeout: splice waits in the kernel (no poll per read) and
        # a shutdown from another thread (Ctrl-C, a stop) wakes it.
        sock.settimeout(None)
        secs = max(0.001, float(timeout))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                        struct.pack("ll", int(secs), int((secs % 1) * 1_000_000)))
        sfd = sock.fileno()
        done = 0
        step = 0
        while remaining > 0:
            if cancel.is_set():
                raise _Cancelled()
            try:
                n = os.splice(sfd, w, min(RECV_SIZE, remaining), flags=os.SPLICE_F_MOVE)
            except BlockingIOError:
                raise TimeoutError("timed out") from None
            if n == 0:
                raise _Closed(f"the body ended early ({remaining} bytes missing)")
            remaining -= n
            left = n
            while left:  # the pipe is drained into the file before anything else can happen
                left -= os.splice(r, fd, left, flags=os.SPLICE_F_MOVE)
            if behind is not None:
                behind.wrote(n)
            done += n
            step += n
            if step >= RECV_SIZE or not remaining:
                advance(step)
                step = 0
        if behind is not None:
            b, behind = behind, None
            b.close()  # the checksum covers every byte before the download counts as done
        return done
    finally:
        os.close(r)
        os.close(w)
        if behind is not None:
            try:
                behind.close()
            except OSError:
                pass  # the download failed anyway: a retry hashes the part again
