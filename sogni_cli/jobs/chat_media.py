"""Save the media that hosted tools made during a chat (contract §6.1 and §7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.events import Event
from ..core.progress import NullProgress, ProgressSink


@dataclass
class MediaReport:
    paths: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    exit_code: int = 0
    saved: list[Any] = field(default_factory=list)  # downloads.SavedFile (with sha256 and size)


def save_hosted_media(api: Any, media: Any, *, prompt: str | None, output_dir: Path, name: str | None,
                      on_exists: str, no_download: bool, quiet: bool,
                      emit: Callable[[Event], None],
                      progress_factory: Callable[[], ProgressSink] | None = None,
                      root: Path | None = None, concurrency: int | None = None) -> MediaReport:
    """Follow each workflow to its artifacts, add direct URLs, deduplicate, download.

    ``progress_factory`` makes the download display (only when there is something to download); ``root``
    is the folder nothing may be written outside of (a recipe's ``-o``; default ``output_dir``)."""
    from ..core.errors import ExitCode, SogniError
    from ..core.term import err
    from ..media.downloads import ArtifactRef
    from .collect import collect, download_options, refs_from_record

    refs: list[ArtifactRef] = []
    seen: set[str] = set()
    report = MediaReport()

    def fail(code: int) -> None:
        if not report.exit_code:  # the first problem decides the exit code; later ones are still reported
            report.exit_code = code

    for wid in media.workflow_ids:
        if not quiet:
            err(f"Workflow: {wid}")
        try:
            record = _finished_record(api, wid, quiet=quiet)
        except SogniError as exc:
            err(f"Error: {exc.message}")
            if exc.hint:
                err(f"Hint: {exc.hint}")
            fail(int(exc.exit_code))
            continue
        found, _ = refs_from_record(dict(record, workflowId=wid), prompt=prompt)
        if not isinstance(record.get("artifacts"), list) or not record["artifacts"]:
            err(f"Error: workflow {wid} finished but produced no media.")
            fail(int(ExitCode.GENERATION_FAILED))
        elif record.get("status") == "partial_failure":
            err(f"Error: workflow {wid} finished with some failures; what it made is saved.")
            fail(int(ExitCode.INCOMPLETE))
        for ref in found:
            if ref.url not in seen:
                seen.add(ref.url)
                ref.seed = ref.model = ref.arguments = None  # names and records as for chat: the prompt only
                refs.append(ref)
    for url in media.urls:
        if url not in seen:
            seen.add(url)
            refs.append(ArtifactRef(url=url, prompt=prompt))
    for i, ref in enumerate(refs, 1):
        ref.index, ref.count = i, len(refs)
    progress = progress_factory() if progress_factory and refs and not no_download else NullProgress()
    try:
        got = collect(refs, download_options(output_dir, name=name, on_exists=on_exists, root=root,
                                              concurrency=concurrency), client=api,
                      progress=progress, emit=emit, no_download=no_download, sleep=_retry_sleep)
    finally:
        progress.close()
    report.urls = got.urls
    report.paths = got.paths
    report.saved = got.saved
    for ref, why in got.failed:
        err(f"Error: could not save {ref.url.split('?')[0]}: {why}")
        fail(int(ExitCode.INCOMPLETE))
    return report


def _retry_sleep(seconds: float) -> None:
    from ..api import client

    client.sleep(seconds)  # the one retry wait (tests record it instead of sleeping)


def _finished_record(api: Any, workflow_id: str, *, quiet: bool) -> dict:
    """Follow the workflow until it ends; return its record, or raise the error its end state means
    (failed/cancelled 7, waiting 4, insufficient credit 9) exactly as the media commands do."""
    from ..api import workflows as wf
    from .pipeline import raise_for_state

    last = None
    for update in wf.follow(api, workflow_id, timeout=api.config.read_timeout):
        last = update
    record = wf.get(api, workflow_id)
    raise_for_state(record, workflow_id, last)
    return record
