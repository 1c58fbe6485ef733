"""Creative-agent workflows: start, read, list, cancel, and follow them to a terminal state.

:func:`follow` streams a workflow's events over SSE (``/events/stream``), resuming with ``Last-Event-ID``
after a dropped connection without repeating events, and falls back to polling the record with backoff
when the stream is not available. It yields :class:`~sogni_cli.core.events.WorkflowUpdate` items and stops
after the one that carries a terminal status. A workflow that makes no progress for ``timeout`` seconds
raises :class:`~sogni_cli.core.errors.TimeoutError_` (exit 6).

The state is read from a ``status`` field (``data.status`` / ``data.workflow.status`` / ``status``), never
from an event's type alone. Step and artifact events carry the *step's* status in ``data.status``, so for
those only ``data.workflow.status`` (or the event's own ``status``, when not terminal) counts.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterator
from urllib.parse import quote

from ..core.errors import ApiError, MalformedResponse, TimeoutError_, UnavailableError
from ..core.events import WorkflowUpdate

BASE = "/v1/creative-agent/workflows"
TERMINAL = frozenset({"completed", "partial_failure", "failed", "cancelled", "waiting_for_user"})
STATUSES = frozenset({"queued", "running", *TERMINAL})
POLL_INITIAL = 0.5
POLL_MAX = 5.0
MAX_QUIET_RECONNECTS = 3

# Replaced in tests (fake clocks); looked up at call time.
sleep = time.sleep
monotonic = time.monotonic


def _path(wid: str, *rest: str) -> str:
    return "/".join([BASE, quote(str(wid), safe=""), *rest])


def _data(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("data"), (dict, list)):
        return body["data"]
    return body


def _record(body: Any) -> dict[str, Any]:
    data = _data(body)
    if isinstance(data, dict) and isinstance(data.get("workflow"), dict):
        return data["workflow"]
    if isinstance(data, dict):
        return data
    raise UnavailableError("The API answered with a workflow record that is not an object.")


# ------------------------------------------------------------------------------------------- REST


def new_key() -> str:
    """A fresh Idempotency-Key for one logical workflow start."""
    from ..core.ids import random_hex

    return f"sogni-{random_hex()}"


def create(client: Any, body: dict[str, Any], *, key: str | None = None) -> dict[str, Any]:
    """``POST /v1/creative-agent/workflows`` with ``key`` (decided before sending; reused by every retry and
    by any later resend, so the API answers a repeat with the workflow it already made); the first snapshot."""
    rec = _record(client.request("POST", BASE, json=body, idempotent=True, idempotency_key=key))
    if not workflow_id(rec):
        raise UnavailableError("The API started a workflow but did not say its id.")
    return rec


def recover(client: Any, body: dict[str, Any], key: str, *, seconds: float = 4.0) -> str | None:
    """The id of the workflow a create with ``key`` started (or starts now), asked again with the same key
    and body within about ``seconds``; None when the API cannot say in time."""
    quick = client.derived(read_timeout=seconds, connect_timeout=min(2.0, seconds), max_retries=1)
    try:
        return workflow_id(create(quick, body, key=key))
    except Exception:  # noqa: BLE001 - best effort: the caller prints the key instead
        return None
    finally:
        quick.close()


def find_by_title(client: Any, title: str, limit: int = 100) -> dict[str, Any] | None:
    """The newest workflow of the account whose title is ``title`` (None when none is listed)."""
    for rec in list_workflows(client, limit=limit):
        if rec.get("title") == title or (isinstance(rec.get("input"), dict) and rec["input"].get("title") == title):
            return rec
    return None


def get(client: Any, wid: str) -> dict[str, Any]:
    return _record(client.request("GET", _path(wid)))


def list_workflows(client: Any, limit: int | None = None, offset: int | None = None) -> list[dict[str, Any]]:
    data = _data(client.request("GET", BASE, params={"limit": limit, "offset": offset}))
    items = data.get("workflows") if isinstance(data, dict) else data
    return [w for w in items or [] if isinstance(w, dict)] if isinstance(items, list) else []


def events(client: Any, wid: str) -> list[dict[str, Any]]:
    data = _data(client.request("GET", _path(wid, "events")))
    items = data.get("events") if isinstance(data, dict) else data
    return [e for e in items or [] if isinstance(e, dict)] if isinstance(items, list) else []


def cancel(client: Any, wid: str) -> dict[str, Any]:
    return _record(client.request("POST", _path(wid, "cancel"), json={}))


def workflow_id(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return None
    for key in ("workflowId", "workflow_id", "id"):
        v = rec.get(key)
        if isinstance(v, str) and v:
            return v
    return None


# ------------------------------------------------------------------------------------------- status


def status_of(obj: Any, event_type: str | None = None) -> str | None:
    """The workflow status in a record or event (see the module docstring for step events)."""
    if not isinstance(obj, dict):
        return None
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    wf = data.get("workflow") if isinstance(data.get("workflow"), dict) else {}
    etype = event_type or obj.get("type") or ""
    if isinstance(wf.get("status"), str):
        return wf["status"]
    if isinstance(etype, str) and etype.startswith(("step_", "artifact")):
        st = obj.get("status")
        return st if isinstance(st, str) and st not in TERMINAL else None
    for cand in (data.get("status"), obj.get("status")):
        if isinstance(cand, str) and cand:
            return cand
    return None


def _num(v: Any) -> float | None:
    """A finite number, or None (for booleans, strings, NaN and infinities too)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except OverflowError:  # an integer too large for a float
        return None
    return f if math.isfinite(f) else None


