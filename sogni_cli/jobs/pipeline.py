"""Run one media job end to end: upload inputs, start the workflow (or the ``--agent`` chat call), follow it,
and download its artifacts (contract §6-§7).

:func:`run_media_job` is what the media commands, ``tools run`` and the recipe runner call. It is free of
typer and ``sys.exit``, keeps no module state (several jobs run at once in threads, each with its own
progress key), reports through ``emit`` (``WorkflowUpdate`` and ``Artifact`` events) and ``progress``, and
raises :class:`~sogni_cli.core.errors.SogniError` subclasses for failures: ``GenerationFailed`` (failed,
cancelled, no media), ``IncompleteError`` (partial failure or downloads that failed; ``.result`` holds the
:class:`JobResult`), ``RejectedError``/``BillingError`` (waiting for the user), ``TimeoutError_``.

On ``KeyboardInterrupt`` (or SIGTERM's ``Terminated``) while following, the workflow is cancelled on the
server before the exception goes on.

Jobs run in worker threads (the recipe runner) cannot get ``KeyboardInterrupt``; their owner sets
``PipelineOptions.cancel`` (a ``threading.Event``) instead. The job then stops at its next check: nothing new
is sent, following stops, downloads stop (``.part`` files are kept for a resume) and :class:`JobCancelled`
is raised. The workflow is *not* cancelled on the server: the owner decides (it knows the id through
``on_created``). ``PipelineOptions.resume_workflow`` follows and downloads an existing workflow instead of
creating one; :class:`ResumeUnavailable` says that workflow cannot deliver (failed, cancelled, waiting, gone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable

from ..core.errors import BillingError, GenerationFailed, IncompleteError, RejectedError, SogniError
from ..core.events import Event, WorkflowUpdate
from .collect import _steps, refs_from_record  # noqa: F401 - refs_from_record is part of this module's API
from .targets import (FORMAT_MIME, MEDIA_EXTS, _model_of, _prompt_of, _seed_of, _with_type,  # noqa: F401
                      check_output_paths, existing_outputs, planned_refs)

__all__ = ["PipelineOptions", "JobResult", "run_media_job", "download_workflow", "refs_from_record",
           "planned_refs", "KeyedProgress", "raise_for_state", "follow_to_end", "JobCancelled",
           "ResumeUnavailable", "RESUMABLE_STATES"]

#: States of an existing workflow that ``resume_workflow`` follows or downloads; any other known state
#: (failed, cancelled, waiting_for_user) raises :class:`ResumeUnavailable`.
RESUMABLE_STATES = frozenset({"queued", "running", "completed", "partial_failure"})


class JobCancelled(GenerationFailed):
    """The job's ``PipelineOptions.cancel`` event was set: it stopped without cancelling its workflow."""

    def __init__(self, message: str = "stopped: the run was interrupted", hint: str | None = None,
                 *, workflow_id: str | None = None):
        super().__init__(message, hint)
        self.workflow_id = workflow_id


def settled(exc: BaseException, status: str | None) -> BaseException:
    """Mark ``exc`` as the workflow's own final answer (``status``): running it again would not change it."""
    exc.workflow_status = status  # type: ignore[attr-defined]
    exc.final = True  # type: ignore[attr-defined]
    return exc


class ResumeUnavailable(GenerationFailed):
    """The workflow named by ``PipelineOptions.resume_workflow`` cannot deliver (``status``: its state, or
    ``"missing"`` when the API does not know it). Nothing was created."""

    def __init__(self, message: str, hint: str | None = None, *, status: str | None = None):
        super().__init__(message, hint)
        self.status = status



