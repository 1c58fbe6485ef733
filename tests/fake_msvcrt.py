"""Windows' ``msvcrt.locking`` acted out on POSIX, so the locking code that Windows runs is tested here.

:func:`install` hides ``fcntl`` (``import fcntl`` fails, as on Windows) and puts a ``msvcrt`` module in
its place whose ``locking`` keeps Windows' contract: an exclusive lock per open file (here a ``flock``
taken through the real module before it was hidden), ``LK_NBLCK`` failing at once with ``EACCES`` when
another open file holds it, ``LK_UNLCK`` letting go, and closing the file releasing it.
"""

from __future__ import annotations

import errno
import os
import sys
import types

ENV = "TEST_FAKE_MSVCRT_LOCKS"  # not SOGNI_*: the test fixtures clear those


def install() -> None:
    import fcntl as real
    import subprocess  # noqa: F401 - decides Windows-or-not by importing msvcrt: let it see the real platform

    fake = types.ModuleType("msvcrt")
    fake.LK_UNLCK, fake.LK_LOCK, fake.LK_NBLCK, fake.LK_RLCK, fake.LK_NBRLCK = 0, 1, 2, 3, 4

    def locking(fd: int, mode: int, nbytes: int) -> None:
        if nbytes < 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        os.lseek(fd, 0, os.SEEK_CUR)  # the region starts at the file position: it must be a seekable file
        if mode == fake.LK_UNLCK:
            real.flock(fd, real.LOCK_UN)
            return
        wait = mode in (fake.LK_LOCK, fake.LK_RLCK)
        try:
            real.flock(fd, real.LOCK_EX | (0 if wait else real.LOCK_NB))
        except BlockingIOError:
            raise OSError(errno.EACCES, "Permission denied") from None

    fake.locking = locking
    sys.modules["fcntl"] = None  # type: ignore[assignment]
    sys.modules["msvcrt"] = fake
    os.environ[ENV] = "1"  # processes started from here act the same


def install_if_asked() -> None:
    if os.environ.get(ENV) == "1" and not isinstance(sys.modules.get("msvcrt"), types.ModuleType):
        install()
