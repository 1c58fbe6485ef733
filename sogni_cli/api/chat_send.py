"""One chat completion over HTTP: sent, read (streamed or not) and turned into events as it arrives.

A streamed request can get a JSON body back instead of an event stream: an error envelope with status 200 is
raised with the server's own message and code, and a whole completion (a server that does not stream) is read
like a non-streamed answer.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from ..core.errors import MalformedResponse, StreamError, TimeoutError_
from ..core.events import Event
from .chat import CHAT_PATH


def one_completion(client: Any, body: dict[str, Any], on_event: Callable[[Event], None], *,
                   idempotency_key: str | None = None) -> dict[str, Any]:
    """Send one completion; emit events as they come; return the summary dict."""
    from .chat_stream import ChatStreamParser, parse_completion

    if not body.get("stream"):
        data = client.request("POST", CHAT_PATH, json=body, idempotent=True, idempotency_key=idempotency_key)
        events, summary = parse_completion(data or {})
        for ev in events:
            on_event(ev)
        summary["raw"] = data
        return summary

    import httpx

    from .sse import SSEDecoder

    parser = ChatStreamParser()
    decoder = SSEDecoder()
    head = bytearray()  # the start of a body that is not an event stream (a JSON answer to a streamed request)
    with client.stream("POST", CHAT_PATH, json=body, idempotent=True, idempotency_key=idempotency_key,
                       headers={"Accept-Encoding": "identity"}) as resp:
        ctype = str(resp.headers.get("content-type", "")).lower()
        if "json" in ctype and "event-stream" not in ctype:
            return _json_answer(_read_capped(resp), on_event)
        seen = False
        try:
            for raw in resp.iter_raw():
                if not seen and len(head) <= _JSON_HEAD:
                    head.extend(raw[: _JSON_HEAD + 1 - len(head)])
                for sse in decoder.feed(raw):
                    seen = True
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
    if not seen and head.lstrip()[:1] == b"{" and len(head) <= _JSON_HEAD:
        return _json_answer(bytes(head), on_event)  # JSON where events were expected: an error or a whole reply
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


_JSON_HEAD = 1024 * 1024


def _read_capped(resp: Any) -> bytes:
    data = bytearray()
    for raw in resp.iter_raw():
        data.extend(raw)
        if len(data) > _JSON_HEAD:
            raise MalformedResponse("The chat answer to a streamed request was a JSON body over 1 MiB.",
                                    hint="The server or a proxy in between answered in an unexpected format.")
    return bytes(data)


def _json_answer(data: bytes, on_event: Callable[[Event], None]) -> dict[str, Any]:
    """A JSON body where an event stream was asked for: an error envelope (raised with the server's own message and
    code), or a whole completion (a server that does not stream), read like a non-streamed answer."""
    from .chat_stream import parse_completion

    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        snippet = " ".join(data[:200].decode("utf-8", "replace").split())
        raise MalformedResponse(f"The chat answer is not an event stream and not JSON: {snippet!r}",
                                hint="The server or a proxy in between answered in an unexpected format.") from None
    events, summary = parse_completion(obj)
    for ev in events:
        on_event(ev)
    summary["raw"] = None
    return summary
