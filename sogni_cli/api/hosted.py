"""Find the media a chat completion made with hosted tools (contract §6.1).

Three places: ``creative_workflows[]`` (followed by ``workflowId`` through the API base URL's workflow
routes, never through the URLs in the response), ``url``/``urls`` fields inside ``sogni_tool_results[]``,
and media links in the reply text. Results are deduplicated in first-seen order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MEDIA_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif", "mp4", "mov", "webm", "mp3", "wav", "flac", "m4a", "ogg",
                    "glb")
_URL_RE = re.compile(r"https?://[^\s<>\"'`)\]]+")


@dataclass
class HostedMedia:
    workflow_ids: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # direct media URLs (tool results, reply text)

    def __bool__(self) -> bool:
        return bool(self.workflow_ids or self.urls)


def _is_media_url(url: str) -> bool:
    path = urlsplit(url).path.lower()
    return path.rsplit(".", 1)[-1] in MEDIA_EXTENSIONS if "." in path.rsplit("/", 1)[-1] else False


def _urls_in(obj: Any, out: list[str]) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("url", "resultUrl", "downloadUrl") and isinstance(value, str) and value.startswith(("http://", "https://")):
                out.append(value)
            elif key in ("urls", "lastFrameUrls") and isinstance(value, list):
                out.extend(v for v in value if isinstance(v, str) and v.startswith(("http://", "https://")))
            else:
                _urls_in(value, out)
    elif isinstance(obj, list):
        for item in obj:
            _urls_in(item, out)


def find_media(extras: dict[str, Any], text: str) -> HostedMedia:
    media = HostedMedia()
    workflows = extras.get("creative_workflows") or extras.get("creativeWorkflows") or []
    for wf in workflows if isinstance(workflows, list) else []:
        if isinstance(wf, dict):
            wid = wf.get("workflowId") or wf.get("workflow_id") or wf.get("id")
            if isinstance(wid, str) and wid and wid not in media.workflow_ids:
                media.workflow_ids.append(wid)
    urls: list[str] = []
    results = extras.get("sogni_tool_results") or extras.get("sogniToolResults") or []
    for item in results if isinstance(results, list) else []:
        if isinstance(item, dict):
            wid = item.get("workflowId") or item.get("workflow_id")
            if isinstance(wid, str) and wid and wid not in media.workflow_ids:
                media.workflow_ids.append(wid)
        _urls_in(item, urls)
    for match in _URL_RE.findall(text or ""):
        url = match.rstrip(".,;:!?")
        if _is_media_url(url):
            urls.append(url)
    seen: set[str] = set()
    for url in urls:
        if url not in seen:
            seen.add(url)
            media.urls.append(url)
    return media
