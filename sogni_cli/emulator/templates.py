"""Saved workflow templates: ``/v1/creative-agent/workflows/templates[...]``.

A template is a named, versioned workflow plan with declared inputs::

    {id, name, description, category, visibility: private|public, stability: stable|beta, version,
     versions: [{version, createdAt}], inputs: [{name, type, required, description, default, options,
     multiple}], input: {title?, steps: [...]}, owner, createdAt, updatedAt, forkedFrom?}

Step arguments refer to inputs as ``{{inputs.NAME}}``: a string that is only the placeholder takes the input's
value with its type; elsewhere the value is written into the text. Routes: ``GET`` (list: ``visibility``,
``offset``, ``limit`` 1..200; answers ``templates`` and ``next``, a numeric cursor or null), ``POST`` (create,
201), ``GET/PATCH/DELETE /{id}`` (``?version=N`` reads an older version; PATCH makes a new version), ``POST
/{id}/fork`` (``{newName?}``) and ``POST /{id}/run`` (``{inputs, version?, ...}``, the same as starting a
workflow with ``workflow_id``). Running a template checks the inputs against the declaration: an unknown
input or a missing required one is a 400 naming the declared inputs.
"""

from __future__ import annotations

import copy
import difflib
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import tools as toolcat
from .common import ApiFailure, iso, is_int, is_number, new_id

if TYPE_CHECKING:  # pragma: no cover
    from .server import Handler

INPUT_TYPES = {"string", "number", "integer", "boolean", "image", "video", "audio", "url"}
CATEGORIES = {"portrait", "video-social", "makeover", "cinematic", "music", "analysis", "custom", "other"}
FIELDS = {"name", "description", "category", "visibility", "stability", "inputs", "input", "steps", "tags"}
PLACEHOLDER = re.compile(r"\{\{\s*(?:inputs\.)?([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")
BUILT_IN = {
    "id": "tpl_public_portrait", "name": "studio-portrait", "description": "A studio portrait of a subject.",
    "category": "portrait", "visibility": "public", "stability": "stable", "owner": "sogni",
    "inputs": [
        {"name": "subject", "type": "string", "required": True, "description": "Who or what to portray."},
        {"name": "style", "type": "string", "required": False, "default": "photo",
         "options": ["photo", "painting", "sketch"], "description": "The look."},
        {"name": "count", "type": "integer", "required": False, "default": 1, "description": "How many images."},
    ],
    "input": {"title": "Studio portrait", "steps": [
        {"id": "portrait", "toolName": "generate_image",
         "arguments": {"prompt": "{{inputs.subject}}, studio portrait, {{inputs.style}} style",
                       "numberOfVariations": "{{inputs.count}}"}}]},
}


def _bad(message: str, details: Any = None, status: int = 400, code: Any = None) -> ApiFailure:
    return ApiFailure(status, message, code=code if code is not None else status, details=details, envelope="sogni")


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    return set()