@dataclass
class PipelineOptions:
    output_dir: Path = Path(".")
    name: str | None = None
    on_exists: str = "suffix"
    no_download: bool = False
    manifest: Path | None = None
    max_download_size: int | None = None
    detach: bool = False
    timeout: float | None = None  # no-progress limit while following (None: wait as long as it moves)
    agent: bool = False
    concurrency: int | None = None  # files downloaded at once (None: the downloads' default)
    progress_key: Hashable = "job"
    on_created: Callable[[str], None] | None = None  # called with the workflow id as soon as it exists
    use_sse: bool = True
    sleep: Callable[[float], Any] | None = None  # download retry waits (tests)
    checksum: bool = True  # sha256 of each saved file (for --json, --jsonl, manifests and run records)
    cancel: Any = None  # a threading.Event: when set, stop promptly (JobCancelled), leave the workflow running
    resume_workflow: str | None = None  # follow/download this existing workflow instead of creating one
    policy: Any = None  # the retry settings downloads follow (None: the API client's --timeout/--max-retries)
    follow_after: str | None = None  # follow only events after this event id (a resumed workflow's new ones)
    idempotency_key: str | None = None  # the key of the paid request (decided by the caller: same job, same key)
    title: str | None = None  # the workflow's title (a recipe job's identity, for `workflow list`)
    before_send: Callable[[str], None] | None = None  # told the key just before a paid request leaves; may raise
    upload_id: str | None = None  # stable upload names (a resend with the same key then sends the same body)
    root: Path | None = None  # nothing is written outside this folder (default: output_dir); recipes: -o
    # A workflow that waits for cost approval is handed to this (client, id, record) -> record after approval
    # (see jobs.approval.resolve_wait), then followed again; None: the wait ends the job (exit 9). With it, a
    # resumed workflow that waits for approval is approved and followed rather than replaced.
    approve: Callable[[Any, str, dict[str, Any]], dict[str, Any]] | None = None
    # A download client the caller owns and shares between its jobs (a recipe run: one pool of connections
    # to the media hosts for the whole run); None: each job makes its own and closes it.
    download_client: Any = None


@dataclass
class JobResult:
    workflow_id: str | None = None
    status: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    saved: list[Any] = field(default_factory=list)  # downloads.SavedFile, in order
    failed: list[tuple[Any, str]] = field(default_factory=list)  # (ArtifactRef, reason)
    texts: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # with --no-download
    data: dict[str, Any] | None = None  # tools/execute answer
    record: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"workflow_id": self.workflow_id, "status": self.status, "tool": self.tool,
                               "arguments": self.arguments}
        arts = [{"path": str(s.path), "url": s.url or s.ref.url, "sha256": s.sha256, "bytes": s.bytes,
                 "content_type": s.content_type} for s in self.saved]
        arts += [{"path": None, "url": u, "sha256": None, "bytes": None, "content_type": None} for u in self.urls]
        doc["artifacts"] = arts
        if self.failed:
            doc["failed"] = [{"url": r.url or None, "error": why} for r, why in self.failed]
        if self.texts:
            doc["text"] = "\n\n".join(self.texts)
        if self.data is not None:
            doc["data"] = self.data
        if self.record is not None:
            from ..api.billing import cost_of

            doc["cost"] = cost_of(self.record)
        return doc


class KeyedProgress:
    """A view of a shared progress sink whose task keys are prefixed (one per job)."""

    def __init__(self, sink: Any, prefix: Hashable):
        self._sink = sink
        self._prefix = prefix

    def start(self, key, total, label):
        self._sink.start((self._prefix, key), total, label)

    def advance(self, key, n):
        self._sink.advance((self._prefix, key), n)

    def update(self, key, completed=None, total=None, label=None):
        self._sink.update((self._prefix, key), completed=completed, total=total, label=label)

    def finish(self, key, ok=True):
        self._sink.finish((self._prefix, key), ok)

    def note(self, text):
        self._sink.note(text)

    def heartbeat(self):
        self._sink.heartbeat()

    def close(self):  # the shared sink is closed by its owner
        pass


def _noop(_event: Event) -> None:
    pass


