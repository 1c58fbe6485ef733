"""The hosted tool catalogue (``tools.json``): names, routes, parameters, validation and JSON Schema.

Stdlib only. The JSON file is read on first use and cached. ``route`` says how a tool runs outside chat:
``"execute"`` = ``POST /v1/creative-agent/tools/execute`` (the synchronous composition tools), ``"workflow"`` = a
step of a creative-agent workflow. ``inputs`` maps a media kind (image/audio/video) to the argument that addresses
it by index; a ``None`` value means the tool takes that media without an index argument (it uses the upload).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sogni_cli.core.choices import TOOLS_MODES
from sogni_cli.core.errors import UsageError

__all__ = ["Param", "Tool", "Catalog", "load", "families", "parse_arg", "MODES", "PREFIX"]

_PATH = Path(__file__).with_name("tools.json")
PREFIX = "sogni_"
_ENUM_LIST_MAX = 12
_TYPE_WORDS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean (true/false)",
    "array": "an array",
    "object": "an object",
}
# sogni_tools values -> catalogue family (wire spec 3.1; "rich"/"hosted" are client aliases of creative-tools).
MODES = {
    "default": "default",
    "creative-tools": "creative-tools",
    "rich": "creative-tools",
    "hosted": "creative-tools",
    "creative-agent": "creative-agent",
    "none": None,
    "false": None,
    "off": None,
    "no": None,
}


# --------------------------------------------------------------------------------------------- types


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded value (a Python type's name for anything else)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, expected: str) -> bool:
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if expected == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        return isinstance(value, float) and math.isfinite(value) and value.is_integer()
    if expected == "array":
        return isinstance(value, (list, tuple))
    if expected == "object":
        return isinstance(value, dict)
    return True  # unknown declared type: nothing to check


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt_num(v: float) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _did_you_mean(word: str, choices: list[str]) -> str | None:
    import difflib

    hits = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not hits:
        lower = {c.lower(): c for c in choices}
        hits = [lower[h] for h in difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=0.6)]
    return hits[0] if hits else None


def _enum_text(values: list[Any]) -> str:
    if len(values) > _ENUM_LIST_MAX:
        sample = ", ".join(str(v) for v in values[:3])
        return f"one of {len(values)} values, e.g. {sample}, …"
    return "one of " + ", ".join(str(v) for v in values)


def _in_enum(value: Any, enum: list[Any]) -> bool:
    for allowed in enum:
        if isinstance(allowed, bool) or isinstance(value, bool):
            if value is allowed:
                return True
        elif isinstance(allowed, (int, float)) and isinstance(value, (int, float)):
            if value == allowed:
                return True
        elif value == allowed:
            return True
    return False


# --------------------------------------------------------------------------------------------- model


@dataclass
class Param:
    name: str
    type: str
    required: bool = False
    description: str = ""
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    items: dict[str, Any] | None = None  # {"type": ..., "enum"?: [...], "properties"?: [names]}
    min_items: int | None = None
    max_items: int | None = None
    properties: list[str] | None = None  # documented keys of an object parameter (informational)
    # How an index argument counts uploads: "negative" (-1 is the first upload; 0, 1, ... are results made
    # earlier), "zero-based" (0 is the first upload) or "either" (0-based, -1 also accepted). None: not an index.
    upload_index: str | None = None

    def upload_position(self, position: int) -> int:
        """The value that addresses the upload at 0-based ``position`` among the uploads of its kind."""
        return position if self.upload_index in ("zero-based", "either") else -(position + 1)

    @classmethod
    def from_json(cls, name: str, d: dict[str, Any]) -> "Param":
        return cls(
            name=name,
            type=d.get("type", "string"),
            required=bool(d.get("required", False)),
            description=d.get("description", ""),
            enum=d.get("enum"),
            minimum=d.get("minimum"),
            maximum=d.get("maximum"),
            min_length=d.get("minLength"),
            max_length=d.get("maxLength"),
            items=d.get("items"),
            min_items=d.get("minItems"),
            max_items=d.get("maxItems"),
            properties=d.get("properties"),
            upload_index=d.get("uploadIndex"),
        )

    # -- checks ------------------------------------------------------------------------------------

    def problems(self, value: Any) -> list[str]:
        """Every problem with ``value`` for this parameter (empty when it is valid)."""
        label = f"'{self.name}'"
        if not _is_type(value, self.type):
            extra = ""
            if self.type == "integer" and isinstance(value, float) and not isinstance(value, bool):
                extra = " (it must be a whole number)"
            return [
                f"{label} must be {_TYPE_WORDS.get(self.type, self.type)}, got {json_type(value)} {_show(value)}{extra}"
            ]
        out = _scalar_problems(label, value, self.enum, self.minimum, self.maximum, self.min_length, self.max_length)
        if self.type == "array":
            n = len(value)
            if self.min_items is not None and n < self.min_items:
                out.append(f"{label} needs at least {self.min_items} item{'s' if self.min_items != 1 else ''}, got {n}")
            if self.max_items is not None and n > self.max_items:
                out.append(f"{label} takes at most {self.max_items} item{'s' if self.max_items != 1 else ''}, got {n}")
            if self.items:
                itype = self.items.get("type")
                ienum = self.items.get("enum")
                for i, item in enumerate(value):
                    ilabel = f"'{self.name}[{i}]'"
                    if itype and not _is_type(item, itype):
                        out.append(f"{ilabel} must be {_TYPE_WORDS.get(itype, itype)}, got {json_type(item)} {_show(item)}")
                        continue
                    out.extend(_scalar_problems(ilabel, item, ienum, None, None, None, None))
        return out

    def json_schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": self.type}
        if self.description:
            s["description"] = self.description
        if self.enum is not None:
            s["enum"] = list(self.enum)
        for key, val in (("minimum", self.minimum), ("maximum", self.maximum), ("minLength", self.min_length),
                         ("maxLength", self.max_length)):
            if val is not None:
                s[key] = val
        if self.type == "object" and self.properties:
            s["properties"] = {k: {} for k in self.properties}
        if self.type == "array":
            if self.items:
                item: dict[str, Any] = {"type": self.items.get("type", "string")}
                if self.items.get("enum") is not None:
                    item["enum"] = list(self.items["enum"])
                if self.items.get("properties"):
                    item["properties"] = {k: {} for k in self.items["properties"]}
                s["items"] = item
            if self.min_items is not None:
                s["minItems"] = self.min_items
            if self.max_items is not None:
                s["maxItems"] = self.max_items
        return s


def _scalar_problems(label: str, value: Any, enum, minimum, maximum, min_length, max_length) -> list[str]:
    out: list[str] = []
    if enum is not None and not _in_enum(value, enum):
        msg = f"{label} must be {_enum_text(enum)}; got {_show(value)}"
        if isinstance(value, str):
            guess = _did_you_mean(value, [str(v) for v in enum])
            if guess:
                msg += f" (did you mean '{guess}'?)"
        out.append(msg)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo_bad = minimum is not None and value < minimum
        hi_bad = maximum is not None and value > maximum
        if lo_bad or hi_bad:
            if minimum is not None and maximum is not None:
                rng = f"between {_fmt_num(minimum)} and {_fmt_num(maximum)}"
            elif minimum is not None:
                rng = f"at least {_fmt_num(minimum)}"
            else:
                rng = f"at most {_fmt_num(maximum)}"
            out.append(f"{label} must be {rng}, got {_fmt_num(value)}")
    if isinstance(value, str):
        n = len(value)
        if min_length is not None and n < min_length:
            out.append(f"{label} must be at least {min_length} character{'s' if min_length != 1 else ''} long, got {n}")
        if max_length is not None and n > max_length:
            out.append(f"{label} must be at most {max_length} characters long, got {n}")
    return out


@dataclass
class Tool:
    name: str
    route: str
    group: str
    media: str | None
    aliases: list[str]
    families: list[str]
    inputs: dict[str, str | None]
    description: str
    additional_properties: bool
    params: dict[str, Param] = field(default_factory=dict)
    note: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Tool":
        return cls(
            name=d["name"],
            route=d.get("route", "workflow"),
            group=d.get("group", "hosted"),
            media=d.get("media"),
            aliases=list(d.get("aliases") or []),
            families=list(d.get("families") or []),
            inputs=dict(d.get("inputs") or {}),
            description=d.get("description", ""),
            additional_properties=bool(d.get("additionalProperties", True)),
            params={k: Param.from_json(k, v) for k, v in (d.get("parameters") or {}).items()},
            note=d.get("note"),
        )

    @property
    def open_params(self) -> bool:
        """True for tools whose parameters are not published (any object is accepted)."""
        return self.group == "app"

    @property
    def required(self) -> list[str]:
        return [p.name for p in self.params.values() if p.required]

    def validate(self, args: Any) -> list[str]:
        """Every problem with ``args`` as readable messages; an empty list means valid."""
        if not isinstance(args, dict):
            return [f"arguments for {self.name} must be a JSON object, got {json_type(args)}"]
        if self.open_params:
            return []
        problems: list[str] = []
        names = list(self.params)
        for key, value in args.items():
            param = self.params.get(key)
            if param is None:
                msg = f"unknown parameter '{key}' for {self.name}"
                guess = _did_you_mean(str(key), names)
                if guess:
                    msg += f" (did you mean '{guess}'?)"
                problems.append(msg)
                continue
            problems.extend(param.problems(value))
        for name in self.required:
            if name not in args:
                problems.append(f"missing required parameter '{name}'")
        return problems

    def check(self, args: Any) -> None:
        """Raise :class:`UsageError` listing every problem with ``args``."""
        problems = self.validate(args)
        if problems:
            head = f"Invalid arguments for {self.name}: " if len(problems) == 1 else f"Invalid arguments for {self.name}:\n  - "
            sep = "\n  - "
            raise UsageError(head + sep.join(problems), hint=f"See `sogni tools show {self.name}`.")

    def coerce(self, key: str, raw: str) -> Any:
        """Turn the text of ``--arg KEY=VALUE`` into a value: strings stay as typed, others are parsed as JSON."""
        param = self.params.get(key)
        if param is not None and param.type == "string":
            return raw
        try:
            return json.loads(raw)
        except (ValueError, TypeError):
            return raw  # validation reports the type problem with the parameter's name

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) for this tool's arguments."""
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "description": self.description,
            "type": "object",
            "properties": {name: p.json_schema() for name, p in self.params.items()},
        }
        req = self.required
        if req:
            schema["required"] = req
        schema["additionalProperties"] = self.open_params
        return schema


