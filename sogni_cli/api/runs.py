"""Durable chat runs (``/v1/chat/runs``): start, read, list, cancel, approve, and follow their events.

A run keeps an ordered, numbered event log on the server. :func:`follow` reads it over SSE
(``/events/stream``) and yields each event exactly once, in order: after a dropped connection it reconnects
naming the last sequence it delivered (``Last-Event-ID`` and ``?after=``), and events at or below that
sequence are skipped if a server repeats them. When the stream is not available it reads the JSON log
(``/events?after=``) instead. Following ends after a terminal event (``run_completed``,
``run_partial_failure``, ``run_failed``, ``run_cancelled``) or a pause (``run_waiting_for_user``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator
from urllib.parse import quote

from ..core.errors import ApiError, MalformedResponse, TimeoutError_, UnavailableError

BASE = "/v1/chat/runs"
TERMINAL_EVENTS = {"run_completed": "completed", "run_partial_failure": "partial_failure",
                   "run_failed": "failed", "run_cancelled": "cancelled"}
PAUSE_EVENTS = {"run_waiting_for_user": "waiting_for_user"}
TERMINAL = frozenset(TERMINAL_EVENTS.values())
STOPS = TERMINAL | {"waiting_for_user"}
POLL_INITIAL = 0.25
POLL_MAX = 5.0
MAX_QUIET_RECONNECTS = 3

# Replaced in tests (fake clocks); looked up at call time.
sleep = time.sleep


def _path(rid: str, *rest: str) -> str:
    return "/".join([BASE, quote(str(rid), safe=""), *rest])


def _data(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("data"), (dict, list)):
        return body["data"]
    return body


def _run(body: Any) -> dict[str, Any]:
    data = _data(body)
    if isinstance(data, dict) and isinstance(data.get("run"), dict):
        return data["run"]
    if isinstance(data, dict):
        return data
    raise UnavailableError("The API answered with a chat run that is not an object.")


def run_id(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return None
    for key in ("runId", "id", "run_id"):
        if isinstance(rec.get(key), str) and rec[key]:
            return rec[key]
    return None


def status_of(rec: Any) -> str | None:
    st = rec.get("status") if isinstance(rec, dict) else None
    return st if isinstance(st, str) else None


# ------------------------------------------------------------------------------------------- REST


def create(client: Any, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """``POST /v1/chat/runs`` with the caller's key (decided before sending, the same on every retry)."""
    rec = _run(client.request("POST", BASE, json=body, idempotency_key=idempotency_key))
    if not run_id(rec):
        raise UnavailableError("The API started a chat run but did not say its id.")
    return rec


def get(client: Any, rid: str) -> dict[str, Any]:
    return _run(client.request("GET", _path(rid)))


def list_runs(client: Any, limit: int | None = None, offset: int | None = None) -> dict[str, Any]:
    data = _data(client.request("GET", BASE, params={"limit": limit, "offset": offset}))
    if not isinstance(data, dict):
        return {"runs": [], "total": 0}
    runs = data.get("runs") if isinstance(data.get("runs"), list) else []
    return dict(data, runs=[r for r in runs if isinstance(r, dict)])


def events(client: Any, rid: str, after: int = 0) -> list[dict[str, Any]]:
    data = _data(client.request("GET", _path(rid, "events"), params={"after": after or None}))
    items = data.get("events") if isinstance(data, dict) else data
    return [e for e in items if isinstance(e, dict)] if isinstance(items, list) else []


def cancel(client: Any, rid: str, reason: str | None = None) -> dict[str, Any]:
    body = {"reason": reason} if reason else {}
    return _run(client.request("POST", _path(rid, "cancel"), json=body, idempotent=True))


def confirm_cost(client: Any, rid: str, *, tool_call_id: str, preview: dict[str, Any], decision: str = "confirm",
                 idempotency_key: str | None = None) -> dict[str, Any]:
    """Approve (or decline) the cost the run is waiting on; ``preview`` is sent back unchanged."""
    body: dict[str, Any] = {"tool_call_id": tool_call_id, "decision": decision}
    if decision == "confirm":
        body["acceptedCostPreview"] = preview
    return _run(client.request("POST", _path(rid, "confirm-cost"), json=body,
                               idempotency_key=idempotency_key, idempotent=True))