def _list(v: Any) -> list[Any]:
    """``v`` when it is a list, else an empty list (a record field of the wrong type reads as absent)."""
    return v if isinstance(v, list) else []


def _fraction(v: Any) -> float | None:
    f = _num(v)
    if f is None:
        return None
    if f > 1.0:
        f = f / 100.0
    return max(0.0, min(1.0, f))


def update_from_event(wid: str, ev: dict[str, Any], event_name: str | None = None) -> WorkflowUpdate:
    data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
    etype = ev.get("type") if isinstance(ev.get("type"), str) else (event_name if event_name != "message" else None)
    seq = ev.get("sequence")
    return WorkflowUpdate(
        workflow_id=ev["workflowId"] if isinstance(ev.get("workflowId"), str) and ev["workflowId"] else wid,
        status=status_of(ev, etype),
        step=data.get("stepId") if isinstance(data.get("stepId"), str) else None,
        tool=data.get("toolName") if isinstance(data.get("toolName"), str) else None,
        progress=_fraction(data["stepProgress"] if data.get("stepId") and "stepProgress" in data
                           else data.get("progress", ev.get("progress"))),
        eta_seconds=_num(data.get("etaSeconds", data.get("eta_seconds", data.get("eta")))),
        message=ev.get("message") if isinstance(ev.get("message"), str) else None,
        sequence=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        type=etype,
    )


def update_from_record(rec: dict[str, Any]) -> WorkflowUpdate:
    steps = rec.get("steps") if isinstance(rec.get("steps"), list) else []
    current = None
    for s in steps:
        if isinstance(s, dict) and s.get("status") not in ("completed", "skipped"):
            current = s
            break
    if current is None and steps and isinstance(steps[-1], dict):
        current = steps[-1]
    msg = rec.get("message") if isinstance(rec.get("message"), str) else None
    return WorkflowUpdate(
        workflow_id=workflow_id(rec) or "",
        status=status_of(rec),
        step=(current or {}).get("id") if isinstance((current or {}).get("id"), str) else None,
        tool=(current or {}).get("toolName") if isinstance((current or {}).get("toolName"), str) else None,
        progress=_fraction(rec.get("progress")),
        message=msg,
        type="snapshot",
    )