class Catalog:
    def __init__(self, version: str, tools: list[Tool]):
        self.version = version
        self.tools = tools
        self._index: dict[str, Tool] = {}
        for t in tools:
            self._index[t.name] = t
        for t in tools:
            for alias in t.aliases:
                self._index.setdefault(alias, t)

    def names(self) -> list[str]:
        return [t.name for t in self.tools]

    def get(self, name: str) -> Tool | None:
        """Look a tool up by name, alias or ``sogni_``-prefixed name (case and ``-``/``_`` insensitive)."""
        if not isinstance(name, str):
            return None
        key = name.strip()
        hit = self._index.get(key)
        if hit is not None:
            return hit
        key = key.lower().replace("-", "_")
        hit = self._index.get(key)
        if hit is None and key.startswith(PREFIX):
            hit = self._index.get(key[len(PREFIX):])
        return hit

    def require(self, name: str) -> Tool:
        tool = self.get(name)
        if tool is not None:
            return tool
        key = str(name).strip().lower().replace("-", "_")
        if key.startswith(PREFIX):
            key = key[len(PREFIX):]
        guess = _did_you_mean(key, self.names())
        hint = (f"did you mean '{guess}'? " if guess else "") + "See `sogni tools list`."
        raise UsageError(f"Unknown tool '{name}'", hint=hint)

    def is_hosted_call(self, name: Any) -> bool:
        """True when a tool call's function name is a Sogni tool in either spelling (``generate_image`` or
        the brief's ``sogni_generate_image``)."""
        return isinstance(name, str) and (name in self._index or (name.startswith(PREFIX)
                                                                  and name[len(PREFIX):] in self._index))

    def family(self, fam: str) -> list[Tool]:
        return [t for t in self.tools if fam in t.families]


