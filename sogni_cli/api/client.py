"""The one place that talks to the Sogni API (contract §5).

- both auth headers, to the API base URL's origin only;
- ``User-Agent`` and ``X-App-Source``;
- timeouts; retries with exponential backoff and jitter, honouring ``retry-after-ms``, ``Retry-After`` and a
  body ``retryAfter`` (capped at 60 s); one ``Idempotency-Key`` per logical request, reused by its retries;
- nothing retried once a streamed body has started;
- both error envelopes turned into :class:`~sogni_cli.core.errors.ApiError`;
- ``--verbose`` request/response log and ``--dry-run`` with secrets redacted.

It knows nothing of typer, rich or the command line: it is handed a :class:`ClientConfig`.
"""

from __future__ import annotations

import email.utils
import json as _json
import random
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from .. import __version__
from ..core.errors import ApiError, DryRunDone, SogniError, TimeoutError_, UnavailableError, parse_error_body

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 524})
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
USER_AGENT = f"sogni-cli/{__version__}"


def sleep(seconds: float) -> None:
    """The wait between retries; tests replace it to record the delays."""
    time.sleep(seconds)


@dataclass
class ClientConfig:
    base_url: str
    api_key: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_retries: int = 2
    token_type: str | None = None
    verbose: bool = False
    dry_run: bool = False
    log: Callable[[str], None] | None = None  # stderr writer for --verbose
    dry_run_out: Callable[[str], None] | None = None  # stdout writer for --dry-run
    sleep: Callable[[float], None] | None = None  # None: the module-level ``sleep`` (tests patch it)
    random: Callable[[], float] | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


def parse_retry_after(headers: Any, body: Any = None, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or HTTP date) or a body ``retryAfter``."""
    value = None
    ms = headers.get("retry-after-ms") if headers is not None else None
    if ms:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = None
    if value is None and headers is not None and headers.get("retry-after"):
        ra = headers.get("retry-after").strip()
        try:
            value = float(ra)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(ra)
                value = when.timestamp() - (time.time() if now is None else now)
            except (TypeError, ValueError, IndexError, OverflowError):
                value = None
    if value is None and isinstance(body, dict):
        b = body.get("retryAfter", body.get("retry_after"))
        if isinstance(body.get("error"), dict):
            b = b if b is not None else body["error"].get("retryAfter", body["error"].get("retry_after"))
        if isinstance(b, (int, float)) and not isinstance(b, bool):
            value = float(b)
    if value is None:
        return None
    return max(0.0, value)


def backoff_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff from 0.5 s to 8 s with up to 25% jitter (attempt counts from 0)."""
    delay = min(INITIAL_RETRY_DELAY * (2 ** attempt), MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * rand())


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


class ApiClient:
    def __init__(self, config: ClientConfig, transport: Any = None):
        self.config = config
        self._transport = transport
        self._http = None
        origin = urlsplit(config.base_url)
        self._origin = (origin.scheme, origin.hostname, origin.port or (443 if origin.scheme == "https" else 80))

    # ------------------------------------------------------------------ plumbing
    @property
    def http(self):
        if self._http is None:
            import httpx

            c = self.config
            self._http = httpx.Client(
                timeout=httpx.Timeout(c.read_timeout, connect=c.connect_timeout),
                follow_redirects=False,
                transport=self._transport,
            )
        return self._http

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
    ) -> Any:
        """Send one logical request with retries; return the decoded JSON body."""
        with self._send(method, path, json=json, params=params, headers=headers, idempotent=idempotent,
                        stream=False) as resp:
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
    ) -> Iterator[Any]:
        """Open a streamed response (retried only until its status line arrives); yields the httpx response."""
        with self._send(method, path, json=json, params=params, headers=headers, idempotent=idempotent,
                        stream=True) as resp:
            yield _LoggedStream(resp, self._log) if self.config.verbose else resp

    @contextmanager
    def _send(self, method, path, *, json, params, headers, idempotent, stream):
        import httpx

        url = self.url(path)
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        hdrs = self.headers_for(url, headers, json_body=json is not None)
        if stream:
            hdrs["Accept"] = "text/event-stream"
        if idempotent:
            hdrs["Idempotency-Key"] = str(uuid.uuid4())
        if self.config.dry_run:
            full = url
            if params:
                full = str(httpx.URL(url, params=params))
            self._dry_run(method, full, hdrs, json)
            raise DryRunDone()
        content = None
        if json is not None:
            content = _json.dumps(json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        attempt = 0
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
            try:
                resp = self.http.send(req, stream=True)
            except httpx.TransportError as exc:  # connection errors and timeouts: retried alike
                timed_out = isinstance(exc, httpx.TimeoutException)
                if attempt < self.config.max_retries:
                    delay = backoff_delay(attempt, self.config.random or random.random)
                    what = "timeout" if timed_out else "connection error"
                    self._log(f"< {what} ({exc.__class__.__name__}); retrying in {delay:.2f}s")
                    self._sleep(delay)
                    attempt += 1
                    continue
                if timed_out:
                    raise TimeoutError_(
                        f"Timed out waiting for {method} {urlsplit(url).path} after {attempt + 1} attempt(s).",
                        hint="Raise --timeout, or check the network.",
                    ) from None
                raise UnavailableError(
                    f"Could not reach {urlsplit(url).netloc}: {redact(str(exc) or exc.__class__.__name__, self.secrets)}",
                    hint="Check the network and --base-url.",
                ) from None
            elapsed = (time.monotonic() - start) * 1000
            self._log(f"< {resp.status_code} {resp.reason_phrase} ({elapsed:.0f} ms)")
            if self.config.verbose:
                for k, v in resp.headers.items():
                    self._log(f"< {k}: {v}")
            if resp.status_code < 300:
                try:
                    if not stream:
                        resp.read()
                        if self.config.verbose:
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
            if resp.status_code in RETRY_STATUSES and attempt < self.config.max_retries:
                wait = parse_retry_after(resp.headers, body)
                delay = min(wait, MAX_RETRY_AFTER) if wait is not None else backoff_delay(attempt, self.config.random or random.random)
                self._log(f"< retrying in {delay:.2f}s (attempt {attempt + 2} of {self.config.max_retries + 1})")
                self._sleep(delay)
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
            err = parse_error_body(resp.status_code, body, redact(text, self.secrets))
            err.message = redact(err.message, self.secrets)
            raise err


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
                sleep: Callable[[float], None] | None = None, require_key: bool = True) -> ApiClient:
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
        dry_run_out=dry_run_out,
    )
    if sleep is not None:
        cfg.sleep = sleep
    return ApiClient(cfg, transport=transport)


__all__ = [
    "ApiClient",
    "ApiError",
    "ClientConfig",
    "DryRunDone",
    "SogniError",
    "backoff_delay",
    "make_client",
    "parse_retry_after",
]
