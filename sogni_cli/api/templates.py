"""Saved workflow templates (``/v1/creative-agent/workflows/templates``): list, read, create, update, delete,
fork, and the checks that run before a template is started (names, declared inputs, their types).

A template is started like any workflow (``POST /v1/creative-agent/workflows`` with ``workflow_id`` and
``inputs``), so the start carries an ``Idempotency-Key`` and a retried start never makes a second one.
"""

from __future__ import annotations

import difflib
import json
from typing import Any
from urllib.parse import quote

from ..core.errors import UnavailableError, UsageError

BASE = "/v1/creative-agent/workflows/templates"
INPUT_TYPES = ("string", "number", "integer", "boolean", "image", "video", "audio", "url")
PAGE = 200


def _path(tid: str, *rest: str) -> str:
    return "/".join([BASE, quote(str(tid), safe=""), *rest])


def _data(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("data"), (dict, list)):
        return body["data"]
    return body


def _template(body: Any) -> dict[str, Any]:
    data = _data(body)
    if isinstance(data, dict) and isinstance(data.get("template"), dict):
        return data["template"]
    if isinstance(data, dict):
        return data
    raise UnavailableError("The API answered with a template that is not an object.")


def list_templates(client: Any, visibility: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Every template (following the ``next`` cursor), or the first ``limit``."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = PAGE if limit is None else max(1, min(PAGE, limit - len(items)))
        data = _data(client.request("GET", BASE, params={"visibility": visibility, "offset": offset or None,
                                                         "limit": page}))
        got = data.get("templates") if isinstance(data, dict) else data
        got = [t for t in got if isinstance(t, dict)] if isinstance(got, list) else []
        items.extend(got)
        nxt = data.get("next") if isinstance(data, dict) else None
        if not got or not isinstance(nxt, int) or isinstance(nxt, bool) or nxt <= offset \
                or (limit is not None and len(items) >= limit):
            break
        offset = nxt
    return items if limit is None else items[:limit]


def get(client: Any, tid: str, version: int | None = None) -> dict[str, Any]:
    return _template(client.request("GET", _path(tid), params={"version": version}))


def create(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    return _template(client.request("POST", BASE, json=body))


def update(client: Any, tid: str, patch: dict[str, Any]) -> dict[str, Any]:
    return _template(client.request("PATCH", _path(tid), json=patch))


def delete(client: Any, tid: str) -> dict[str, Any]:
    data = _data(client.request("DELETE", _path(tid)))
    return data if isinstance(data, dict) else {"deleted": True, "id": tid}


def fork(client: Any, tid: str, new_name: str | None = None) -> dict[str, Any]:
    return _template(client.request("POST", _path(tid, "fork"), json={"newName": new_name} if new_name else {}))


def template_id(tpl: Any) -> str | None:
    if isinstance(tpl, dict):
        for key in ("id", "templateId", "workflowId"):
            if isinstance(tpl.get(key), str) and tpl[key]:
                return tpl[key]
    return None


def resolve(client: Any, ref: str, version: int | None = None) -> dict[str, Any]:
    """The template a user names: an id, or a name (exact; one match). Unknown: exit 2 with a suggestion."""
    from ..core.errors import ApiError

    if ref.startswith("tpl_"):
        try:
            return get(client, ref, version)
        except ApiError as exc:
            if exc.status != 404:
                raise
    items = list_templates(client)
    hits = [t for t in items if t.get("name") == ref or template_id(t) == ref]
    if len(hits) > 1:
        mine = [t for t in hits if t.get("visibility") == "private"]
        hits = mine if len(mine) == 1 else hits
    if len(hits) > 1:
        raise UsageError(f"{len(hits)} templates are named {ref!r}; give the id instead.",
                         hint="Ids: " + ", ".join(template_id(t) or "?" for t in hits))
    if not hits:
        names = [str(t.get("name")) for t in items if t.get("name")]
        close = difflib.get_close_matches(ref, names, n=1)
        raise UsageError(f"No template named {ref!r}" + (f"; did you mean {close[0]!r}?" if close else "."),
                         hint="List them with `sogni template list`.")
    return get(client, template_id(hits[0]) or ref, version)  # the full record (versions included)


# --------------------------------------------------------------------------------------------- inputs


def declared(tpl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in tpl.get("inputs") or [] if isinstance(d, dict) and isinstance(d.get("name"), str)}


def parse_inputs(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` items (the value as text; typed later by the declaration)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"Invalid --input {item!r}: expected KEY=VALUE.")
        out[key.strip()] = value
    return out


def _typed(name: str, decl: dict[str, Any], value: Any) -> Any:
    kind = decl.get("type") or "string"
    if decl.get("multiple") and isinstance(value, list):
        return [_typed(name, dict(decl, multiple=False), v) for v in value]
    if not isinstance(value, str):
        return value
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            f = float(value)
            return int(f) if f.is_integer() and "." not in value else f
    except ValueError:
        raise UsageError(f"Input {name!r} must be {'a whole number' if kind == 'integer' else 'a number'}, "
                         f"got {value!r}.") from None
    if kind == "boolean":
        low = value.strip().lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise UsageError(f"Input {name!r} must be true or false, got {value!r}.")
    if decl.get("multiple") and value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    return value


def check_inputs(tpl: dict[str, Any], given: dict[str, Any], *, typed: bool = True) -> dict[str, Any]:
    """The inputs, typed by the template's declaration; exit 2 for an undeclared input (with a suggestion),
    a missing required one, a value outside its options or of the wrong type."""
    decls = declared(tpl)
    name = tpl.get("name") or template_id(tpl) or "?"
    problems: list[str] = []
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in decls:
            close = difflib.get_close_matches(key, list(decls), n=1)
            problems.append(f"template {name!r} has no input {key!r}" +
                            (f"; did you mean {close[0]!r}?" if close else "") +
                            (f" (inputs: {', '.join(decls)})" if decls else " (it takes no inputs)"))
            continue
        try:
            v = _typed(key, decls[key], value) if typed else value
        except UsageError as exc:
            problems.append(exc.message)
            continue
        options = decls[key].get("options")
        if isinstance(options, list) and options and not isinstance(v, list) and v not in options:
            problems.append(f"input {key!r} must be one of {', '.join(map(str, options))}, got {v!r}")
            continue
        out[key] = v
    for key, d in decls.items():
        if d.get("required") and key not in given and d.get("default") is None:
            problems.append(f"template {name!r} needs input {key!r} (--input {key}=…)")
    if problems:
        raise UsageError("\n".join(problems) if len(problems) > 1 else problems[0][:1].upper() + problems[0][1:])
    return out


def start_body(tpl: dict[str, Any], inputs: dict[str, Any], version: int | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The workflow start body that runs ``tpl`` with ``inputs``."""
    body: dict[str, Any] = {"workflow_id": template_id(tpl), "inputs": inputs}
    if version is not None:
        body["template_version"] = version
    body.update({k: v for k, v in (extra or {}).items() if v is not None})
    return body


# --------------------------------------------------------------------------------------------- files

FILE_FIELDS = ("name", "description", "category", "visibility", "stability", "inputs", "input", "steps", "tags")


def load_file(path: str, *, partial: bool = False) -> dict[str, Any]:
    """A template from a YAML or JSON file, checked for what the API requires (``name``, steps with a
    ``toolName``, input declarations, placeholders that name declared inputs). Every problem is reported as
    ``FILE:LINE:COL: message`` (exit 2). ``partial``: an update, where every field is optional."""
    import re

    from ..core.loader import LoadError, Problems, load_text, read_text

    try:
        text = read_text(path)
        if not text.strip():
            raise LoadError(_mark(1, 1), "the file is empty; a template needs at least a name and steps")
        doc, problems = load_text(text, path)
    except LoadError as exc:
        raise UsageError(exc.problem.format(path)) from None
    data = doc.data

    def bad(p: tuple, msg: str, key: bool = False) -> None:
        problems.error(doc.key_mark(p) if key else doc.mark(p), msg)

    if not isinstance(data, dict):
        bad((), "a template is a mapping with `name`, `inputs` and `steps`")
        data = {}
    for k in data:
        if k not in FILE_FIELDS:
            close = difflib.get_close_matches(str(k), FILE_FIELDS, n=1)
            bad((k,), f"unknown field '{k}'" + (f"; did you mean '{close[0]}'?" if close else ""), key=True)
    if not partial or "name" in data:
        if not isinstance(data.get("name"), str) or not data.get("name", "").strip():
            bad(("name",) if "name" in data else (), "missing `name` (a string)")
    steps_path: tuple = ("steps",) if "steps" in data else ("input", "steps")
    steps = data.get("steps") if "steps" in data else (data.get("input") or {}).get("steps") \
        if isinstance(data.get("input"), dict) else None
    if not partial or "steps" in data or "input" in data:
        if not isinstance(steps, list) or not steps:
            bad(steps_path if ("steps" in data or "input" in data) else (),
                "missing `steps`: a list of steps, each with a `toolName` and `arguments`")
            steps = []
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or not isinstance(step.get("toolName"), str):
                bad(steps_path + (i,), "each step needs a `toolName`")
            elif "arguments" in step and not isinstance(step["arguments"], dict):
                bad(steps_path + (i, "arguments"), "`arguments` must be a mapping")
    names: list[str] = []
    if "inputs" in data:
        decls = data["inputs"]
        if not isinstance(decls, list):
            bad(("inputs",), "`inputs` must be a list of input declarations")
            decls = []
        for i, d in enumerate(decls):
            if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d.get("name"):
                bad(("inputs", i), "each input needs a `name`")
                continue
            if d.get("type", "string") not in INPUT_TYPES:
                bad(("inputs", i, "type"), f"type must be one of {', '.join(INPUT_TYPES)}")
            if d["name"] in names:
                bad(("inputs", i, "name"), f"input '{d['name']}' is declared twice")
            names.append(d["name"])
    if steps and (not partial or "inputs" in data):
        pattern = re.compile(r"\{\{\s*(?:inputs\.)?([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")

        def walk(v: Any, p: tuple) -> None:
            if isinstance(v, str):
                for m in pattern.finditer(v):
                    if m.group(1) not in names:
                        close = difflib.get_close_matches(m.group(1), names, n=1)
                        problems.error(doc.text_offset_mark(p, m.start()),
                                       f"'{{{{{m.group(0)[2:-2].strip()}}}}}' names no declared input" +
                                       (f"; did you mean '{close[0]}'?" if close else ""))
            elif isinstance(v, dict):
                for k, x in v.items():
                    walk(x, p + (k,))
            elif isinstance(v, list):
                for j, x in enumerate(v):
                    walk(x, p + (j,))

        walk(steps, steps_path)
    if problems.errors:
        raise UsageError("\n".join(Problems(problems.errors).lines(path)))
    return dict(data)


def _mark(line: int, col: int) -> Any:
    from ..core.loader import Mark

    return Mark(line, col)