def failure_reason(rec: dict[str, Any]) -> str | None:
    """The server's reason for a failed/cancelled/waiting workflow."""
    err = rec.get("error")
    if isinstance(err, dict):
        msg = err.get("message") or err.get("code")
        if msg:
            return str(msg)
    elif isinstance(err, str) and err:
        return err
    for s in _list(rec.get("steps")):
        if isinstance(s, dict) and isinstance(s.get("error"), dict) and s["error"].get("message"):
            return str(s["error"]["message"])
    for key in ("message", "statusMessage", "reason"):
        if isinstance(rec.get(key), str) and rec[key]:
            return rec[key]
    return None


# ------------------------------------------------------------------------------------------- follow


class _Watch:
    """No-progress deadline plus dedupe of events across reconnections."""

    def __init__(self, timeout: float | None):
        self.timeout = timeout
        self.last_progress = monotonic()
        self.seen_ids: set[str] = set()
        self.max_seq: int | None = None
        self.last_state: tuple | None = None

    def progressed(self) -> None:
        self.last_progress = monotonic()

    def check(self, wid: str, status: str | None) -> None:
        if self.timeout is not None and monotonic() - self.last_progress > self.timeout:
            raise TimeoutError_(
                f"Workflow {wid} made no progress for {self.timeout:g} s (last status: {status or 'unknown'}).",
                hint=f"It may still finish: `sogni workflow watch {wid}`, then `sogni workflow download {wid}`.",
            )

    def remaining(self) -> float | None:
        if self.timeout is None:
            return None
        return max(0.0, self.timeout - (monotonic() - self.last_progress))

    def is_new(self, key: str | None, seq: int | None) -> bool:
        """False for an event already delivered (same id, or an id-less event at or before the last sequence)."""
        if key is not None:
            if key in self.seen_ids:
                return False
            self.seen_ids.add(key)
            if seq is not None:
                self.max_seq = seq if self.max_seq is None else max(self.max_seq, seq)
            return True
        if seq is not None:
            if self.max_seq is not None and seq <= self.max_seq:
                return False
            self.max_seq = seq
        return True


def follow(client: Any, wid: str, *, timeout: float | None = None, use_sse: bool = True,
           on_wait: Callable[[], None] | None = None, last_event_id: str | None = None) -> Iterator[WorkflowUpdate]:
    """Yield updates of workflow ``wid`` until (and including) the first terminal one. Before the terminal one
    is yielded, the client hears that one of the account's slots is free (``slot_freed``)."""
    freed = getattr(client, "slot_freed", None)
    for upd in _follow(client, wid, timeout, use_sse, on_wait, last_event_id):
        if upd.status in TERMINAL and callable(freed):
            freed()
        yield upd


def _follow(client: Any, wid: str, timeout: float | None, use_sse: bool, on_wait: Callable[[], None] | None,
            last_event_id: str | None) -> Iterator[WorkflowUpdate]:
    watch = _Watch(timeout)
    status: str | None = None
    if use_sse:
        result = yield from _follow_sse(client, wid, watch, on_wait, last_event_id)
        if result == "done":
            return
        status = result if isinstance(result, str) else None
    yield from _follow_poll(client, wid, watch, on_wait, status)


