"""The JSON Schema of recipe files (``recipes/schema.json``), made from the same field mappings as the
checker: :data:`sogni_cli.jobs.JOB_FIELDS`, :data:`sogni_cli.api.chat.CHAT_FIELDS` and the tool catalogue.

Draft-07, which YAML language servers understand. Values that are templates (``"{{ matrix.size.width }}"``)
are allowed wherever a typed value is.
"""

from __future__ import annotations

from typing import Any

from .schema import KINDS, ON_EXISTS, VAR_TYPES, _KIND_TOOL, field_types

SCHEMA_ID = "https://sogni.ai/schemas/recipe-v1.json"
TEMPLATE = {"type": "string", "pattern": "\\{\\{", "description": "A template: {{ vars.X }}, {{ matrix.X }}, {{ jobs.ID.text }}…"}
_BASIC = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "list": {"type": "array"},
    "object": {"type": "object"},
    "paths": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "strings": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "messages": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
    "any": {},
}
_CHAT_ENUMS = {
    "tools": ["default", "none", "rich", "creative-agent", "creative-tools"],
    "task_profile": ["general", "coding", "reasoning"],
    "token_type": ["spark", "sogni", "auto"],
}
_OUTPUT_DOC = {
    "output": "Folder for this job's files, under the run's output folder (template).",
    "filename": "File name template: recipe templates plus {index} {count} {tool} {slug} {seed} {workflow} {date} {ext}.",
    "on_exists": "When a file exists: overwrite (recipe default), suffix, skip, error.",
    "save": "Write the text result (chat reply, text tool) to this file under the job's output folder (template).",
}


def _param(kind: str, fname: str) -> Any:
    from .. import catalog
    from ..jobs import JOB_FIELDS

    if kind in ("chat", "tool", "video", "template"):
        return None
    arg = JOB_FIELDS[kind].get(fname)
    if not arg:
        return None
    for name in _KIND_TOOL[kind]:
        tool = catalog.load().get(name)
        if tool is not None and arg in tool.params:
            return tool.params[arg]
    return None


def field_schema(kind: str, fname: str, type_name: str) -> dict[str, Any]:
    s: dict[str, Any] = dict(_BASIC.get(type_name, {}))
    p = _param(kind, fname)
    if p is not None:
        if p.description:
            s["description"] = p.description[:300]
        if p.enum is not None and type_name in ("string", "number", "integer"):
            s["enum"] = list(p.enum)
        if p.minimum is not None and type_name in ("number", "integer"):
            s["minimum"] = p.minimum
        if p.maximum is not None and type_name in ("number", "integer"):
            s["maximum"] = p.maximum
    if kind == "chat" and fname in _CHAT_ENUMS:
        s["enum"] = list(_CHAT_ENUMS[fname])
    if kind != "chat" and fname == "token_type":
        s["enum"] = list(_CHAT_ENUMS["token_type"])
    if s.get("type") == "string" and "enum" not in s:
        return s
    return {"anyOf": [s, TEMPLATE]}


def _fields(kind: str) -> dict[str, Any]:
    return {f: field_schema(kind, f, t) for f, t in field_types(kind).items()}


def _kind_body(kind: str) -> dict[str, Any]:
    return {"anyOf": [
        {"type": "string", "description": "Shorthand for the prompt (speech: text; tool: the tool name)."},
        {"type": "object", "properties": _fields(kind), "additionalProperties": False},
    ]}


def _output_props() -> dict[str, Any]:
    return {
        "output": {"type": "string", "description": _OUTPUT_DOC["output"]},
        "filename": {"type": "string", "description": _OUTPUT_DOC["filename"]},
        "on_exists": {"type": "string", "enum": list(ON_EXISTS), "description": _OUTPUT_DOC["on_exists"]},
        "save": {"type": "string", "description": _OUTPUT_DOC["save"]},
    }


def build_schema() -> dict[str, Any]:
    matrix_def = {
        "type": "object",
        "description": "Axes (lists of values, or {glob: PATTERN} for one value per file) with include/exclude.",
        "properties": {
            "include": {"type": "array", "items": {"type": "object"}},
            "exclude": {"type": "array", "items": {"type": "object"}},
        },
        "additionalProperties": {"anyOf": [
            {"type": "array", "minItems": 1},
            {"type": "object", "properties": {"glob": {"type": "string"}}, "required": ["glob"],
             "additionalProperties": False},
        ]},
    }
    var_spec = {
        "type": "object",
        "properties": {
            "default": {}, "type": {"type": "string", "enum": list(VAR_TYPES)},
            "env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                    "description": "Read the value from this environment variable when it is set."},
            "description": {"type": "string"}, "choices": {"type": "array", "minItems": 1},
            "min": {"type": "number"}, "max": {"type": "number"},
        },
        "additionalProperties": False,
    }
    defaults_props: dict[str, Any] = {}
    all_fields: dict[str, Any] = {}
    for kind in KINDS:
        props = {**_fields(kind), **_output_props()}
        if kind not in ("chat", "tool"):
            props.pop("save")
        defaults_props[kind] = {"type": "object", "properties": props, "additionalProperties": False}
        for k, v in props.items():
            all_fields.setdefault(k, {})
    defaults_props["all"] = {"type": "object", "properties": all_fields, "additionalProperties": False}
    job_props: dict[str, Any] = {
        "id": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,63}$"},
        "description": {"type": "string"},
        "needs": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                  "description": "Jobs to finish first (references to jobs.ID in templates count too)."},
        "matrix": {"anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                             {"$ref": "#/definitions/matrix"}],
                   "description": "true: the recipe's matrix; a list: some of its axes; a mapping: the job's own."},
        **_output_props(),
    }
    for kind in KINDS:
        job_props[kind] = {"$ref": f"#/definitions/{kind}"}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "sogni recipe",
        "description": "A batch of Sogni jobs (chat, image, edit, video, music, speech, tool): `sogni recipe run FILE`.",
        "type": "object",
        "required": ["version", "jobs"],
        "additionalProperties": False,
        "properties": {
            "version": {"const": 1},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "vars": {"type": "object", "additionalProperties": {"anyOf": [
                {"$ref": "#/definitions/var"}, {"type": ["string", "number", "boolean", "array", "null"]}]}},
            "matrix": {"$ref": "#/definitions/matrix"},
            "defaults": {"type": "object", "properties": defaults_props, "additionalProperties": False},
            "jobs": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/job"}},
        },
        "definitions": {
            "var": var_spec,
            "matrix": matrix_def,
            "job": {
                "type": "object",
                "required": ["id"],
                "properties": job_props,
                "additionalProperties": False,
                "oneOf": [{"required": [k]} for k in KINDS],
            },
            **{k: _kind_body(k) for k in KINDS},
        },
    }
