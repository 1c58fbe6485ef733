"""The emulator's routes (called by :class:`sogni_cli.emulator.server.Handler`)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from . import chat, compose
from .common import ApiFailure, body_hash
from .workflows import TERMINAL, parse_after

if TYPE_CHECKING:  # pragma: no cover
    from .server import Handler

WF = "/v1/creative-agent/workflows"


def _ok(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def _not_found(path: str) -> ApiFailure:
    return ApiFailure(404, f"no route for {path}", code=404)


def _method_not_allowed(method: str, path: str) -> ApiFailure:
    return ApiFailure(405, f"{method} is not allowed on {path}", code=405)


# --------------------------------------------------------------------------- admin
def admin(h: "Handler", method: str, path: str, raw: bytes) -> None:
    emu = h.emu
    if path == "/_emulator/faults":
        if method == "GET":
            h.send_json(200, {"faults": emu.faults.pending()})
            return
        if method != "POST":
            raise _method_not_allowed(method, path)
        try:
            body = json.loads(raw or b"{}")
            faults = body.get("faults") if isinstance(body, dict) else None
            emu.script(faults)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ApiFailure(400, f"bad faults: {exc}", code=400)
        h.send_json(200, {"status": "success", "data": {"pending": len(emu.faults.pending())}})
    elif path == "/_emulator/requests" and method == "GET":
        h.send_json(200, {"requests": emu.requests})
    elif path == "/_emulator/reset" and method == "POST":
        emu.reset()
        h.send_json(200, {"status": "success", "data": {}})
    elif path == "/_emulator/config" and method == "POST":
        try:
            cfg = json.loads(raw or b"{}")
            if not isinstance(cfg, dict):
                raise ValueError("expected a JSON object")
            data = emu.configure(cfg)
        except (ValueError, TypeError) as exc:
            raise ApiFailure(400, f"bad config: {exc}", code=400)
        h.send_json(200, {"status": "success", "data": data})
    else:
        raise _not_found(path)


# --------------------------------------------------------------------------- routing
def route(h: "Handler", method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any,
          raw: bytes) -> None:
    from . import account, billing, catalogues, runs

    if account.route(h, method, path) or billing.route(h, method, path, body) \
            or catalogues.route(h, method, path, query):
        return
    if path == "/v1/chat/runs" or path.startswith("/v1/chat/runs/"):
        runs.route(h, method, path, query, headers, body)
    elif path == "/v1/chat/completions":
        if method != "POST":
            raise _method_not_allowed(method, path)
        chat_completion(h, headers, body)
    elif path == "/v1/models" or path.startswith("/v1/models/"):
        if method != "GET":
            raise _method_not_allowed(method, path)
        models(h, path)
    elif path == "/v1/creative-agent/tools/execute":
        if method != "POST":
            raise _method_not_allowed(method, path)
        name, args = compose.check_request(body)
        h.send_json(200, _ok(compose.run(name, args)))
    elif path == WF or path.startswith(WF + "/"):
        workflows(h, method, path, query, headers, body)
    elif path in ("/v1/image/uploadUrl", "/v1/media/uploadUrl", "/v1/image/downloadUrl", "/v1/media/downloadUrl"):
        if method != "GET":
            raise _method_not_allowed(method, path)
        presign(h, path, query)
    elif path.startswith("/_uploads/"):
        if method != "PUT":
            raise _method_not_allowed(method, path)
        upload(h, path, headers, raw)
    elif path.startswith("/media/"):
        if method not in ("GET", "HEAD"):
            raise _method_not_allowed(method, path)
        media(h, method, path, headers)
    else:
        raise _not_found(path)


# --------------------------------------------------------------------------- chat
def models(h: "Handler", path: str) -> None:
    data = [{"id": m, "object": "model", "created": 1764000000, "owned_by": "sogni"} for m in chat.MODELS]
    if path in ("/v1/models", "/v1/models/"):
        h.send_json(200, {"object": "list", "data": data})
        return
    mid = path[len("/v1/models/"):]
    for m in data:
        if m["id"] == mid:
            h.send_json(200, m)
            return
    raise ApiFailure(404, f"The model {mid!r} does not exist", code="model_not_found", type="invalid_request_error")


def chat_completion(h: "Handler", headers: dict[str, str], body: Any) -> None:
    emu = h.emu
    key = headers.get("idempotency-key")
    stream = isinstance(body, dict) and body.get("stream") is True
    if key and not stream:
        # A retried request (same key, same body) gets the first answer: no second workflow.
        with emu._lock:
            seen = emu.chat_idem.get(key)
            if seen is None or seen[0] != body_hash(body):
                out = chat.complete(body, chat.ChatContext(emu.store, emu.tool_names)).completion()
                emu.chat_idem[key] = (body_hash(body), out)
            else:
                out = seen[1]
        h.send_json(200, out)
        return
    reply = chat.complete(body, chat.ChatContext(emu.store, emu.tool_names))
    if not reply.stream:
        h.send_json(200, reply.completion())
        return
    fault = h.fault
    h.sse_start()
    frames = reply.chunks()
    error_at = None
    if fault and fault["action"] == "error_in_stream":
        error_at = min(len(frames), int(fault.get("after", 2)))
    for i, frame in enumerate(frames):
        if error_at is not None and i == error_at:
            break
        h.sse_frame("data: " + json.dumps(frame) + "\n\n")
        if i == 0 and reply.hold_until is not None:
            _hold(h, reply.hold_until)
    if error_at is not None:
        assert fault is not None
        err = {"error": {"message": fault.get("message") or "The model backend failed mid-stream (emulated fault)",
                         "type": fault.get("type") or "server_error", "code": fault.get("code", 500)}}
        h.sse_frame("data: " + json.dumps(err) + "\n\n")
        if fault.get("done", True):
            h.sse_frame("data: [DONE]\n\n")
    else:
        h.sse_frame("data: [DONE]\n\n")
    h.sse_end()


def _hold(h: "Handler", until: float) -> None:
    """Keep a stream open (with keep-alive comments) until the monotonic time ``until``."""
    emu = h.emu
    last = time.monotonic()
    while not emu.stopping.is_set():
        now = time.monotonic()
        if now >= until:
            return
        emu.stopping.wait(min(0.05, until - now))
        if time.monotonic() - last >= emu.keepalive:
            h.sse_comment("keepalive")
            last = time.monotonic()


# --------------------------------------------------------------------------- workflows
def _int_query(query: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    if key not in query:
        return default
    try:
        value = int(query[key])
    except ValueError:
        raise ApiFailure(400, f"{key} must be an integer", code=400) from None
    if not lo <= value <= hi:
        raise ApiFailure(400, f"{key} must be between {lo} and {hi}", code=400)
    return value


def workflows(h: "Handler", method: str, path: str, query: dict[str, str], headers: dict[str, str],
              body: Any) -> None:
    store = h.emu.store
    rest = path[len(WF):].strip("/")
    parts = rest.split("/") if rest else []
    if not parts:
        if method == "POST":
            record, reused = store.start(body, headers.get("idempotency-key"), templates=h.emu.templates)
            data: dict[str, Any] = {"workflow": record}
            if reused:
                data["idempotent"] = True
            h.send_json(200 if reused else 201, _ok(data))
        elif method == "GET":
            limit = _int_query(query, "limit", 20, 1, 100)
            offset = _int_query(query, "offset", 0, 0, 10**9)
            h.send_json(200, _ok(store.list(limit, offset)))
        else:
            raise _method_not_allowed(method, path)
        return
    wid = parts[0]
    if parts[0] == "templates":
        from . import templates

        templates.route(h, method, parts[1:], query, headers, body)
        return
    if len(parts) == 1:
        if method != "GET":
            raise _method_not_allowed(method, path)
        h.send_json(200, _ok({"workflow": store.snapshot(wid)}))
    elif parts[1:] == ["events"]:
        if method != "GET":
            raise _method_not_allowed(method, path)
        events, status, _ = store.events(wid, parse_after(query.get("after")))
        h.send_json(200, _ok({"workflowId": wid, "status": status, "events": events}))
    elif parts[1:] == ["events", "stream"]:
        if method != "GET":
            raise _method_not_allowed(method, path)
        workflow_stream(h, wid, query, headers)
    elif parts[1:] == ["cancel"]:
        if method != "POST":
            raise _method_not_allowed(method, path)
        h.send_json(200, _ok({"workflow": store.cancel(wid)}))
    elif parts[1:] in (["resume"], ["reseed"], ["confirm-cost"]):
        from . import lifecycle

        if method != "POST":
            raise _method_not_allowed(method, path)
        if parts[1] == "resume":
            h.send_json(200, _ok(lifecycle.resume(store, wid, body)))
        elif parts[1] == "reseed":
            data, status = lifecycle.reseed(store, wid, body, headers.get("idempotency-key"))
            h.send_json(status, _ok(data))
        else:
            h.send_json(200, _ok(lifecycle.confirm_cost(store, wid, body)))
    else:
        raise _not_found(path)


def workflow_stream(h: "Handler", wid: str, query: dict[str, str], headers: dict[str, str]) -> None:
    emu = h.emu
    store = emu.store
    after = parse_after(headers.get("last-event-id") or query.get("after"))
    store.events(wid)  # 404 before the stream starts
    fault = h.fault
    error_after = int(fault.get("after", 1)) if fault and fault["action"] == "error_in_stream" else None
    h.sse_start()
    last_write = time.monotonic()
    while not emu.stopping.is_set():
        events, status, wait = store.events(wid, after)
        for ev in events:
            if error_after is not None and h.frames_sent >= error_after:
                assert fault is not None
                err = {"error": {"message": fault.get("message") or "event stream failed (emulated fault)",
                                 "code": fault.get("code", 500), "type": fault.get("type") or "server_error"}}
                h.sse_frame("event: error\ndata: " + json.dumps(err) + "\n\n")
                h.sse_end()
                return
            h.sse_frame(f"id: {ev['sequence']}\nevent: {ev['type']}\ndata: {json.dumps(ev)}\n\n")
            after = ev["sequence"]
            last_write = time.monotonic()
        if status in TERMINAL and wait is None:
            break
        pause = min(emu.keepalive, 0.1 if wait is None else max(0.001, min(wait, 0.1)))
        emu.stopping.wait(pause)
        if time.monotonic() - last_write >= emu.keepalive:
            h.sse_comment("keepalive")
            last_write = time.monotonic()
    h.sse_end()


# --------------------------------------------------------------------------- uploads and media
def _upload_token(kind: str, query: dict[str, str]) -> str:
    """One upload slot per (kind, role, job, id). Images need ``imageId`` (or ``id``); audio and video may leave
    ``id`` out (the official SDK does), which names the job's one upload for that role."""
    ident = query.get("imageId") if kind == "image" else query.get("id")
    if kind == "image" and not ident:
        ident = query.get("id")
    needed = [("type", query.get("type")), ("jobId", query.get("jobId"))]
    if kind == "image":
        needed.append(("imageId", ident))
    missing = [k for k, v in needed if not v]
    if missing:
        raise ApiFailure(400, f"missing query parameter(s): {', '.join(missing)}", code=400)
    key = "|".join([kind, query["type"], query["jobId"], str(ident or "")])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def presign(h: "Handler", path: str, query: dict[str, str]) -> None:
    emu = h.emu
    kind = "image" if path.startswith("/v1/image/") else "media"
    token = _upload_token(kind, query)
    base = emu.base_url
    if path.endswith("/uploadUrl"):
        with emu._lock:
            slot = emu.uploads.setdefault(token, {"data": None, "content_type": None})
            slot["signed_type"] = query.get("contentType")
            slot["query"] = dict(query)
        h.send_json(200, _ok({"uploadUrl": f"{base}/_uploads/{token}?X-Amz-Expires=1800&X-Amz-Signature=emulator"}))
    else:
        h.send_json(200, _ok({"downloadUrl": f"{base}/media/uploads/{token}?X-Amz-Expires=1800"
                                             "&X-Amz-Signature=emulator"}))


