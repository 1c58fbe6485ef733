"""Chat completions: a plain request object -> the JSON body -> a stream of typed events.

Used by ``sogni chat`` and by recipe ``chat`` jobs. Only fields the user set are sent; ``stream`` always is.
The custom-function loop (a tool with a local ``command``) runs here too, so recipes get it for free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.errors import GenerationFailed, MalformedResponse, SogniError, StreamError, TimeoutError_, UsageError
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
    return msgs


def build_chat_body(req: ChatRequest, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The exact JSON body: only what the user set, plus ``stream``."""
    validate_request(req)
    body: dict[str, Any] = {}
    if req.model:
        body["model"] = req.model
    body["messages"] = messages if messages is not None else initial_messages(req)
    body["stream"] = bool(req.stream)
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
        desc = item.get("description")
        out.append(Function(name=name, description=desc if isinstance(desc, str) else None, parameters=params,
                            command=command, source=path))
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


def _one_completion(client: Any, body: dict[str, Any], on_event: Callable[[Event], None]) -> dict[str, Any]:
    """Send one completion; emit events as they come; return the summary dict."""
    from .chat_stream import ChatStreamParser, parse_completion

    if not body.get("stream"):
        data = client.request("POST", CHAT_PATH, json=body, idempotent=True)
        events, summary = parse_completion(data or {})
        for ev in events:
            on_event(ev)
        summary["raw"] = data
        return summary

    import httpx

    from .sse import SSEDecoder

    parser = ChatStreamParser()
    decoder = SSEDecoder()
    with client.stream("POST", CHAT_PATH, json=body, idempotent=True,
                       headers={"Accept-Encoding": "identity"}) as resp:
        try:
            for raw in resp.iter_raw():
                for sse in decoder.feed(raw):
                    for ev in parser.feed_event(sse):
                        on_event(ev)
                if parser.done:
                    break
        except MalformedResponse as exc:  # e.g. an event over the size limit: write what came before it
            for sse in getattr(exc, "events", []):
                if parser.done:
                    break
                for ev in parser.feed_event(sse):
                    on_event(ev)
            for ev in parser.flush():
                on_event(ev)
            raise
        except httpx.TimeoutException:
            for ev in parser.flush():
                on_event(ev)
            raise TimeoutError_("The stream went silent for longer than the timeout.",
                                hint="What arrived was written. Raise --timeout to wait longer.") from None
        except httpx.HTTPError as exc:
            for ev in parser.flush():
                on_event(ev)
            raise StreamError(f"The connection broke during the stream ({exc.__class__.__name__}).",
                              hint="What arrived was written. Run the command again.") from None
    try:
        finals = parser.finish()
    except StreamError as exc:
        for ev in getattr(exc, "events", []):
            on_event(ev)
        raise
    for ev in finals:
        on_event(ev)
    summary = parser.summary()
    summary["raw"] = None
    return summary


def _run_local_function(fn: Function, call: ToolCall, timeout: float | None = None) -> str:
    import subprocess  # only manual tool loops run local commands: kept off the start-up path of a chat

    args = call.arguments
    payload = args if isinstance(args, str) else json.dumps(args)
    try:
        # text mode, but output that is not UTF-8 becomes U+FFFD instead of an error after the call was paid
        proc = subprocess.run(fn.command or [], input=payload, capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=timeout)
    except FileNotFoundError:
        raise UsageError(f"Function {fn.name}: command not found: {fn.command[0] if fn.command else ''}",
                         hint=f"Check 'command' in {fn.source}.") from None
    except subprocess.TimeoutExpired:
        raise TimeoutError_(f"Function {fn.name}: the command did not finish within {timeout:g} s.") from None
    if proc.returncode != 0:
        detail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        return json.dumps({"error": f"command exited with status {proc.returncode}", "stderr": detail[0][:500]})
    return proc.stdout


def run_chat(client: Any, req: ChatRequest, *, on_event: Callable[[Event], None] | None = None,
             command_timeout: float | None = None) -> ChatResult:
    """Run a chat (with the local function loop) and return its result; events go to ``on_event``."""
    emit = on_event or (lambda ev: None)
    messages = initial_messages(req)
    local = {f.name: f for f in req.functions if f.command}
    result = ChatResult()
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

        summary = _one_completion(client, body, relay)
        result.text += summary.get("content") or ""
        result.reasoning += summary.get("reasoning") or ""
        result.finish_reason = summary.get("finish_reason")
        if summary.get("usage"):
            result.usage = summary["usage"]
        result.extras.update(summary.get("extras") or {})
        result.completion = summary.get("raw") or _synth_completion(summary)
        calls = summary.get("tool_calls") or []
        assistant: dict[str, Any] = {"role": "assistant", "content": summary.get("content") or None}
        if calls:
            assistant["tool_calls"] = calls
        if summary.get("content") or calls:
            messages.append(assistant)
        stray = [c.name for c in held if not _offered(req, c.name)]
        if stray:
            for call in held:
                emit(call)
            raise GenerationFailed(
                f"The model called {', '.join(sorted(set(stray)))}, which this request did not offer; nothing "
                "was run.", hint="Check the function names in your --function files.")
        if held and all(c.name in local for c in held):
            if tool_rounds >= req.max_rounds:
                raise SogniError(
                    f"Stopped after {req.max_rounds} rounds of tool calls without a final answer.",
                    hint="Raise --max-rounds, or check the function's output.",
                    exit_code=4,
                )
            tool_rounds += 1
            for call in held:
                emit(call)
                content = _run_local_function(local[call.name], call, command_timeout)
                emit(ToolResult(call.id, call.name, content))
                messages.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": content})
            continue
        result.tool_calls = calls
        result.pending_calls = held
        for call in held:
            emit(call)
        emit(Done(result.finish_reason))
        break
    result.messages = messages
    return result


def _offered(req: ChatRequest, name: str) -> bool:
    """Was a function of this name offered? Custom functions by their name; Sogni tools (unless they were
    turned off) by either spelling, the brief's ``sogni_generate_image`` or the SDK's ``generate_image``."""
    if any(f.name == name for f in req.functions):
        return True
    if req.tools == "none":
        return False
    from ..catalog import load

    return load().is_hosted_call(name)


def _synth_completion(summary: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": summary.get("content") or None}
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
