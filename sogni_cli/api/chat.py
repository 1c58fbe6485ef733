"""Chat completions: a plain request object -> the JSON body -> a stream of typed events.

Used by ``sogni chat`` and by recipe ``chat`` jobs. Only fields the user set are sent; ``stream`` always is.
The custom-function loop (a tool with a local ``command``) runs here too, so recipes get it for free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.errors import ExitCode, GenerationFailed, SogniError, UsageError
from ..core.events import Delta, Done, Event, ToolCall, ToolResult

CHAT_PATH = "/v1/chat/completions"

# Field name -> type name: the one mapping shared by `sogni chat` flags and recipe chat jobs.
CHAT_FIELDS: dict[str, str] = {
    "prompt": "string",
    "system": "string",
    "developer": "string",
    "messages": "list",
    "model": "string",
    "max_tokens": "integer",
    "temperature": "number",
    "top_p": "number",
    "top_k": "integer",
    "min_p": "number",
    "repetition_penalty": "number",
    "frequency_penalty": "number",
    "presence_penalty": "number",
    "stop": "list[string]",
    "task_profile": "string",
    "think": "boolean",
    "template_kwargs": "object",
    "token_type": "string",
    "response_format": "string",
    "images": "list[path]",
    "tools": "string",
    "no_exec": "boolean",
    "tool_choice": "string",
    "functions": "list[path]",
    "max_rounds": "integer",
    "safe_content_filter": "boolean",
    "billing_mode": "string",
    "preset": "string",  # a saved preset's options, where the job sets none of its own
}

# Sampling fields copied as they are into the body when set.
SAMPLING = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty",
            "frequency_penalty", "presence_penalty")
TOOLS_MODES = {"default": True, "none": False, "rich": "rich", "creative-agent": "creative-agent",
               "creative-tools": "creative-tools"}
TASK_PROFILES = ("general", "coding", "reasoning")
TOKEN_TYPES = ("spark", "sogni", "auto")
BILLING_MODES = ("auto", "subscription", "tokens")
MAX_VISION_IMAGES = 20


@dataclass
class Function:
    """A custom OpenAI function tool, optionally run locally through ``command`` (an argv list)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    command: list[str] | None = None
    source: str = ""
    timeout: float | None = None  # seconds the command may run (default 60; never above --timeout)
    env: list[str] = field(default_factory=list)  # SOGNI_* variables the command may see

    def tool(self) -> dict[str, Any]:
        fn: dict[str, Any] = {"name": self.name}
        if self.description:
            fn["description"] = self.description
        fn["parameters"] = self.parameters or {"type": "object", "properties": {}}
        return {"type": "function", "function": fn}


@dataclass
class ChatRequest:
    prompt: str | None = None
    system: str | None = None
    developer: str | None = None
    messages: list[dict[str, Any]] | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: list[str] | None = None
    task_profile: str | None = None
    think: bool | None = None
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    token_type: str | None = None
    response_format: dict[str, Any] | None = None
    images: list[str] = field(default_factory=list)  # data: URIs, already prepared
    tools: str | None = None
    no_exec: bool = False
    tool_choice: str | None = None
    functions: list[Function] = field(default_factory=list)
    stream: bool = True
    max_rounds: int = 5
    safe_content_filter: bool | None = None
    billing_mode: str | None = None


@dataclass
class ChatResult:
    text: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    hosted_calls: list[ToolCall] = field(default_factory=list)  # hosted tools the API ran (seen in the reply)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    completion: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Any] = field(default_factory=list)
    pending_calls: list[ToolCall] = field(default_factory=list)


# ----------------------------------------------------------------------------- building


