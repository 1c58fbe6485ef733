"""Line-level edits of config.yaml that keep the user's comments, order and formatting.

The file's usual shape is::

    profiles:
      default:
        model: qwen3.6-35b-a3b-gguf-iq4xs   # a comment stays where it is
      staging:
        base_url: https://api-staging.sogni.ai

:func:`set_value` changes or adds one ``key: value`` line under a profile, :func:`unset_value` removes one.
Everything else in the file is left byte for byte. When the file has another shape (flow style, anchors,
a key spread over several lines) the edit is ``None`` and :func:`update_profile_setting` (what
``config set``/``unset`` call) writes the whole file anew, with a warning.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .config import parse_config, read_config_text
from .errors import UsageError

_KEY_LINE = re.compile(r"^(?P<indent>[ ]*)(?P<key>[A-Za-z0-9_.-]+|\"[^\"]*\"|'[^']*')[ ]*:(?P<rest>.*)$")


def _meaningful(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _unquote(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
        return key[1:-1]
    return key


def _comment_of(rest: str) -> str:
    """The trailing ``  # comment`` of a plain scalar line (with its leading spaces), or ""."""
    m = re.search(r"\s+#.*$", rest)
    return m.group(0) if m else ""


def scalar(value: Any) -> str:
    """``value`` as a one-line YAML scalar that reads back as the same value."""
    import yaml

    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    plain = text
    try:
        if (plain and plain == plain.strip() and "#" not in plain and ": " not in plain and "\n" not in plain
                and yaml.safe_load(f"k: {plain}") == {"k": text}):
            return plain
    except yaml.YAMLError:
        pass
    return json.dumps(text, ensure_ascii=False)


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the last line of the block that begins at ``start`` (lines indented deeper than ``indent``),
    not counting trailing blank or comment lines."""
    end = start + 1
    last = start
    while end < len(lines):
        line = lines[end]
        if _meaningful(line):
            if _indent(line) <= indent:
                break
            last = end
        end += 1
    return last + 1


def _find_child(lines: list[str], start: int, end: int, parent_indent: int, name: str) -> tuple[int | None, int | None]:
    """(line index of ``name:`` directly under the parent, indent of the parent's children)."""
    child_indent = None
    for i in range(start, end):
        line = lines[i]
        if not _meaningful(line):
            continue
        ind = _indent(line)
        if ind <= parent_indent:
            break
        if child_indent is None:
            child_indent = ind
        if ind != child_indent:
            continue
        m = _KEY_LINE.match(line)
        if m and _unquote(m.group("key")) == name:
            return i, child_indent
    return None, child_indent


def _split(text: str) -> tuple[list[str], str]:
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    if lines and lines[-1] == "":
        lines.pop()
    return lines, newline


def _join(lines: list[str], newline: str) -> str:
    return newline.join(lines) + newline if lines else ""


def _profile_block(lines: list[str], profile: str) -> tuple[int | None, int | None, int | None]:
    """(index of ``profiles:``, index of ``  PROFILE:``, indent of the profile's name), where present."""
    top, _ = _find_child(lines, 0, len(lines), -1, "profiles")
    if top is None:
        return None, None, None
    m = _KEY_LINE.match(lines[top])
    if m is None or _indent(lines[top]) != 0 or m.group("rest").split("#", 1)[0].strip():
        raise ValueError("profiles is not a block")
    end = _block_end(lines, top, 0)
    prof, indent = _find_child(lines, top + 1, end, 0, profile)
    return top, prof, indent


def set_value(text: str, profile: str, key: str, value: Any) -> str | None:
    """``text`` with ``profiles.PROFILE.KEY`` set to ``value``; None when the file's shape is not the simple one."""
    try:
        return _set(text, profile, key, value)
    except ValueError:
        return None


def _set(text: str, profile: str, key: str, value: Any) -> str:
    lines, nl = _split(text)
    if any("\t" in line[: _indent(line) + 1] for line in lines if _meaningful(line)):
        raise ValueError("tabs")
    top, prof, pindent = _profile_block(lines, profile)
    new = f"{key}: {scalar(value)}"
    if top is None:
        lines += ["profiles:", f"  {scalar(profile)}:", f"    {new}"]
        return _join(lines, nl)
    if prof is None:
        step = pindent or 2
        end = _block_end(lines, top, 0)
        lines[end:end] = [" " * step + f"{scalar(profile)}:", " " * (step * 2) + new]
        return _join(lines, nl)
    pm = _KEY_LINE.match(lines[prof])
    assert pm is not None
    if pm.group("rest").split("#", 1)[0].strip():  # `default: {}` or `default: null`: not a block
        raise ValueError("profile is not a block")
    pind = _indent(lines[prof])
    end = _block_end(lines, prof, pind)
    line_no, kindent = _find_child(lines, prof + 1, end, pind, key)
    kindent = kindent if kindent is not None else pind + (pindent or 2)
    if line_no is None:
        lines[end:end] = [" " * kindent + new]
        return _join(lines, nl)
    if _block_end(lines, line_no, kindent) != line_no + 1:
        raise ValueError("a value over several lines")
    m = _KEY_LINE.match(lines[line_no])
    assert m is not None
    rest = m.group("rest")
    old = rest.strip()
    if old[:1] in "\"'[{|>&*!":
        comment = ""
        if old[:1] in "\"'":
            close = old.find(old[0], 1)
            comment = _comment_of(old[close + 1:]) if close > 0 else ""
    else:
        comment = _comment_of(rest)
    lines[line_no] = " " * kindent + f"{m.group('key')}: {scalar(value)}" + comment
    return _join(lines, nl)


def unset_value(text: str, profile: str, key: str) -> str | None:
    """``text`` without the ``profiles.PROFILE.KEY`` line; None when the file's shape is not the simple one."""
    try:
        lines, nl = _split(text)
        top, prof, _ = _profile_block(lines, profile)
        if prof is None:
            return None
        pind = _indent(lines[prof])
        end = _block_end(lines, prof, pind)
        line_no, kindent = _find_child(lines, prof + 1, end, pind, key)
        if line_no is None or kindent is None:
            return None
        stop = _block_end(lines, line_no, kindent)
        del lines[line_no:stop]
        return _join(lines, nl)
    except ValueError:
        return None


# ----------------------------------------------------------------------------- writing config.yaml


def _write_config_text(directory: Path, text: str) -> Path:
    """Write config.yaml through the one atomic writer; an unwritable folder is a usage error naming it."""
    from .filewrite import write_atomic

    path = directory / "config.yaml"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, text)
    except OSError as exc:
        where = exc.filename if exc.filename and Path(str(exc.filename)).name == "config.yaml" else path
        raise UsageError(f"Cannot write {where}: {exc.strerror or exc}",
                         hint="Point SOGNI_CONFIG_DIR at a writable folder, or set the value with an "
                              "environment variable or flag instead.") from None


