"""Media jobs: the one place that turns command flags (or recipe fields) into a tool call.

A :class:`MediaJob` is plain data: which tool, the exact arguments, the local media files to upload and the
billing switches. :data:`JOB_FIELDS` is the single mapping from job field names to tool arguments for each
kind of job; :func:`build_job` checks every field and the arguments against the tool catalogue and reports
every problem at once (:class:`~sogni_cli.core.errors.UsageError`, exit 2) before anything is sent.

No typer, no httpx, no rich: commands and the recipe runner both use this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import UsageError

__all__ = ["JOB_FIELDS", "COMMON_FIELDS", "KINDS", "MediaJob", "MediaInput", "build_job", "workflow_body",
           "agent_body", "agent_tool_name", "parse_lora", "placeholder_refs", "media_reference"]

# kind -> {job field: tool argument}. ``None`` marks a field with its own handling (media files, lists,
# the free-form ``args`` dict, the tool name). ``model`` is ``videoModel`` for video tools (see _model_arg).
JOB_FIELDS: dict[str, dict[str, str | None]] = {
    "image": {
        "prompt": "prompt", "width": "width", "height": "height", "count": "numberOfVariations", "seed": "seed",
        "model": "model", "negative": "negativePrompt", "guidance": "guidance", "format": "outputFormat",
        "aspect_ratio": "aspectRatio", "loras": None, "args": None,
    },
    "edit": {
        "prompt": "prompt", "images": None, "model": "model", "count": "numberOfVariations", "seed": "seed",
        "width": "width", "height": "height", "aspect_ratio": "aspectRatio", "format": "outputFormat",
        "loras": None, "args": None,
    },
    "video": {
        "prompt": "prompt", "image": None, "audio": None, "video": None, "duration": "duration", "ratio": "ratio",
        "model": "videoModel", "with_audio": "generateAudio", "count": "numberOfVariations", "seed": "seed",
        "negative": "negativePrompt", "width": "width", "height": "height", "aspect_ratio": "aspectRatio",
        "format": "outputFormat", "loras": None, "args": None,
    },
    "music": {
        "prompt": "prompt", "duration": "duration", "bpm": "bpm", "key": "keyscale", "lyrics": "lyrics",
        "model": "model", "time_signature": "timesig", "count": "numberOfVariations", "seed": "seed", "args": None,
    },
    "speech": {
        "text": "prompt", "voice": "voice", "voice_description": "voiceDescription", "language": "language",
        "format": "outputFormat", "model": "model", "seed": "seed", "count": "numberOfVariations", "args": None,
    },
    "tool": {
        "name": None, "prompt": "prompt", "images": None, "audio": None, "video": None, "count": "numberOfVariations",
        "seed": "seed", "model": "model", "args": None,
    },
}
#: Fields every kind accepts: billing switches, not tool arguments.
COMMON_FIELDS = ("token_type", "confirm_cost", "max_cost", "safe_content_filter", "billing_mode")
BILLING_MODES = ("auto", "subscription", "tokens")
KINDS = tuple(JOB_FIELDS)
DEFAULT_TOOL = {"image": "generate_image", "edit": "edit_image", "music": "generate_music",
                "speech": "generate_speech"}
MAX_EDIT_IMAGES = 6
TOKEN_TYPES = ("spark", "sogni", "auto")


@dataclass
class MediaInput:
    """A local media file to upload: where it is, what it is, and its place among the uploads."""

    path: str
    kind: str  # image | audio | video
    mime: str
    size: int
    ref_id: str  # media_ref_N
    position: int  # 0-based among the uploads of its kind (the tool's index convention turns it into a value)
    ref_index: int = 0  # 0-based position in the request's media_references

    @property
    def filename(self) -> str:
        return Path(self.path).name

    def read_bytes(self) -> bytes:
        from ..media.inputs import load_media_file

        return load_media_file(self.path, self.kind, probe=False).read_bytes()  # checked when the job was built


@dataclass
class MediaJob:
    kind: str
    tool: str
    arguments: dict[str, Any]
    inputs: list[MediaInput] = field(default_factory=list)
    prompt: str | None = None
    token_type: str | None = None
    confirm_cost: bool = False
    max_cost: int | None = None
    route: str = "workflow"  # or "execute" (synchronous composition tools)
    media: str | None = None  # what the tool makes: image | video | audio | model | text
    # (argument, upload) pairs filled from the uploads: a workflow step binds these with dependsOn instead
    bindings: list[tuple[str, MediaInput]] = field(default_factory=list)
    safe_content_filter: bool | None = None
    billing_mode: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "tool": self.tool, "arguments": self.arguments,
                "inputs": [i.path for i in self.inputs], "token_type": self.token_type,
                "confirm_cost": self.confirm_cost, "max_cost": self.max_cost}


# ----------------------------------------------------------------------------------------- helpers


def parse_lora(text: Any) -> tuple[str, float | None]:
    """``NAME`` or ``NAME:STRENGTH`` → (name, strength or None)."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"Invalid LoRA {text!r}: expected NAME or NAME:STRENGTH.")
    name, sep, strength = text.strip().rpartition(":")
    if not sep:
        return text.strip(), None
    try:
        value = float(strength)
    except ValueError:
        # a colon that is part of the name (no number after it): `ns:name`
        return text.strip(), None
    if not name:
        raise UsageError(f"Invalid LoRA {text!r}: the name is empty.")
    return name, value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _model_arg(tool: Any) -> str:
    if tool is not None and "model" not in tool.params and "videoModel" in tool.params:
        return "videoModel"
    return "model"