def validate_request(req: ChatRequest) -> None:
    problems = []
    if req.tools is not None and req.tools not in TOOLS_MODES:
        problems.append(f"Invalid --tools {req.tools!r}: one of {', '.join(TOOLS_MODES)}.")
    if req.task_profile is not None and req.task_profile not in TASK_PROFILES:
        problems.append(f"Invalid task profile {req.task_profile!r}: one of {', '.join(TASK_PROFILES)}.")
    if req.token_type is not None and req.token_type not in TOKEN_TYPES:
        problems.append(f"Invalid token type {req.token_type!r}: one of {', '.join(TOKEN_TYPES)}.")
    if req.billing_mode is not None and req.billing_mode not in BILLING_MODES:
        problems.append(f"Invalid billing mode {req.billing_mode!r}: one of {', '.join(BILLING_MODES)}.")
    if req.top_p is not None and not 0 <= req.top_p <= 1:
        problems.append(f"Invalid --top-p {req.top_p:g}: must be between 0 and 1.")
    if req.temperature is not None and not 0 <= req.temperature <= 2:
        problems.append(f"Invalid --temperature {req.temperature:g}: must be between 0 and 2.")
    if req.min_p is not None and not 0 <= req.min_p <= 1:
        problems.append(f"Invalid --min-p {req.min_p:g}: must be between 0 and 1.")
    if req.max_tokens is not None and req.max_tokens < 1:
        problems.append(f"Invalid --max-tokens {req.max_tokens}: must be at least 1.")
    if req.top_k is not None and req.top_k < 0:
        problems.append(f"Invalid --top-k {req.top_k}: must be 0 or more.")
    for name in ("frequency_penalty", "presence_penalty"):
        v = getattr(req, name)
        if v is not None and not -2 <= v <= 2:
            problems.append(f"Invalid --{name.replace('_', '-')} {v:g}: must be between -2 and 2.")
    if req.repetition_penalty is not None and req.repetition_penalty <= 0:
        problems.append(f"Invalid --repetition-penalty {req.repetition_penalty:g}: must be greater than 0.")
    if req.max_rounds < 1:
        problems.append("--max-rounds must be at least 1.")
    if len(req.images) > MAX_VISION_IMAGES:
        problems.append(f"Too many images ({len(req.images)}): at most {MAX_VISION_IMAGES} per request.")
    if problems:
        raise UsageError("\n".join(problems) if len(problems) > 1 else problems[0])


def initial_messages(req: ChatRequest) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if req.system:
        msgs.append({"role": "system", "content": req.system})
    if req.developer:
        msgs.append({"role": "developer", "content": req.developer})
    msgs.extend(req.messages or [])
    if req.prompt or req.images:
        if req.images:
            parts: list[dict[str, Any]] = []
            if req.prompt:
                parts.append({"type": "text", "text": req.prompt})
            for uri in req.images:
                parts.append({"type": "image_url", "image_url": {"url": uri}})
            msgs.append({"role": "user", "content": parts})
        else:
            msgs.append({"role": "user", "content": req.prompt})
    if not msgs:
        raise UsageError("Nothing to send: give a prompt, pipe text on standard input, or use --messages.",
                         hint='sogni chat "Hello"')
    if not any(isinstance(m, dict) and m.get("role") == "user" for m in msgs):
        # e.g. `sogni chat "-starts with a dash"` read as `-s "tarts…"`: a system message alone is never sent
        raise UsageError("Nothing to ask: the conversation has no user message.",
                         hint='Give a prompt. A prompt that begins with "-" goes after --: sogni chat -- "-x is…"')
    return msgs


