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
    #: links not fetched, with the reason (listed on stderr as "Not downloaded")
    skipped: list[dict[str, str]] = field(default_factory=list)
    exit_code: int = 0
    saved: list[Any] = field(default_factory=list)  # downloads.SavedFile (with sha256 and size)


def save_hosted_media(api: Any, media: Any, *, prompt: str | None, output_dir: Path, name: str | None,
                      on_exists: str, no_download: bool, quiet: bool,
                      emit: Callable[[Event], None],
                      progress_factory: Callable[[], ProgressSink] | None = None,
                      no_fetch: str | None = None, media_hosts: Any = None,
                      approve: Callable[[Any, str, dict], dict] | None = None, root: Path | None = None,
                      concurrency: int | None = None) -> MediaReport:
    """Follow each workflow to its artifacts, add the links the policy allows, deduplicate, download (with
    the one collector, :func:`sogni_cli.jobs.collect.collect`).

    ``no_fetch`` names why nothing may be fetched at all (``--tools none``, ``--no-exec``): every link is then
    listed as not downloaded and no workflow is followed. ``media_hosts`` is the profile's extra media hosts.
    ``progress_factory`` makes the download display (only when there is something to download); ``approve``
    decides on a workflow that waits for cost approval (see jobs.approval), as for the media commands.
    ``root`` is the folder nothing may be written outside of (a recipe's ``-o``; default ``output_dir``)."""
    from ..api.hosted import LinkPolicy
    from ..core.errors import ExitCode, SogniError
    from ..core.term import err, shown
    from ..media.downloads import ArtifactRef
    from .collect import collect, download_options

    refs: list[ArtifactRef] = []
    seen: set[str] = set()
    report = MediaReport()
    policy = LinkPolicy.for_profile(api.config.base_url, media_hosts)

    def fail(code: int) -> None:
        if not report.exit_code:  # the first problem decides the exit code; later ones are still reported
            report.exit_code = code

    def skip(url: str, why: str, *, made: bool) -> None:
        """A link not fetched; ``made``: media the API made for this reply (its loss makes the run incomplete)."""
        report.skipped.append({"url": url, "reason": why})
        if not quiet or made:
            err(f"Not downloaded: {shown(url)} ({why})")
        if made:
            fail(int(ExitCode.INCOMPLETE))

    if no_fetch:
        for url in list(media.urls) + list(media.text_urls):
            skip(url, no_fetch, made=False)
        return report

    for wid in media.workflow_ids:
        if not quiet:
            err(f"Workflow: {shown(wid)}")
        try:
            record = _finished_record(api, wid, quiet=quiet, approve=approve)
        except SogniError as exc:
            err(f"Error: {exc.message}")
            if exc.hint:
                err(f"Hint: {exc.hint}")
            fail(int(exc.exit_code))
            continue
        arts = [a for a in record.get("artifacts") or [] if isinstance(a, dict)] \
            if isinstance(record.get("artifacts"), list) else []
        if not arts:
            err(f"Error: workflow {shown(wid)} finished but produced no media.")
            fail(int(ExitCode.GENERATION_FAILED))
        elif record.get("status") == "partial_failure":
            err(f"Error: workflow {shown(wid)} finished with some failures; what it made is saved.")
            fail(int(ExitCode.INCOMPLETE))
        for pos, art in enumerate(arts):
            url = art.get("url")
            if isinstance(url, str) and url not in seen:
                seen.add(url)
                why = policy.refusal(url, {_host_of(url)})
                if why:
                    skip(url, why, made=True)
                    continue
                refs.append(ArtifactRef(url=url, workflow_id=wid, tool=art.get("toolName"), prompt=prompt,
                                        content_type=art.get("mimeType") if isinstance(art.get("mimeType"), str)
                                        else None, position=pos))
    direct = 0
    for url, made in [(u, True) for u in media.urls] + [(u, False) for u in media.text_urls]:
        if url in seen:
            continue
        seen.add(url)
        if not made and not media.hosted_ran:
            skip(url, "no hosted tool ran in this reply", made=False)
            continue
        why = policy.refusal(url, media.record_hosts)
        if why:
            skip(url, why, made=made)
            continue
        if direct >= policy.limit:
            skip(url, f"over the limit of {policy.limit} links per reply", made=False)
            continue
        direct += 1
        refs.append(ArtifactRef(url=url, prompt=prompt))
    for i, ref in enumerate(refs, 1):
        ref.index, ref.count = i, len(refs)
    progress = progress_factory() if progress_factory and refs and not no_download else NullProgress()
    try:
        got = collect(refs, download_options(output_dir, name=name, on_exists=on_exists, root=root,
                                             concurrency=concurrency, policy=getattr(api, "policy", None)),
                      client=api, progress=progress, emit=emit, no_download=no_download)
    finally:
        progress.close()
    report.urls = got.urls
    report.paths = got.paths
    report.saved = got.saved
    for ref, why in got.failed:
        err(f"Error: could not save {shown(ref.url.split('?')[0])}: {why}")
        fail(int(ExitCode.INCOMPLETE))
    return report


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _finished_record(api: Any, workflow_id: str, *, quiet: bool, approve: Any = None) -> dict:
    """Follow the workflow until it ends; return its record, or raise the error its end state means
    (failed/cancelled 7, waiting 4, cost approval or insufficient credit 9) exactly as the media commands do."""
    from ..api import workflows as wf
    from ..api.billing import waiting_for_approval
    from .pipeline import raise_for_state

    last = None
    for update in wf.follow(api, workflow_id, timeout=api.config.read_timeout):
        last = update
    record = wf.get(api, workflow_id)
    while approve is not None and waiting_for_approval(record):
        approve(api, workflow_id, record)
        resume = str(last.sequence) if last is not None and last.sequence is not None else None
        for update in wf.follow(api, workflow_id, timeout=api.config.read_timeout, last_event_id=resume):
            last = update
        record = wf.get(api, workflow_id)
    raise_for_state(record, workflow_id, last)
    return record