def _video_tool(images: list, audio: list, video: list, problems: list[str]) -> str:
    if video and audio:
        problems.append("--video and --audio cannot be combined: video_to_video takes no audio input")
        return "video_to_video"
    if video:
        return "video_to_video"
    if audio:
        return "sound_to_video"
    if images:
        return "animate_photo"
    return "generate_video"


def _index_value(param: Any, inputs: list["MediaInput"]) -> Any:
    indices = [param.upload_position(i.position) if param is not None else -(i.position + 1) for i in inputs]
    if param is not None and param.type == "array":
        return list(indices)
    return indices[0]


def _whole_numbers(tool: Any, args: dict[str, Any]) -> None:
    """Numbers that are whole go on the wire as integers (``5``, not ``5.0``), as the official SDK sends them;
    a parameter the catalogue types ``integer`` must be whole anyway."""
    for key, value in list(args.items()):
        param = tool.params.get(key) if tool is not None else None
        if param is None or param.type not in ("number", "integer"):
            continue
        if isinstance(value, float) and value.is_integer():
            args[key] = int(value)


# ----------------------------------------------------------------------------------------- build


def build_job(kind: str, fields: dict[str, Any], *, base_dir: Path = Path(".")) -> MediaJob:
    """Check ``fields`` for ``kind`` and build the job; raises UsageError listing every problem.

    ``fields`` uses the names of :data:`JOB_FIELDS` (plus :data:`COMMON_FIELDS`); ``None`` values count as
    not set. Media paths are resolved against ``base_dir`` and checked by content. ``args`` is a dict of
    extra tool arguments (``--arg``/``--args``); a key set both there and by a typed field must agree.
    """
    from .. import catalog
    from ..media.inputs import load_media_file

    if kind not in JOB_FIELDS:
        raise UsageError(f"Unknown job kind {kind!r}", hint="Kinds: " + ", ".join(KINDS))
    spec = JOB_FIELDS[kind]
    problems: list[str] = []
    values = {k: v for k, v in (fields or {}).items() if v is not None}
    for key in values:
        if key not in spec and key not in COMMON_FIELDS:
            allowed = ", ".join(sorted([*spec, *COMMON_FIELDS]))
            problems.append(f"unknown field {key!r} for a {kind} job (fields: {allowed})")

    cat = catalog.load()
    extra = values.get("args", {})
    if not isinstance(extra, dict):
        problems.append(f"'args' must be a mapping of tool arguments, got {type(extra).__name__}")
        extra = {}

    # media files, by kind, in the order given
    files: dict[str, list[Any]] = {"image": [], "audio": [], "video": []}
    sources = {"image": values.get("images", values.get("image")), "audio": values.get("audio"),
               "video": values.get("video")}
    for mkind, raw in sources.items():
        for p in _as_list(raw):
            if not isinstance(p, (str, Path)) or not str(p):
                problems.append(f"{mkind} input must be a file path, got {p!r}")
                continue
            path = Path(p)
            if not path.is_absolute():
                path = Path(base_dir) / path
            try:
                files[mkind].append(load_media_file(str(path), mkind))
            except UsageError as exc:
                problems.append(exc.message)

    # which tool
    tool = None
    if kind == "tool":
        name = values.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append("a tool job needs the tool 'name'")
        else:
            tool = cat.get(name)
            if tool is None:
                try:
                    cat.require(name)
                except UsageError as exc:
                    problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
    elif kind == "video":
        tool = cat.get(_video_tool(_as_list(sources["image"]), _as_list(sources["audio"]),
                                   _as_list(sources["video"]), problems))
    else:
        tool = cat.get(DEFAULT_TOOL[kind])
    if kind == "edit":
        n = len(_as_list(sources["image"]))
        if n == 0:
            problems.append("edit needs at least one image (-i IMG)")
        elif n > MAX_EDIT_IMAGES:
            problems.append(f"edit takes at most {MAX_EDIT_IMAGES} images, got {n}")

    # arguments from typed fields
    args: dict[str, Any] = {}
    for key, arg in spec.items():
        if arg is None or key not in values:
            continue
        value = values[key]
        if key == "model":
            arg = _model_arg(tool) if kind == "tool" else arg
        args[arg] = value
    if "loras" in values:
        names, strengths = [], []
        try:
            for item in _as_list(values["loras"]):
                n_, s_ = parse_lora(item)
                names.append(n_)
                strengths.append(s_)
        except UsageError as exc:
            problems.append(exc.message)
        if names:
            args["loras"] = names
            if any(s is not None for s in strengths):
                args["loraStrengths"] = [1.0 if s is None else s for s in strengths]
    for key, value in extra.items():
        if key in args and args[key] != value:
            problems.append(f"'{key}' is set twice with different values ({json.dumps(args[key])} and "
                            f"{json.dumps(value)})")
            continue
        args[key] = value

    # media inputs → references and index arguments
    inputs: list[MediaInput] = []
    bound: list[tuple[str, MediaInput]] = []
    for mkind in ("image", "audio", "video"):
        for k, mf in enumerate(files[mkind]):
            inputs.append(MediaInput(path=mf.path, kind=mkind, mime=mf.mime, size=mf.size,
                                     ref_id=f"media_ref_{len(inputs) + 1}", position=k, ref_index=len(inputs)))
    if tool is not None:
        for mkind in ("image", "audio", "video"):
            mine = [i for i in inputs if i.kind == mkind]
            if not mine:
                continue
            if mkind not in tool.inputs:
                problems.append(f"{tool.name} takes no {mkind} input")
                continue
            arg = tool.inputs[mkind]
            if arg is None or arg in args:
                continue  # the tool uses the upload without an index argument, or the user set it
            param = tool.params.get(arg)
            args[arg] = _index_value(param, mine)
            bound.extend((arg, i) for i in (mine if param is not None and param.type == "array" else mine[:1]))
        _whole_numbers(tool, args)
        if tool.route == "execute" and inputs:
            problems.append(f"{tool.name} is a text composition tool; it takes no media files")
        problems.extend(tool.validate(args))

    token_type = values.get("token_type")
    if token_type is not None and token_type not in TOKEN_TYPES:
        problems.append(f"token type must be one of {', '.join(TOKEN_TYPES)}, got {token_type!r}")
    max_cost = values.get("max_cost")
    if max_cost is not None and (isinstance(max_cost, bool) or not isinstance(max_cost, int) or max_cost < 1):
        problems.append(f"max cost must be a whole number of capacity units of at least 1, got {max_cost!r}")
    confirm = values.get("confirm_cost", False)
    if not isinstance(confirm, bool):
        problems.append(f"confirm_cost must be true or false, got {confirm!r}")
    scf = values.get("safe_content_filter")
    if scf is not None and not isinstance(scf, bool):
        problems.append(f"safe_content_filter must be true or false, got {scf!r}")
    billing_mode = values.get("billing_mode")
    if billing_mode is not None and billing_mode not in BILLING_MODES:
        problems.append(f"billing mode must be one of {', '.join(BILLING_MODES)}, got {billing_mode!r}")

    if problems:
        label = tool.name if tool is not None else kind
        if len(problems) == 1:
            msg = f"Invalid {label} request: {problems[0]}"
        else:
            msg = f"Invalid {label} request:\n  - " + "\n  - ".join(problems)
        hint = f"See `sogni tools show {tool.name}`." if tool is not None else None
        raise UsageError(msg, hint=hint)
    assert tool is not None
    prompt = args.get("prompt") if isinstance(args.get("prompt"), str) else None
    if prompt is None:
        for key in ("description", "brief", "imagePrompt"):
            if isinstance(args.get(key), str):
                prompt = args[key]
                break
    return MediaJob(kind=kind, tool=tool.name, arguments=args, inputs=inputs, prompt=prompt,
                    token_type=token_type, confirm_cost=bool(confirm), max_cost=max_cost, route=tool.route,
                    media=tool.media, bindings=bound, safe_content_filter=values.get("safe_content_filter"),
                    billing_mode=values.get("billing_mode"))


