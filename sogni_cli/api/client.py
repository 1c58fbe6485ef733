"""The one sender: every request to the Sogni API goes through :class:`ApiClient`.

- both auth headers, to the API base URL's origin only;
- ``User-Agent`` and ``X-App-Source``;
- timeouts and retries by the one policy of :mod:`sogni_cli.api.retry` (what may be resent, how long to wait,
  a busy account's 409); the response body is read inside the retried scope, so a body cut short is retried
  (or reported) like any other transport failure; one ``Idempotency-Key`` per logical request, reused by
  every retry;
- nothing retried once a streamed body has started;
- both error envelopes turned into :class:`~sogni_cli.core.errors.ApiError`;
- ``--verbose`` request/response log and ``--dry-run`` with secrets redacted.

It knows nothing of typer, rich or the command line: it is handed a :class:`ClientConfig`.
"""

from __future__ import annotations

import json as _json
import random
import threading
import time
from ..core.ids import new_uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from .. import __version__
from ..core.errors import ApiError, DryRunDone, SogniError, TimeoutError_, UnavailableError, parse_error_body
from . import retry as _retry
from .retry import (MAX_RETRY_AFTER, RETRY_STATUSES, ConcurrencyLimited, Limited, NotResent, Safety, backoff_delay,
                    classify, parse_retry_after)

USER_AGENT = f"sogni-cli/{__version__}"


def sleep(seconds: float) -> None:
    """Every wait between retries (API requests, uploads, downloads, slot waits); tests replace it to record
    the delays."""
    time.sleep(seconds)


@dataclass
class RetryPolicy:
    """The retry settings of one run (``--max-retries``, ``--timeout``), shared by the API client, uploads and
    media downloads; the rules themselves are in :mod:`sogni_cli.api.retry`."""

    max_retries: int = _retry.DEFAULT_MAX_RETRIES
    timeout: float = _retry.DEFAULT_READ_TIMEOUT
    connect_timeout: float = _retry.DEFAULT_CONNECT_TIMEOUT
    sleep: Callable[[float], None] | None = None  # None: the module-level ``sleep`` (tests patch it)
    random: Callable[[], float] | None = None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait before retry ``attempt + 1``: the server's word (capped at 60 s), else backoff."""
        return _retry.retry_delay(attempt, retry_after, self.random or random.random)

    def pause(self, seconds: float) -> None:
        (self.sleep or sleep)(seconds)

    def may_resend(self, safety: Safety, attempt: int, *, status: int | None = None, connected: bool = True,
                   retry_after: float | None = None) -> bool:
        """Whether retry ``attempt + 1`` may be sent after this failure."""
        return attempt < self.max_retries and _retry.may_resend(safety, status=status, connected=connected,
                                                                 retry_after=retry_after)


@dataclass
class ClientConfig:
    base_url: str
    api_key: str | None = None
    connect_timeout: float = _retry.DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = _retry.DEFAULT_READ_TIMEOUT
    max_retries: int = _retry.DEFAULT_MAX_RETRIES
    token_type: str | None = None
    verbose: bool = False
    dry_run: bool = False
    log: Callable[[str], None] | None = None  # stderr writer for --verbose
    notice: Callable[[str], None] | None = None  # stderr writer for waits the user should know about
    dry_run_out: Callable[[str], None] | None = None  # stdout writer for --dry-run
    sleep: Callable[[float], None] | None = None  # None: the module-level ``sleep`` (tests patch it)
    random: Callable[[], float] | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    # Called (from any thread) with a :class:`~sogni_cli.api.retry.Limited` on every 409 concurrency limit and
    # every 429 the sender sees, before it waits.
    on_limited: Callable[[Limited], None] | None = None
    # False: a 409 concurrency limit raises ConcurrencyLimited at once instead of waiting for a slot.
    wait_for_slot: bool = True
    # True: a request waiting for a slot also wakes when :meth:`ApiClient.slot_freed` is called (a workflow this
    # client followed has ended), instead of only after its next pause. For callers that run many jobs.
    wake_on_slot: bool = False


def redact_headers(headers: dict[str, str], secrets: list[str]) -> dict[str, str]:
    out = {}
    for k, v in headers.items():
        if k.lower() in ("authorization", "api-key", "x-api-key", "cookie"):
            out[k] = "Bearer ***" if k.lower() == "authorization" else "***"
        else:
            out[k] = redact(v, secrets)
    return out


def redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


#: idle connections kept per host (httpx's default)
KEEPALIVE = 20


class ApiClient:
    def __init__(self, config: ClientConfig, transport: Any = None):
        self.config = config
        self._transport = transport
        self._http = None
        self._slot = threading.Condition()
        origin = urlsplit(config.base_url)
        self._origin = (origin.scheme, origin.hostname, origin.port or (443 if origin.scheme == "https" else 80))

    # ------------------------------------------------------------------ plumbing
    @property
    def http(self):
        if self._http is None:
            import httpx

            from ..core import tls

            c = self.config
            self._http = httpx.Client(
                timeout=httpx.Timeout(c.read_timeout, connect=c.connect_timeout),
                follow_redirects=False,
                transport=self._transport,
                verify=tls.context(),  # the process's one context: no CA bundle loaded until TLS is used
            )
            from .http1 import install, set_cookie_jar

            if self._transport is None:
                # the lean HTTP/1.1 pool under httpx's own transport: a third of each request's CPU time
                install(self._http, tls.context(), keepalive=KEEPALIVE)
            set_cookie_jar(self._http, keep=True)
        return self._http

    def slot_freed(self) -> None:
        """One of the account's workflows has ended: wake one request that waits for a free slot (with
        ``wake_on_slot``), so it looks at the account's workflows now rather than after its pause."""
        with self._slot:
            self._slot.notify()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def secrets(self) -> list[str]:
        return [self.config.api_key] if self.config.api_key else []

    def derived(self, **changes: Any) -> "ApiClient":
        """A client with the same settings except ``changes`` (shorter timeouts, say), on its own connections."""
        from dataclasses import replace

        return ApiClient(replace(self.config, **changes), transport=self._transport)

    def _sleep(self, seconds: float) -> None:
        (self.config.sleep or sleep)(seconds)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.config.base_url.rstrip("/") + "/" + path.lstrip("/")

    def same_origin(self, url: str) -> bool:
        p = urlsplit(url)
        return (p.scheme, p.hostname, p.port or (443 if p.scheme == "https" else 80)) == self._origin

    def headers_for(self, url: str, extra: dict[str, str] | None = None, *, json_body: bool = False) -> dict[str, str]:
        h = {"User-Agent": USER_AGENT, "X-App-Source": "sogni-cli", "Accept": "application/json"}
        if json_body:
            h["Content-Type"] = "application/json"
        h.update(self.config.extra_headers)
        if extra:
            h.update(extra)
        if self.same_origin(url):
            key = self.config.api_key
            if key:
                h["Authorization"] = f"Bearer {key}"
                h["api-key"] = key
        return h

    def _log(self, line: str) -> None:
        if self.config.verbose and self.config.log:
            self.config.log(redact(line, self.secrets))

    def _dry_run(self, method: str, url: str, headers: dict[str, str], body: Any) -> None:
        from ..core.redact import shorten_data_uris

        out = self.config.dry_run_out or print
        lines = [f"{method} {url}"]
        for k, v in redact_headers(headers, self.secrets).items():
            lines.append(f"{k}: {v}")
        if body is not None:
            lines.append("")
            lines.append(_json.dumps(shorten_data_uris(body), indent=2, ensure_ascii=False))
        out(redact("\n".join(lines), self.secrets))

    # ------------------------------------------------------------------ requests
    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send one logical request with retries (its body read inside them); return the decoded JSON body.

        ``idempotent`` gives it a fresh ``Idempotency-Key``; ``idempotency_key`` sends that key instead (a key
        decided earlier, e.g. recorded before the request). Every retry carries the same key."""
        with self._send(method, path, json=json, params=params, headers=headers, idempotent=idempotent,
                        idempotency_key=idempotency_key, stream=False) as resp:
            if not resp.content:
                return None
            try:
                return resp.json()
            except (ValueError, RecursionError):
                raise UnavailableError(f"The API answered {method} {urlsplit(str(resp.url)).path} with a body that is not JSON.") from None

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
        idempotency_key: str | None = None,
    ) -> Iterator[Any]:
        """Open a streamed response (retried only until its status line arrives); yields the httpx response."""
        with self._send(method, path, json=json, params=params, headers=headers, idempotent=idempotent,
                        idempotency_key=idempotency_key, stream=True) as resp:
            yield _LoggedStream(resp, self._log) if self.config.verbose else resp

    @property
    def policy(self) -> RetryPolicy:
        """The retry settings in force now (``--max-retries``, ``--timeout``), for uploads and downloads too."""
        c = self.config
        return RetryPolicy(max_retries=c.max_retries, timeout=c.read_timeout, connect_timeout=c.connect_timeout,
                           sleep=c.sleep, random=c.random)

    def _signal(self, limited: Limited) -> None:
        if self.config.on_limited is not None:
            self.config.on_limited(limited)

    @contextmanager
    def _send(self, method, path, *, json, params, headers, idempotent, stream, idempotency_key=None):
        import httpx

        url = self.url(path)
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        hdrs = self.headers_for(url, headers, json_body=json is not None)
        if stream:
            hdrs["Accept"] = "text/event-stream"
        key = idempotency_key or (new_uuid() if idempotent else None)
        if key:
            hdrs["Idempotency-Key"] = key
        if self.config.dry_run:
            full = url
            if params:
                full = str(httpx.URL(url, params=params))
            self._dry_run(method, full, hdrs, json)
            raise DryRunDone()
        content = None
        if json is not None:
            content = _json.dumps(json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        route = urlsplit(url).path
        safety = classify(method, route, json)
        policy = self.policy
        attempt = 0
        slot_wait: dict[str, Any] = {}  # the wait for a free slot, shared by every 409 of this request
        while True:
            start = time.monotonic()
            self._log(f"> {method} {url}" + (f" {params}" if params else ""))
            if self.config.verbose:
                for k, v in redact_headers(hdrs, self.secrets).items():
                    self._log(f"> {k}: {v}")
            if self.config.verbose and json is not None:
                from ..core.redact import shorten_data_uris

                self._log("> " + _json.dumps(shorten_data_uris(json), ensure_ascii=False, separators=(",", ":")))
            req = self.http.build_request(method, url, params=params, headers=hdrs, content=content)
            resp = None
            try:
                resp = self.http.send(req, stream=True)
                if resp.status_code < 300 and not stream:
                    resp.read()  # a body cut short is retried like any other transport failure
            except (httpx.TransportError, httpx.DecodingError) as exc:
                if resp is not None:
                    resp.close()
                timed_out = isinstance(exc, httpx.TimeoutException)
                connected = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                what = "timeout" if timed_out else ("broken answer" if resp is not None else "connection error")
                if policy.may_resend(safety, attempt, connected=connected):
                    delay = policy.delay(attempt)
                    self._log(f"< {what} ({exc.__class__.__name__}); retrying in {delay:.2f}s")
                    policy.pause(delay)
                    attempt += 1
                    continue
                self._transport_failure(method, url, exc, attempt, safety, connected, key, resp is not None)
            elapsed = (time.monotonic() - start) * 1000
            self._log(f"< {resp.status_code} {resp.reason_phrase} ({elapsed:.0f} ms)")
            if self.config.verbose:
                for k, v in resp.headers.items():
                    self._log(f"< {k}: {v}")
            if resp.status_code < 300:
                try:
                    if not stream and self.config.verbose:
                        self._log("< " + _cut(resp.content.decode("utf-8", "replace"), LOG_BODY_WIDTH))
                    yield resp
                finally:
                    resp.close()
                return
            # an error answer: read it, decide whether to retry
            try:
                resp.read()
            except httpx.HTTPError:
                pass
            finally:
                resp.close()
            body = None
            try:
                body = resp.json()
            except ValueError:
                body = None
            except Exception:  # pragma: no cover - defensive (undecodable body)
                body = None
            status = resp.status_code
            wait = parse_retry_after(resp.headers, body)
            busy = _retry.concurrency_details(status, body)
            if busy is not None:  # refused, so not acted on: wait for a slot, then the same request again
                self._wait_for_slot(method, route, busy, wait, key, slot_wait)
                continue
            again = policy.may_resend(safety, attempt, status=status, retry_after=wait)
            delay = policy.delay(attempt, wait) if again else 0.0
            if status == 429:
                self._signal(Limited("rate", 429, method, route, retry_after=wait, waited=delay if again else None))
            if again:
                self._log(f"< retrying in {delay:.2f}s (attempt {attempt + 2} of {policy.max_retries + 1})")
                policy.pause(delay)
                attempt += 1
                continue
            text = ""
            try:
                text = resp.text
            except Exception:  # pragma: no cover - defensive
                text = ""
            if self.config.verbose and text:
                self._log("< " + _cut(text, LOG_BODY_WIDTH))
            if 300 <= resp.status_code < 400:
                # Redirects are not followed (the key would go wherever they point): say where it pointed.
                where = resp.headers.get("location") or "(no Location header)"
                raise UnavailableError(
                    f"The API answered {resp.status_code} {resp.reason_phrase or 'redirect'} to {urlsplit(url).path}, "
                    f"pointing to {redact(where, self.secrets)}; redirects are not followed.",
                    hint="Check --base-url (SOGNI_BASE_URL): it should be the API's own address, e.g. https://api.sogni.ai",
                )
            err = parse_error_body(status, body, redact(text, self.secrets))
            err.message = redact(err.message, self.secrets)
            if safety is Safety.PAID and status in RETRY_STATUSES and attempt < policy.max_retries:
                err.hint = ("It was not sent again: the API may already have started paid work for it. "
                            "Check `sogni workflow list` before running it again.")
            raise err

    def _transport_failure(self, method: str, url: str, exc: Exception, attempt: int, safety: Safety,
                           connected: bool, key: str | None, answered: bool) -> None:
        """Raise the error for a transport failure that is not retried (retries spent, or not safe to resend)."""
        import httpx

        where = urlsplit(url).path
        timed_out = isinstance(exc, httpx.TimeoutException)
        if safety is Safety.PAID and connected and attempt < self.config.max_retries:
            what = "timed out" if timed_out else ("broke off" if answered else "was cut")
            raise NotResent(
                f"The request {method} {where} {what} ({exc.__class__.__name__}) after it reached the API; it was "
                "not sent again, because the API may already have started paid work for it.",
                hint="Check `sogni workflow list` for work it started before running the command again.",
                idempotency_key=key, exit_code=6 if timed_out else None) from None
        if timed_out:
            raise TimeoutError_(
                f"Timed out waiting for {method} {where} after {attempt + 1} attempt(s).",
                hint="Raise --timeout, or check the network.",
            ) from None
        if answered:
            raise UnavailableError(
                f"The answer to {method} {where} broke off ({exc.__class__.__name__}) after {attempt + 1} "
                "attempt(s).", hint="Check the network, or raise --max-retries.") from None
        raise UnavailableError(
            f"Could not reach {urlsplit(url).netloc}: {redact(str(exc) or exc.__class__.__name__, self.secrets)}",
            hint="Check the network and --base-url.",
        ) from None

    def _wait_for_slot(self, method: str, route: str, busy: tuple[int | None, int | None], retry_after: float | None,
                       key: str | None, state: dict[str, Any]) -> None:
        """The account is at its limit of active workflows: wait, polling its workflows, until one of them ends
        (or the count drops under the limit), at most ``--timeout`` in all for this request."""
        active, limit = busy
        policy = self.policy
        if "spent" not in state:
            state.update(spent=0.0, start=time.monotonic(), delay=_retry.SLOT_POLL_INITIAL)
        budget = max(0.0, policy.timeout)

        def give_up(why: str) -> ConcurrencyLimited:
            shown = f" ({active} of {limit})" if active is not None and limit is not None else ""
            return ConcurrencyLimited(
                f"The account has too many active workflows{shown}; {why}. {method} {route} was not sent again.",
                active=active, limit=limit, idempotency_key=key, retry_after=retry_after,
                hint="Wait for running workflows to finish (`sogni workflow list`), raise --timeout, or run fewer "
                     "at once.")

        left = budget - max(state["spent"], time.monotonic() - state["start"])
        self._signal(Limited("concurrency", 409, method, route, retry_after=retry_after, active=active, limit=limit,
                             waited=max(0.0, left) if self.config.wait_for_slot else None))
        if not self.config.wait_for_slot:
            raise give_up("the caller chose not to wait")
        if not state.get("told") and self.config.notice is not None:
            state["told"] = True
            self.config.notice("The account has too many active workflows; waiting for one to finish "
                               f"(up to {budget:g} s)…")
        before: set[str] | None = None
        first_wait = retry_after
        while True:
            left = budget - max(state["spent"], time.monotonic() - state["start"])
            if left <= 0:
                raise give_up(f"none finished within {budget:g} s")
            pause = min(max(state["delay"], first_wait or 0.0), MAX_RETRY_AFTER, left)
            first_wait = None
            self._log(f"< account busy (409); looking at its workflows in {pause:.2f}s")
            if self.config.wake_on_slot:
                began = time.monotonic()
                with self._slot:
                    self._slot.wait(pause)
                state["spent"] += time.monotonic() - began
            else:
                policy.pause(pause)
                state["spent"] += pause
            state["delay"] = min(_retry.SLOT_POLL_MAX, state["delay"] * 2)
            try:
                body = self.request("GET", _retry.WORKFLOWS, params={"limit": _retry.SLOT_LIST_LIMIT})
            except (UnavailableError, TimeoutError_):
                continue  # the list is not available just now: look again after the next pause
            data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), (dict, list)) else body
            items = data.get("workflows") if isinstance(data, dict) else data
            items = [w for w in items if isinstance(w, dict)] if isinstance(items, list) else []
            running = {str(w.get("workflowId") or w.get("id")) for w in items
                       if str(w.get("status", "")).lower() in _retry.ACTIVE_STATUSES}
            if limit is not None and len(running) < limit:
                return
            if active is not None and len(running) < active:
                return
            if before is not None and before - running:
                return  # one that was running has ended
            before = running if before is None else before & running
            if not before:
                return


#: --verbose: the most characters of a response body, and of one line of a stream, written to the log.
LOG_BODY_WIDTH = 2000
LOG_LINE_WIDTH = 200


def _cut(text: str, width: int) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= width else text[:width] + f"… ({len(text) - width} more characters)"


class _LoggedStream:
    """A streamed response whose lines are written to the --verbose log as they are read (each cut to a width)."""

    def __init__(self, resp: Any, log: Callable[[str], None]):
        self._resp = resp
        self._log = log
        self._partial = b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resp, name)

    def _see(self, chunk: bytes) -> None:
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > 64 * 1024:  # one huge line: log its start, forget the rest
            self._log("< " + _cut(self._partial.decode("utf-8", "replace"), LOG_LINE_WIDTH))
            self._partial = b""
        for line in lines:
            if line.strip():
                self._log("< " + _cut(line.decode("utf-8", "replace"), LOG_LINE_WIDTH))

    def iter_raw(self, *a: Any, **kw: Any) -> Iterator[bytes]:
        for chunk in self._resp.iter_raw(*a, **kw):
            self._see(chunk)
            yield chunk
        if self._partial.strip():
            self._see(b"\n")

    def iter_bytes(self, *a: Any, **kw: Any) -> Iterator[bytes]:
        for chunk in self._resp.iter_bytes(*a, **kw):
            self._see(chunk)
            yield chunk


def make_client(settings: Any, *, log: Callable[[str], None] | None = None,
                dry_run_out: Callable[[str], None] | None = None, transport: Any = None,
                sleep: Callable[[float], None] | None = None, require_key: bool = True,
                notice: Callable[[str], None] | None = None) -> ApiClient:
    """Build an :class:`ApiClient` from resolved settings (no key needed for --dry-run)."""
    if require_key and not settings.dry_run:
        settings.require_key()
    if settings.api_key:
        from ..core.config import check_key

        check_key(settings.api_key, settings.api_key_source or "the settings")
    cfg = ClientConfig(
        base_url=settings.base_url,
        api_key=settings.api_key,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_retries=settings.max_retries,
        token_type=settings.token_type,
        verbose=settings.verbose,
        dry_run=settings.dry_run,
        log=log,
        notice=notice if notice is not None else (None if settings.quiet else log),
        dry_run_out=dry_run_out,
    )
    if sleep is not None:
        cfg.sleep = sleep
    return ApiClient(cfg, transport=transport)


__all__ = [
    "ApiClient",
    "ApiError",
    "ClientConfig",
    "ConcurrencyLimited",
    "DryRunDone",
    "Limited",
    "MAX_RETRY_AFTER",
    "NotResent",
    "RETRY_STATUSES",
    "RetryPolicy",
    "SogniError",
    "backoff_delay",
    "make_client",
    "parse_retry_after",
]