def _follow_sse(client, wid, watch: _Watch, on_wait, last_event_id):
    """Returns "done" after a terminal update, or None to fall back to polling."""
    import json

    import httpx

    from .sse import SSEDecoder

    dec = SSEDecoder(last_event_id)
    quiet_reconnects = 0
    status = None
    prev_sse_id = last_event_id
    while True:
        got_any = False
        # A resume names the last event twice, as the official SDK does: the header for servers that follow
        # the SSE standard, ``?after=`` for proxies that drop unknown request headers.
        headers = {"Last-Event-ID": dec.last_event_id} if dec.last_event_id else None
        params = {"after": dec.last_event_id} if dec.last_event_id else None
        try:
            with client.stream("GET", _path(wid, "events", "stream"), headers=headers, params=params) as resp:
                ctype = resp.headers.get("content-type", "")
                if "text/event-stream" not in ctype:
                    return None  # not a stream: poll instead
                for chunk in resp.iter_raw():
                    if on_wait:
                        on_wait()
                    for sse in dec.feed(chunk):
                        try:
                            ev = json.loads(sse.data) if sse.data else {}
                        except RecursionError:
                            raise MalformedResponse(f"The event stream of workflow {wid} sent JSON nested too "
                                                    "deeply to read.") from None
                        except ValueError:
                            ev = {"message": sse.data}
                        if not isinstance(ev, dict):
                            continue
                        key = str(ev["id"]) if ev.get("id") is not None else None
                        seq = ev.get("sequence") if isinstance(ev.get("sequence"), int) else None
                        if key is None and seq is None and sse.id is not None and sse.id != prev_sse_id:
                            key = sse.id
                        prev_sse_id = sse.id
                        if not watch.is_new(key, seq):
                            continue
                        got_any = True
                        watch.progressed()
                        upd = update_from_event(wid, ev, sse.event)
                        if upd.status:
                            status = upd.status
                        yield upd
                        if upd.status in TERMINAL:
                            return "done"
                    watch.check(wid, status)
                dec.close()
        except ApiError as exc:
            if exc.status in (401, 403, 402) or exc.exit_code in (3, 9):
                raise
            return None  # no stream route (404/405/...): poll
        except (httpx.TransportError, httpx.StreamError):
            dec.close()  # a cut-off event is discarded; resume after the last complete one
        except (UnavailableError, TimeoutError_) as exc:
            if isinstance(exc, MalformedResponse) or (isinstance(exc, TimeoutError_)
                                                      and "made no progress" in exc.message):
                raise
            return None
        watch.check(wid, status)
        # The stream ended (or broke) without a terminal event: look at the record before reconnecting.
        rec = get(client, wid)
        st = status_of(rec)
        if st in TERMINAL:
            upd = update_from_record(rec)
            yield upd
            return "done"
        quiet_reconnects = 0 if got_any else quiet_reconnects + 1
        if quiet_reconnects >= MAX_QUIET_RECONNECTS:
            return st
        if not got_any:
            sleep(min(POLL_MAX, POLL_INITIAL * (2 ** (quiet_reconnects - 1))))


def _follow_poll(client, wid, watch: _Watch, on_wait, status):
    delay = POLL_INITIAL
    while True:
        rec = get(client, wid)
        upd = update_from_record(rec)
        updated = rec.get("updatedAt")
        state = (upd.status, upd.progress, upd.step, updated if isinstance(updated, (str, int, float)) else None,
                 len(_list(rec.get("artifacts"))))
        if state != watch.last_state:
            watch.last_state = state
            watch.progressed()
            delay = POLL_INITIAL
            yield upd
        else:
            delay = min(POLL_MAX, delay * 2)
        if upd.status in TERMINAL:
            return
        watch.check(wid, upd.status)
        if on_wait:
            on_wait()
        rem = watch.remaining()
        sleep(delay if rem is None else max(0.0, min(delay, rem + 0.001)))
        watch.check(wid, upd.status)


# ------------------------------------------------------------------------------------------- lifecycle


def resume(client: Any, wid: str, body: dict[str, Any] | None = None,
           idempotency_key: str | None = None) -> dict[str, Any]:
    """``POST /{id}/resume``: continue a workflow that stopped part-way; the record after the resume."""
    return _record(client.request("POST", _path(wid, "resume"), json=body or {}, idempotency_key=idempotency_key))


def reseed(client: Any, wid: str, seeds: dict[str, int] | None, idempotency_key: str,
           body: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``POST /{id}/reseed``: run a finished workflow again with new seeds; (the new record, the reseed info)."""
    payload = dict(body or {})
    if seeds:
        payload["seed_overrides"] = dict(seeds)
    data = _data(client.request("POST", _path(wid, "reseed"), json=payload, idempotency_key=idempotency_key))
    rec = _record(data)
    info = data.get("reseed") if isinstance(data, dict) and isinstance(data.get("reseed"), dict) else {}
    if not workflow_id(rec):
        raise UnavailableError("The API reseeded the workflow but did not say the new workflow's id.")
    return rec, info
