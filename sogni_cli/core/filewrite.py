"""The one file writer, and writing downloads to disk.

- :func:`write_atomic`: every whole file the CLI writes (config, credentials, caches, saved messages, run
  summaries, text results, download records) goes to a temporary name in the same folder, is flushed to
  disk, and is renamed over the target. The target is never a symbolic link or a device (refused), and
  with ``root`` every folder from ``root`` down to the file is a real folder, so nothing is written
  outside the root through a link.
- :func:`safe_folder` / :func:`open_folder`: the same folder check for the callers that write a folder's
  files themselves (downloads): folders below the root are made one at a time and never followed when
  they are links.
- :func:`open_append` / :func:`append_file`: the files the CLI appends to (run records, manifests, the
  download record's journal), opened without following a link and refused when they are not regular files;
  :func:`append_file` also checks the folders from a root down like :func:`write_atomic` and syncs the write.
- Downloads: hashing as they go, batched ``writev`` calls, and a helper thread for large bodies so the
  network read never waits on the disk; claims on names shared with other processes (part locks, the
  no-clobber rename, the folder lock).
"""

from __future__ import annotations

import errno as _errno
import hashlib
import os
import stat as _stat
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import UsageError

_fcntl: Any
_msvcrt: Any
try:
    import fcntl as _fcntl
except ImportError:  # Windows
    _fcntl = None
try:
    import msvcrt as _msvcrt
except ImportError:  # POSIX
    _msvcrt = None

WRITE_SIZE = 1 << 20

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
#: Whether folders can be walked by descriptor here (POSIX): then no step of a path is ever looked up twice.
DIR_FD = bool(_O_DIRECTORY and _O_NOFOLLOW) and {os.open, os.mkdir, os.stat, os.rename, os.unlink} <= os.supports_dir_fd


class UnsafePathError(UsageError):
    """A write that would go through a symbolic link, onto a device, or outside its output folder (exit 2)."""


def _kind(mode: int) -> str:
    if _stat.S_ISLNK(mode):
        return "a symbolic link"
    if _stat.S_ISDIR(mode):
        return "a folder"
    if _stat.S_ISCHR(mode) or _stat.S_ISBLK(mode):
        return "a device"
    if _stat.S_ISFIFO(mode):
        return "a pipe"
    if _stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _below(root: Path, folder: Path) -> tuple[str, ...]:
    """The names leading from ``root`` down to ``folder`` (both as given, not resolved); UnsafePathError
    when ``folder`` is not lexically inside ``root``."""
    r = os.path.normpath(os.path.abspath(root))
    f = os.path.normpath(os.path.abspath(folder))
    if f == r:
        return ()
    rel = os.path.relpath(f, r)
    parts = tuple(Path(rel).parts)
    if not parts or parts[0] == os.pardir or os.path.isabs(rel):
        raise UnsafePathError(f"Refused to write {folder}: it is outside the output folder {root}.")
    return parts


def _refuse_link(path: Path, root: Path, st: os.stat_result) -> UnsafePathError:
    return UnsafePathError(f"Refused to write into {path}: it is {_kind(st.st_mode)}, not a folder "
                           f"(nothing is written outside {root}).",
                           hint="Replace it with a real folder, or choose another output folder.")


def _make_root(root: Path) -> None:
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"The output folder {root} is a file.", hint="Give a folder with -o/--output-dir.") from None
    except OSError as exc:
        raise UsageError(f"Cannot create the output folder {root}: {exc.strerror or exc}") from None


