"""File names for saved artifacts (contract §7).

Pure and standard-library only. Names never come from the server as they are: the extension comes from
the content type or the URL path (checked against :data:`EXT_ALLOWLIST`), the rest from the ``--name``
template, and the result is sanitised so that no name can leave the output folder.
"""

from __future__ import annotations

import functools
import os
import re
import string
import unicodedata
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit

from ..core.choices import ON_EXISTS
from ..core.errors import UsageError

EXT_ALLOWLIST: frozenset[str] = frozenset(
    {"png", "jpg", "jpeg", "webp", "gif", "mp4", "mov", "webm", "mp3", "wav", "flac", "m4a", "ogg", "glb",
     "json", "txt"}
)

#: Extensions Pillow must be able to open before a file is kept.
IMAGE_EXTS: frozenset[str] = frozenset({"png", "jpg", "jpeg", "webp", "gif"})

CONTENT_TYPE_EXT: dict[str, str] = {
    "image/png": "png",
    "image/x-png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/pjpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "application/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "audio/webm": "webm",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/wave": "wav",
    "audio/x-wav": "wav",
    "audio/vnd.wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "m4a",
    "audio/ogg": "ogg",
    "application/ogg": "ogg",
    "model/gltf-binary": "glb",
    "application/json": "json",
    "text/plain": "txt",
}

#: Placeholders a ``--name`` template may use.
NAME_FIELDS: tuple[str, ...] = ("index", "count", "tool", "slug", "seed", "workflow", "date", "ext")

DEFAULT_TEMPLATE = "{slug}-{index}"
MAX_NAME_LEN = 200
#: File systems count a name's length in bytes (255 on most); names stay well inside that in UTF-8.
MAX_NAME_BYTES = 200

