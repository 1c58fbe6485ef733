"""``POST /v1/chat/completions``: validation like the real API and deterministic replies.

Replies: ``Echo: <last user text>`` (with ``I see N image(s): WxH fmt, ...`` before it when images are
attached), ``Tool result received: <content>`` after a ``role: tool`` message, a ``<think>`` block
first when ``chat_template_kwargs.enable_thinking`` is true, JSON for ``response_format``.

Tool calls: a custom function is called when ``tool_choice`` forces it, or when the choice is
``auto``/``required`` and the last user text names it. Hosted media tools are chosen from words in
the user text (image/picture/photo/draw, video/clip/animate, music/song/jingle, speech/say/voice)
or forced by ``tool_choice``; the tool must be in the ``sogni_tools`` family (``default``: the six
direct tools; ``creative-tools``/``rich``/``hosted``; ``creative-agent``).

Names: the default family is offered as ``sogni_<name>`` when the emulator runs with tool names
``prefixed`` (the product brief's spelling, the default) and flat with ``flat`` (the official SDK's);
the creative-tools/creative-agent families always use flat names. A forced ``tool_choice`` must name
an offered function exactly (anything else is a 400, as OpenAI-compatible servers answer). A forced
hosted tool takes its arguments from a JSON object at the end of the last user message when there is
one (as a model told "call X with exactly these arguments" would), and index arguments must follow
the tool's upload convention (else 400).

With execution on (default), media tools start a ``hosted_tool_sequence`` workflow and composition
tools run inline. A non-streamed answer returns at once with ``creative_workflows`` (status
``queued``) and ``sogni_tool_results``; a streamed answer holds until the workflow has finished (the
server's follow-up round), then streams the hosted call it ran (a ``tool_calls`` delta; the answer still ends
with ``stop``) and a reply whose text carries the media links, and carries no ``creative_workflows`` (the brief
promises them for non-streamed answers only).
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from . import compose
from . import tools as toolcat
from .common import ApiFailure, is_int, is_number
from .vision import MAX_IMAGES, image_info

MODELS = ["qwen3.6-35b-a3b-gguf-iq4xs", "qwen3.5-35b-a3b-abliterated-gguf-q4km"]
DEFAULT_MODEL = MODELS[0]
ROLES = {"system", "developer", "user", "assistant", "tool"}
KNOWN_FIELDS = {
    "messages", "model", "stream", "max_tokens", "temperature", "top_p", "top_k", "min_p",
    "repetition_penalty", "frequency_penalty", "presence_penalty", "stop", "tools", "tool_choice",
    "sogni_tools", "sogni_tool_execution", "task_profile", "chat_template_kwargs", "token_type",
    "billingMode", "billing_mode", "app_source", "media_references", "api_media_references",
    "safe_content_filter", "response_format", "n", "user", "seed", "stream_options", "metadata",
}
SOGNI_TOOLS_VALUES = {True: "default", False: None, "none": None, "creative-tools": "creative-tools",
                      "rich": "creative-tools", "hosted": "creative-tools", "creative-agent": "creative-agent"}
KEYWORDS = [
    (re.compile(r"\b(images?|pictures?|photos?|draw|drawing)\b", re.I), "generate_image"),
    (re.compile(r"\b(videos?|clips?|animate|animation)\b", re.I), "generate_video"),
    (re.compile(r"\b(music|songs?|jingles?)\b", re.I), "generate_music"),
    (re.compile(r"\b(speech|say|voice)\b", re.I), "generate_speech"),
]
PIECE = 4
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "refusal", "reasoning_content"}


def bad(message: str, param: str | None = None, code: str = "invalid_parameter", status: int = 400) -> ApiFailure:
    return ApiFailure(status, message, code=code, type="invalid_request_error", envelope="openai",
                      details={"param": param} if param else None)


@dataclass
class Reply:
    model: str
    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    extras: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0
    stream: bool = False
    include_usage: bool = False
    hold_until: float | None = None  # a streamed answer waits (monotonic time) until the tool's work is done
    ran_calls: list[dict[str, Any]] = field(default_factory=list)  # hosted calls the server ran (streamed first)
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))

    def pieces(self) -> list[str]:
        text = self.content or ""
        return [text[i:i + PIECE] for i in range(0, len(text), PIECE)]

    def usage(self) -> dict[str, int]:
        completion = len(self.pieces()) + sum(max(1, math.ceil(len(c["arguments"]) / PIECE)) for c in self.tool_calls)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}} for c in self.tool_calls]
        return msg

    def completion(self) -> dict[str, Any]:
        out = {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
               "choices": [{"index": 0, "message": self.message(), "finish_reason": self.finish_reason,
                            "logprobs": None}],
               "usage": self.usage()}
        out.update(self.extras)
        return out

    def chunks(self) -> list[dict[str, Any]]:
        def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
            return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish, "logprobs": None}]}

        out = [chunk({"role": "assistant", "content": ""})]
        # The server's own tool round comes first: the hosted calls it ran, then the reply that follows them.
        for i, call in enumerate(self.ran_calls):
            out.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                              "function": {"name": call["name"], "arguments": call["arguments"]}}]}))
        out += [chunk({"content": p}) for p in self.pieces()]
        for i, call in enumerate(self.tool_calls):
            out.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                              "function": {"name": call["name"], "arguments": ""}}]}))
            args = call["arguments"]
            size = max(1, math.ceil(len(args) / 4))
            for j in range(0, len(args), size):
                out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j:j + size]}}]}))
        out.append(chunk({}, self.finish_reason))
        if self.include_usage:
            out.append({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                        "model": self.model, "choices": [], "usage": self.usage()})
        return out


# --------------------------------------------------------------------------- validation
def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _check_messages(messages: Any) -> list[tuple[int, int, str]]:
    """Validate messages; returns the image infos of the last user message."""
    if not isinstance(messages, list) or not messages:
        raise bad("messages must be a non-empty array", "messages")
    count = 0
    last_images: list[tuple[int, int, str]] = []
    call_ids: set[str] = set()
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise bad(f"{where} must be an object", where)
        role = msg.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
        for key in msg:
            if key not in MESSAGE_KEYS:
                raise bad(f"{where}: unknown field {key!r}", f"{where}.{key}")
        if "name" in msg and not isinstance(msg["name"], str):
            raise bad(f"{where}.name must be a string", f"{where}.name")
        content = msg.get("content")
        images: list[tuple[int, int, str]] = []
        if content is None:
            if not (role == "assistant" and msg.get("tool_calls")):
                raise bad(f"{where}.content is required", f"{where}.content")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                pw = f"{where}.content[{j}]"
                if not isinstance(part, dict):
                    raise bad(f"{pw} must be an object", pw)
                ptype = part.get("type")
                if ptype == "text":
                    if not isinstance(part.get("text"), str):
                        raise bad(f"{pw}.text must be a string", pw)
                elif ptype == "image_url":
                    if role != "user":
                        raise bad(f"{pw}: image content is only allowed in user messages", pw)
                    iu = part.get("image_url")
                    if not isinstance(iu, dict):
                        raise bad(f"{pw}.image_url must be an object with a url", pw)
                    if iu.get("detail") not in (None, "auto", "low", "high"):
                        raise bad(f"{pw}.image_url.detail must be auto, low or high", pw)
                    count += 1
                    if count > MAX_IMAGES:
                        raise bad(f"too many images: at most {MAX_IMAGES} per request", pw)
                    images.append(image_info(iu.get("url"), pw))
                else:
                    raise bad(f"{pw}.type must be text or image_url", pw)
        elif not isinstance(content, str):
            raise bad(f"{where}.content must be a string or an array of content parts", f"{where}.content")
        if role == "user":
            last_images = images
        if "tool_calls" in msg:
            calls = msg["tool_calls"]
            if role != "assistant" or not isinstance(calls, list):
                raise bad(f"{where}.tool_calls must be an array on an assistant message", f"{where}.tool_calls")
            for j, call in enumerate(calls):
                cw = f"{where}.tool_calls[{j}]"
                fn = call.get("function") if isinstance(call, dict) else None
                if (not isinstance(call, dict) or not isinstance(call.get("id"), str) or call.get("type") != "function"
                        or not isinstance(fn, dict) or not isinstance(fn.get("name"), str)
                        or not isinstance(fn.get("arguments"), str)):
                    raise bad(f"{cw} must be {{id, type: 'function', function: {{name, arguments (string)}}}}", cw)
                call_ids.add(call["id"])
        if role == "tool":
            tcid = msg.get("tool_call_id")
            if not isinstance(tcid, str) or not tcid:
                raise bad(f"{where}.tool_call_id is required on tool messages", f"{where}.tool_call_id")
            if tcid not in call_ids:
                raise bad(f"{where}: tool message does not answer a preceding assistant tool call ({tcid})",
                          f"{where}.tool_call_id")
        elif "tool_call_id" in msg:
            raise bad(f"{where}.tool_call_id is only allowed on tool messages", f"{where}.tool_call_id")
    return last_images


def _check_media_args(messages: list[dict[str, Any]], custom: set[str]) -> None:
    """Media-bearing arguments of hosted tool calls in the history must be inline data: URIs."""
    for i, msg in enumerate(messages):
        for call in msg.get("tool_calls") or []:
            name = call["function"]["name"]
            if name in custom or toolcat.get(name) is None:
                continue
            try:
                args = json.loads(call["function"]["arguments"] or "{}")
            except ValueError:
                raise bad(f"messages[{i}]: arguments of {name} are not valid JSON", f"messages[{i}].tool_calls")
            if not isinstance(args, dict):
                continue
            for key, value in args.items():
                if not (key.endswith("_url") or key.endswith("_urls")):
                    continue
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, str) and not v.strip().lower().startswith("data:"):
                        raise bad(f"messages[{i}]: {name}.{key} must be an inline base64 data: URI; remote URLs are "
                                  "not allowed in chat tool arguments", f"messages[{i}].tool_calls")


def _check_tools(tools: Any) -> dict[str, dict[str, Any]]:
    if tools is None:
        return {}
    if not isinstance(tools, list):
        raise bad("tools must be an array", "tools")
    out: dict[str, dict[str, Any]] = {}
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise bad(f"{where} must be {{type: 'function', function: {{name, description?, parameters?}}}}", where)
        fn = tool["function"]
        name = fn.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise bad(f"{where}.function.name must match ^[A-Za-z0-9_-]{{1,64}}$", f"{where}.function.name")
        if "description" in fn and not isinstance(fn["description"], str):
            raise bad(f"{where}.function.description must be a string", where)
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type", "object") != "object"):
            raise bad(f"{where}.function.parameters must be a JSON schema object (type: object)",
                      f"{where}.function.parameters")
        if "strict" in fn and not isinstance(fn["strict"], bool):
            raise bad(f"{where}.function.strict must be a boolean", where)
        if name in out:
            raise bad(f"duplicate tool name {name!r}", where)
        out[name] = fn
    return out


def _check_scalars(body: dict[str, Any]) -> None:
    def num(key: str, lo: float | None = None, hi: float | None = None, integer: bool = False) -> None:
        if key not in body:
            return
        v = body[key]
        if not (is_int(v) if integer else is_number(v)):
            raise bad(f"{key} must be {'an integer' if integer else 'a number'}", key)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise bad(f"{key} is out of range", key)

    num("max_tokens", 1, integer=True)
    num("temperature", 0, 2)
    num("top_p", 0, 1)
    num("top_k", -1, integer=True)
    num("min_p", 0, 1)
    num("repetition_penalty", 0)
    num("frequency_penalty", -2, 2)
    num("presence_penalty", -2, 2)
    num("seed", integer=True)
    num("n", 1, 1, integer=True)
    for key in ("stream", "sogni_tool_execution", "safe_content_filter"):
        if key in body and not isinstance(body[key], bool):
            raise bad(f"{key} must be a boolean", key)
    if "model" in body and not isinstance(body["model"], str):
        raise bad("model must be a string", "model")
    if "stop" in body:
        stop = body["stop"]
        if not (stop is None or isinstance(stop, str) or (isinstance(stop, list) and len(stop) <= 4
                                                          and all(isinstance(s, str) for s in stop))):
            raise bad("stop must be a string or an array of up to 4 strings", "stop")
    if "task_profile" in body and body["task_profile"] not in ("general", "coding", "reasoning"):
        raise bad("task_profile must be general, coding or reasoning", "task_profile")
    if "token_type" in body and body["token_type"] not in ("spark", "sogni", "auto"):
        raise bad("token_type must be spark, sogni or auto", "token_type")
    for key in ("billingMode", "billing_mode"):
        if key in body and body[key] not in ("auto", "subscription", "tokens"):
            raise bad(f"{key} must be auto, subscription or tokens", key)
    for key in ("chat_template_kwargs", "metadata", "stream_options"):
        if key in body and not isinstance(body[key], dict):
            raise bad(f"{key} must be an object", key)
    for key in ("app_source", "user"):
        if key in body and not isinstance(body[key], str):
            raise bad(f"{key} must be a string", key)
    if "stream_options" in body and not body.get("stream"):
        raise bad("stream_options is only allowed when stream is true", "stream_options")
    for key in ("media_references", "api_media_references"):
        if key in body and not isinstance(body[key], list):
            raise bad(f"{key} must be an array", key)
    if "response_format" in body:
        rf = body["response_format"]
        if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
            raise bad("response_format.type must be text, json_object or json_schema", "response_format")
        if rf["type"] == "json_schema":
            js = rf.get("json_schema")
            if not isinstance(js, dict) or not isinstance(js.get("name"), str) or not isinstance(js.get("schema"), dict):
                raise bad("response_format.json_schema needs a name and a schema object", "response_format")


# --------------------------------------------------------------------------- reply
def _from_schema(schema: Any, text: str, only_required: bool = True) -> Any:
    if not isinstance(schema, dict):
        return text
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "string")
    if typ == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        keys = schema.get("required") if only_required else list(props)
        return {k: _from_schema(props.get(k), text, only_required) for k in keys or [] if isinstance(k, str)}
    if typ in ("number", "integer"):
        return 1
    if typ == "boolean":
        return True
    if typ == "array":
        return []
    return text


def _hosted_args(tool: toolcat.ToolInfo, text: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if "prompt" in tool.params or not tool.params:
        args["prompt"] = text
    for key in tool.required():
        if key in args:
            continue
        spec = tool.params[key]
        if spec.get("enum"):
            args[key] = spec["enum"][0]
        elif spec.get("type") in ("number", "integer"):
            args[key] = 1
        elif spec.get("type") == "boolean":
            args[key] = True
        elif spec.get("type") == "array":
            args[key] = [0] if (spec.get("items") or {}).get("type") in ("number", "integer") else [{"text": text}]
        elif spec.get("type") == "object":
            args[key] = {}
        else:
            args[key] = text
    return args


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            if v.get("type") == "image_url":
                return "[image]"
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return max(1, math.ceil(len(json.dumps(strip(messages))) / 4))


class ChatContext:
    """What a completion may touch: the workflow store (for hosted execution) and the tool names mode."""

    def __init__(self, store: Any, tool_names: str = "prefixed"):
        self.store = store
        self.tool_names = tool_names


def offered_names(mode: str | None, custom: dict[str, Any], tool_names: str) -> dict[str, str]:
    """Every function name the request offers -> the canonical hosted tool (custom functions map to '')."""
    out = {name: "" for name in custom}
    if mode:
        for name in toolcat.family(mode):
            label = f"sogni_{name}" if mode == "default" and tool_names == "prefixed" else name
            out.setdefault(label, name)
    return out


def _json_tail(text: str) -> dict[str, Any] | None:
    """The JSON object that ends ``text``, if any."""
    end = text.rstrip()
    if not end.endswith("}"):
        return None
    start = end.find("{")
    while start != -1:
        try:
            value = json.loads(end[start:])
        except ValueError:
            start = end.find("{", start + 1)
            continue
        return value if isinstance(value, dict) else None
    return None


def complete(body: Any, ctx: ChatContext) -> Reply:
    if not isinstance(body, dict):
        raise bad("request body must be a JSON object")
    for key in body:
        if key not in KNOWN_FIELDS:
            raise bad(f"Unrecognized request argument supplied: {key}", key)
    if "messages" not in body:
        raise bad("messages is required", "messages", code="missing_required_parameter")
    _check_scalars(body)
    messages = body["messages"]
    images = _check_messages(messages)
    custom = _check_tools(body.get("tools"))
    _check_media_args(messages, set(custom))
    model = body.get("model", DEFAULT_MODEL)
    if model not in MODELS:
        raise bad(f"The model {model!r} does not exist", "model", code="model_not_found", status=404)
    st = body.get("sogni_tools", True)
    if isinstance(st, bool):
        mode = SOGNI_TOOLS_VALUES[st]
    elif isinstance(st, str) and st in SOGNI_TOOLS_VALUES:
        mode = SOGNI_TOOLS_VALUES[st]
    else:
        raise bad("sogni_tools must be true, false, 'none', 'creative-tools', 'creative-agent', 'rich' or 'hosted'",
                  "sogni_tools")
    family = set(toolcat.family(mode)) if mode else set()
    choice = body.get("tool_choice", "auto")
    forced: str | None = None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad("tool_choice must be auto, none, required or {type: 'function', function: {name}}", "tool_choice")
    elif isinstance(choice, dict):
        fn = choice.get("function")
        if choice.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad("tool_choice must be {type: 'function', function: {name}}", "tool_choice")
        forced = fn["name"]
        offered = offered_names(mode, custom, ctx.tool_names)
        if forced not in offered:
            raise bad(f"tool_choice names a function that is not offered: {forced!r} (offered: "
                      f"{', '.join(sorted(offered)) or 'none'})", "tool_choice")
    else:
        raise bad("tool_choice must be a string or an object", "tool_choice")
    if choice == "required" and not custom and not mode:
        raise bad("tool_choice is 'required' but no tools are available", "tool_choice")

    reply = Reply(model=model, stream=bool(body.get("stream")), prompt_tokens=_prompt_tokens(messages))
    reply.include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and reply.stream
    last = messages[-1]
    user_msgs = [m for m in messages if m["role"] == "user"]
    text = _text_of(user_msgs[-1]["content"]).strip() if user_msgs else ""
    thinking = bool((body.get("chat_template_kwargs") or {}).get("enable_thinking"))
    think = f"<think>reasoning about: {text[:80]}</think>" if thinking else ""

    if last["role"] == "tool":
        reply.content = think + "Tool result received: " + _text_of(last["content"])
        return _limit(reply, body)

    # Which tool, if any?
    call_custom: str | None = None
    hosted: str | None = None  # canonical name
    hosted_label: str | None = None  # the name to show in tool_calls
    if forced is not None and choice != "none":
        if forced in custom:
            call_custom = forced
        else:
            hosted = toolcat.canonical(forced)
            hosted_label = forced
    elif choice in ("auto", "required"):
        call_custom = next((n for n in custom if re.search(rf"\b{re.escape(n)}\b", text)), None)
        if call_custom is None and mode and not images:
            hits = []
            for rx, name in KEYWORDS:
                m = rx.search(text)
                if m and name in family:
                    hits.append((m.start(), name))
            if hits:
                hosted = min(hits)[1]
            elif choice == "required" and not custom:
                hosted = "generate_image" if "generate_image" in family else sorted(family)[0]
        if call_custom is None and hosted is None and choice == "required" and custom:
            call_custom = next(iter(custom))
        if hosted:
            hosted_label = f"sogni_{hosted}" if mode == "default" and ctx.tool_names == "prefixed" else hosted

    if call_custom is not None:
        params = custom[call_custom].get("parameters") or {"type": "object", "properties": {}}
        reply.tool_calls = [{"id": _call_id(), "name": call_custom,
                             "arguments": json.dumps(_from_schema(params, text))}]
        reply.content = think or None
        reply.finish_reason = "tool_calls"
        return reply

    if hosted is not None:
        tool = toolcat.get(hosted)
        assert tool is not None and hosted_label is not None
        args = _hosted_args(tool, text or "an image")
        given = _json_tail(text) if forced is not None else None
        if given is not None:
            args = dict(given)
            if "prompt" in tool.params and "prompt" not in args:
                args["prompt"] = text[:text.rfind("{")].strip() or tool.name
            problems = tool.validate(args)
            if problems:
                raise bad(f"{tool.name}: " + "; ".join(problems), "tool_choice")
            from . import bindings

            refs = [r for r in body.get("media_references") or [] if isinstance(r, dict)]
            bindings.check_indices(tool, args, bindings.upload_counts(refs, images=len(images)), {},
                                   "messages", envelope="openai")
        if body.get("sogni_tool_execution") is False:
            reply.tool_calls = [{"id": _call_id(), "name": hosted_label, "arguments": json.dumps(args)}]
            reply.content = think or None
            reply.finish_reason = "tool_calls"
            return reply
        _execute_hosted(reply, ctx, body, tool, hosted_label, args, think)
        return reply

    reply.content = think + _plain_text(body, text, images)
    return _limit(reply, body)


def _plain_text(body: dict[str, Any], text: str, images: list[tuple[int, int, str]]) -> str:
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_object":
        return json.dumps({"echo": text})
    if rf.get("type") == "json_schema":
        return json.dumps(_from_schema(rf["json_schema"]["schema"], text, only_required=False))
    prefix = ""
    if images:
        prefix = f"I see {len(images)} image(s): " + ", ".join(f"{w}x{h} {f}" for w, h, f in images) + ". "
    return prefix + f"Echo: {text}"


def _limit(reply: Reply, body: dict[str, Any]) -> Reply:
    text = reply.content or ""
    stops = body.get("stop")
    for s in [stops] if isinstance(stops, str) else stops or []:
        if s and s in text:
            text = text[:text.index(s)]
    max_tokens = body.get("max_tokens")
    if is_int(max_tokens) and math.ceil(len(text) / PIECE) > max_tokens:
        text = text[:max_tokens * PIECE]
        reply.finish_reason = "length"
    reply.content = text
    return reply


def _execute_hosted(reply: Reply, ctx: ChatContext, body: dict[str, Any], tool: toolcat.ToolInfo, label: str,
                    args: dict[str, Any], think: str) -> None:
    call_id = _call_id()
    if tool.route == "execute":
        data = compose.run(tool.name, {k: v for k, v in args.items() if k in tool.params})
        reply.content = think + data["message"]
        if reply.stream:
            reply.ran_calls = [{"id": call_id, "name": label, "arguments": json.dumps(args)}]
            return
        reply.extras["sogni_tool_results"] = [{"tool": tool.name, "toolCallId": call_id, "status": "completed",
                                               "success": True, **data["result"]}]
        return
    opts = {}
    for src, dst in (("token_type", "token_type"), ("billingMode", "billing_mode"), ("billing_mode", "billing_mode"),
                     ("app_source", "app_source"), ("safe_content_filter", "safe_content_filter"),
                     ("media_references", "media_references")):
        if src in body:
            opts[dst] = body[src]
    prompt = str(args.get("prompt") or args.get("description") or "")
    steps = [{"id": "step_1", "toolName": tool.name, "arguments": args}]
    rec = ctx.store.create("hosted_tool_sequence", prompt[:80] or tool.name,
                           {"title": prompt[:80] or tool.name, "steps": steps, "source": "chat_completion"}, steps, opts)
    wid = rec["workflowId"]
    urls = ctx.store.artifact_urls(wid)
    links = ctx.store.urls(wid)
    if urls:
        text = (f"Started {tool.name} for \"{prompt}\" (workflow {wid}). The {tool.media} will be at: "
                + " ".join(urls))
    else:
        text = f"Started {tool.name} for \"{prompt}\" (workflow {wid})."
    reply.content = think + text
    if reply.stream:
        reply.ran_calls = [{"id": call_id, "name": label, "arguments": json.dumps(args)}]
        flow = ctx.store._get(wid)
        reply.hold_until = flow.mono + max((e["offset"] for e in flow.timeline), default=0.0)
        return
    # The status at acceptance (the first event), however long this request took.
    reply.extras["creative_workflows"] = [{"workflowId": wid, "status": "queued", **links}]
    reply.extras["sogni_tool_results"] = [{"tool": tool.name, "name": label, "toolCallId": call_id,
                                           "workflowId": wid, "status": "queued", "media_type": tool.media,
                                           "prompt": prompt, "message": text}]