class _CancelWatch:
    """A progress sink that raises :class:`JobCancelled` from its heartbeat once ``cancel`` is set.

    Heartbeats come from the follow loop (each stream chunk or poll) and from the thread waiting on the
    downloads (about once a second); an exception there makes ``download_all`` stop its workers, shut the
    sockets they are blocked on and keep their ``.part`` files."""

    def __init__(self, inner: Any, cancel: Any):
        self._inner = inner
        self._cancel = cancel
        self.workflow_id: str | None = None

    def check(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled(workflow_id=self.workflow_id)

    def heartbeat(self) -> None:
        self.check()
        self._inner.heartbeat()

    def __getattr__(self, name: str) -> Any:  # start, advance, update, finish, note, close
        return getattr(self._inner, name)


def _watch(progress: Any, options: PipelineOptions) -> Any:
    return _CancelWatch(progress, options.cancel) if options.cancel is not None else progress


def _check(progress: Any) -> None:
    if isinstance(progress, _CancelWatch):
        progress.check()


def _cancellable_sleep(options: PipelineOptions) -> Callable[[float], Any] | None:
    """Download retry waits that end (raising JobCancelled) as soon as ``options.cancel`` is set."""
    cancel = options.cancel
    if cancel is None:
        return options.sleep
    base = options.sleep

    def sleep(seconds: float) -> None:
        if base is not None:
            base(seconds)
        else:
            cancel.wait(seconds)
        if cancel.is_set():
            raise JobCancelled()

    return sleep


# --------------------------------------------------------------------------------------------- refs


def precheck_names(job: Any, options: PipelineOptions) -> None:
    """Before anything is sent (or paid for): the ``--name`` template renders, and with
    ``--on-exists error`` no file the job could write exists yet, whatever extension the server picks."""
    from ..catalog import load
    from ..media import naming
    from ..media.downloads import check_on_exists

    check_output_paths(Path(options.output_dir), options.manifest, options.root)
    refs = planned_refs(job)
    d_opts = _download_options(options)
    tool = load().get(job.tool)
    exts = MEDIA_EXTS.get(getattr(tool, "media", None) or "", ()) or ("png",)
    for ref in refs:  # a malformed template or format spec is a usage error now, not after the job ran
        fields = {"index": ref.index, "count": ref.count, "tool": ref.tool or "", "slug": naming.slugify(ref.prompt),
                  "seed": ref.seed if ref.seed is not None else 0, "workflow": "wf", "date": "20260101",
                  "ext": exts[0]}
        naming.safe_join(Path(options.output_dir), naming.render_name(options.name, fields))
    if d_opts.on_exists != "error":
        return
    if any(r.content_type for r in refs):
        check_on_exists(refs, d_opts)
        return
    for ext in exts:
        mime = FORMAT_MIME.get(ext) or f"{'image' if ext in MEDIA_EXTS['image'] else 'application'}/{ext}"
        check_on_exists([_with_type(r, mime) for r in refs], d_opts)


# --------------------------------------------------------------------------------------------- running


def _download_options(options: PipelineOptions, timeout: float | None = None) -> Any:
    from .collect import download_options

    return download_options(Path(options.output_dir), name=options.name, on_exists=options.on_exists,
                            manifest=options.manifest, max_size=options.max_download_size,
                            concurrency=options.concurrency, checksum=options.checksum, root=options.root,
                            policy=options.policy)


def _start_agent(client: Any, job: Any, progress: Any, key: str | None = None
                 ) -> tuple[str | None, dict[str, Any], list[str]]:
    """Send the job through ``/v1/chat/completions``; (workflow id, its first record, direct media URLs)."""
    from ..api.hosted import find_media
    from . import agent_body
    from ..media.inputs import load_media_file, prepare_vision_image

    inline = []
    for inp in job.inputs:
        if inp.kind == "image":
            inline.append((inp, prepare_vision_image(inp.path).data_uri))
        else:
            inline.append((inp, load_media_file(inp.path, inp.kind).data_uri()))
    resp = client.request("POST", "/v1/chat/completions", json=agent_body(job, inline), idempotent=True,
                          idempotency_key=key)
    resp = resp if isinstance(resp, dict) else {}
    extras = resp.get("data") if isinstance(resp.get("data"), dict) and "choices" not in resp else resp
    text = ""
    try:
        text = extras["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        text = ""
    media = find_media(extras, text if isinstance(text, str) else "")
    if media.workflow_ids:
        if len(media.workflow_ids) > 1:
            progress.note(f"The model started {len(media.workflow_ids)} workflows; following "
                          f"{media.workflow_ids[0]} (others: {', '.join(media.workflow_ids[1:])})")
        wid = media.workflow_ids[0]
        return wid, {"workflowId": wid, "status": None}, []
    if media.urls:
        return None, {}, media.urls
    raise GenerationFailed("The chat model did not run the tool, so no media was produced.",
                           hint="Run without --agent to start the exact workflow step.")


def _cancel_quietly(client: Any, wid: str, progress: Any) -> None:
    from ..api import workflows

    try:
        workflows.cancel(client, wid)
        progress.note(f"Cancelled workflow {wid}.")
    except BaseException as exc:  # noqa: BLE001 - the interrupt that got us here matters more
        if not isinstance(exc, Exception):
            raise
        progress.note(f"Could not cancel workflow {wid}: {getattr(exc, 'message', exc)}")


def follow_to_end(client: Any, wid: str, options: PipelineOptions, progress: Any,
                  emit: Callable[[Event], None], after: WorkflowUpdate | None = None,
                  ) -> tuple[dict[str, Any], WorkflowUpdate | None]:
    """Follow ``wid`` to a terminal state (cancelling it on Ctrl-C/SIGTERM); return (record, last update).
    ``after``: the last update already seen (the stream resumes after its sequence)."""
    from ..api import workflows

    last: WorkflowUpdate | None = None
    resume_id = str(after.sequence) if after is not None and after.sequence is not None else None
    try:
        for upd in workflows.follow(client, wid, timeout=options.timeout, use_sse=options.use_sse,
                                    on_wait=progress.heartbeat, last_event_id=options.follow_after or resume_id):
            last = upd
            emit(upd)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # KeyboardInterrupt, Terminated
            _cancel_quietly(client, wid, progress)
        raise
    rec = workflows.get(client, wid)
    if workflows.status_of(rec) not in workflows.TERMINAL and last is not None and last.status:
        rec = dict(rec, status=last.status)
    return rec, last


def raise_for_state(rec: dict[str, Any], wid: str, last: WorkflowUpdate | None) -> None:
    from ..api.workflows import failure_reason, status_of

    status = status_of(rec)
    reason = failure_reason(rec) or (last.message if last else None)
    if status == "waiting_for_user":
        why = rec.get("waitingReason") or "other"
        preview = rec.get("billingPreview") if isinstance(rec.get("billingPreview"), dict) else {}
        units = preview.get("totalEstimatedCapacityUnits")
        cost = f" Estimated cost: {units} capacity units." if units is not None else ""
        msg = f"Workflow {wid} is waiting for you ({why}): {reason or why}.{cost}"
        if why == "insufficient_credit":
            raise settled(BillingError(msg, hint="Add credits or change the token type (--token-type spark|sogni)."),
                          status)
        if why in ("cost_approval_required", "cost_reauthorization_required"):
            from ..api.billing import preview_from
            from .approval import needed_error

            # not a final answer: approved later (or by a rerun with --approve-up-to), the same workflow runs
            raise needed_error(wid, preview_from(rec))
        raise settled(RejectedError(msg, hint=f"Answer it in the app, then `sogni workflow watch {wid}`."), status)
    if status in ("failed", "cancelled"):
        exc = GenerationFailed(f"Workflow {wid} {status}" + (f": {reason}" if reason else "."))
        exc.workflow_status = status  # type: ignore[attr-defined]
        raise settled(exc, status) if status == "failed" else exc


def _finish(client: Any, rec: dict[str, Any], job: Any, options: PipelineOptions, progress: Any,
            emit: Callable[[Event], None], result: JobResult, last: WorkflowUpdate | None = None,
            dl_client: Any = None) -> JobResult:
    from ..api import workflows

    wid = workflows.workflow_id(rec) or result.workflow_id or ""
    status = workflows.status_of(rec)
    result.status = status
    result.record = rec
    raise_for_state(rec, wid, last)
    refs, missing = refs_from_record(rec, job)
    if not refs and not missing:
        raise settled(GenerationFailed(f"Workflow {wid} finished ({status}) but produced no media.",
                                       hint=f"See `sogni workflow show {wid}`."), status)
    result.failed.extend(missing)
    if refs:
        from .collect import collect

        _check(progress)
        got = collect(refs, _download_options(options), client=client, dl_client=dl_client,
                      progress=KeyedProgress(progress, options.progress_key), emit=emit,
                      no_download=options.no_download, sleep=_cancellable_sleep(options))
        result.saved.extend(got.saved)
        result.urls.extend(got.urls)
        result.failed.extend(got.failed)
    if result.failed or status == "partial_failure":
        n_ok = len(result.saved) + len(result.urls)
        lines = [f"{ref.url or 'artifact ' + str(ref.index)}: {why}" for ref, why in result.failed]
        what = "finished with some failures" if status == "partial_failure" else "finished"
        msg = f"Workflow {wid} {what}; {n_ok} of {n_ok + len(result.failed)} outputs saved."
        if status == "partial_failure" and not result.failed:
            reason = workflows.failure_reason(rec)
            msg = f"Workflow {wid} finished with some failures ({reason or 'partial_failure'}); {n_ok} outputs saved."
        if lines:
            msg += "\n  " + "\n  ".join(lines[:20]) + ("\n  …" if len(lines) > 20 else "")
        err = IncompleteError(msg, hint=f"`sogni workflow download {wid}` tries the downloads again.")
        err.result = result  # type: ignore[attr-defined]
        if status == "partial_failure":
            settled(err, status)
        raise err
    return result


def shared_download_client(client: Any, options: PipelineOptions) -> Any:
    """A download client for the jobs of a run to share (``PipelineOptions.download_client``), made with the
    settings of ``options`` and the API client's retry settings; the caller closes it."""
    from .collect import open_download_client

    return open_download_client(_download_options(_with_policy(options, client)))


def _open_download_client(options: PipelineOptions) -> tuple[Any, bool]:
    """The credential-free download client, made while the workflow runs (it takes tens of ms to create), and
    whether this job owns it (closes it when done), or the caller shares it between jobs."""
    if options.no_download:
        return None, False
    if options.download_client is not None:
        return options.download_client, False
    from .collect import open_download_client

    return open_download_client(_download_options(options)), True


def _with_policy(options: PipelineOptions, client: Any) -> PipelineOptions:
    """Downloads follow the API client's retry settings unless the options name their own."""
    policy = getattr(client, "policy", None)
    if options.policy is not None or policy is None:
        return options
    from dataclasses import replace

    return replace(options, policy=policy)


def run_media_job(client: Any, job: Any, options: PipelineOptions | None = None, *, progress: Any = None,
                  emit: Callable[[Event], None] | None = None) -> JobResult:
    """Run ``job`` (a :class:`~sogni_cli.jobs.MediaJob`) to the end; see the module docstring."""
    from ..api import tools_exec, workflows
    from . import placeholder_refs, workflow_body
    from ..core.progress import NullProgress
    options = _with_policy(options or PipelineOptions(), client)
    progress = _watch(progress or NullProgress(), options)
    emit = emit or _noop
    result = JobResult(tool=job.tool, arguments=job.arguments)
    _check(progress)

    if job.route == "execute":
        key = options.idempotency_key or workflows.new_key()
        if options.before_send:
            options.before_send(key)
        data = tools_exec.execute(client, job.tool, job.arguments, job.token_type, job.safe_content_filter,
                                  key=key)
        text = tools_exec.result_text(data)
        result.status = "completed"
        result.data = data
        if text:
            result.texts.append(text)
        return result

    if options.resume_workflow:
        wid: str | None = options.resume_workflow
        rec = _resume_record(client, wid, options.approve)
        direct_urls: list[str] = []
    else:
        dry = bool(getattr(getattr(client, "config", None), "dry_run", False))
        if not options.no_download:
            if not dry and options.on_exists == "skip":
                present = existing_outputs(job, options.output_dir, options.name)
                if present is not None:  # every file is there already: nothing is sent, nothing is paid
                    result.status = "skipped"
                    result.saved = present
                    return result
            precheck_names(job, options)

        direct_urls = []
        key = options.idempotency_key or workflows.new_key()
        if options.agent:
            if options.before_send and not dry:
                options.before_send(key)
            wid, rec, direct_urls = _start_agent(client, job, progress, key)
        else:
            refs = placeholder_refs(job) if dry else upload_inputs(client, job.inputs, options.upload_id)
            _check(progress)  # uploads can take a while: do not start paying after a stop
            body = workflow_body(job, refs, title=options.title)
            if options.before_send and not dry:
                options.before_send(key)
            rec = _create(client, body, key, options, progress)
            wid = workflows.workflow_id(rec)
    result.workflow_id = wid
    if wid is None:  # --agent answered with media links only
        return _finish_urls(direct_urls, job, options, progress, emit, result)
    if isinstance(progress, _CancelWatch):
        progress.workflow_id = wid
    if options.on_created:
        options.on_created(wid)
    first = workflows.update_from_record(rec)
    first.workflow_id = wid
    result.status = first.status
    emit(first)
    if options.detach:
        return result

    dl_client, owned = _open_download_client(options)
    try:
        _check(progress)
        if workflows.status_of(rec) in workflows.TERMINAL and options.resume_workflow:
            last = None  # already finished: no need to follow
        else:
            rec, last = follow_to_end(client, wid, options, progress, emit)
        while options.approve is not None and _awaits_approval(rec):
            seen = last or _last_event(rec)
            rec = options.approve(client, wid, rec)
            rec, last = follow_to_end(client, wid, options, progress, emit, after=seen)
        _check(progress)
        return _finish(client, rec, job, options, progress, emit, result, last, dl_client)
    finally:
        if owned:
            dl_client.close()


def _create(client: Any, body: dict[str, Any], key: str, options: PipelineOptions, progress: Any) -> dict[str, Any]:
    """Start the workflow with ``key``. Interrupted (Ctrl-C, SIGTERM) while the answer is on its way: learn
    its id with a quick resend under the same key, cancel it, and let the interrupt go on; when the id cannot
    be learned, say how to find the workflow. A key the API already saw with another body (a resent job
    whose uploads got new URLs) is looked up by the workflow's title."""
    from ..api import workflows
    from ..core.errors import ApiError

    try:
        return workflows.create(client, body, key=key)
    except ApiError as exc:
        if exc.status == 409 and options.title and options.idempotency_key:
            found = workflows.find_by_title(client, options.title)
            if found is not None and workflows.workflow_id(found):
                return found
        raise
    except BaseException as exc:
        if isinstance(exc, Exception) or options.cancel is not None:
            raise  # a recipe's worker: its owner keeps the key in the run record and resends it later
        wid = workflows.recover(client, body, key)
        if wid:
            progress.note(f"Workflow: {wid}")
            _cancel_quietly(client, wid, progress)
        else:
            progress.note(f"The workflow may have started before the interrupt: its Idempotency-Key is {key}"
                          + (f" and its title {options.title!r}" if options.title else "")
                          + ". Find it with `sogni workflow list` and stop it with `sogni workflow cancel ID`.")
        raise


def _awaits_approval(rec: dict[str, Any]) -> bool:
    from ..api.billing import waiting_for_approval

    return waiting_for_approval(rec)


def _last_event(rec: dict[str, Any]) -> WorkflowUpdate | None:
    """The last event a record lists (a resumed workflow's): following after an approval starts past it."""
    seqs = [e.get("sequence") for e in rec.get("events") or [] if isinstance(e, dict)] \
        if isinstance(rec.get("events"), list) else []
    seqs = [n for n in seqs if isinstance(n, int) and not isinstance(n, bool)]
    return WorkflowUpdate(workflow_id="", sequence=max(seqs)) if seqs else None


def _resume_record(client: Any, wid: str, approve: Any = None) -> dict[str, Any]:
    """The record of the workflow to resume; ResumeUnavailable when it cannot deliver (one waiting for cost
    approval can, when there is an ``approve`` hook to decide on it)."""
    from ..api import workflows
    from ..core.errors import ApiError

    try:
        rec = workflows.get(client, wid)
    except ApiError as exc:
        if exc.status in (404, 410):
            raise ResumeUnavailable(f"Workflow {wid} is not known to the API any more.", status="missing") from None
        raise
    status = workflows.status_of(rec)
    if status is not None and status not in RESUMABLE_STATES and not (approve and _awaits_approval(rec)):
        reason = workflows.failure_reason(rec)
        raise ResumeUnavailable(f"Workflow {wid} is {status}" + (f": {reason}" if reason else "."), status=status)
    if not workflows.workflow_id(rec):
        rec = dict(rec, workflowId=wid)
    return rec


def _finish_urls(urls: list[str], job: Any, options: PipelineOptions, progress: Any,
                 emit: Callable[[Event], None], result: JobResult) -> JobResult:
    """Media links from a chat answer without a workflow record."""
    arts = [{"url": u} for u in urls]
    rec = {"status": "completed", "artifacts": arts, "input": {"steps": [{"toolName": job.tool,
                                                                           "arguments": job.arguments}]}}
    return _finish(None, rec, job, options, progress, emit, result)


def download_workflow(client: Any, wid: str, options: PipelineOptions | None = None, *, progress: Any = None,
                      emit: Callable[[Event], None] | None = None) -> JobResult:
    """Fetch the artifacts of a finished workflow (fresh record, so fresh URLs); ``.part`` files resume."""
    from ..api import workflows

    from ..core.progress import NullProgress

    options = _with_policy(options or PipelineOptions(), client)
    progress = _watch(progress or NullProgress(), options)
    emit = emit or _noop
    _check(progress)
    rec = workflows.get(client, wid)
    status = workflows.status_of(rec)
    result = JobResult(workflow_id=wid, status=status)
    steps = _steps(rec)
    if len(steps) == 1:
        result.tool = steps[0].get("toolName")
        result.arguments = steps[0].get("arguments")
    if status not in workflows.TERMINAL:
        raise SogniError(f"Workflow {wid} is still {status or 'running'}; nothing to download yet.",
                         hint=f"Wait for it with `sogni workflow watch {wid}`.", exit_code=6)
    dl_client, owned = _open_download_client(options)
    try:
        return _finish(client, rec, None, options, progress, emit, result, None, dl_client)
    finally:
        if owned:
            dl_client.close()


def upload_inputs(client: Any, inputs: list[Any], upload_id: str | None = None) -> list[dict[str, Any]]:
    """Upload each :class:`MediaInput`; return the ``media_references`` list in order (``upload_id``: stable
    names, so that the same job uploads to the same place every time)."""
    from ..core.ids import random_hex

    from ..api.uploads import upload_file
    from . import media_reference

    job_id = f"cli-{upload_id or random_hex(16)}"
    refs = []
    for i, inp in enumerate(inputs):
        item = f"{inp.ref_id}-{i}" if upload_id else f"{inp.ref_id}-{random_hex(8)}"
        url = upload_file(client, inp.kind, inp.mime, inp.read_bytes(), job_id=job_id, item_id=item)
        refs.append(media_reference(inp, url))
    return refs