def build_chat_body(req: ChatRequest, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The exact JSON body: only what the user set, plus ``stream``."""
    validate_request(req)
    body: dict[str, Any] = {}
    if req.model:
        body["model"] = req.model
    body["messages"] = messages if messages is not None else initial_messages(req)
    body["stream"] = bool(req.stream)
    if req.stream:
        body["stream_options"] = {"include_usage": True}  # token usage in a last chunk, as the non-streamed reply has
    for name in SAMPLING:
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.stop:
        body["stop"] = list(req.stop)
    if req.task_profile:
        body["task_profile"] = req.task_profile
    kwargs = dict(req.template_kwargs)
    if req.think is not None:
        kwargs["enable_thinking"] = req.think
    if kwargs:
        body["chat_template_kwargs"] = kwargs
    if req.token_type:
        body["token_type"] = req.token_type
    if req.billing_mode:
        body["billingMode"] = req.billing_mode  # camelCase on this route, as both official SDKs send it
    if req.safe_content_filter is not None:
        body["safe_content_filter"] = req.safe_content_filter
    if req.response_format:
        body["response_format"] = req.response_format
    if req.functions:
        body["tools"] = [f.tool() for f in req.functions]
    if req.tools is not None:
        body["sogni_tools"] = TOOLS_MODES[req.tools]
    if req.no_exec:
        body["sogni_tool_execution"] = False
    if req.tool_choice:
        if req.tool_choice in ("auto", "none", "required"):
            body["tool_choice"] = req.tool_choice
        else:
            body["tool_choice"] = {"type": "function", "function": {"name": req.tool_choice}}
    return body


# ----------------------------------------------------------------------------- files


#: The largest --messages / --function / --response-format file (or standard input) read.
MAX_INPUT_BYTES = 16 * 1024 * 1024


def _load_structured(path: str, text: str, what: str) -> Any:
    """JSON or YAML text -> data, with line and column in errors.

    YAML goes through the recipe loader's safe loader (no tags beyond plain values, bounded alias expansion and
    nesting); JSON nested deeper than that loader allows is refused too.
    """
    from ..core.loader import MAX_DEPTH, LoadError, load_data, too_deep

    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON in {what}: {exc.msg}") from None
        except RecursionError:
            data = None
        else:
            if not too_deep(data):
                return data
        raise UsageError(f"{path}: invalid JSON in {what}: nested more than {MAX_DEPTH} levels deep.")
    try:
        return load_data(text, path)
    except LoadError as exc:
        mark = exc.problem.mark
        raise UsageError(f"{path}:{mark.line}:{mark.col}: invalid YAML in {what}: {exc.problem.message}") from None


def _read_stdin(stream: Any, what: str) -> str:
    buf = getattr(stream, "buffer", None)
    if buf is None:  # a text stream without bytes underneath (tests, embedding)
        text = stream.read(MAX_INPUT_BYTES + 1)
        if len(text) > MAX_INPUT_BYTES:
            raise UsageError(f"{what} on standard input is over {MAX_INPUT_BYTES} bytes.")
        return text
    raw = buf.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise UsageError(f"{what} on standard input is over {MAX_INPUT_BYTES} bytes.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError("The standard input is not UTF-8 text.",
                         hint=f"{what} must be JSON or YAML text in UTF-8.") from None


def read_text_file(path: str, what: str, stdin: Any = None) -> str:
    """The text of ``path`` (``-``: standard input), UTF-8, at most :data:`MAX_INPUT_BYTES`."""
    if path == "-":
        import sys

        return _read_stdin(stdin or sys.stdin, what)
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{what} {path} is a folder, not a file.")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"Cannot read {what.lower()} {path}: {exc.strerror}") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise UsageError(f"{what} {path} is over {MAX_INPUT_BYTES} bytes.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text.") from None


VALID_ROLES = ("system", "developer", "user", "assistant", "tool")


def load_messages(path: str, stdin: Any = None) -> list[dict[str, Any]]:
    data = _load_structured(path, read_text_file(path, "Messages file", stdin), "--messages")
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    if not isinstance(data, list):
        raise UsageError(f"{path}: --messages expects a list of messages (or an object with a 'messages' list).")
    for i, m in enumerate(data, 1):
        if not isinstance(m, dict) or m.get("role") not in VALID_ROLES:
            raise UsageError(f"{path}: message {i} needs a 'role' of {', '.join(VALID_ROLES)}.")
        if "content" not in m and not m.get("tool_calls"):
            raise UsageError(f"{path}: message {i} has no 'content'.")
    return data


def load_functions(path: str) -> list[Function]:
    data = _load_structured(path, read_text_file(path, "Function file"), "--function")
    items = data if isinstance(data, list) else [data]
    out = []
    for i, item in enumerate(items, 1):
        where = f"{path}" + (f" (item {i})" if len(items) > 1 else "")
        if not isinstance(item, dict):
            raise UsageError(f"{where}: a function must be a mapping with at least 'name'.")
        if isinstance(item.get("function"), dict):  # an OpenAI tool object
            merged = dict(item["function"])
            if "command" in item:
                merged["command"] = item["command"]
            item = merged
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"{where}: the function has no 'name'.")
        import re

        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise UsageError(f"{where}: invalid function name {name!r} (letters, digits, _ and -, at most 64).")
        params = item.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise UsageError(f"{where}: 'parameters' must be a JSON Schema object.")
        command = item.get("command")
        if command is not None:
            if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
                raise UsageError(f"{where}: 'command' must be a non-empty list of strings (an argv list).",
                                 hint='command: ["python3", "tools/weather.py"]')
        timeout = item.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < 1e7):
            raise UsageError(f"{where}: 'timeout' must be a number of seconds greater than 0.")
        env = item.get("env")
        if env is not None and (not isinstance(env, list) or not all(isinstance(e, str) and e for e in env)):
            raise UsageError(f"{where}: 'env' must be a list of environment variable names.",
                             hint="env: [SOGNI_PROFILE]")
        desc = item.get("description")
        out.append(Function(name=name, description=desc if isinstance(desc, str) else None, parameters=params,
                            command=command, source=path, timeout=float(timeout) if timeout is not None else None,
                            env=list(env or [])))
    return out


def response_format_from(value: str) -> dict[str, Any]:
    if value == "json":
        return {"type": "json_object"}
    if value == "text":
        return {"type": "text"}
    data = _load_structured(value, read_text_file(value, "Response schema file"), "--response-format")
    if not isinstance(data, dict):
        raise UsageError(f"{value}: the response schema must be a JSON Schema object.")
    if "schema" in data and isinstance(data["schema"], dict):
        spec = {"name": data.get("name") or Path(value).stem, "schema": data["schema"]}
        if "strict" in data:
            spec["strict"] = bool(data["strict"])
    else:
        spec = {"name": Path(value).stem, "schema": data}
    import re

    spec["name"] = re.sub(r"[^A-Za-z0-9_-]", "_", str(spec["name"]))[:64] or "response"
    return {"type": "json_schema", "json_schema": spec}


# ----------------------------------------------------------------------------- running


def _hosted_name(name: str) -> bool:
    """A Sogni tool in either spelling (the brief's ``sogni_generate_image`` or the SDK's ``generate_image``)."""
    from ..catalog import load

    return load().is_hosted_call(name)


def _offered(req: ChatRequest, name: str) -> bool:
    """Was a function of this name offered to the model: one of ours, or a hosted tool when those are on."""
    if any(f.name == name for f in req.functions):
        return True
    return req.tools != "none" and _hosted_name(name)


Approver = Callable[[Function, ToolCall], bool]


def run_chat(client: Any, req: ChatRequest, *, on_event: Callable[[Event], None] | None = None,
             command_timeout: float | None = None, result: ChatResult | None = None,
             approve: Approver | None = None, warn: Callable[[str], None] | None = None,
             idempotency_key: str | None = None) -> ChatResult:
    """Run a chat (with the local function loop) and return its result; events go to ``on_event``.

    ``result`` (optional) is filled as the run goes, so a caller still has the conversation so far
    (``result.messages``) when the run fails after some rounds. ``approve`` is asked before each local command
    (False: the command is not run and the model is told so); ``warn`` gets a line for each failing command.
    ``--no-exec`` (``req.no_exec``) never runs a local command: its calls end the run like any other.
    ``idempotency_key`` (decided by the caller before anything is sent, e.g. from a recipe job's identity) is
    sent with the first round; later rounds send it with ``-rN`` appended, so every round has its own key and
    a rerun of the same job sends the same keys.
    """
    from . import chat_tools
    from .chat_send import one_completion

    emit = on_event or (lambda ev: None)
    if warn is None:
        from ..core.term import warn as warn_line

        warn = warn_line
    messages = initial_messages(req)
    chat_tools.check_functions(req.functions)
    local = {} if req.no_exec else {f.name: f for f in req.functions if f.command}
    result = result if result is not None else ChatResult()
    result.messages = messages
    tool_rounds = 0
    while True:
        body = build_chat_body(req, messages)
        held: list[ToolCall] = []

        def relay(ev: Event) -> None:
            if type(ev) is Delta:
                emit(ev)
            elif isinstance(ev, ToolCall):
                held.append(ev)
            elif isinstance(ev, Done):
                pass
            else:
                emit(ev)

        round_key = None
        if idempotency_key:
            round_key = idempotency_key if not tool_rounds else f"{idempotency_key}-r{tool_rounds}"
        summary = one_completion(client, body, relay, idempotency_key=round_key)
        result.text += summary.get("content") or ""
        result.reasoning += summary.get("reasoning") or ""
        result.finish_reason = summary.get("finish_reason")
        if summary.get("usage"):
            result.usage = summary["usage"]
        result.extras.update(summary.get("extras") or {})
        result.completion = _one_model(summary.get("raw"), summary) if summary.get("raw") else _synth_completion(summary)
        calls = summary.get("tool_calls") or []
        if held and not req.no_exec and req.tools != "none" and result.finish_reason != "tool_calls":
            # Hosted tool calls the API ran itself (the reply went on after them): shown, not pending.
            ran = [c for c in held if _hosted_name(c.name) and not any(f.name == c.name for f in req.functions)]
            for call in ran:
                emit(call)
            result.hosted_calls.extend(ran)
            held = [c for c in held if c not in ran]
            calls = [c for c in calls if c.get("id") not in {r.id for r in ran}]
        assistant: dict[str, Any] = {"role": "assistant", "content": summary.get("content") or None}
        if calls:
            assistant["tool_calls"] = calls
        if summary.get("content") or calls:
            messages.append(assistant)
        unknown = [c for c in held if not _offered(req, c.name)]
        if unknown:
            from ..core.term import shown

            result.pending_calls = held
            names = ", ".join(shown(c.name) for c in unknown)
            raise GenerationFailed(
                f"The model called a function that was not offered ({names}); nothing was run.",
                hint="Offered: " + (", ".join(f.name for f in req.functions) or "no custom functions")
                + ("" if req.tools == "none" else " and the hosted tools") + ".")
        if held and all(c.name in local for c in held):
            if tool_rounds >= req.max_rounds:
                raise SogniError(
                    f"Stopped after {req.max_rounds} rounds of tool calls without a final answer.",
                    hint="Raise --max-rounds, or check what the function returns; --save-messages keeps the "
                         "conversation so far.",
                    exit_code=ExitCode.INCOMPLETE,
                )
            tool_rounds += 1
            for call in held:
                emit(call)
                fn = local[call.name]
                if approve is not None and not approve(fn, call):
                    content = json.dumps({"error": "the user declined to run this command"})
                else:
                    run = chat_tools.run_local(fn, call.arguments, command_timeout)
                    content = run.content
                    if run.problem:
                        warn(f"function {fn.name}: {run.problem}")
                emit(ToolResult(call.id, call.name, content))
                messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": content})
            continue
        result.tool_calls = calls
        result.pending_calls = held
        for call in held:
            emit(call)
        emit(Done(result.finish_reason))
        break
    return result


def _one_model(raw: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed answer in the same shape as a streamed one: the text without its ``<think>`` block in
    ``message.content`` and the reasoning, wherever the server put it, in ``message.reasoning``."""
    import copy

    doc = copy.copy(raw)
    choices = doc.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
            and isinstance(choices[0].get("message"), dict):
        choice = dict(choices[0])
        message = dict(choice["message"])
        message.pop("reasoning_content", None)
        message.pop("reasoning", None)
        if isinstance(message.get("content"), str) or summary.get("content"):
            message["content"] = summary.get("content") or None
        if summary.get("reasoning"):
            message["reasoning"] = summary["reasoning"]
        choice["message"] = message
        doc["choices"] = [choice, *choices[1:]]
    return doc


def _synth_completion(summary: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": summary.get("content") or None}
    if summary.get("reasoning"):
        message["reasoning"] = summary["reasoning"]
    if summary.get("tool_calls"):
        message["tool_calls"] = summary["tool_calls"]
    doc: dict[str, Any] = {
        "id": summary.get("id"),
        "object": "chat.completion",
        "model": summary.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": summary.get("finish_reason")}],
    }
    if summary.get("usage"):
        doc["usage"] = summary["usage"]
    doc.update(summary.get("extras") or {})
    return doc