# ----------------------------------------------------------------------------------------- requests


def media_reference(inp: MediaInput, url: str) -> dict[str, Any]:
    """The ``media_references`` item for an uploaded input."""
    return {"id": inp.ref_id, "kind": inp.kind, "url": url, "mime_type": inp.mime, "filename": inp.filename}


def placeholder_refs(job: MediaJob) -> list[dict[str, Any]]:
    """References with ``<upload of NAME>`` in place of URLs (what ``--dry-run`` shows)."""
    return [media_reference(i, f"<upload of {i.filename}>") for i in job.inputs]


def workflow_body(job: MediaJob, media_refs: list[dict[str, Any]] | None = None, *,
                  title: str | None = None) -> dict[str, Any]:
    """The ``POST /v1/creative-agent/workflows`` body: one step with exactly the job's arguments (``title``:
    a name that lets the workflow be found in ``workflow list``, e.g. a recipe job's identity).

    Uploads are bound the way the API documents for workflows: each argument that addresses an upload is
    left out of ``arguments`` and filled by a ``dependsOn`` entry from ``$input_media`` (the request's
    ``media_references``, by position) with the transform and media type of that upload."""
    if job.kind == "template":  # a saved template: its id (or name, for plans) and inputs
        return job.body()  # type: ignore[attr-defined]
    bound = {arg for arg, _ in job.bindings} if media_refs else set()
    step: dict[str, Any] = {"toolName": job.tool,
                            "arguments": {k: v for k, v in job.arguments.items() if k not in bound}}
    if bound:
        step["dependsOn"] = [{"sourceStepId": "$input_media", "sourceArtifactIndex": inp.ref_index,
                              "targetArgument": arg, "transform": f"{inp.kind}_index", "mediaType": inp.kind,
                              "required": True} for arg, inp in job.bindings]
    body: dict[str, Any] = {"input": {"title": title, "steps": [step]} if title else {"steps": [step]}}
    if media_refs:
        body["media_references"] = list(media_refs)
    _billing_fields(job, body, billing_key="billing_mode")
    if job.confirm_cost:
        body["confirm_cost"] = True
    if job.max_cost is not None:
        body["max_estimated_capacity_units"] = job.max_cost
    return body