def safe_folder(root: Path, folder: Path, *, create: bool = True) -> Path:
    """Check that every folder from ``root`` (which may itself be a link: the user chose it) down to
    ``folder`` is a real folder, making the missing ones when ``create``; returns ``folder``.

    UnsafePathError (exit 2) when one is a symbolic link or not a folder, or ``folder`` is outside
    ``root``. Without ``create`` a missing folder ends the check (nothing below it exists yet)."""
    parts = _below(Path(root), Path(folder))
    if create:
        _make_root(Path(root))
    cur = Path(root)
    for name in parts:
        cur = cur / name
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            if not create:
                return Path(folder)
            try:
                os.mkdir(cur)
            except FileExistsError:
                pass
            except OSError as exc:
                raise UsageError(f"Cannot create the folder {cur}: {exc.strerror or exc}") from None
            st = os.lstat(cur)
        if not _stat.S_ISDIR(st.st_mode):
            raise _refuse_link(cur, Path(root), st)
    return Path(folder)


def open_folder(root: Path, folder: Path, *, create: bool = True) -> int:
    """An open descriptor on ``folder``, reached from ``root`` one name at a time without following links
    (so the check cannot be raced); the missing folders are made. Same errors as :func:`safe_folder`.
    Only where :data:`DIR_FD`; the caller closes it."""
    parts = _below(Path(root), Path(folder))
    if create:
        _make_root(Path(root))
    try:
        fd = os.open(root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"Cannot open the output folder {root}: {exc.strerror or exc}") from None
    cur = Path(root)
    try:
        for name in parts:
            cur = cur / name
            if create:
                try:
                    os.mkdir(name, dir_fd=fd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise UsageError(f"Cannot create the folder {cur}: {exc.strerror or exc}") from None
            try:
                nfd = os.open(name, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (_errno.ELOOP, _errno.ENOTDIR, _errno.EMLINK):
                    raise _refuse_link(cur, Path(root), os.stat(name, dir_fd=fd, follow_symlinks=False)) from None
                raise UsageError(f"Cannot open the folder {cur}: {exc.strerror or exc}") from None
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_target(name: str, shown: Path, dir_fd: int | None) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not _stat.S_ISREG(st.st_mode):
        raise UnsafePathError(f"Refused to write {shown}: it is {_kind(st.st_mode)}.",
                              hint="Move it away, or write somewhere else.")


def write_atomic(path: Path | str, data: bytes | str | Iterable[bytes], *, mode: int = 0o644,
                 root: Path | str | None = None, durable: bool = True) -> Path:
    """Write ``data`` (str is UTF-8; an iterable of bytes is written piece after piece, so a large document
    need not be held in one string) as the whole content of ``path``: a temporary file in the same folder
    (created exclusively, never through a link), flushed (``fsync`` when ``durable``), then renamed over
    ``path``. Returns ``path``.

    ``mode`` is the new file's permissions (reduced by the umask, except private modes such as 0o600,
    which are set exactly). An existing ``path`` that is a symbolic link, a folder or a device is refused
    (UnsafePathError, exit 2); so is any folder between ``root`` and the file that is a link or not a
    folder (missing ones are made). Without ``root`` the folder must exist. Other OS errors (disk full,
    read-only) propagate as OSError, and the temporary file is removed.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    dir_fd = _folder_fd(root, path)
    try:
        base = path.name if dir_fd is not None else str(path)
        _check_target(base, path, dir_fd)
        fd, tmp = _create_temp(path, dir_fd, mode)
        try:
            try:
                if not (mode & 0o077) and hasattr(os, "fchmod"):
                    os.fchmod(fd, mode)  # a private file gets exactly its mode, whatever the umask
                if isinstance(data, (bytes, bytearray, memoryview)):
                    _write_all(fd, data)
                else:
                    for piece in data:
                        _write_all(fd, piece)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return path


def _create_temp(path: Path, dir_fd: int | None, mode: int) -> tuple[int, str]:
    """A new file next to ``path`` (exclusive, not through a link): (descriptor, its name or path)."""
    import secrets

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
    for _ in range(100):
        name = f".{path.name[:100]}.{secrets.token_hex(4)}.tmp"
        where = name if dir_fd is not None else str(path.with_name(name))
        try:
            fd = os.open(where, flags, mode, dir_fd=dir_fd)
        except FileExistsError:
            continue
        return fd, where
    raise FileExistsError(_errno.EEXIST, "no free temporary name", str(path))  # pragma: no cover


def open_append(path: Path | str, *, root: Path | str | None = None, mode: int = 0o644) -> int:
    """A descriptor open for appending to ``path`` (created when missing), never through a symbolic link;
    UnsafePathError when it is not a regular file (a device, a pipe) or, with ``root``, when a folder on
    the way is a link. The caller closes it (``os.fdopen(fd, "a")`` makes a text file of it)."""
    path = Path(path)
    if root is not None:
        safe_folder(Path(root), path.parent)
    return _open_append(str(path), path, None, mode)


def _open_append(where: str, shown: Path, dir_fd: int | None, mode: int) -> int:
    """Open ``where`` (a name in ``dir_fd``, or a path) for appending, created when missing, not through a link."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(where, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (_errno.ELOOP, _errno.EMLINK):
            raise UnsafePathError(f"Refused to write {shown}: it is a symbolic link.") from None
        if exc.errno == _errno.ENXIO:  # a pipe nobody reads, a device without its driver
            st = os.stat(where, dir_fd=dir_fd, follow_symlinks=False)
            raise UnsafePathError(f"Refused to write {shown}: it is {_kind(st.st_mode)}.") from None
        raise
    st = os.fstat(fd)
    if not _stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafePathError(f"Refused to write {shown}: it is {_kind(st.st_mode)}.")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd


def _folder_fd(root: Path | str | None, path: Path, create: bool = True) -> int | None:
    """For a write under ``root``: a descriptor on ``path``'s folder where :data:`DIR_FD` (walked from ``root``
    without following links), else None after the same check by name. None without ``root``."""
    if root is None:
        return None
    if DIR_FD:
        return open_folder(Path(root), path.parent, create=create)
    safe_folder(Path(root), path.parent, create=create)
    return None


def append_file(path: Path | str, data: bytes, *, root: Path | str | None = None, durable: bool = True,
                mode: int = 0o644) -> None:
    """Append ``data`` to ``path`` (created when missing) with ``O_APPEND`` in one ``write``, then flush it to
    disk (``fsync`` when ``durable``), with the checks of :func:`write_atomic`: never through a symbolic link,
    never onto a device (UnsafePathError, exit 2), and with ``root`` every folder from ``root`` down to the
    file a real folder (missing ones are made). A crash mid-write can leave only the start of ``data``."""
    path = Path(path)
    dir_fd = _folder_fd(root, path)
    try:
        fd = _open_append(path.name if dir_fd is not None else str(path), path, dir_fd, mode)
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def check_target(path: Path | str) -> None:
    """UnsafePathError (exit 2) when ``path`` exists and is not a regular file (a link, a folder, a device):
    what :func:`write_atomic` and :func:`append_file` refuse to write."""
    _check_target(str(path), Path(path), None)


def remove_file(path: Path | str, *, root: Path | str | None = None) -> None:
    """Remove the regular file ``path`` (nothing when it is missing), found from ``root`` without following
    links like :func:`write_atomic`; a link or anything else that is not a regular file is refused
    (UnsafePathError), not removed."""
    path = Path(path)
    dir_fd = _folder_fd(root, path, create=False)
    try:
        base = path.name if dir_fd is not None else str(path)
        _check_target(base, path, dir_fd)
        try:
            os.unlink(base, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


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
    #: The first bytes of a body are written as they arrive, so a download that stalls (or a process that is
    #: killed) early still has what came on disk; batching starts after this many bytes.
    EAGER_BYTES = 256 * 1024

    def __init__(self, fd: int, h: Any, on_written: Callable[[int], Any], *, threaded: bool,
                 size: int = WRITE_SIZE, depth: int = 4):
        self.fd = fd
        self.h = h
        self.on_written = on_written
        self.size = size
        self.batch: list[bytes] = []
        self.pending = 0
        self.handed = 0
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
        self.handed += n
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
        if self.pending >= self.size or len(self.batch) >= self.MAX_PIECES or self.handed < self.EAGER_BYTES:
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


# ------------------------------------------------------------------------------------------------
# Claims: which process writes which name
# ------------------------------------------------------------------------------------------------
#
# Several ``sogni`` processes may save into one folder at once. A final name belongs to the process that
# holds an exclusive ``flock`` on its ``NAME.part`` (kept open from the claim until the file is in place);
# a process that finds the part locked takes another name, and the part is only ever truncated, never
# replaced, while it is held. The file goes into place with ``link(part, final)`` (which fails when the
# final name appeared meanwhile) and then the part is removed; where hard links are not available,
# ``os.replace`` after a check. Locks are ``flock`` on POSIX and ``msvcrt.locking`` on Windows (one byte far
# past the data, so readers of the file are never blocked); where neither exists every lock succeeds and only
# the no-clobber rename protects the files.

#: errno values that mean "this file system does not do that" (locks, hard links): carry on without it
_UNSUPPORTED = frozenset(e for e in (getattr(_errno, n, None) for n in
                                     ("ENOLCK", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EINVAL")) if e is not None)
_NO_LINK = frozenset(e for e in (getattr(_errno, n, None) for n in
                                 ("EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EMLINK", "EXDEV"))
                     if e is not None)


#: The byte ``msvcrt.locking`` locks: Windows locks are mandatory, so the lock sits past any real data.
_MSVCRT_LOCK_AT = 0x7FFFFFF0
_MSVCRT_BUSY = frozenset(e for e in (getattr(_errno, n, None) for n in ("EACCES", "EDEADLK", "EDEADLOCK"))
                         if e is not None)


def _msvcrt_lock(fd: int, mode: int) -> None:
    """``msvcrt.locking`` on the lock byte; the file position is left where it was."""
    pos = os.lseek(fd, 0, os.SEEK_CUR)
    os.lseek(fd, _MSVCRT_LOCK_AT, os.SEEK_SET)
    try:
        _msvcrt.locking(fd, mode, 1)
    finally:
        os.lseek(fd, pos, os.SEEK_SET)


def try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False when another open file holds it.
    True where locks do not exist (neither ``fcntl`` nor ``msvcrt``, or a file system without them).
    The lock lasts until ``fd`` is closed."""
    try:
        if _fcntl is not None:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        elif _msvcrt is not None:
            _msvcrt_lock(fd, _msvcrt.LK_NBLCK)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (_errno.EWOULDBLOCK, _errno.EAGAIN) or exc.errno in _MSVCRT_BUSY:
            return False
        if exc.errno in _UNSUPPORTED:
            return True
        raise
    return True


def _wait_lock(fd: int) -> None:
    """Take an exclusive lock on ``fd``, waiting as long as another holder keeps it."""
    if _fcntl is not None:
        _fcntl.flock(fd, _fcntl.LOCK_EX)
        return
    import time

    delay = 0.005
    while not try_lock(fd):
        time.sleep(delay)  # msvcrt has no unbounded wait: poll, backing off to 0.2 s
        delay = min(delay * 2, 0.2)


def _open_folder_lock(folder: Path) -> int:
    """A descriptor to lock ``folder`` with: the folder itself on POSIX; on Windows (folders cannot be opened
    as files) a hidden ``.sogni.lock`` file in it."""
    if _fcntl is not None:
        return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    return os.open(Path(folder) / ".sogni.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
                   | getattr(os, "O_NOINHERIT", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)


def folder_lock_fd(folder: Path) -> int:
    """An open descriptor that another process would lock to hold ``folder`` (close it when done)."""
    return _open_folder_lock(folder)


@contextmanager
def locked_folder(folder: Path):
    """Hold an exclusive lock on the folder (waiting for it) for the ``with`` block. On POSIX no file is
    created; on Windows a hidden ``.sogni.lock`` file is. Without any lock mechanism, or when the folder
    cannot be opened or locked, the block runs unlocked."""
    fd = -1
    if _fcntl is not None or _msvcrt is not None:
        try:
            fd = _open_folder_lock(folder)
            _wait_lock(fd)
        except OSError:
            if fd >= 0:
                os.close(fd)
            fd = -1
    try:
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class PartClaim:
    """The right to write ``part`` and put it into place as ``final``: ``fd`` is open on the part and
    holds its lock until :meth:`release`.

    ``base`` is the name the template gave (the start of the ``-N`` suffixes); ``overwrite``: the part
    replaces ``final`` (``--on-exists overwrite``) instead of being linked without clobbering; ``private``:
    a temporary part (its usual name was held by another process), never resumed, always removed.
    """

    def __init__(self, final: Path, part: Path, fd: int, *, private: bool = False, fresh: bool = False):
        self.final = final
        self.part = part
        self.fd = fd
        self.private = private
        self.base = final
        self.overwrite = False
        self.used = False  # handed to a job (which releases it)
        #: the part was created by this claim and its writer has not written to it yet: it is empty at
        #: position 0 (the writer clears this before its first byte)
        self.fresh = fresh
        #: no sidecar exists next to the part (it was removed since the claim, and none was written since)
        self.no_sidecar = False
        self.placed = False  # the part was moved to its final name: the path is no longer this claim's

    @property
    def sidecar(self) -> Path:
        return self.part.with_name(self.part.name + ".json")

    def _owns_path(self) -> bool:
        """Whether ``part`` is still the file this claim holds (not moved into place, not another's)."""
        try:
            return self.fd >= 0 and _same_file(os.lstat(self.part), os.fstat(self.fd))
        except OSError:
            return False

    def reset(self) -> None:
        """Drop what the part holds and its sidecar (the part stays, empty and held, at position 0)."""
        _unlink(self.sidecar)
        self.no_sidecar = True
        if self._owns_path():
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)

    def drop_sidecar(self) -> None:
        """Remove the part's sidecar (once: later calls do nothing until :attr:`no_sidecar` is cleared)."""
        if not self.no_sidecar:
            _unlink(self.sidecar)
            self.no_sidecar = True

    def size(self) -> int:
        return os.fstat(self.fd).st_size if self.fd >= 0 else 0

    def release(self, keep: bool = True) -> None:
        """Let the name go. The part (with its sidecar) stays for a later resume when ``keep`` and it holds
        bytes; otherwise it is removed. Safe to call twice."""
        if self.fd < 0:
            return
        try:
            if self.placed:
                pass  # the file is in place: nothing of this claim is left to remove
            elif self._owns_path() and (self.private or not keep or self.size() == 0):
                _unlink(self.sidecar)
                _unlink(self.part)
        finally:
            os.close(self.fd)
            self.fd = -1


_OPEN_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))


def lock_part(final: Path, *, check_final: bool = True) -> "PartClaim | str":
    """Claim ``final`` by locking ``final.part`` (created empty when missing).

    Returns the claim, or why not: ``"busy"`` (another process holds the part), ``"exists"`` (with
    ``check_final``: the final name exists, checked once the part is held), ``"unusable"`` (the part is a
    symlink or not a regular file).
    """
    part = final.with_name(final.name + ".part")
    try:  # the usual case: no part yet, so this one is new, empty and nobody else's
        fd = os.open(part, _OPEN_FLAGS | os.O_EXCL, 0o644)
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno in (_errno.ELOOP, _errno.EISDIR, _errno.ENXIO, _errno.EMLINK):
            return "unusable"
        raise
    else:
        if not try_lock(fd):  # another process opened it since and holds it
            os.close(fd)
            return "busy"
        if check_final and os.path.lexists(final):
            os.close(fd)
            _unlink(part)
            return "exists"
        return PartClaim(final, part, fd, fresh=True)
    while True:
        try:
            fd = os.open(part, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            if exc.errno in (_errno.ELOOP, _errno.EISDIR, _errno.ENXIO, _errno.EMLINK):
                return "unusable"
            raise
        keep = False
        try:
            if not try_lock(fd):
                return "busy"
            st = os.fstat(fd)
            try:
                now = os.lstat(part)
            except FileNotFoundError:
                continue  # the holder finished and removed it while we waited: try again
            if not _same_file(st, now):
                continue  # replaced meanwhile: lock the file that is there now
            if not _stat.S_ISREG(st.st_mode):
                return "unusable"
            if check_final and os.path.lexists(final):
                if st.st_size == 0:  # made just now by us (or an empty leftover): not needed
                    _unlink(part.with_name(part.name + ".json"))
                    _unlink(part)
                return "exists"
            keep = True
            return PartClaim(final, part, fd)
        finally:
            if not keep:
                os.close(fd)


def private_part(final: Path) -> PartClaim:
    """A claim on a new temporary part next to ``final`` (for a name whose usual part another process holds)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=str(final.parent), prefix="." + final.name[:100] + ".", suffix=".part")
    try_lock(fd)
    return PartClaim(final, Path(tmp), fd, private=True)


def hold_name(path: Path, got: Path, mode: str, next_name: Callable[[], Path]) -> "PartClaim | str":
    """Hold ``got``, the name chosen under ``--on-exists mode`` for the template's name ``path`` (``got``
    differs from ``path`` when it is a ``-N`` name).

    When another process holds its part, or saved it since it was chosen: ``next_name()`` is tried next,
    except for the template's own name under ``overwrite`` (a temporary part that replaces the file at the
    end: the last writer wins) and under ``skip``/``error``, where the answer is why not (``"busy"``,
    ``"exists"``, ``"unusable"``) for the caller to skip or to refuse.
    """
    while True:
        own = got == path
        c = lock_part(got, check_final=not (own and mode == "overwrite"))
        if isinstance(c, PartClaim):
            c.base, c.overwrite = path, own and mode == "overwrite"
            return c
        if own and mode == "overwrite":
            c = private_part(got)
            c.base, c.overwrite = path, True
            return c
        if own and mode in ("skip", "error"):
            return c
        got = next_name()


def put_in_place(claim: PartClaim, mode: str, next_claim: Callable[[], PartClaim]) -> Path | None:
    """Move the claim's finished part to its final name; returns where it went. The sidecar goes first.

    ``overwrite`` replaces atomically. Otherwise an existing file is never replaced: when one appeared
    under the final name since the claim, the part goes to the next free ``-N`` name (``next_claim()``,
    held while the part is linked there), or — for the template's own name under ``skip``/``error`` —
    nothing moves and the answer is None.
    """
    if not claim.no_sidecar:
        _unlink(claim.sidecar)
        claim.no_sidecar = True
    if claim.overwrite:
        os.replace(claim.part, claim.final)
        claim.placed = True
        return claim.final
    try:
        link_no_clobber(claim.part, claim.final)
        claim.placed = True
        return claim.final
    except FileExistsError:
        pass
    if claim.final == claim.base and mode in ("skip", "error"):
        return None
    while True:
        nxt = next_claim()
        try:
            link_no_clobber(claim.part, nxt.final)
        except FileExistsError:
            continue
        finally:
            nxt.release(keep=False)
        claim.placed = True
        return nxt.final


def link_no_clobber(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` unless ``dst`` exists (FileExistsError, ``src`` left alone): a hard link and
    an unlink, so an existing file is never replaced. Where hard links are not available, ``os.replace``
    after a check (a file appearing between the two is the only gap)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except (AttributeError, NotImplementedError):
        pass
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    else:
        _unlink(src)
        return
    if os.path.lexists(dst):
        raise FileExistsError(_errno.EEXIST, "File exists", str(dst))
    os.replace(src, dst)
