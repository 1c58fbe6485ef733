"""Chat presets and model aliases: two small JSON files in the config folder.

``presets.json`` maps a name to chat options (system prompt, model, sampling, tools, …; the names of
:class:`~sogni_cli.api.chat.ChatRequest` fields). ``aliases.json`` maps a short name to a model id;
:func:`resolve_model` turns an alias into its model wherever a model is named (chat, media commands, recipes,
presets, profile defaults). Both are read without importing anything heavy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import UsageError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

#: Chat options a preset may hold (ChatRequest field names, also the recipe chat job fields).
PRESET_KEYS = ("system", "developer", "model", "max_tokens", "temperature", "top_p", "top_k", "min_p",
               "repetition_penalty", "frequency_penalty", "presence_penalty", "stop", "task_profile", "think",
               "template_kwargs", "token_type", "response_format", "tools", "no_exec", "tool_choice", "max_rounds",
               "billing_mode", "safe_content_filter")

_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def _read(path: Path) -> dict[str, Any]:
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    hit = _cache.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read {path}: {getattr(exc, 'strerror', None) or exc}",
                         hint=f"Fix or remove {path.name}.") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object.", hint=f"Fix or remove {path.name}.")
    _cache[path] = (mtime, data)
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    from .filewrite import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}") from None
    _cache.pop(path, None)


def check_name(name: str, what: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"Invalid {what} name {name!r}: letters, digits, '.', '_' and '-', at most 64.")
    return name


def _unknown(name: str, known: list[str], what: str, listing: str) -> UsageError:
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = (f"Did you mean {close[0]!r}? " if close else "") + f"See `{listing}`."
    return UsageError(f"Unknown {what} {name!r}.", hint=hint)


# ----------------------------------------------------------------------------------------- aliases


def aliases_path(config_dir: Path) -> Path:
    return Path(config_dir) / "aliases.json"


def aliases(config_dir: Path) -> dict[str, str]:
    return {str(k): str(v) for k, v in _read(aliases_path(config_dir)).items()}


def resolve_model(name: Any, config_dir: Path | None) -> Any:
    """The model an alias stands for; anything else unchanged."""
    if not isinstance(name, str) or not name or config_dir is None:
        return name
    return aliases(config_dir).get(name, name)


def set_alias(config_dir: Path, name: str, model: str) -> None:
    check_name(name, "alias")
    if not model.strip():
        raise UsageError("The model id is empty.")
    data = aliases(config_dir)
    data[name] = model.strip()
    _write(aliases_path(config_dir), data)


def remove_alias(config_dir: Path, name: str) -> None:
    data = aliases(config_dir)
    if name not in data:
        raise _unknown(name, list(data), "alias", "sogni alias list")
    del data[name]
    _write(aliases_path(config_dir), data)


# ----------------------------------------------------------------------------------------- presets


def presets_path(config_dir: Path) -> Path:
    return Path(config_dir) / "presets.json"


def presets(config_dir: Path) -> dict[str, dict[str, Any]]:
    return {str(k): v for k, v in _read(presets_path(config_dir)).items() if isinstance(v, dict)}


def get_preset(config_dir: Path, name: str) -> dict[str, Any]:
    data = presets(config_dir)
    if name not in data:
        raise _unknown(name, list(data), "preset", "sogni preset list")
    return {k: v for k, v in data[name].items() if k in PRESET_KEYS}


def save_preset(config_dir: Path, name: str, values: dict[str, Any]) -> None:
    check_name(name, "preset")
    bad = [k for k in values if k not in PRESET_KEYS]
    if bad:
        raise UsageError(f"Not a preset option: {', '.join(bad)}.")
    data = presets(config_dir)
    data[name] = values
    _write(presets_path(config_dir), data)


def remove_preset(config_dir: Path, name: str) -> None:
    data = presets(config_dir)
    if name not in data:
        raise _unknown(name, list(data), "preset", "sogni preset list")
    del data[name]
    _write(presets_path(config_dir), data)


def apply_preset(fields: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the preset's values where they have none (what is given explicitly wins)."""
    out = dict(fields)
    for key, value in preset.items():
        if out.get(key) is None:
            out[key] = value
    return out
