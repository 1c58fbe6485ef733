"""OpenAI-style chat completion bodies (streamed chunks or one ``chat.completion``) to typed events.

:class:`ChatStreamParser` takes the :class:`~sogni_cli.api.sse.SSEEvent` objects of a streamed completion and
returns :mod:`sogni_cli.core.events` events as soon as each chunk allows; :func:`parse_completion` does the same for
a non-streamed body. Both split reasoning from the answer: the ``reasoning_content``/``reasoning`` delta fields
and ``<think>…</think>`` inside the content become :class:`Reasoning`, the rest :class:`Delta`.

Choices made where servers differ (all deliberate):

- **End of stream.** Only ``data: [DONE]`` marks a complete stream. A stream that stops before it (even
  after a ``finish_reason``) raises :class:`StreamError` (exit 5) from :meth:`ChatStreamParser.finish`, after
  the text that did arrive has been returned: a cut connection must never pass for a finished answer.
- **Errors inside a 200 stream.** A chunk carrying an error object (``{"error": {...}}`` or
  ``{"status": "error", ...}``) raises the :class:`ApiError` of :func:`sogni_cli.core.errors.parse_error_body`, with
  the exit code taken from the status/code/type the error object carries (402 or a billing code → 9,
  401/403 → 3, 429 and server errors → 5). Data that is not JSON raises :class:`UnavailableError`, JSON
  nested too deeply to decode :class:`MalformedResponse` (both exit 5).
- **Tags split across chunks.** Only a suffix that could be the start of ``<think>``/``</think>`` is held back
  (e.g. a chunk ending in ``"<th"``); all other text is returned from the same call that received it.
- **Missing opening tag.** Some servers start the content inside the reasoning and send only ``</think>``. Text
  before the first ``</think>`` is taken as reasoning only when no visible text has been emitted yet (text is
  never held back to wait for a tag that may not come). Once visible text went out, a stray ``</think>`` is
  kept as literal text.
- **Blank lines around the answer.** Whitespace at the start of the answer (at the start of the stream and right
  after ``</think>``) is held until visible text arrives, then the whitespace-only lines are dropped (the
  indentation of the first line is kept). Reasoning text is passed through unchanged.
- **Parallel choices.** Only the first choice (``index`` 0) is read; the CLI never asks for ``n > 1``.
"""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import ApiError, MalformedResponse, StreamError, UnavailableError, exit_code_for, parse_error_body
from ..core.events import Delta, Done, Event, Reasoning, ToolCall, Usage
from .sse import SSEEvent

__all__ = ["ChatStreamParser", "parse_completion", "error_from_body"]

_OPEN = "<think>"
_CLOSE = "</think>"
_SIMPLE_DELTA = frozenset({"role", "content"})
_json_decode = json.JSONDecoder().decode
_KNOWN_TOP = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint"})

# Error ``type``/``code`` strings seen in OpenAI-compatible servers, mapped to the HTTP status they stand for.
_TYPE_STATUS = {
    "authentication_error": 401, "invalid_api_key": 401, "unauthorized": 401, "invalid_authentication": 401,
    "permission_error": 403, "permission_denied": 403, "forbidden": 403,
    "insufficient_balance": 402, "insufficient_quota": 402, "insufficient_credit": 402,
    "subscription_unavailable": 402, "payment_required": 402, "billing_error": 402,
    "rate_limit_error": 429, "rate_limit_exceeded": 429, "rate_limit": 429, "rate_limited": 429,
    "invalid_request_error": 400, "bad_request": 400, "not_found_error": 404, "model_not_found": 404,
    "server_error": 500, "api_error": 500, "internal_error": 500, "internal_server_error": 500,
    "service_unavailable": 503, "overloaded_error": 503, "overloaded": 503,
}


