"""From a recipe job's rendered fields to the same requests the commands send.

Media and tool jobs go through :func:`sogni_cli.jobs.build_job` / :func:`~sogni_cli.jobs.workflow_body`
(or the synchronous ``tools/execute`` body); chat jobs through :class:`sogni_cli.api.chat.ChatRequest` and
:func:`~sogni_cli.api.chat.build_chat_body`. Nothing here builds a request body of its own.

For plans, values that depend on job outputs not known yet (:class:`~sogni_cli.recipes.template.Pending`)
are shown as their template text; a pending media file is stood in for by a tiny placeholder file so the
job can be checked and previewed, and its name is replaced by the template text in what is shown.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

from ..core.errors import UsageError
from .template import Pending, show_pending

MEDIA_PATH_FIELDS = ("images", "image", "audio", "video")
CHAT_PATH_FIELDS = ("images", "functions")
_PLACEHOLDER_DIR: list[str] = []
_LOCK = threading.Lock()
_HASH_CACHE: dict[tuple, str] = {}


# --------------------------------------------------------------------------------------------- defaults


def with_profile_defaults(kind: str, fields: dict[str, Any], settings: Any) -> dict[str, Any]:
    """The profile's defaults the commands apply too: chat ``model``, image ``image_model``, token type; a chat
    job's ``preset``; model aliases."""
    if settings is None:
        return fields
    out = dict(fields)
    cdir = getattr(settings, "config_dir", None)
    if kind == "chat" and isinstance(out.get("preset"), str) and cdir is not None:
        from ..core.presets import apply_preset, get_preset

        out = apply_preset(out, get_preset(cdir, out.pop("preset")))
    if kind == "chat" and "model" not in out and settings.default("model"):
        out["model"] = settings.default("model")
    if kind == "image" and "model" not in out and settings.default("image_model"):
        out["model"] = settings.default("image_model")
    if "token_type" not in out and getattr(settings, "token_type", None):
        out["token_type"] = settings.token_type
    if isinstance(out.get("model"), str):
        from ..core.presets import resolve_model

        out["model"] = resolve_model(out["model"], cdir)
    return out


# --------------------------------------------------------------------------------------------- placeholders


def _png() -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + tag + data + zlib.crc32(tag + data).to_bytes(4, "big")

    ihdr = (1).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))
            + chunk(b"IEND", b""))


_PLACEHOLDER_BYTES = {
    "image": (".png", _png),
    "audio": (".wav", lambda: b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
              + bytes([1, 0, 1, 0, 0x40, 0x1F, 0, 0, 0x80, 0x3E, 0, 0, 2, 0, 16, 0]) + b"data" + bytes(4)),
    "video": (".mp4", lambda: (24).to_bytes(4, "big") + b"ftypisom" + bytes(4) + b"isommp41"
              + (16).to_bytes(4, "big") + b"moov" + (8).to_bytes(4, "big") + b"mvhd"),
}


def placeholder_file(kind: str, n: int) -> str:
    """A tiny stand-in file for a media input that a job before this one will make."""
    with _LOCK:
        if not _PLACEHOLDER_DIR:
            d = tempfile.mkdtemp(prefix="sogni-plan-")
            _PLACEHOLDER_DIR.append(d)
            import atexit
            import shutil

            atexit.register(shutil.rmtree, d, True)
        ext, make = _PLACEHOLDER_BYTES[kind]
        path = os.path.join(_PLACEHOLDER_DIR[0], f"pending-{kind}-{n}{ext}")
        if not os.path.exists(path):
            with open(path, "wb") as fh:
                fh.write(make())
        return path


def _media_kind(field: str) -> str:
    return "image" if field in ("images", "image") else field


