"""The one way from finished workflows to saved files.

The media commands, ``tools run``, ``workflow download``, chat's hosted media and recipes all end here:
:func:`refs_from_record` turns a workflow record into the artifacts to fetch (and the ones without a
link, as failures), and :func:`collect` saves them with :func:`~sogni_cli.media.downloads.download_all`
(or, with ``no_download``, only lists their links). An expired link (403/404/410 from the media host) is
refreshed from a fresh read of the artifact's own workflow, once per workflow, matched by the artifact's
position in that workflow. Each saved file (or listed link) is reported as an ``Artifact`` event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.events import Artifact, Event
from .targets import _model_of, _prompt_of, _seed_of

__all__ = ["Collected", "collect", "refs_from_record", "download_options", "open_download_client"]


@dataclass
class Collected:
    saved: list[Any] = field(default_factory=list)  # downloads.SavedFile, in order
    failed: list[tuple[Any, str]] = field(default_factory=list)  # (ArtifactRef, reason)
    urls: list[str] = field(default_factory=list)  # with no_download

    @property
    def paths(self) -> list[str]:
        return [str(s.path) for s in self.saved]


def _noop(_event: Event) -> None:
    pass


def _steps(rec: dict[str, Any]) -> list[dict[str, Any]]:
    inp = rec.get("input") if isinstance(rec.get("input"), dict) else {}
    for src in (inp.get("steps"), rec.get("steps")):
        if isinstance(src, list) and src:
            return [s for s in src if isinstance(s, dict)]
    return []


def refs_from_record(rec: dict[str, Any], job: Any = None, *,
                     prompt: str | None = None) -> tuple[list[Any], list[tuple[Any, str]]]:
    """(refs to download, artifacts without a URL as failures) for a finished workflow record.

    ``job`` (what was sent) gives the arguments when known; ``prompt`` overrides the prompt used for names
    (chat: the user's message)."""
    from ..api.workflows import workflow_id
    from ..media.downloads import ArtifactRef

    wid = workflow_id(rec)
    steps = _steps(rec)
    arts = [a for a in (rec.get("artifacts") if isinstance(rec.get("artifacts"), list) else []) if isinstance(a, dict)]
    n = len(arts)
    refs: list[Any] = []
    missing: list[tuple[Any, str]] = []
    for i, art in enumerate(arts):
        step = None
        for s in steps:
            if art.get("stepId") and s.get("id") == art.get("stepId"):
                step = s
                break
        if step is None:
            for s in steps:
                if art.get("toolName") and s.get("toolName") == art.get("toolName"):
                    step = s
                    break
        if step is None and len(steps) == 1:
            step = steps[0]
        # what we sent is what we know best; the record's copy serves `workflow download`
        args = job.arguments if job is not None else None
        if args is None and step and isinstance(step.get("arguments"), dict):
            args = step["arguments"]
        args = args or {}
        tool = art.get("toolName") or (step or {}).get("toolName") or (job.tool if job is not None else None)
        url = art.get("url") if isinstance(art.get("url"), str) else ""
        ctype = art.get("mimeType") or art.get("contentType") or art.get("mime_type")
        ref = ArtifactRef(url=url, index=i + 1, count=n, workflow_id=wid, tool=tool,
                          prompt=prompt if prompt is not None else _prompt_of(args),
                          seed=_seed_of(args, art), model=_model_of(args), arguments=args,
                          content_type=ctype if isinstance(ctype, str) else None,
                          media_type=art.get("kind") or art.get("mediaType") or art.get("type"), position=i)
        if url:
            refs.append(ref)
        else:
            why = art.get("urlUnavailable") or "no URL in the workflow record"
            missing.append((ref, f"artifact {art.get('id') or i + 1}: {why}"))
    return refs, missing


def download_options(output_dir: Path, *, name: str | None = None, on_exists: str | None = "suffix",
                     manifest: Path | None = None, max_size: int | None = None, concurrency: int | None = None,
                     checksum: bool = True, root: Path | None = None, policy: Any = None) -> Any:
    """The :class:`~sogni_cli.media.downloads.DownloadOptions` for a command's or a job's settings."""
    from ..media.downloads import DownloadOptions

    d = DownloadOptions(output_dir=Path(output_dir), name_template=name, on_exists=on_exists or "suffix",
                        manifest=manifest, checksum=checksum, root=Path(root) if root is not None else None,
                        policy=policy)
    if concurrency is not None:
        d.concurrency = max(1, int(concurrency))
    if max_size:
        d.max_size = int(max_size)
    return d


def open_download_client(opts: Any) -> Any:
    """The credential-free client for media hosts (made early: it takes tens of ms to create)."""
    from ..media import downloads

    return downloads.make_download_client(opts)


class _Refresher:
    """Fresh links for expired ones: one re-read per workflow, the artifact found by its position."""

    def __init__(self, client: Any):
        self.client = client
        self.cache: dict[str, dict[str, Any]] = {}

    def __call__(self, ref: Any) -> str | None:
        if self.client is None or not ref.workflow_id or ref.position is None:
            return None
        from ..api import workflows

        rec = self.cache.get(ref.workflow_id)
        if rec is None:
            rec = self.cache[ref.workflow_id] = workflows.get(self.client, ref.workflow_id)
        arts = rec.get("artifacts") if isinstance(rec.get("artifacts"), list) else []
        art = arts[ref.position] if 0 <= ref.position < len(arts) and isinstance(arts[ref.position], dict) else None
        url = art.get("url") if art else None
        return url if isinstance(url, str) and url and url != ref.url else None


def collect(refs: list[Any], opts: Any, *, client: Any = None, dl_client: Any = None, progress: Any = None,
            emit: Callable[[Event], None] | None = None,
            no_download: bool = False, sleep: Callable[[float], Any] | None = None,
            refresh: Callable[[Any], str | None] | None = None) -> Collected:
    """Save ``refs`` into ``opts.output_dir`` (a DownloadOptions; see :func:`download_options`).

    ``client`` (the API client) refreshes expired links; ``dl_client`` is a download client made earlier
    (else one is made and closed here). Failed downloads are in ``Collected.failed``; usage errors (a bad name, an unsafe folder) and
    interrupts are raised. ``no_download``: nothing is fetched, the links are listed."""
    from ..media.downloads import download_all

    emit = emit or _noop
    out = Collected()
    if no_download:
        for ref in refs:
            out.urls.append(ref.url)
            emit(Artifact(url=ref.url, workflow_id=ref.workflow_id, tool=ref.tool, content_type=ref.content_type))
        return out
    if not refs:
        return out
    kw: dict[str, Any] = {}
    if sleep is not None:
        kw["sleep"] = sleep
    report = download_all(refs, opts, client=dl_client, progress=progress,
                          refresh=refresh or _Refresher(client), **kw)
    out.saved.extend(report.saved)
    out.failed.extend(report.failed)
    for s in report.saved:
        emit(s.to_event())
    return out