def _billing_fields(job: MediaJob, body: dict[str, Any], billing_key: str) -> None:
    if job.token_type:
        body["token_type"] = job.token_type
    if job.billing_mode:
        body[billing_key] = job.billing_mode
    if job.safe_content_filter is not None:
        body["safe_content_filter"] = job.safe_content_filter


def agent_tool_name(tool_name: str) -> tuple[str, Any]:
    """(function name to force, ``sogni_tools`` value) for ``--agent``.

    The brief names the default tools ``sogni_generate_image`` …; the official SDK says that prefix was
    retired. Both agree on the creative-agent family, whose names are flat, so that is what is offered and
    forced for every tool: a forced name that was not offered would be a 400."""
    from .. import catalog

    tool = catalog.load().require(tool_name)
    return tool.name, "creative-agent"


def agent_body(job: MediaJob, inline: list[tuple[MediaInput, str]] | None = None) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body for ``--agent``: the tool forced, hosted execution on, the prompt
    plus the exact arguments as JSON; media inline as ``data:`` URIs (images as vision parts, audio and video
    as ``media_references`` items)."""
    name, mode = agent_tool_name(job.tool)
    text = (job.prompt or "").strip()
    text = (text + "\n\n" if text else "") + (
        f"Call {name} exactly once with exactly these arguments (JSON):\n"
        + json.dumps(job.arguments, ensure_ascii=False, sort_keys=True))
    parts: list[dict[str, Any]] = []
    refs: list[dict[str, Any]] = []
    for inp, uri in inline or []:
        if inp.kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": uri}})
        else:
            refs.append({"id": inp.ref_id, "kind": inp.kind, "dataUri": uri, "mime_type": inp.mime,
                         "filename": inp.filename})
    content: Any = [{"type": "text", "text": text}, *parts] if parts else text
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": content}],
        "stream": False,
        "tool_choice": {"type": "function", "function": {"name": name}},
        "sogni_tools": mode,
        "sogni_tool_execution": True,
    }
    if refs:
        body["media_references"] = refs
    _billing_fields(job, body, billing_key="billingMode")
    return body