def waiting_details(rec: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """(reason, tool call id, cost preview) of a run that waits for the user."""
    waiting = rec.get("waiting") if isinstance(rec.get("waiting"), dict) else {}
    details = waiting.get("details") if isinstance(waiting.get("details"), dict) else {}
    preview = details.get("costApprovalPreview")
    call = details.get("toolCallId")
    return (waiting.get("reason") if isinstance(waiting.get("reason"), str) else None,
            call if isinstance(call, str) else None, preview if isinstance(preview, dict) else None)


# ------------------------------------------------------------------------------------------- follow


def _seq(ev: dict[str, Any]) -> int | None:
    s = ev.get("sequence")
    return s if isinstance(s, int) and not isinstance(s, bool) else None


def event_status(ev: dict[str, Any]) -> str | None:
    """The run status an event ends in (terminal or waiting), or None for events in between."""
    t = ev.get("type")
    return TERMINAL_EVENTS.get(t) or PAUSE_EVENTS.get(t) if isinstance(t, str) else None


def follow(client: Any, rid: str, *, after: int = 0, on_wait: Callable[[], None] | None = None,
           use_sse: bool = True) -> Iterator[dict[str, Any]]:
    """Yield the run's events after sequence ``after``, each once, up to a terminal event or the wait the run
    is in now (a wait it has since left, replayed from the log, does not stop following)."""
    state = {"last": after, "paused": 0}
    if use_sse:
        done = yield from _follow_sse(client, rid, state, on_wait)
        if done:
            return
    yield from _follow_poll(client, rid, state, on_wait)


def _deliver(ev: dict[str, Any], state: dict[str, int]) -> bool:
    seq = _seq(ev)
    if seq is not None:
        if seq <= state["last"]:
            return False
        state["last"] = seq
    state["paused"] = int(ev.get("type") in PAUSE_EVENTS)
    return True


def _follow_sse(client: Any, rid: str, state: dict[str, int], on_wait: Callable[[], None] | None):
    """Returns True after a terminal event or a wait; False to read the JSON log instead."""
    import json

    import httpx

    from .sse import SSEDecoder

    quiet = 0
    while True:
        got = False
        last = state["last"]
        headers = {"Accept": "text/event-stream"}
        params = None
        if last:
            headers["Last-Event-ID"] = str(last)
            params = {"after": last}
        dec = SSEDecoder(str(last) if last else None)
        try:
            with client.stream("GET", _path(rid, "events", "stream"), headers=headers, params=params) as resp:
                if "text/event-stream" not in resp.headers.get("content-type", ""):
                    return False
                for chunk in resp.iter_raw():
                    if on_wait:
                        on_wait()
                    for sse in dec.feed(chunk):
                        if sse.event == "run_status" or not sse.data:
                            continue
                        try:
                            ev = json.loads(sse.data)
                        except RecursionError:
                            raise MalformedResponse(f"The event stream of chat run {rid} sent JSON nested too "
                                                    "deeply to read.") from None
                        except ValueError:
                            continue
                        if not isinstance(ev, dict):
                            continue
                        if _seq(ev) is None and sse.id and sse.id.isdigit():
                            ev["sequence"] = int(sse.id)
                        if not _deliver(ev, state):
                            continue
                        got = True
                        yield ev
                        if ev.get("type") in TERMINAL_EVENTS:
                            return True
                dec.close()
        except ApiError as exc:
            if exc.status in (401, 402, 403, 404) or exc.exit_code in (3, 9):
                raise
            return False
        except (httpx.TransportError, httpx.StreamError):
            dec.close()  # a cut-off event is dropped; the next connection starts after the last whole one
        except (UnavailableError, TimeoutError_) as exc:
            if isinstance(exc, MalformedResponse):
                raise
            return False
        # Ended (or broke) without a terminal event (a wait ends the stream too): the record tells whether
        # the run is over or waits.
        rec = get(client, rid)
        if status_of(rec) in STOPS:
            return False  # the poll reads what is left of the log, then stops
        quiet = 0 if got else quiet + 1
        if quiet >= MAX_QUIET_RECONNECTS:
            return False
        if not got:
            sleep(min(POLL_MAX, POLL_INITIAL * (2 ** (quiet - 1))))


def _follow_poll(client: Any, rid: str, state: dict[str, int], on_wait: Callable[[], None] | None):
    delay = POLL_INITIAL
    while True:
        got = False
        for ev in events(client, rid, state["last"]):
            if not _deliver(ev, state):
                continue
            got = True
            yield ev
            if ev.get("type") in TERMINAL_EVENTS:
                return
        if not got:
            rec = get(client, rid)
            st = status_of(rec)
            if st == "waiting_for_user" and state.get("paused"):
                return  # the wait was the last event delivered
            if st in STOPS:
                # a log that ends without its terminal event: report the record's state once
                yield {"sequence": None, "type": f"run_{st}", "payload": {"status": st}}
                return
        delay = POLL_INITIAL if got else min(POLL_MAX, delay * 2)
        if on_wait:
            on_wait()
        if not got:
            sleep(delay)
