"""``sogni doctor``'s checks: each gives a verdict (``ok``, ``warn``, ``fail``, ``skip``) and one line of
detail. Only ``fail`` makes the command exit non-zero.

The network checks send one ``GET /v1/account/me`` (no retries, so a dead address fails fast): any HTTP
answer means the base URL answers (timed); 2xx means the key is accepted, 401/403 that it is refused; the
answer's ``Date`` header gives the clock skew.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import os
import stat
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEPENDENCIES = ("typer", "httpx", "pyyaml", "pillow", "rich")
SKEW_WARN = 30.0
SKEW_FAIL = 300.0
CACHE_STALE_DAYS = 7
PROBE = "/v1/account/me"


@dataclass
class Check:
    name: str
    verdict: str  # ok | warn | fail | skip
    detail: str
    value: Any = None  # a number for machines (ms, seconds, days), when there is one

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_versions() -> Check:
    from importlib import metadata

    from .. import __version__

    parts, missing = [], []
    for dist in DEPENDENCIES:
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            missing.append(dist)
    py = ".".join(map(str, sys.version_info[:3]))
    detail = f"sogni {__version__}, Python {py}; " + ", ".join(parts)
    if missing:
        return Check("versions", "fail", detail + f"; missing: {', '.join(missing)}")
    return Check("versions", "ok", detail)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def check_config_dir(directory: Path) -> Check:
    if not directory.exists():
        return Check("config folder", "ok", f"{directory} (not created yet)")
    if not directory.is_dir():
        return Check("config folder", "fail", f"{directory} is not a folder")
    mode = _mode(directory)
    if mode & 0o022:
        return Check("config folder", "warn", f"{directory} can be written by others (mode {mode:o}); "
                                              f"run `chmod go-w {directory}`")
    return Check("config folder", "ok", f"{directory} (mode {mode:o})")


def check_credentials(directory: Path) -> Check:
    from ..core.config import credentials_path

    path = credentials_path(directory)
    try:
        st = path.lstat()
    except FileNotFoundError:
        return Check("credentials", "ok", f"{path} (none stored)")
    if not stat.S_ISREG(st.st_mode):
        return Check("credentials", "fail", f"{path} is not a plain file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return Check("credentials", "fail", f"{path} can be read by others (mode {mode:o}); run `chmod 600 {path}`")
    return Check("credentials", "ok", f"{path} (mode {mode:o})")


def check_key(settings: Any) -> Check:
    from ..core.redact import mask_key

    if not settings.api_key:
        return Check("key", "fail", "no API key (set SOGNI_API_KEY or run `sogni auth login`)")
    return Check("key", "ok", f"{mask_key(settings.api_key)} from {settings.api_key_source or 'the settings'}")


def probe(client: Any, label: str = "") -> list[Check]:
    """Base URL answers (timed), key accepted, clock skew: from one request without retries."""
    import httpx

    suffix = f" ({label})" if label else ""
    url = client.url(PROBE)
    base = client.config.base_url
    start = time.monotonic()
    try:
        resp = client.http.get(url, headers=client.headers_for(url))
    except httpx.HTTPError as exc:
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not connect"
        return [Check("base URL" + suffix, "fail", f"{base} {what}: {exc.__class__.__name__}"),
                Check("key accepted" + suffix, "skip", "the base URL did not answer"),
                Check("clock" + suffix, "skip", "the base URL did not answer")]
    ms = (time.monotonic() - start) * 1000.0
    local = _dt.datetime.now(_dt.timezone.utc)
    checks = [Check("base URL" + suffix, "ok", f"{base} answered HTTP {resp.status_code} in {ms:.0f} ms",
                    value=round(ms, 1))]
    if 200 <= resp.status_code < 300:
        who = "an account"
        try:
            from .billing import display_name

            body = resp.json()
            data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
            who = display_name(data if isinstance(data, dict) else {})
        except ValueError:
            pass
        checks.append(Check("key accepted" + suffix, "ok", f"the key belongs to {who}"))
    elif resp.status_code in (401, 403):
        checks.append(Check("key accepted" + suffix, "fail", f"the API refused the key (HTTP {resp.status_code})"))
    else:
        checks.append(Check("key accepted" + suffix, "warn", f"could not tell (HTTP {resp.status_code})"))
    checks.append(check_clock(resp.headers.get("date"), local, suffix))
    return checks


def check_clock(date_header: str | None, local: _dt.datetime, suffix: str = "") -> Check:
    if not date_header:
        return Check("clock" + suffix, "skip", "the server sent no Date header")
    try:
        server = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return Check("clock" + suffix, "skip", f"unreadable Date header {date_header[:40]!r}")
    if server.tzinfo is None:
        server = server.replace(tzinfo=_dt.timezone.utc)
    skew = (local - server).total_seconds()
    if abs(skew) < 1.0:  # the header has whole seconds
        return Check("clock" + suffix, "ok", "in step with the server (within 1 s)", value=round(skew, 1))
    side = "ahead of" if skew > 0 else "behind"
    verdict = "ok" if abs(skew) < SKEW_WARN else "warn" if abs(skew) < SKEW_FAIL else "fail"
    return Check("clock" + suffix, verdict, f"{abs(skew):.0f} s {side} the server", value=round(skew, 1))


def check_models_cache(directory: Path, now: float | None = None) -> Check:
    path = directory / "models-cache.txt"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return Check("models cache", "warn", "none yet (`sogni models` fills it for completion)")
    days = max(0.0, ((now if now is not None else time.time()) - mtime) / 86400.0)
    age = f"{days * 24:.0f} h" if days < 2 else f"{days:.0f} days"
    verdict = "warn" if days > CACHE_STALE_DAYS else "ok"
    detail = f"{path} is {age} old" + ("; refresh it with `sogni models`" if verdict == "warn" else "")
    return Check("models cache", verdict, detail, value=round(days, 2))


def emulator_probe(settings: Any) -> list[Check]:
    """The same network checks against a local emulator started for the comparison."""
    from .. import emulator
    from .client import ClientConfig, ApiClient

    emu = emulator.start("127.0.0.1", 0)
    try:
        api = ApiClient(ClientConfig(base_url=emu.base_url, api_key="emulator-key", max_retries=0,
                                     connect_timeout=5.0, read_timeout=10.0))
        try:
            return probe(api, "emulator")
        finally:
            api.close()
    finally:
        emu.stop()


def run_checks(settings: Any, client: Any, *, compare_emulator: bool = False) -> list[Check]:
    checks = [check_versions(), check_config_dir(settings.config_dir), check_credentials(settings.config_dir),
              check_key(settings)]
    if client is not None:
        checks += probe(client)
    checks.append(check_models_cache(settings.config_dir))
    if compare_emulator:
        checks += emulator_probe(settings)
    return checks


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.verdict == "fail"]


def env_note() -> str | None:
    """Proxies that would carry the requests, worth knowing when the base URL does not answer."""
    names = [n for n in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY") if os.environ.get(n)]
    return f"proxy variables set: {', '.join(names)}" if names else None
