"""The download record of an output folder: which files were saved there, as which artifact.

Two files, both in the output folder:

- ``.sogni-downloads.json``, the record: one compact JSON document ``{"version": 1, "files": {NAME: ENTRY}}``
  (each entry holds the artifact's identity, its size, modification time, sha256 and content type).
- ``.sogni-downloads.jsonl``, its journal: what changed since the record was last written, one JSON line
  per change, each in the record's own shape — ``{"version": 1, "files": {NAME: ENTRY}}`` sets an entry,
  ``{"version": 1, "files": {NAME: null}}`` removes one (a file that is gone).

A batch of saved files appends its lines to the journal (one ``write`` with ``O_APPEND``, not synced: see
:func:`record_saved`), so the work per saved file does not grow with the size of the folder. When the journal holds more lines
than ``max(64, entries in the record)``, the writer folds it into the record (the record is rewritten
atomically) and then removes the journal; a crash between the two leaves a journal whose lines are already
in the record, and applying them again changes nothing. Writes happen under a lock on the folder (and one
in this process), never through a symbolic link or a folder that is one.

Every reader sees the record with the journal's lines applied in order, later lines winning: exactly what a
rewrite of the whole record would have held. A last line cut short (a crash mid-append) is ignored; any other
line that is not valid, a journal that is not a regular file, or a record that is not valid make the whole
record read as empty (nothing is taken for already saved), and the next writer writes the record again.
"""

from __future__ import annotations

import json
import os
import stat as _stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

RECORD_NAME = ".sogni-downloads.json"
JOURNAL_NAME = ".sogni-downloads.jsonl"
IDENTITY_VERSION = 1
#: the journal is folded into the record when it holds more lines than this or than the record's entries
JOURNAL_MIN_LINES = 64
_RECORD_MAX = 16 << 20
_RECORD_LOCK = threading.Lock()  # one writer of any record at a time in this process (jobs run in threads)
#: how much of the record is written at a time
_RECORD_PIECE = 32 * 1024
_HEAD = b'{"version":%d,"files":{' % IDENTITY_VERSION
_O_READ = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
           | getattr(os, "O_NONBLOCK", 0))


def read_json_limited(path: Path, limit: int) -> Any:
    """The JSON in a regular file of at most ``limit`` bytes (symlinks are not followed), else None."""
    try:
        st = os.lstat(path)
        if not _stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with open(path, "rb") as fh:
            return json.loads(fh.read(limit + 1))
    except (OSError, ValueError):
        return None


def _files_of(doc: Any) -> dict[str, Any] | None:
    """The ``files`` of a record document (or of a journal line), None when it is not one."""
    files = doc.get("files") if isinstance(doc, dict) and doc.get("version") == IDENTITY_VERSION else None
    return files if isinstance(files, dict) else None


@dataclass
class _State:
    files: dict[str, dict[str, Any]]  # the record with the journal applied
    in_record: int = 0  # entries in the record file itself
    lines: int = 0  # whole lines in the journal
    clean: bool = True  # both read well and the journal ends with a whole line (nothing to repair)


def _load_once(folder: Path) -> tuple[_State, bool]:
    """The folder's record with its journal applied, and whether the journal stayed the same file while
    it was read (the journal is opened first and read last, so lines folded into the record meanwhile are
    only applied again, which changes nothing)."""
    jpath = folder / JOURNAL_NAME
    jfd = -1
    bad = False
    try:
        jfd = os.open(jpath, _O_READ)
    except FileNotFoundError:
        pass
    except OSError:
        bad = True  # a link, a folder, unreadable
    try:
        rpath = folder / RECORD_NAME
        got = _files_of(read_json_limited(rpath, _RECORD_MAX))
        if got is None and os.path.lexists(rpath):
            bad = True
        state = _State({k: v for k, v in (got or {}).items() if isinstance(k, str) and isinstance(v, dict)})
        state.in_record = len(state.files)
        if jfd < 0 or bad:
            return (_State({}, clean=False) if bad else state), True
        st = os.fstat(jfd)
        if not _stat.S_ISREG(st.st_mode) or st.st_size > _RECORD_MAX:
            return _State({}, clean=False), True
        with os.fdopen(os.dup(jfd), "rb") as fh:
            data = fh.read(_RECORD_MAX + 1)
        if not _apply(state, data):
            return _State({}, clean=False), True
        try:
            now = os.lstat(jpath)
            stable = (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)
        except OSError:
            stable = False
        return state, stable
    finally:
        if jfd >= 0:
            os.close(jfd)


def _apply(state: _State, data: bytes) -> bool:
    """Apply the journal's whole lines to ``state`` in order; False when one is not valid."""
    body, newline, torn = data.rpartition(b"\n")
    if torn:
        state.clean = False  # cut short by a crash: ignored, and the next writer folds the journal in
    if not newline:
        return True
    files = state.files
    for line in body.split(b"\n"):
        try:
            change = _files_of(json.loads(line))
        except ValueError:
            return False
        if change is None:
            return False
        for name, entry in change.items():
            if entry is None:
                files.pop(name, None)
            elif isinstance(entry, dict):
                files[name] = entry
            else:
                return False
        state.lines += 1
    return True


