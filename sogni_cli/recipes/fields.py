"""The value types of job fields, from the shared mappings (``JOB_FIELDS``, ``CHAT_FIELDS``) and the tool
catalogue (the argument each field maps to)."""

from __future__ import annotations

from typing import Any

# Video tools whose parameters describe a video job's fields (the tool itself depends on the inputs).
_VIDEO_TOOLS = ("generate_video", "animate_photo", "sound_to_video", "video_to_video")
_KIND_TOOL = {"image": ("generate_image",), "edit": ("edit_image",), "video": _VIDEO_TOOLS,
              "music": ("generate_music",), "speech": ("generate_speech",), "tool": ()}
_CATALOG_TYPES = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean",
                  "array": "list", "object": "object"}
_CHAT_TYPES = {"string": "string", "list": "list", "integer": "integer", "number": "number",
               "list[string]": "strings", "boolean": "boolean", "object": "object", "list[path]": "paths"}
_FIELD_TYPES: dict[str, dict[str, str]] = {}


# --------------------------------------------------------------------------------------------- field types


def field_types(kind: str) -> dict[str, str]:
    """Field name -> expected value type for a job kind (from the shared mappings and the catalogue)."""
    hit = _FIELD_TYPES.get(kind)
    if hit is not None:
        return hit
    if kind == "template":
        from ..jobs import COMMON_FIELDS
        from ..jobs.template_job import FIELDS

        types = dict(FIELDS)
        for fname in COMMON_FIELDS:
            types[fname] = {"token_type": "string", "confirm_cost": "boolean", "max_cost": "integer"}.get(fname, "any")
        _FIELD_TYPES[kind] = types
        return types
    if kind == "chat":
        from ..api.chat import CHAT_FIELDS

        types = {k: _CHAT_TYPES.get(v, "any") for k, v in CHAT_FIELDS.items()}
        if "messages" in types:
            types["messages"] = "messages"  # a list of messages, or a JSON/YAML file of them
    else:
        from .. import catalog
        from ..jobs import COMMON_FIELDS, JOB_FIELDS

        cat = catalog.load()
        tools = [cat.get(n) for n in _KIND_TOOL[kind]]
        types = {}
        for fname, arg in JOB_FIELDS[kind].items():
            if arg is None:
                types[fname] = {"images": "paths", "image": "paths", "audio": "paths", "video": "paths",
                                "loras": "strings", "args": "object", "name": "string"}.get(fname, "any")
                continue
            t = "any"
            for tool in tools:
                if tool is None:
                    continue
                p = tool.params.get(arg) or (tool.params.get("videoModel") if arg == "model" else None)
                if p is not None:
                    t = _CATALOG_TYPES.get(p.type, "any")
                    break
            if t == "any" and kind == "tool":
                t = {"prompt": "string", "count": "number", "seed": "integer", "model": "string"}.get(fname, "any")
            types[fname] = t
        for fname in COMMON_FIELDS:
            types[fname] = {"token_type": "string", "confirm_cost": "boolean", "max_cost": "integer"}.get(fname, "any")
    _FIELD_TYPES[kind] = types
    return types


def type_ok(value: Any, expected: str) -> bool:
    if expected == "any":
        return True
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, float) and value.is_integer())
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "list":
        return isinstance(value, list)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "messages":
        return isinstance(value, (str, list))
    if expected in ("paths", "strings"):
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    return True


TYPE_WORDS = {"string": "a string", "boolean": "true or false", "integer": "a whole number", "number": "a number",
              "list": "a list", "object": "a mapping", "paths": "a file path or a list of paths",
              "strings": "a string or a list of strings", "messages": "a list of messages or a file path",
              "any": "a value"}


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