def _stand_in(kind: str, fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Fields with Pending values replaced (files by placeholders); returns (fields, {placeholder name: text})."""
    names: dict[str, str] = {}
    out: dict[str, Any] = {}
    n = 0
    for key, value in fields.items():
        if kind != "chat" and key in MEDIA_PATH_FIELDS:
            items = value if isinstance(value, list) else [value]
            new = []
            for item in items:
                if isinstance(item, Pending):
                    n += 1
                    path = placeholder_file(_media_kind(key), n)
                    names[os.path.basename(path)] = item.text
                    new.append(path)
                else:
                    new.append(item)
            out[key] = new if isinstance(value, list) else new[0]
        else:
            out[key] = show_pending(value)
    return out, names


def _unplace(body: Any, names: dict[str, str]) -> Any:
    if not names:
        return body
    text = json.dumps(body, ensure_ascii=False)
    for name, shown in names.items():
        text = text.replace(name, json.dumps(shown, ensure_ascii=False)[1:-1])
    return json.loads(text)


# --------------------------------------------------------------------------------------------- building


def build_media(kind: str, fields: dict[str, Any], base_dir: Path) -> Any:
    if kind == "template":
        from ..jobs.template_job import build_template_job

        return build_template_job(fields)
    from ..jobs import build_job

    job = build_job(kind, fields, base_dir=base_dir)
    from ..jobs.catalogue_check import check_job

    check_job(job)
    return job


def bind_template(client: Any, job: Any) -> Any:
    """A template job ready to start: the template looked up, its inputs checked (other jobs unchanged)."""
    if getattr(job, "kind", None) != "template":
        return job
    from ..jobs.template_job import bind

    return bind(client, job)


def _abs(path: Any, base_dir: Path) -> str:
    p = Path(str(path))
    return str(p if p.is_absolute() else base_dir / p)


def build_chat(fields: dict[str, Any], base_dir: Path, *, prepare_images: bool = True) -> Any:
    """A :class:`~sogni_cli.api.chat.ChatRequest` from a chat job's fields (files relative to the recipe)."""
    from ..api.chat import ChatRequest, load_functions, response_format_from, validate_request

    f = dict(fields)
    req = ChatRequest()
    for key in ("prompt", "system", "developer", "model", "max_tokens", "temperature", "top_p", "top_k", "min_p",
                "repetition_penalty", "frequency_penalty", "presence_penalty", "task_profile", "think",
                "token_type", "tools", "tool_choice"):
        if f.get(key) is not None:
            setattr(req, key, f[key])
    if f.get("prompt") is not None and not isinstance(f["prompt"], str):
        req.prompt = str(f["prompt"])
    if f.get("stop") is not None:
        req.stop = [f["stop"]] if isinstance(f["stop"], str) else list(f["stop"])
    if f.get("template_kwargs"):
        req.template_kwargs = dict(f["template_kwargs"])
    if f.get("no_exec") is not None:
        req.no_exec = bool(f["no_exec"])
    if f.get("max_rounds") is not None:
        req.max_rounds = int(f["max_rounds"])
    if f.get("messages") is not None:
        msgs = f["messages"]
        if isinstance(msgs, str):
            from ..api.chat import load_messages

            msgs = load_messages(_abs(msgs, base_dir))
        req.messages = msgs
    validate_request(req)
    if f.get("response_format") is not None:
        rf = str(f["response_format"])
        req.response_format = response_format_from(rf if rf in ("json", "text") else _abs(rf, base_dir))
    for path in _as_list(f.get("functions")):
        req.functions.extend(load_functions(_abs(path, base_dir)))
    images = _as_list(f.get("images"))
    if images:
        if prepare_images:
            from ..media.inputs import prepare_vision_images

            ready = [i for i in images if not isinstance(i, Pending)]
            uris = iter(v.data_uri for v in prepare_vision_images([_abs(p, base_dir) for p in ready]))
            req.images = [i.text if isinstance(i, Pending) else next(uris) for i in images]
        else:
            req.images = [str(i) for i in images]
    if not (req.prompt or req.images or req.messages):
        raise UsageError("a chat job needs a prompt, images or messages")
    return req


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def preview(kind: str, fields: dict[str, Any], base_dir: Path, base_url: str) -> dict[str, Any]:
    """The request a job would send: ``{"method", "url", "body"}`` (Pending values shown as templates).
    Raises UsageError for an invalid job."""
    from ..core.redact import shorten_data_uris

    url = base_url.rstrip("/")
    if kind == "chat":
        from ..api.chat import CHAT_PATH, build_chat_body

        req = build_chat(fields, base_dir)
        body = build_chat_body(req)
        return {"method": "POST", "url": url + CHAT_PATH, "body": shorten_data_uris(body)}
    from ..jobs import placeholder_refs, workflow_body

    stood, names = _stand_in(kind, fields)
    job = build_media(kind, stood, base_dir)
    if job.route == "execute":
        from ..api.tools_exec import PATH, execute_body

        body = execute_body(job.tool, job.arguments, job.token_type)
        return {"method": "POST", "url": url + PATH, "body": _unplace(body, names), "tool": job.tool,
                "media": job.media}
    from ..api.workflows import BASE

    body = workflow_body(job, placeholder_refs(job))
    return {"method": "POST", "url": url + BASE, "body": _unplace(shorten_data_uris(body), names), "tool": job.tool,
            "media": job.media}


def media_count(kind: str, fields: dict[str, Any], req: dict[str, Any] | None) -> int:
    """How many media files a job is asked to make (0 for text results)."""
    if kind == "chat":
        return 0
    if req is not None and (req.get("media") == "text" or req.get("url", "").endswith("/tools/execute")):
        return 0
    n = fields.get("count", 1)
    if isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 1:
        return int(n)
    return 1


# --------------------------------------------------------------------------------------------- hashing


def _file_digest(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "missing:" + path
    key = (path, st.st_size, st.st_mtime_ns)
    hit = _HASH_CACHE.get(key)
    if hit is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        hit = "sha256:" + h.hexdigest()
        _HASH_CACHE[key] = hit
    return hit


def request_hash(kind: str, fields: dict[str, Any], base_dir: Path) -> str:
    """A digest of what a job asks for: its kind and fields, with files by content (not by path)."""
    paths = CHAT_PATH_FIELDS if kind == "chat" else MEDIA_PATH_FIELDS
    canon: dict[str, Any] = {}
    for key in sorted(fields):
        value = fields[key]
        if key in paths:
            canon[key] = [_file_digest(_abs(p, base_dir)) for p in _as_list(value)]
        elif kind == "chat" and key == "response_format" and str(value) not in ("json", "text"):
            canon[key] = _file_digest(_abs(value, base_dir))
        else:
            canon[key] = value
    text = json.dumps({"kind": kind, "fields": canon}, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------- problems


_QUOTED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")
_FLAG = re.compile(r"--([a-z][a-z-]*)")


def problem_lines(exc: UsageError) -> list[str]:
    """The individual problems of a build error (``Invalid X request:\\n  - a\\n  - b`` → [a, b])."""
    msg = exc.message
    if "\n  - " in msg:
        return [p.strip() for p in msg.split("\n  - ")[1:]]
    if msg.startswith("Invalid ") and " request: " in msg:
        return [msg.split(" request: ", 1)[1]]
    return [p for p in msg.split("\n") if p.strip()]


def field_for_problem(kind: str, message: str, fields: dict[str, Any]) -> tuple[str, ...] | None:
    """Which field (or ``args`` key) a problem message is about, when it can be told."""
    if kind == "chat":
        m = _FLAG.search(message)
        if m:
            name = m.group(1).replace("-", "_")
            if name in fields:
                return (name,)
        for words, name in (("task profile", "task_profile"), ("token type", "token_type"), ("image", "images")):
            if words in message.lower() and name in fields:
                return (name,)
        return None
    from ..jobs import JOB_FIELDS

    reverse = {arg: f for f, arg in JOB_FIELDS.get(kind, {}).items() if arg}
    if kind == "tool" and isinstance(fields.get("name"), str) and f"'{fields['name']}'" in message:
        return ("name",)
    for name in _QUOTED.findall(message):
        if name in fields:
            return (name,)
        args = fields.get("args")
        if isinstance(args, dict) and name in args:
            return ("args", name)
        if name in reverse and reverse[name] in fields:
            return (reverse[name],)
        if name in ("videoModel",) and "model" in fields:
            return ("model",)
    low = message.lower()
    for key in MEDIA_PATH_FIELDS:
        for item in _as_list(fields.get(key)):
            if isinstance(item, str) and item and item in message:
                return (key,)
    if "token type" in low and "token_type" in fields:
        return ("token_type",)
    if "max cost" in low and "max_cost" in fields:
        return ("max_cost",)
    return None
