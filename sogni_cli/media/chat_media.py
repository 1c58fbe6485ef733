"""Save the media that hosted tools made during a chat (contract §6.1 and §7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..events import Artifact, Event


@dataclass
class MediaReport:
    paths: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    exit_code: int = 0


def save_hosted_media(api: Any, media: Any, *, prompt: str | None, output_dir: Path, name: str | None,
                      on_exists: str, no_download: bool, quiet: bool,
                      emit: Callable[[Event], None]) -> MediaReport:
    """Follow each workflow to its artifacts, add direct URLs, deduplicate, download."""
    from ..errors import ExitCode, SogniError
    from ..render.output import err
    from .downloads import ArtifactRef, DownloadOptions, download_all

    refs: list[ArtifactRef] = []
    seen: set[str] = set()
    report = MediaReport()
    for wid in media.workflow_ids:
        if not quiet:
            err(f"Workflow: {wid}")
        try:
            record = _finished_record(api, wid, quiet=quiet)
        except SogniError as exc:
            err(f"Error: workflow {wid}: {exc.message}")
            report.exit_code = max(report.exit_code, int(ExitCode.INCOMPLETE))
            continue
        for art in record.get("artifacts") or []:
            url = art.get("url") if isinstance(art, dict) else None
            if isinstance(url, str) and url not in seen:
                seen.add(url)
                refs.append(ArtifactRef(url=url, workflow_id=wid, tool=art.get("toolName"), prompt=prompt,
                                        content_type=art.get("mimeType")))
    for url in media.urls:
        if url not in seen:
            seen.add(url)
            refs.append(ArtifactRef(url=url, prompt=prompt))
    for i, ref in enumerate(refs, 1):
        ref.index, ref.count = i, len(refs)
    if no_download:
        for ref in refs:
            report.urls.append(ref.url)
            emit(Artifact(url=ref.url, workflow_id=ref.workflow_id, tool=ref.tool))
        return report
    if not refs:
        return report
    from ..render.progress import make_progress
    import sys

    progress = make_progress(sys.stderr, quiet=quiet)
    try:
        result = download_all(refs, DownloadOptions(output_dir=output_dir, name_template=name, on_exists=on_exists),
                              progress=progress, refresh=lambda ref: _fresh_url(api, ref), sleep=_retry_sleep)
    finally:
        progress.close()
    for saved in result.saved:
        report.paths.append(str(saved.path))
        emit(Artifact(url=saved.ref.url, path=str(saved.path), workflow_id=saved.ref.workflow_id,
                      tool=saved.ref.tool, content_type=saved.content_type, bytes=saved.bytes, sha256=saved.sha256))
    for ref, why in result.failed:
        err(f"Error: could not save {ref.url.split('?')[0]}: {why}")
        report.exit_code = int(ExitCode.INCOMPLETE)
    return report


def _retry_sleep(seconds: float) -> None:
    from ..api import client

    client.sleep(seconds)  # the one retry wait (tests record it instead of sleeping)


def _finished_record(api: Any, workflow_id: str, *, quiet: bool) -> dict:
    """Follow the workflow until it ends; return its record (artifacts of a partial failure included)."""
    from ..api import workflows as wf
    from ..errors import GenerationFailed

    last = None
    for update in wf.follow(api, workflow_id, timeout=api.config.read_timeout):
        last = update
    record = wf.get(api, workflow_id)
    status = wf.status_of(record) or (last.status if last else None)
    if status in ("failed", "cancelled"):
        raise GenerationFailed(f"{status}: {wf.failure_reason(record) or 'no reason given'}")
    return record


def _fresh_url(api: Any, ref: Any) -> str | None:
    if not ref.workflow_id:
        return None
    from ..api.workflows import get

    record = get(api, ref.workflow_id)
    arts = [a for a in record.get("artifacts") or [] if isinstance(a, dict) and a.get("url")]
    idx = ref.index - 1
    return arts[idx]["url"] if 0 <= idx < len(arts) else None