def _load(folder: Path) -> _State:
    for _ in range(3):  # the journal was folded in and replaced while it was read: read again
        state, stable = _load_once(folder)
        if stable:
            break
    return state


def read_record(output_dir: Path) -> dict[str, dict[str, Any]]:
    """File name → entry from the output folder's download record, its journal applied ({} when there is
    none or it is bad)."""
    return _load(Path(output_dir)).files


@dataclass
class _Cached:
    signature: tuple[Any, ...]  # of the record and the journal, when last read or written here
    files: dict[str, bytes]  # name → its member as written (see _encoded)
    in_record: int
    lines: int


#: record file → what this process last read or wrote there: a batch of downloads re-reads (and prunes) the
#: record only when another process changed it. Each entry is kept as the bytes it is written as (a few
#: hundred, where its dict takes kilobytes), so folding the journal in neither encodes the entries again
#: nor builds the whole document in one string.
_RECORD_CACHE: dict[str, _Cached] = {}


def forget_cached_records() -> None:
    """Forget what this process read or wrote of every record: the next batch reads each record afresh, as a
    new process would."""
    _RECORD_CACHE.clear()


def _signature(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def record_saved(output_dir: Path, saved: Iterable[tuple[Any, dict[str, Any]]], *,
                 root: Path | None = None) -> None:
    """Add saved files (each a :class:`~sogni_cli.media.downloads.SavedFile` with its identity) to the output
    folder's download record; entries for files that are gone are dropped.

    Under a lock on the folder (and a lock in this process), so processes saving into one folder at once
    each add their entries and none is lost: the changes are appended to the journal, or, when it is due
    (see the module docstring), the record is rewritten with them and the journal removed."""
    entries: dict[str, dict[str, Any]] = {}
    for item, ident in saved:
        path = Path(item.path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        entries[path.name] = dict(ident, bytes=st.st_size, mtime_ns=st.st_mtime_ns, sha256=item.sha256,
                                  content_type=item.content_type)
    if not entries:
        return
    folder = Path(output_dir)
    record_file, journal = folder / RECORD_NAME, folder / JOURNAL_NAME
    key = str(record_file)
    from ..core.filewrite import append_file, check_target, locked_folder, remove_file

    root = root or folder
    with _RECORD_LOCK, locked_folder(folder):
        check_target(journal)  # never through a link, like the record itself
        sig = (_signature(record_file), _signature(journal))
        cached = _RECORD_CACHE.pop(key, None)
        gone: list[bytes] = []
        if cached is not None and cached.signature == sig:
            files, in_record, lines, clean = cached.files, cached.in_record, cached.lines, True
        else:
            state = _load(folder)
            files = {}
            for name, entry in state.files.items():
                if os.path.lexists(folder / name):
                    files[name] = _encoded(name, entry)
                else:
                    gone.append(_removal(name))
            in_record, lines, clean = state.in_record, state.lines, state.clean
        changes = list(gone)
        for name, entry in entries.items():
            files[name] = member = _encoded(name, entry)
            changes.append(member)
        if sig[0] is not None and clean and lines + len(changes) <= max(JOURNAL_MIN_LINES, in_record):
            # not synced: neither are the files it names, and an entry only counts while its file still has
            # the size and modification time it names (a line lost in a crash means one file not known)
            append_file(journal, b"".join(_HEAD + m + b"}}\n" for m in changes), root=root, durable=False)
            lines += len(changes)
        else:
            if gone and sig[1] is not None and clean:
                # the journal may still set the entries dropped now: say so in it first, so that a crash
                # between the rewrite and its removal leaves a journal that changes nothing
                append_file(journal, b"".join(_HEAD + m + b"}}\n" for m in gone), root=root)
            write_record_file(record_file, files, root=root)
            if sig[1] is not None:
                remove_file(journal, root=root)
            in_record, lines = len(files), 0
        _RECORD_CACHE[key] = _Cached((_signature(record_file), _signature(journal)), files, in_record, lines)


def write_record_file(path: Path, files: dict[str, bytes], *, root: Path | None = None) -> None:
    """Write the download record ``{"version": …, "files": {…}}`` from its members as encoded by
    :func:`_encoded` (compact JSON, the same document ``json.dumps(doc, separators=(",", ":"))`` makes),
    with the one file writer, in pieces of about :data:`_RECORD_PIECE` bytes."""
    from ..core.filewrite import write_atomic

    write_atomic(path, _record_pieces(files), root=root)


def _encoded(name: str, entry: dict[str, Any]) -> bytes:
    """One ``"name":{entry}`` member of the record's ``files`` object, as written (compact JSON)."""
    return (json.dumps(name, ensure_ascii=False) + ":"
            + json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)).encode("utf-8")


def _removal(name: str) -> bytes:
    return (json.dumps(name, ensure_ascii=False) + ":null").encode("utf-8")


def _record_pieces(files: dict[str, bytes]) -> Iterable[bytes]:
    piece = bytearray(_HEAD)
    first = True
    for member in files.values():
        if not first:
            piece += b","
        first = False
        piece += member
        if len(piece) >= _RECORD_PIECE:
            yield bytes(piece)
            piece.clear()
    piece += b"}}"
    yield bytes(piece)