def _http_status(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and 400 <= value <= 599:
        return value
    return None


def _is_error(obj: dict[str, Any]) -> bool:
    err = obj.get("error")
    return (isinstance(err, (dict, str)) and bool(err)) or obj.get("status") == "error"


def error_from_body(obj: dict[str, Any]) -> ApiError:
    """The :class:`ApiError` for an error object received inside a successful (200) response.

    The message comes from :func:`parse_error_body`; the exit code from the status the object carries
    (``error.status``, an HTTP-like ``error.code``, a top-level ``status``/``statusCode``) or, failing that,
    from a well-known ``type``/``code`` string (``rate_limit_exceeded`` → 429, ``authentication_error`` → 401…).
    """
    err = parse_error_body(None, obj)
    inner = obj.get("error") if isinstance(obj.get("error"), dict) else {}
    status = None
    for value in (inner.get("status"), inner.get("status_code"), inner.get("statusCode"), inner.get("code"),
                  obj.get("status"), obj.get("statusCode"), obj.get("status_code"), obj.get("errorCode")):
        status = _http_status(value)
        if status:
            break
    if status is None:
        for value in (err.code, err.type):
            if isinstance(value, str) and value.lower() in _TYPE_STATUS:
                status = _TYPE_STATUS[value.lower()]
                break
    if status is not None:
        err.status = status
        err.exit_code = exit_code_for(status, err.code, err.type)
        if not err.hint:
            err.hint = parse_error_body(status, obj).hint
    return err


def _held_len(s: str, closing_only: bool) -> int:
    """Length of the suffix of ``s`` that could be the start of a tag (0 if none).

    Both tags contain ``<`` only at their start, so the one candidate is the last ``<`` among the final
    ``len("</think>") - 1`` characters.
    """
    i = s.rfind("<", max(0, len(s) - 7))
    if i < 0:
        return 0
    tail = s[i:]
    if _CLOSE.startswith(tail) or (not closing_only and _OPEN.startswith(tail)):
        return len(tail)
    return 0


def _parse_arguments(raw: str) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


def _too_deep() -> MalformedResponse:
    return MalformedResponse("The chat stream sent JSON nested too deeply to read.",
                             hint="The server or a proxy in between answered in an unexpected format.")


class ChatStreamParser:
    """Turn the SSE events of a streamed chat completion into typed events.

    Call :meth:`feed_event` for every SSE event and :meth:`finish` once the stream has ended. What was collected
    stays available afterwards: :attr:`content`, :attr:`reasoning`, :attr:`tool_calls`, :attr:`finish_reason`,
    :attr:`usage`, :attr:`model`, :attr:`id`, :attr:`extras` (other top-level keys such as
    ``creative_workflows``, ``sogni_tool_results`` or ``creativeWorkflows``, as sent) and :attr:`done`.
    """

    def __init__(self) -> None:
        # text is collected as parts (appending to a str attribute would copy it on every piece)
        self._content_parts: list[str] = []
        self._reasoning_parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model: str | None = None
        self.id: str | None = None
        self.extras: dict[str, Any] = {}
        self.done = False
        #: SSE events with a name other than ``message``/``error`` (kept, not interpreted)
        self.other_events: list[SSEEvent] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._in_think = False
        self._held = ""  # a possible tag prefix at the end of the last content piece
        self._lead = True  # at the start of the answer: hold whitespace
        self._ws = ""  # whitespace held while _lead
        self._visible = False  # a Delta with visible text was emitted
        self._flushed = False

    # -- collected values ---------------------------------------------------------------------------------
    @property
    def content(self) -> str:
        """The answer text received so far (reasoning excluded)."""
        parts = self._content_parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    @property
    def reasoning(self) -> str:
        """The reasoning text received so far."""
        parts = self._reasoning_parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """OpenAI-shaped tool calls accumulated so far, in ``index`` order."""
        return [self._calls[k] for k in sorted(self._calls)]

    # -- input ----------------------------------------------------------------------------------------------
    def feed_event(self, ev: SSEEvent) -> list[Event]:
        """Interpret one SSE event; return the events it produced (possibly none)."""
        data = ev.data
        if data[:1] == "{" and ev.event == "message" and not self.done:  # the usual chunk
            try:
                obj = _json_decode(data)
            except ValueError:
                obj = None
            except RecursionError:
                raise _too_deep() from None
            if type(obj) is dict:
                return self.feed_chunk(obj)
        if ev.event not in ("message", "error"):
            self.other_events.append(ev)
            return []
        if self.done:
            return []
        stripped = data.strip()
        if stripped == "[DONE]":
            self.done = True
            return []
        if not stripped:
            if ev.event == "error":
                raise UnavailableError("The server reported an error in the chat stream without details.",
                                       hint="Try again; if it keeps happening, try another model.")
            return []
        try:
            obj = json.loads(data)
        except RecursionError:
            raise _too_deep() from None
        except ValueError:
            snippet = " ".join(stripped.split())[:120]
            if ev.event == "error":
                raise UnavailableError(f"The server reported an error in the chat stream: {snippet}") from None
            raise UnavailableError(f"The chat stream sent data that is not JSON: {snippet!r}",
                                   hint="The server or a proxy in between answered in an unexpected format.") \
                from None
        if not isinstance(obj, dict):
            raise UnavailableError(f"The chat stream sent an unexpected JSON value: {stripped[:120]!r}")
        return self.feed_chunk(obj)

    def feed_chunk(self, obj: dict[str, Any]) -> list[Event]:
        """Interpret one decoded ``chat.completion.chunk`` object."""
        if ("error" in obj or "status" in obj) and _is_error(obj):
            raise error_from_body(obj)
        out: list[Event] = []
        self._top(obj)
        choices = obj.get("choices")
        if type(choices) is list and len(choices) == 1:  # the usual chunk: one choice
            choice = choices[0]
            if type(choice) is dict and choice.get("index", 0) == 0:
                delta = choice.get("delta")
                if type(delta) is dict:
                    content = delta.get("content")
                    if type(content) is str and _SIMPLE_DELTA.issuperset(delta):
                        if content:
                            self._content(content, out)
                    else:
                        self._delta(delta, out)
                fr = choice.get("finish_reason")
                if fr is not None:
                    self.finish_reason = fr
        elif choices is not None and not isinstance(choices, list):
            raise MalformedResponse(f"The chat stream sent a chunk whose choices is not a list: {_excerpt(obj)}",
                                    hint="The server or a proxy in between answered in an unexpected format.")
        elif isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    self._delta(delta, out)
                if choice.get("finish_reason") is not None:
                    self.finish_reason = choice["finish_reason"]
        usage = obj.get("usage")
        if isinstance(usage, dict) and usage and usage != self.usage:
            self.usage = usage
            out.append(Usage(usage))
        return out

    def _top(self, obj: dict[str, Any]) -> None:
        if self.id is None and isinstance(obj.get("id"), str):
            self.id = obj["id"]
        model = obj.get("model")
        if type(model) is str:
            self.model = model
        if _KNOWN_TOP.issuperset(obj):
            return
        for key, value in obj.items():
            if key not in _KNOWN_TOP and value is not None:
                self.extras[key] = value

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        reasoning = delta.get("reasoning_content")
        if not isinstance(reasoning, str) or not reasoning:
            reasoning = delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self._emit_reasoning(reasoning, out)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._content(content, out)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._content(refusal, out)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for pos, piece in enumerate(calls):
                if isinstance(piece, dict):
                    self._tool_piece(piece, pos)

    def _tool_piece(self, piece: dict[str, Any], pos: int) -> None:
        idx = piece.get("index")
        if not isinstance(idx, int):
            idx = pos
        entry = self._calls.get(idx)
        if entry is None:
            entry = self._calls[idx] = {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        if isinstance(piece.get("id"), str) and piece["id"] and not entry["id"]:
            entry["id"] = piece["id"]
        if isinstance(piece.get("type"), str) and piece["type"]:
            entry["type"] = piece["type"]
        fn = piece.get("function")
        if isinstance(fn, dict):
            if isinstance(fn.get("name"), str) and fn["name"] and not entry["function"]["name"]:
                entry["function"]["name"] = fn["name"]
            args = fn.get("arguments")
            if isinstance(args, str):
                entry["function"]["arguments"] += args
            elif args is not None:  # some servers send the object itself
                entry["function"]["arguments"] += json.dumps(args, ensure_ascii=False)

    # -- content / think tags ---------------------------------------------------------------------------
    def _emit_reasoning(self, text: str, out: list[Event]) -> None:
        if text:
            self._reasoning_parts.append(text)
            out.append(Reasoning(text))

    def _emit_visible(self, text: str, out: list[Event]) -> None:
        if not text:
            return
        if self._lead:
            body = text.lstrip()
            if not body:
                self._ws += text
                return
            ws = self._ws + text[: len(text) - len(body)]
            text = ws[ws.rfind("\n") + 1:] + body
            self._ws = ""
            self._lead = False
        self._visible = True
        self._content_parts.append(text)
        out.append(Delta(text))

    def _content(self, text: str, out: list[Event]) -> None:
        s = self._held + text if self._held else text
        self._held = ""
        if "<" not in s:  # the usual piece: no tag, nothing to hold
            if self._in_think:
                self._emit_reasoning(s, out)
            else:
                self._emit_visible(s, out)
            return
        while s:
            if self._in_think:
                i = s.find(_CLOSE)
                if i >= 0:
                    self._emit_reasoning(s[:i], out)
                    s = s[i + len(_CLOSE):]
                    self._in_think = False
                    self._lead, self._ws = True, ""
                    continue
                k = _held_len(s, closing_only=True)
                self._emit_reasoning(s[: len(s) - k], out)
                self._held = s[len(s) - k:]
                return
            i_open = s.find(_OPEN)
            i_close = -1 if self._visible else s.find(_CLOSE)
            if i_close >= 0 and (i_open < 0 or i_close < i_open):
                # no visible text yet and a closing tag without an opener: what came before was reasoning
                self._emit_reasoning(self._ws + s[:i_close], out)
                s = s[i_close + len(_CLOSE):]
                self._lead, self._ws = True, ""
                continue
            if i_open >= 0:
                self._emit_visible(s[:i_open], out)
                s = s[i_open + len(_OPEN):]
                self._in_think = True
                continue
            k = _held_len(s, closing_only=False)
            self._emit_visible(s[: len(s) - k], out)
            self._held = s[len(s) - k:]
            return

    # -- end ------------------------------------------------------------------------------------------------
    def flush(self) -> list[Event]:
        """Release text held back as a possible tag prefix (idempotent). :meth:`finish` calls it."""
        out: list[Event] = []
        held, self._held = self._held, ""
        if held:
            if self._in_think:
                self._emit_reasoning(held, out)
            else:
                self._emit_visible(held, out)
        return out

    @property
    def complete(self) -> bool:
        """True when the stream ended properly: ``data: [DONE]`` was seen (contract §5)."""
        return self.done

    def finish(self) -> list[Event]:
        """End of stream: held-back text, one :class:`ToolCall` per call, then :class:`Done`.

        Raises :class:`StreamError` (exit 5) when the stream sent neither ``[DONE]`` nor a ``finish_reason``;
        the text released by the final flush is then on the exception as ``events`` so it can still be written.
        """
        out = self.flush()
        if not self.complete:
            err = StreamError("The stream ended before it was complete (no data: [DONE]).",
                              hint="The connection was cut or the server stopped early; what arrived was written. "
                                   "Try again.")
            err.events = out  # type: ignore[attr-defined]
            raise err
        for idx in sorted(self._calls):
            call = self._calls[idx]
            if not call["id"]:
                call["id"] = f"call_{idx}"
            fn = call["function"]
            out.append(ToolCall(call["id"], fn["name"], _parse_arguments(fn["arguments"])))
        out.append(Done(self.finish_reason))
        return out

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "content": self.content, "reasoning": self.reasoning,
                "tool_calls": self.tool_calls, "finish_reason": self.finish_reason, "usage": self.usage,
                "extras": dict(self.extras)}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _excerpt(obj: Any, limit: int = 160) -> str:
    try:
        text = json.dumps(obj, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        text = type(obj).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def parse_completion(obj: dict[str, Any]) -> tuple[list[Event], dict[str, Any]]:
    """Events and a summary for a non-streamed ``chat.completion`` body.

    Events: Reasoning (``message.reasoning_content``/``reasoning``, then ``<think>`` content), Delta, Usage,
    one ToolCall per call, Done. Summary keys: ``content``, ``reasoning``, ``tool_calls``, ``finish_reason``,
    ``usage``, ``extras`` (plus ``id`` and ``model``). An error body raises like a streamed error chunk.
    """
    if not isinstance(obj, dict):
        raise MalformedResponse(f"The chat completion answer is not a JSON object: {_excerpt(obj)}",
                                hint="The server or a proxy in between answered in an unexpected format.")
    if _is_error(obj):
        raise error_from_body(obj)
    choices = obj.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    message = choice.get("message") if choice is not None else None
    if choice is None or not isinstance(message, dict):
        raise MalformedResponse(f"The chat completion answer has no choices[0].message: {_excerpt(obj)}",
                                hint="The server or a proxy in between answered in an unexpected format.")
    p = ChatStreamParser()
    out: list[Event] = []
    p._top(obj)
    if message:
        p._delta({"reasoning_content": message.get("reasoning_content"), "reasoning": message.get("reasoning"),
                  "content": _text_of(message.get("content")), "refusal": message.get("refusal")}, out)
        for pos, call in enumerate(message.get("tool_calls") or []):
            if isinstance(call, dict):
                p._tool_piece({"index": pos, **call}, pos)
    p.finish_reason = choice.get("finish_reason")
    p.done = True
    out += p.flush()
    if isinstance(obj.get("usage"), dict) and obj["usage"]:
        p.usage = obj["usage"]
        out.append(Usage(p.usage))
    out += p.finish()
    return out, p.summary()
