"""Presigned uploads of local media files (wire spec §2.6).

1. ``GET /v1/image/uploadUrl`` (images) or ``/v1/media/uploadUrl`` (audio, video) with ``type``, ``jobId``,
   ``imageId``/``id`` and ``contentType`` → ``data.uploadUrl``;
2. ``PUT`` the raw bytes there with ``Content-Type`` and **no** credentials (a plain client that never
   carries the API key, whatever the host);
3. the same query on ``/downloadUrl`` → ``data.downloadUrl``, the URL that goes into ``media_references``.
"""

from __future__ import annotations

from ..core.ids import random_hex
from typing import Any

from ..core.errors import TimeoutError_, UnavailableError, parse_error_body

ROLES = {"image": "referenceImage", "audio": "referenceAudio", "video": "referenceVideo"}
PUT_TIMEOUT = 300.0


def _data_field(body: Any, *names: str) -> str | None:
    data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
    if not isinstance(data, dict):
        return None
    for n in names:
        v = data.get(n)
        if isinstance(v, str) and v:
            return v
    return None


def _route(kind: str) -> str:
    return "/v1/image" if kind == "image" else "/v1/media"


def upload_query(kind: str, mime: str, job_id: str, item_id: str, role: str | None = None) -> dict[str, str]:
    q = {"type": role or ROLES[kind], "jobId": job_id}
    q["imageId" if kind == "image" else "id"] = item_id
    q["contentType"] = mime
    return q


def put_bytes(url: str, data: bytes, mime: str, *, policy: Any = None) -> None:
    """PUT ``data`` to a presigned URL with only ``Content-Type`` (no API key, no auth headers), retried by the
    one policy (``policy``: the client's :class:`~sogni_cli.api.client.RetryPolicy`; a PUT of the same bytes
    may be repeated)."""
    import httpx

    from .. import __version__
    from ..core import tls
    from .client import RetryPolicy
    from .retry import Safety, parse_retry_after
    from .urls import media_url_problem

    policy = policy or RetryPolicy(timeout=PUT_TIMEOUT)
    problem = media_url_problem(url)
    if problem:  # the user's file goes only where a media download could come from: https, or this machine
        raise UnavailableError(f"Refused to upload to the URL the API gave: {problem}.",
                               hint="The upload URL must be https (or http to this machine).")
    headers = {"Content-Type": mime, "User-Agent": f"sogni-cli/{__version__}"}
    attempt = 0
    with httpx.Client(timeout=httpx.Timeout(policy.timeout, connect=policy.connect_timeout),
                      follow_redirects=False, verify=tls.context()) as http:
        while True:
            try:
                resp = http.put(url, content=data, headers=headers)
            except httpx.TransportError as exc:
                if policy.may_resend(Safety.READ, attempt):
                    policy.pause(policy.delay(attempt))
                    attempt += 1
                    continue
                if isinstance(exc, httpx.TimeoutException):
                    raise TimeoutError_(f"Upload timed out after {attempt + 1} attempt(s).",
                                        hint="Raise --timeout, or check the network.") from None
                raise UnavailableError(f"Upload failed: {exc.__class__.__name__}",
                                       hint="Check the network and try again.") from None
            if resp.status_code < 300:
                return
            body = None
            try:
                body = resp.json()
            except ValueError:
                pass
            wait = parse_retry_after(resp.headers, body)
            if policy.may_resend(Safety.READ, attempt, status=resp.status_code, retry_after=wait):
                policy.pause(policy.delay(attempt, wait))
                attempt += 1
                continue
            err = parse_error_body(resp.status_code, body, resp.text[:200])
            err.message = f"Upload refused: {err.message}"
            raise err


def upload_file(client: Any, kind: str, mime: str, data: bytes, *, job_id: str | None = None,
                item_id: str | None = None, role: str | None = None) -> str:
    """Upload ``data``; return the signed download URL for ``media_references``."""
    job_id = job_id or f"cli-{random_hex(16)}"
    item_id = item_id or random_hex(16)
    query = upload_query(kind, mime, job_id, item_id, role)
    base = _route(kind)
    up = _data_field(client.request("GET", f"{base}/uploadUrl", params=query), "uploadUrl", "url")
    if not up:
        raise UnavailableError("The API did not return an upload URL.")
    put_bytes(up, data, mime, policy=getattr(client, "policy", None))
    down = _data_field(client.request("GET", f"{base}/downloadUrl", params=query), "downloadUrl", "url")
    if not down:
        raise UnavailableError("The API did not return a download URL for the upload.")
    return down