def _fill(value: Any, inputs: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return inputs.get(whole.group(1))
        return PLACEHOLDER.sub(lambda m: str(inputs.get(m.group(1), "")), value)
    if isinstance(value, dict):
        return {k: _fill(v, inputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, inputs) for v in value]
    return value


def _check_value(decl: dict[str, Any], value: Any) -> str | None:
    typ = decl.get("type", "string")
    values = value if decl.get("multiple") and isinstance(value, list) else [value]
    for v in values:
        ok = {"string": isinstance(v, str), "number": is_number(v), "integer": is_int(v),
              "boolean": isinstance(v, bool)}.get(typ)
        if typ in ("image", "video", "audio", "url"):
            ok = isinstance(v, str) and urlsplit(v).scheme in ("http", "https") and bool(urlsplit(v).netloc)
        if not ok:
            return f"input {decl['name']!r} must be {'an http(s) URL' if typ in ('image', 'video', 'audio', 'url') else 'a ' + typ}"
        if decl.get("options") and v not in decl["options"]:
            return f"input {decl['name']!r} must be one of {', '.join(map(str, decl['options']))}"
    return None


class TemplateStore:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, list[dict[str, Any]]] = {}  # id -> versions (oldest first)
        self._order: list[str] = []
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._items.clear()
            self._order.clear()
            now = iso(time.time())
            tpl = dict(copy.deepcopy(BUILT_IN), version=1, createdAt=now, updatedAt=now)
            self._items[tpl["id"]] = [tpl]
            self._order.append(tpl["id"])

    # ----------------------------------------------------------------- validation
    def _check(self, body: Any, partial: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad("template must be a JSON object")
        for key in body:
            if key not in FIELDS:
                raise _bad(f"unknown template field {key!r}", {"allowed": sorted(FIELDS)})
        out = dict(body)
        if "steps" in out:  # a bare steps list is accepted as input.steps
            out["input"] = dict(out.get("input") or {}, steps=out.pop("steps"))
        if not partial or "name" in out:
            name = out.get("name")
            if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
                raise _bad("name is required (1-200 characters)")
        if out.get("category") is not None and out["category"] not in CATEGORIES:
            raise _bad(f"category must be one of {', '.join(sorted(CATEGORIES))}")
        if out.get("visibility") is not None and out["visibility"] not in ("private", "public"):
            raise _bad("visibility must be private or public")
        if out.get("stability") is not None and out["stability"] not in ("stable", "beta"):
            raise _bad("stability must be stable or beta")
        if not partial or "inputs" in out:
            decls = out.get("inputs", [])
            if not isinstance(decls, list) or len(decls) > 16:
                raise _bad("inputs must be an array of at most 16 declarations")
            names: set[str] = set()
            for i, d in enumerate(decls):
                if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"]:
                    raise _bad(f"inputs[{i}] needs a name")
                if d["name"] in names:
                    raise _bad(f"inputs[{i}]: duplicate input {d['name']!r}")
                if d.get("type", "string") not in INPUT_TYPES:
                    raise _bad(f"inputs[{i}].type must be one of {', '.join(sorted(INPUT_TYPES))}")
                if "default" in d and d["default"] is not None and _check_value(d, d["default"]):
                    raise _bad(f"inputs[{i}].default: " + str(_check_value(d, d["default"])))
                names.add(d["name"])
        if not partial or "input" in out:
            inp = out.get("input")
            steps = inp.get("steps") if isinstance(inp, dict) else None
            if not isinstance(steps, list) or not steps:
                raise _bad("input.steps must be a non-empty array")
            for i, step in enumerate(steps):
                if not isinstance(step, dict) or toolcat.get(step.get("toolName")) is None:
                    raise _bad(f"input.steps[{i}]: unknown tool {step.get('toolName') if isinstance(step, dict) else step!r}")
        return out

    def _declared(self, tpl: dict[str, Any]) -> None:
        names = {d["name"] for d in tpl.get("inputs") or []}
        used = _placeholders(tpl.get("input"))
        missing = sorted(used - names)
        if missing:
            raise _bad(f"the steps use undeclared input(s): {', '.join(missing)}",
                       {"undeclared": missing, "declared": sorted(names)})

    # ----------------------------------------------------------------- reading and writing
    def get(self, tid: str, version: int | None = None) -> dict[str, Any]:
        with self._lock:
            versions = self._items.get(tid)
            if versions is None:
                raise _bad(f"workflow template {tid!r} not found", status=404)
            if version is None:
                return copy.deepcopy(versions[-1])
            for v in versions:
                if v["version"] == version:
                    return copy.deepcopy(v)
        raise _bad(f"workflow template {tid!r} has no version {version}", status=404,
                   details={"versions": [v["version"] for v in versions]})

    def list(self, visibility: str | None, offset: int, limit: int) -> dict[str, Any]:
        with self._lock:
            items = [self._items[t][-1] for t in reversed(self._order)]
        if visibility in ("private", "public"):
            items = [t for t in items if t.get("visibility") == visibility]
        page = items[offset:offset + limit]
        nxt = offset + limit if offset + limit < len(items) else None
        return {"templates": copy.deepcopy(page), "next": nxt, "total": len(items)}

    def create(self, body: Any, forked_from: dict[str, Any] | None = None) -> dict[str, Any]:
        tpl = self._check(body)
        self._declared(tpl)
        now = iso(time.time())
        tpl.update(id=new_id("tpl"), version=1, createdAt=now, updatedAt=now, owner="acct_emulator")
        tpl.setdefault("visibility", "private")
        tpl.setdefault("stability", "stable")
        tpl.setdefault("category", "custom")
        tpl.setdefault("description", "")
        if forked_from:
            tpl["forkedFrom"] = forked_from
        with self._lock:
            self._items[tpl["id"]] = [tpl]
            self._order.append(tpl["id"])
        return self._with_versions(tpl["id"])

    def _with_versions(self, tid: str) -> dict[str, Any]:
        self.get(tid)  # 404 for an unknown id
        with self._lock:
            versions = self._items[tid]
            out = copy.deepcopy(versions[-1])
            out["versions"] = [{"version": v["version"], "createdAt": v["updatedAt"]} for v in versions]
        return out

    def _owned(self, tid: str) -> dict[str, Any]:
        tpl = self.get(tid)
        if tpl.get("owner") != "acct_emulator":
            raise _bad(f"workflow template {tid!r} belongs to another account; fork it to change it", status=403)
        return tpl

    def update(self, tid: str, patch: Any) -> dict[str, Any]:
        current = self._owned(tid)
        change = self._check(patch, partial=True)
        new = dict(current, **change)
        self._declared(new)
        new.update(version=current["version"] + 1, updatedAt=iso(time.time()))
        new.pop("versions", None)
        with self._lock:
            self._items[tid].append(new)
        return self._with_versions(tid)

    def delete(self, tid: str) -> dict[str, Any]:
        self._owned(tid)
        with self._lock:
            self._items.pop(tid, None)
            self._order.remove(tid)
        return {"deleted": True, "id": tid}

    def fork(self, tid: str, body: Any) -> dict[str, Any]:
        src = self.get(tid)
        if body is not None and not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        name = (body or {}).get("newName", (body or {}).get("new_name")) or f"{src['name']}-fork"
        fields = {k: copy.deepcopy(src[k]) for k in FIELDS if k in src}
        fields.update(name=name, visibility="private")
        return self.create(fields, forked_from={"id": tid, "version": src["version"]})

    def expand(self, tid: Any, inputs: Any, version: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(workflow ``input`` with the inputs filled in, extra record fields) for running template ``tid``."""
        if not isinstance(tid, str):
            raise _bad("workflow_id must be a template id")
        if version is not None and not is_int(version):
            raise _bad("template_version must be an integer")
        tpl = self.get(tid, version)
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise _bad("inputs must be an object")
        decls = {d["name"]: d for d in tpl.get("inputs") or []}
        for key in inputs:
            if key not in decls:
                guess = difflib.get_close_matches(key, list(decls), n=1)
                hint = f" (did you mean {guess[0]!r}?)" if guess else ""
                raise _bad(f"template {tpl['name']!r} has no input {key!r}{hint}",
                           {"unknownInput": key, "declaredInputs": sorted(decls), "didYouMean": guess[:1]},
                           code="UNKNOWN_TEMPLATE_INPUT")
        values: dict[str, Any] = {}
        for name, d in decls.items():
            if name in inputs:
                problem = _check_value(d, inputs[name])
                if problem:
                    raise _bad(problem, {"input": name}, code="PARAMETER_INVALID")
                values[name] = inputs[name]
            elif d.get("default") is not None:
                values[name] = d["default"]
            elif d.get("required"):
                raise _bad(f"template {tpl['name']!r} needs input {name!r}",
                           {"missingInput": name, "declaredInputs": sorted(decls)}, code="MISSING_TEMPLATE_INPUT")
        inp = _fill(copy.deepcopy(tpl["input"]), values)
        return inp, {"templateId": tpl["id"], "templateVersion": tpl["version"], "templateInputs": values}


def _int(query: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(query.get(key, default))
    except ValueError:
        raise _bad(f"{key} must be an integer") from None
    if not lo <= value <= hi:
        raise _bad(f"{key} must be between {lo} and {hi}")
    return value


def route(h: "Handler", method: str, parts: list[str], query: dict[str, str], headers: dict[str, str],
          body: Any) -> None:
    """``parts``: the path after ``/v1/creative-agent/workflows/templates``, split on ``/``."""
    store: TemplateStore = h.emu.templates

    def ok(data: Any, status: int = 200) -> None:
        h.send_json(status, {"status": "success", "data": data})

    def only(*methods: str) -> None:
        if method not in methods:
            raise ApiFailure(405, f"{method} is not allowed here", code=405)

    if not parts:
        only("GET", "POST")
        if method == "GET":
            ok(store.list(query.get("visibility"), _int(query, "offset", 0, 0, 10**9),
                          _int(query, "limit", 50, 1, 200)))
        else:
            ok({"template": store.create(body)}, 201)
        return
    tid = parts[0]
    if len(parts) == 1:
        only("GET", "PATCH", "DELETE")
        if method == "GET":
            version = _int(query, "version", 0, 1, 10**6) if "version" in query else None
            ok({"template": store._with_versions(tid) if version is None else store.get(tid, version)})
        elif method == "PATCH":
            ok({"template": store.update(tid, body)})
        else:
            ok(store.delete(tid))
    elif parts[1:] == ["fork"]:
        only("POST")
        ok({"template": store.fork(tid, body)}, 201)
    elif parts[1:] == ["run"]:
        only("POST")
        run = dict(body or {}) if isinstance(body, dict) else {}
        version = run.pop("version", run.pop("template_version", None))
        inp, extra = store.expand(tid, run.pop("inputs", None), version)
        run["input"] = inp
        record, reused = h.emu.store.start(run, headers.get("idempotency-key"), extra=extra)
        ok({"workflow": record, **({"idempotent": True} if reused else {})}, 200 if reused else 201)
    else:
        raise ApiFailure(404, "no such template route", code=404)
