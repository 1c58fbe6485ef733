"""The hosted tool catalogue as the emulator sees it.

Uses :mod:`sogni_cli.catalog` (``catalog.load().get(name)``). When that module does not offer
``load`` the emulator reads the packaged ``catalog/tools.json`` itself with a small validator, so the
emulator keeps working on its own.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_cached: Any = None

SYNC_TOOLS = (
    "enhance_prompt",
    "compose_lyrics",
    "compose_instrumental",
    "compose_script",
    "compose_workflow",
    "compose_workflow_template",
)

_TYPES: dict[str, Any] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class ToolInfo:
    """What the emulator needs of a tool: name, media, route, families and a validator."""

    def __init__(self, name: str, media: str | None, route: str, families: list[str], params: dict[str, Any],
                 validator: Any = None, additional: bool = True, inputs: dict[str, Any] | None = None,
                 open_params: bool = False):
        self.name = name
        self.inputs = dict(inputs or {})
        self.open_params = open_params
        self.media = media
        self.route = route
        self.families = families
        self.params = params
        self._validator = validator
        self._additional = additional

    def validate(self, args: Any) -> list[str]:
        if self._validator is not None:
            return list(self._validator(args))
        return _validate(self.name, self.params, self._additional, args)

    def required(self) -> list[str]:
        return [k for k, v in self.params.items() if isinstance(v, dict) and v.get("required")]


def _check_value(label: str, spec: dict[str, Any], value: Any) -> list[str]:
    problems: list[str] = []
    typ = spec.get("type")
    kinds = _TYPES.get(typ) if isinstance(typ, str) else None
    if kinds is not None:
        ok = isinstance(value, kinds) and not (typ in ("number", "integer") and isinstance(value, bool))
        if typ == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            return [f"{label} must be of type {typ}"]
    if "enum" in spec and value not in spec["enum"]:
        problems.append(f"{label} must be one of {', '.join(map(str, spec['enum']))}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in spec and value < spec["minimum"]:
            problems.append(f"{label} must be >= {spec['minimum']}")
        if "maximum" in spec and value > spec["maximum"]:
            problems.append(f"{label} must be <= {spec['maximum']}")
    if isinstance(value, str):
        if "maxLength" in spec and len(value) > spec["maxLength"]:
            problems.append(f"{label} must be at most {spec['maxLength']} characters")
        if "minLength" in spec and len(value) < spec["minLength"]:
            problems.append(f"{label} must be at least {spec['minLength']} characters")
    if isinstance(value, list):
        if "maxItems" in spec and len(value) > spec["maxItems"]:
            problems.append(f"{label} must have at most {spec['maxItems']} items")
        if "minItems" in spec and len(value) < spec["minItems"]:
            problems.append(f"{label} must have at least {spec['minItems']} items")
        items = spec.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                problems.extend(_check_value(f"{label}[{i}]", items, item))
    return problems


def _validate(name: str, params: dict[str, Any], additional: bool, args: Any) -> list[str]:
    if not isinstance(args, dict):
        return [f"{name}: arguments must be an object"]
    problems = []
    for key, spec in params.items():
        if isinstance(spec, dict) and spec.get("required") and key not in args:
            problems.append(f"{name}: missing required argument {key!r}")
    for key, value in args.items():
        spec = params.get(key)
        if spec is None:
            if not additional:
                problems.append(f"{name}: unknown argument {key!r}")
            continue
        problems.extend(f"{name}: {p}" for p in _check_value(key, spec, value))
    return problems


class _Catalogue:
    def __init__(self, tools: dict[str, ToolInfo], aliases: dict[str, str]):
        self._tools = tools
        self._aliases = aliases

    def get(self, name: str) -> ToolInfo | None:
        if not isinstance(name, str):
            return None
        if name in self._tools:
            return self._tools[name]
        if name in self._aliases:
            return self._tools[self._aliases[name]]
        if name.startswith("sogni_") and name[6:] in self._tools:
            return self._tools[name[6:]]
        return None

    def names(self) -> list[str]:
        return list(self._tools)


def _from_json() -> _Catalogue:
    path = Path(__file__).resolve().parent.parent / "catalog" / "tools.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    tools: dict[str, ToolInfo] = {}
    aliases: dict[str, str] = {}
    for t in data.get("tools", []):
        tools[t["name"]] = ToolInfo(t["name"], t.get("media"), t.get("route", "workflow"), list(t.get("families") or []),
                                    dict(t.get("parameters") or {}), additional=bool(t.get("additionalProperties", True)),
                                    inputs=t.get("inputs"), open_params=t.get("group") == "app")
        for a in t.get("aliases") or []:
            aliases[a] = t["name"]
    return _Catalogue(tools, aliases)


def _wrap(real: Any, json_cat: _Catalogue) -> _Catalogue:
    """Adapt the project catalogue (``load()``/``get()``/``validate()``) to :class:`ToolInfo`."""
    tools: dict[str, ToolInfo] = {}
    aliases: dict[str, str] = {}
    for name in json_cat.names():
        tool = real.get(name)
        if tool is None:
            continue
        base = json_cat.get(name)
        assert base is not None
        tools[name] = ToolInfo(
            name,
            getattr(tool, "media", base.media),
            getattr(tool, "route", base.route),
            list(getattr(tool, "families", None) or base.families),
            base.params,
            validator=tool.validate,
            inputs=base.inputs,
            open_params=base.open_params,
        )
    for alias, target in json_cat._aliases.items():
        if target in tools:
            aliases[alias] = target
    return _Catalogue(tools, aliases)


def load() -> _Catalogue:
    global _cached
    with _lock:
        if _cached is None:
            json_cat = _from_json()
            try:
                from sogni_cli import catalog as project_catalog

                real = project_catalog.load()  # type: ignore[attr-defined]
                _cached = _wrap(real, json_cat)
            except Exception:  # the project catalogue is missing or broken: use the packaged data directly
                _cached = json_cat
        return _cached


def get(name: str) -> ToolInfo | None:
    return load().get(name)


def canonical(name: str) -> str | None:
    tool = get(name)
    return tool.name if tool else None


def family(mode: str) -> list[str]:
    """Tool names injected for a ``sogni_tools`` mode: ``default``, ``creative-tools`` or ``creative-agent``."""
    cat = load()
    out = []
    for name in cat.names():
        tool = cat.get(name)
        if tool is not None and mode in tool.families:
            out.append(name)
    return out
