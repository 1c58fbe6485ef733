"""Find the media a chat completion made with hosted tools, and decide which links may be fetched.

Three places hold media: ``creative_workflows[]`` (followed by ``workflowId`` through the API base URL's workflow
routes, never through the URLs in the response), ``url``/``urls`` fields inside ``sogni_tool_results[]``, and
media links in the reply text. Results are deduplicated in first-seen order.

Links are untrusted: a model can write any URL into its reply (including one the user pasted, with a secret in
its query string). :class:`LinkPolicy` says which are fetched: only from a reply in which hosted tools ran, only
over HTTPS (or the API base URL's own scheme and host, so a local emulator works), only from the API's host, the
hosts named in the reply's workflow and tool records, or the profile's ``media_hosts``, and at most
:data:`MAX_LINKS` per reply. Everything else is reported as not downloaded, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit

MEDIA_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif", "mp4", "mov", "webm", "mp3", "wav", "flac", "m4a", "ogg",
                    "glb")
#: The most links fetched for one reply.
MAX_LINKS = 20
_URL_RE = re.compile(r"https?://[^\s<>\"'`)\]]+")


@dataclass
class HostedMedia:
    workflow_ids: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # direct media URLs from the API's tool records
    text_urls: list[str] = field(default_factory=list)  # media links written in the reply text
    hosted_ran: bool = False  # the reply carries workflow/tool records (or a hosted tool call was seen)
    record_hosts: set[str] = field(default_factory=set)  # hosts named in those records

    def __bool__(self) -> bool:
        return bool(self.workflow_ids or self.urls or self.text_urls)


def _is_media_url(url: str) -> bool:
    path = urlsplit(url).path.lower()
    return path.rsplit(".", 1)[-1] in MEDIA_EXTENSIONS if "." in path.rsplit("/", 1)[-1] else False


def _urls_in(obj: Any, out: list[str], depth: int = 0) -> None:
    if depth > 32:
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("url", "resultUrl", "downloadUrl") and isinstance(value, str) and value.startswith(("http://", "https://")):
                out.append(value)
            elif key in ("urls", "lastFrameUrls") and isinstance(value, list):
                out.extend(v for v in value if isinstance(v, str) and v.startswith(("http://", "https://")))
            else:
                _urls_in(value, out, depth + 1)
    elif isinstance(obj, list):
        for item in obj:
            _urls_in(item, out, depth + 1)


def _host(url: str) -> str | None:
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def _dedupe(urls: Iterable[str], seen: set[str]) -> list[str]:
    out = []
    for url in urls:
        if url not in seen:
            seen.add(url)
            out.append(url)
    return out


def find_media(extras: dict[str, Any], text: str, *, hosted_call_seen: bool = False) -> HostedMedia:
    """The workflows, tool-record links and reply-text links of one reply (nothing is decided about fetching)."""
    media = HostedMedia(hosted_ran=hosted_call_seen)
    workflows = extras.get("creative_workflows") or extras.get("creativeWorkflows") or []
    record_urls: list[str] = []
    for wf in workflows if isinstance(workflows, list) else []:
        if isinstance(wf, dict):
            media.hosted_ran = True
            wid = wf.get("workflowId") or wf.get("workflow_id") or wf.get("id")
            if isinstance(wid, str) and wid and wid not in media.workflow_ids:
                media.workflow_ids.append(wid)
            named: list[str] = []
            _urls_in({k: v for k, v in wf.items() if k in ("url", "eventsUrl", "streamUrl")}, named)
            for key in ("eventsUrl", "streamUrl"):
                if isinstance(wf.get(key), str) and wf[key].startswith(("http://", "https://")):
                    named.append(wf[key])
            media.record_hosts.update(h for h in map(_host, named) if h)
    results = extras.get("sogni_tool_results") or extras.get("sogniToolResults") or []
    for item in results if isinstance(results, list) else []:
        if isinstance(item, dict):
            media.hosted_ran = True
            wid = item.get("workflowId") or item.get("workflow_id")
            if isinstance(wid, str) and wid and wid not in media.workflow_ids:
                media.workflow_ids.append(wid)
        _urls_in(item, record_urls)
    media.record_hosts.update(h for h in map(_host, record_urls) if h)
    seen: set[str] = set()
    media.urls = _dedupe(record_urls, seen)
    links = []
    for match in _URL_RE.findall(text or ""):
        url = match.rstrip(".,;:!?")
        if _is_media_url(url):
            links.append(url)
    media.text_urls = _dedupe(links, seen)
    return media


def _host_list(value: Any) -> tuple[str, ...]:
    """``media_hosts`` from a profile: a list, or text with hosts separated by commas or spaces."""
    if isinstance(value, str):
        items: Iterable[Any] = re.split(r"[,\s]+", value)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return ()
    return tuple(str(h).strip().lower().rstrip(".") for h in items if isinstance(h, str) and h.strip())


@dataclass
class LinkPolicy:
    """Which media links may be fetched (see the module docstring)."""

    api_base: str
    media_hosts: tuple[str, ...] = ()
    limit: int = MAX_LINKS

    @classmethod
    def for_profile(cls, api_base: str, media_hosts: Any = None) -> "LinkPolicy":
        return cls(api_base=api_base, media_hosts=_host_list(media_hosts))

    def _host_allowed(self, host: str, named: set[str]) -> bool:
        api_host = _host(self.api_base)
        if host == api_host or host in named:
            return True
        for allowed in self.media_hosts:
            if allowed.startswith(".") and host.endswith(allowed):  # ".example.com": any host under it
                return True
            if host == allowed:
                return True
        return False

    def refusal(self, url: str, named: set[str]) -> str | None:
        """Why ``url`` must not be fetched, or None when it may be."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "not a valid URL"
        host = (parts.hostname or "").lower()
        if not host:
            return "not a valid URL"
        if parts.username is not None or parts.password is not None:
            return "the link carries a user name or password"
        base = urlsplit(self.api_base)
        if parts.scheme != "https":
            same = (parts.scheme == base.scheme and host == (base.hostname or "").lower()
                    and (port or 80) == (base.port or 80))
            if not same:
                return "not HTTPS"
        if not self._host_allowed(host, named):
            return f"host {host} is not the API's, not named in the reply's records and not in media_hosts"
        return None