def update_profile_setting(directory: Path, profile: str, key: str, value: Any = None, *, remove: bool = False) -> Path:
    """Set (or with ``remove`` delete) one setting of ``profile`` in config.yaml, keeping the rest of the file
    as the user wrote it (comments, order, quoting). UsageError when the file cannot be written."""
    import yaml

    path = directory / "config.yaml"
    text = read_config_text(path) or ""
    data = parse_config(path, text) if text else {}
    expected = json_copy(data)
    profiles = expected.setdefault("profiles", {})
    if not isinstance(profiles, dict):
        raise UsageError(f"{path}: 'profiles' must be a mapping.")
    if remove:
        prof = profiles.get(profile)
        if not isinstance(prof, dict) or key not in prof:
            raise UsageError(f"{key} is not set in profile {profile!r}.")
        del prof[key]
        edited = unset_value(text, profile, key)
    else:
        if not isinstance(profiles.get(profile), dict):
            profiles[profile] = {}
        profiles[profile][key] = value
        edited = set_value(text, profile, key, value)
    try:
        if edited is None or (yaml.safe_load(edited) or {}) != _normal(expected):
            raise ValueError
    except (yaml.YAMLError, ValueError):
        # Not the simple shape the line editor knows: write the whole file (comments are lost).
        if text.strip():
            from .term import warn

            warn(f"{path} has a layout that cannot be edited line by line; it is rewritten and its comments are lost.")
        edited = yaml.safe_dump(expected, sort_keys=False, allow_unicode=True)
    return _write_config_text(directory, edited)


def json_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: json_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [json_copy(v) for v in data]
    return data


def _normal(data: Any) -> Any:
    """What ``data`` reads back as from YAML (an empty profile is ``None``)."""
    if isinstance(data, dict):
        out = {k: _normal(v) for k, v in data.items()}
        prof = out.get("profiles")
        if isinstance(prof, dict):
            out["profiles"] = {k: (v if v != {} else None) for k, v in prof.items()}
        return out
    return data