_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f-\x9f/\\:*?"<>|]')
_DOTS = re.compile(r"\.{2,}")
#: Names Windows reserves for devices, with or without an extension (``CON``, ``con.png``, ``COM1.txt``).
WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
                             | {f"{dev}{n}" for dev in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"})


def _invisible(ch: str) -> bool:
    """Format characters (bidirectional overrides and isolates, zero-width joiners, BOM) and controls."""
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _cut_bytes(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits ``max_bytes`` (never half a character)."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


@functools.lru_cache(maxsize=256)  # a batch's files mostly share one prompt
def slugify(text: str | None, max_len: int = 40) -> str:
    """Words of ``text`` in any script, lower-cased where the script has case, joined by ``-``, at most
    ``max_len`` bytes in UTF-8 ("" when no letter or digit is left).

    The text is normalised (NFKC: full-width and compatibility forms become plain ones); letters, marks
    and digits of every script are kept; everything else (spaces, punctuation, separators, controls,
    bidirectional overrides) becomes a single ``-``.
    """
    if not text:
        return ""
    norm = unicodedata.normalize("NFKC", str(text)).lower()
    chars = [ch if unicodedata.category(ch)[0] in "LMN" else "-" for ch in norm if not _invisible(ch)]
    slug = re.sub(r"-{2,}", "-", "".join(chars)).strip("-")
    # A slug never starts with a combining mark (it would attach to the character before it).
    slug = slug.lstrip("".join(ch for ch in slug[:1] if unicodedata.category(ch).startswith("M"))).strip("-")
    slug = unicodedata.normalize("NFC", slug)
    if len(slug.encode("utf-8")) > max_len:
        cut = _cut_bytes(slug, max_len)
        # Prefer ending on a whole word when that keeps at least half the length.
        rest = slug[len(cut):]
        if rest[:1] != "-" and "-" in cut[len(cut) // 2:]:
            cut = cut[: cut.rindex("-")]
        slug = cut.strip("-")
    return slug


def clash_key(name: str) -> str:
    """What two names must differ in to be two files everywhere: case-insensitive file systems (macOS,
    Windows) treat ``Fox.png`` and ``fox.png`` as one file, and macOS also equates Unicode normal forms."""
    return unicodedata.normalize("NFC", name).casefold()


def _normalize_ext(ext: str | None) -> str | None:
    if not ext:
        return None
    ext = ext.strip().lower().lstrip(".")
    if ext == "jpeg":
        ext = "jpg"
    return ext if ext in EXT_ALLOWLIST else None


def ext_for_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    return CONTENT_TYPE_EXT.get(mime)


def ext_from_url(url: str | None) -> str | None:
    """The allowed extension of the URL path's last segment (query and fragment ignored), or None."""
    if not url:
        return None
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    last = unquote(path).replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in last:
        return None
    ext = last.rsplit(".", 1)[1]
    if not ext.isalnum():
        return None
    return _normalize_ext(ext)


def ext_for(url: str, content_type: str | None) -> str | None:
    """Extension for an artifact: from the content type first, then the URL path; None when not allowed."""
    return ext_for_content_type(content_type) or ext_from_url(url)


def template_fields(template: str | None) -> set[str]:
    """The placeholder names a template uses (UsageError on malformed or unknown placeholders)."""
    return {name for _, name, _ in _parse_template(template or DEFAULT_TEMPLATE) if name is not None}


@functools.lru_cache(maxsize=32)
def _parse_template(template: str) -> tuple[tuple[str, str | None, str], ...]:
    allowed = ", ".join("{" + f + "}" for f in NAME_FIELDS)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"Invalid --name template {template!r}: {exc}", f"Placeholders: {allowed}") from None
    out: list[tuple[str, str | None, str]] = []
    for literal, name, spec, conv in parsed:
        if name is None:
            out.append((literal, None, ""))
            continue
        if name not in NAME_FIELDS:
            shown = "{" + name + "}" if name else "{}"
            raise UsageError(f"Unknown placeholder {shown} in --name template", f"Placeholders: {allowed}")
        if conv is not None or (spec and "{" in spec):
            raise UsageError(f"Unsupported placeholder format in --name template {template!r}",
                             f"Placeholders: {allowed} (a format spec such as {{index:03}} is allowed)")
        out.append((literal, name, spec or ""))
    return tuple(out)


def sanitize_name(name: str) -> str:
    """Strip everything that could make a file name escape or misbehave: separators, ``..``, control and
    format characters (bidirectional overrides), characters Windows refuses (``<>:"|?*``), a leading dot
    or ``-``, trailing dots and spaces, and Windows device names (``CON`` becomes ``CON_``)."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE_CHARS.sub("-", name)
    # no control characters (C1 too) and no format characters such as bidirectional overrides/isolates, which
    # make a name display as another
    if not name.isascii():  # an ASCII name has no format characters, and its controls went just above
        name = "".join("-" if _invisible(c) else c for c in name)
    name = _DOTS.sub(".", name)
    name = re.sub(r"^[\s.\-]+", "", name).strip()  # never hidden, never read as an option (`--name ../x`)
    name = name.rstrip(". ")  # trailing dots/spaces are not portable
    first, dot, rest = name.partition(".")
    if first.rstrip(" ").upper() in WINDOWS_RESERVED:
        name = first.rstrip(" ") + "_" + dot + rest
    return name


def render_name(template: str | None, fields: dict[str, Any]) -> str:
    """Render a ``--name`` template into a safe file name (no directory part).

    ``fields`` holds values for :data:`NAME_FIELDS`; a missing or None value renders as "". ``.ext`` is
    appended when the template has no ``{ext}``. The result has no path separators, no ``..``, no NUL or
    control characters, no leading dot, and at most 200 characters (the extension is kept).
    """
    template = DEFAULT_TEMPLATE if template is None or not str(template).strip() else str(template)
    parts = _parse_template(template)
    ext = _normalize_ext(fields.get("ext")) or ""
    pieces: list[str] = []
    uses_ext = False
    for literal, name, spec in parts:
        pieces.append(literal)
        if name is None:
            continue
        if name == "ext":
            uses_ext = True
        value = ext if name == "ext" else fields.get(name)
        if value is None:
            value = ""
        try:
            pieces.append(format(value, spec) if spec else str(value))
        except (ValueError, TypeError):
            raise UsageError(f"Format {{{name}:{spec}}} does not fit the value {value!r} in --name template",
                             "Numbers ({index}, {count}, {seed}) take specs like {index:03}") from None
    stem = sanitize_name("".join(pieces))
    suffix = ""
    if not uses_ext and ext:
        suffix = "." + ext
    elif uses_ext and ext and stem.endswith("." + ext):
        stem, suffix = stem[: -(len(ext) + 1)], "." + ext
    room = MAX_NAME_LEN - len(suffix)
    stem = _cut_bytes(stem[:room], MAX_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip(". ")
    if not stem:
        stem = sanitize_name(str(fields.get("tool") or "")) or "artifact"
        stem = stem[:room]
    return stem + suffix


def safe_join(output_dir: Path, name: str) -> Path:
    """``output_dir / name``, refusing (UsageError) any name whose resolved path leaves ``output_dir``."""
    if not name or "\x00" in name or name in (".", ".."):
        raise UsageError(f"Refused unsafe file name {name!r}")
    candidate = Path(name)
    if candidate.is_absolute() or candidate.drive or candidate.root:
        raise UsageError(f"Refused file name outside the output folder: {name!r}")
    base = Path(output_dir).resolve()
    target = (base / candidate).resolve()
    if target == base or base not in target.parents:
        raise UsageError(f"Refused file name outside the output folder: {name!r}")
    return Path(output_dir) / candidate


def _split_ext(path: Path) -> tuple[str, str]:
    name = path.name
    if "." in name.lstrip("."):
        stem, ext = name.rsplit(".", 1)
        return stem, "." + ext
    return name, ""


class TakenNames:
    """The names chosen so far in one batch, with their clash keys (see :func:`clash_key`), so that asking
    whether a name is taken costs one look-up however many names there are.

    ``key`` is the function that makes a clash key (``clash_key`` unless told)."""

    def __init__(self, paths: Iterable[Path] = (), key: Callable[[str], str] = clash_key):
        self.key = key
        self.paths: set[Path] = set()
        self.keys: set[str] = set()
        for p in paths:
            self.add(p)

    def __contains__(self, path: object) -> bool:
        return path in self.paths or (isinstance(path, Path) and self.key(str(path)) in self.keys)

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, path: Path) -> None:
        self.paths.add(path)
        self.keys.add(self.key(str(path)))


def resolve_collision(path: Path, on_exists: str, taken: TakenNames, *, exists: bool | None = None) -> Path | None:
    """Apply ``--on-exists`` to ``path``; the chosen path is added to ``taken``.

    A name already chosen in this batch (in ``taken``, compared by :func:`clash_key`) always gets a suffix,
    whatever the mode, so that one batch never overwrites or drops its own files. For a file already on
    disk (or a link of that name): ``overwrite`` → the same path; ``skip`` → None (keep the existing file);
    ``error`` → UsageError; ``suffix`` → ``name-1.ext``, ``name-2.ext``… (skipping names on disk or in
    ``taken``). ``exists``: whether ``path`` is on disk, when the caller has just looked.
    """
    if on_exists not in ON_EXISTS:
        raise UsageError(f"Invalid --on-exists value {on_exists!r}", "Use one of: " + ", ".join(ON_EXISTS))
    in_batch = path in taken
    if not in_batch and not (os.path.lexists(path) if exists is None else exists):
        taken.add(path)
        return path
    if not in_batch:
        if on_exists == "overwrite":
            taken.add(path)
            return path
        if on_exists == "skip":
            return None
        if on_exists == "error":
            raise UsageError(f"{path} exists", "Use --on-exists suffix|overwrite|skip, or another --name.")
    stem, ext = _split_ext(path)
    n = 1
    while True:
        cand = path.with_name(f"{stem}-{n}{ext}")
        if cand not in taken and not os.path.lexists(cand):
            taken.add(cand)
            return cand
        n += 1