_CACHE: Catalog | None = None


def load() -> Catalog:
    """The shipped catalogue, read once and cached."""
    global _CACHE
    if _CACHE is None:
        data = json.loads(_PATH.read_text(encoding="utf-8"))
        _CACHE = Catalog(data.get("version", ""), [Tool.from_json(t) for t in data.get("tools", [])])
    return _CACHE


def families(mode: str) -> list[str]:
    """Tool names the server injects for a ``sogni_tools`` mode.

    ``default`` gives the six prefixed names of the default family; ``creative-tools`` (also ``rich``,
    ``hosted``) and ``creative-agent`` give flat names; ``none``/``false`` give an empty list.
    """
    key = str(mode).strip().lower()
    if key not in MODES:
        guess = _did_you_mean(key, list(MODES))
        raise UsageError(f"Unknown tool mode '{mode}'",
                         hint=(f"did you mean '{guess}'? " if guess else "")
                         + "Use one of: " + ", ".join(TOOLS_MODES) + ".")
    fam = MODES[key]
    if fam is None:
        return []
    tools = load().family(fam)
    if fam == "default":
        return [t.aliases[0] if t.aliases else PREFIX + t.name for t in tools]
    return [t.name for t in tools]


def parse_arg(text: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` on the first ``=``."""
    if "=" not in text:
        raise UsageError(f"--arg expects KEY=VALUE, got '{text}'", hint="For example: --arg prompt='a red fox'.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UsageError(f"--arg expects KEY=VALUE, got '{text}' (empty key)", hint="For example: --arg width=1024.")
    return key, raw