def upload(h: "Handler", path: str, headers: dict[str, str], raw: bytes) -> None:
    emu = h.emu
    token = path[len("/_uploads/"):]
    with emu._lock:
        slot = emu.uploads.get(token)
    if slot is None:
        raise ApiFailure(403, "upload URL is not valid (never issued)", code=403)
    ctype = headers.get("content-type")
    signed = slot.get("signed_type")
    if signed and ctype != signed:
        raise ApiFailure(403, f"Content-Type {ctype!r} does not match the signed type {signed!r}", code=403)
    with emu._lock:
        slot["data"] = raw
        slot["content_type"] = ctype or "application/octet-stream"
    etag = '"' + hashlib.md5(raw).hexdigest() + '"'  # noqa: S324 - an S3-style ETag, not security
    h.send_bytes(200, b"", "text/plain", {"ETag": etag})


def media(h: "Handler", method: str, path: str, headers: dict[str, str]) -> None:
    from . import media as mediamod

    emu = h.emu
    if path.startswith("/media/uploads/"):
        with emu._lock:
            slot = emu.uploads.get(path[len("/media/uploads/"):])
        if not slot or slot.get("data") is None:
            raise ApiFailure(404, "no such upload", code=404)
        data, ctype = slot["data"], slot["content_type"]
    else:
        found = emu.store.get_artifact(path)
        if found is None:
            raise ApiFailure(404, "no such media", code=404)
        spec, visible = found
        if not visible:
            raise ApiFailure(404, "this artifact does not exist yet", code=404)
        data = emu.media_bytes(spec)
        ctype = _mime(spec)
    size = len(data)
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    common = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=1800"}
    rng = headers.get("range")
    if_range = headers.get("if-range")
    if if_range and if_range != etag:
        rng = None
    parsed = mediamod.parse_range(rng, size)
    head = method == "HEAD"
    if parsed == "unsatisfiable":
        h.send_bytes(416, b"", ctype, {**common, "Content-Range": f"bytes */{size}"}, head_only=head)
    elif isinstance(parsed, tuple):
        start, end = parsed
        h.send_bytes(206, data[start:end + 1], ctype, {**common, "Content-Range": f"bytes {start}-{end}/{size}"},
                     head_only=head)
    else:
        h.send_bytes(200, data, ctype, common, head_only=head)


def _mime(spec: dict[str, Any]) -> str:
    from .media import IMAGE_FORMATS

    kind, fmt = spec.get("kind"), spec.get("format")
    if kind == "image":
        return IMAGE_FORMATS.get(fmt or "png", IMAGE_FORMATS["png"])[1]
    if kind == "video":
        return "video/quicktime" if fmt == "mov" else "video/mp4"
    if kind == "audio":
        return "audio/wav"
    if kind == "model":
        return "model/gltf-binary"
    return "application/octet-stream"

