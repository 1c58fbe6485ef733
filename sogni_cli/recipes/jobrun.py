"""One recipe job in a worker thread: render it, decide its attempt and key, send it or resume it.

:class:`JobSteps` is the part of :class:`~.run.Runner` that runs one job (``execute``); the scheduler, the
record and the interrupt handling stay in :mod:`.run`. See that module for the rules; in short:

- a job that succeeded with the same request hash and still has its files is not sent again;
- a job's paid request carries the key :func:`~.record.job_key` gives for its recipe, instance, request
  hash and attempt, and a ``starting`` line with it is on disk first (``_before_send``);
- a known workflow of the same request is followed instead of starting another; one the API says cannot
  deliver makes a new attempt (a new key); a final answer an earlier run recorded is reported, not resent;
- ``--retry``/``--retry-failed``/``--force`` make a new attempt for the jobs they select.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.errors import ExitCode, GenerationFailed, IncompleteError, SogniError
from ..core.secrets import redact
from . import bridge
from .details import job_details
from .expand import render_instance
from .plan import PlannedJob
from .record import RecordUnwritable, job_key, job_title
from .template import TemplateError

#: Last record states whose workflow a rerun follows and downloads instead of starting a new one.
RESUME_STATES = frozenset({"starting", "started", "interrupted", "failed", "cancelled", "succeeded"})


@dataclass
class Outcome:
    uid: str
    status: str  # succeeded | failed | cancelled | skipped | interrupted
    outputs: list[dict[str, Any]] = field(default_factory=list)  # path (absolute), sha256, bytes
    text: str | None = None
    workflow_id: str | None = None
    request_hash: str | None = None
    duration: float = 0.0
    error: str | None = None
    exit_code: int = 0
    resumed: bool = False
    resumed_workflow: str | None = None  # an earlier run's workflow, followed instead of starting a new one
    started_at: float = 0.0
    printed: list[str] = field(default_factory=list)  # what goes to stdout
    idempotency_key: str | None = None
    attempt: int = 0
    workflow_status: str | None = None  # the workflow's own final state, when it gave one
    final: bool = False  # the workflow's final answer: a rerun reports it instead of running it again
    from_record: bool = False  # an earlier run's final failure, reported again (nothing sent)
    details: dict[str, Any] | None = None  # prompt, model, seed, cost (see details.py), for reports
    cost: dict[str, Any] | None = None  # what the API reports the job's workflow cost: {units, token_type}
    retry_in_place: str | None = None  # --retry of a partly failed workflow: resumed through the API first


class _Settled(SogniError):
    """An earlier run recorded this job's final failure: reported again, nothing sent."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def _write_text(path: Path, text: str, root: Path) -> None:
    from ..core.filewrite import write_atomic

    write_atomic(path, text if text.endswith("\n") or not text else text + "\n", root=root)



class JobSteps:
    """Running one job (mixed into :class:`~.run.Runner`, whose state it uses)."""

    def execute(self, uid: str, oc: Outcome | None = None) -> Outcome:
        from ..jobs.pipeline import JobCancelled

        pj = self.jobs[uid]
        start = self.opts.clock()
        oc = oc or Outcome(uid, "failed")
        oc.started_at = start
        try:
            self._execute(pj, oc)
            oc.status = "succeeded"
        except SogniError as exc:
            oc.error = exc.message.strip()
            oc.exit_code = int(exc.exit_code)
            if isinstance(exc, JobCancelled) or (self.cancel.is_set() and isinstance(exc, GenerationFailed)):
                oc.status = "interrupted"
                oc.exit_code = int(ExitCode.INTERRUPTED)
                if oc.workflow_id:
                    oc.error += f"; workflow {oc.workflow_id} keeps running, a rerun downloads its results"
            elif self.stopping.is_set() and isinstance(exc, GenerationFailed):
                oc.status = "cancelled"
            else:
                oc.status = "failed"
            oc.workflow_status = getattr(exc, "workflow_status", None) or oc.workflow_status
            oc.final = bool(getattr(exc, "final", False)) or oc.final
            partial = getattr(exc, "result", None)
            if partial is not None:
                self._collect_saved(partial, oc)
                self._collect_cost(partial, oc)
        except TemplateError as exc:
            oc.error = f"template: {exc.message}"
            oc.exit_code = int(ExitCode.USAGE)
        except Exception as exc:  # noqa: BLE001 - one job's bug must not take the run down
            oc.error = f"internal error: {exc.__class__.__name__}: {exc}"
            oc.exit_code = int(ExitCode.INTERNAL)
        if oc.error:
            oc.error = redact(oc.error)  # server text can quote anything, the key included
        oc.duration = self.opts.clock() - start
        return oc

    @staticmethod
    def _collect_cost(result: Any, oc: Outcome) -> None:
        from ..api.billing import cost_of

        oc.cost = cost_of(getattr(result, "record", None)) or oc.cost

    def _collect_saved(self, result: Any, oc: Outcome) -> None:
        for s in getattr(result, "saved", []) or []:
            oc.outputs.append({"path": str(s.path), "sha256": s.sha256, "bytes": s.bytes})
            oc.printed.append(str(s.path))

    def _render(self, pj: PlannedJob) -> dict[str, Any]:
        fields = render_instance(self.plan.expanded, pj.inst, self.outputs)
        assert fields is not None
        return bridge.with_profile_defaults(pj.kind, fields, self.opts.settings)

    def _retrying(self, pj: PlannedJob) -> bool:
        """The user asked for a new workflow for this job (``--force``, ``--retry``, ``--retry-failed``)."""
        import fnmatch

        if self.opts.force:
            return True
        if any(fnmatch.fnmatchcase(pj.uid, pat) or fnmatch.fnmatchcase(pj.inst.job.id, pat)
               for pat in self.opts.retry):
            return True
        prev = self.previous.get(pj.uid)
        return bool(self.opts.retry_failed and prev and prev.get("status") in ("failed", "cancelled"))

    def _resumable(self, pj: PlannedJob, digest: str) -> dict[str, Any] | None:
        if self._retrying(pj):
            return None
        prev = self.previous.get(pj.uid)
        if not prev or prev.get("status") != "succeeded" or prev.get("request_hash") != digest:
            return None
        for o in prev.get("outputs") or []:
            p = self.out_root / o.get("path", "")
            try:
                if not p.is_file() or (o.get("bytes") is not None and p.stat().st_size != o["bytes"]):
                    return None
            except OSError:
                return None
        return prev

    def _attempt(self, pj: PlannedJob, digest: str, oc: Outcome) -> str | None:
        """Set ``oc.attempt`` and ``oc.idempotency_key`` for this job; return the workflow to resume (an
        earlier run's, for this same request), if any."""
        prev = self.previous.get(pj.uid)
        same = bool(prev) and prev.get("request_hash") == digest
        oc.attempt = int(prev.get("attempt") or 0) if same else 0
        if self._retrying(pj):
            oc.attempt = int(prev.get("attempt") or 0) + 1 if prev else 0
            oc.idempotency_key = job_key(self.plan.name, pj.uid, digest, oc.attempt)
            wid = prev.get("workflow_id") if prev else None
            if (same and not self.opts.force and pj.kind != "chat" and isinstance(wid, str) and wid
                    and prev.get("workflow_status") in ("partial_failure", "failed")):
                oc.retry_in_place = wid  # the API may finish what failed, before a new workflow is paid for
            return None
        oc.idempotency_key = (prev.get("idempotency_key") if same else None) or \
            job_key(self.plan.name, pj.uid, digest, oc.attempt)
        if not same or pj.kind == "chat" or prev.get("status") not in RESUME_STATES:
            return None
        wid = prev.get("workflow_id")
        if not (isinstance(wid, str) and wid):
            return None
        if prev.get("status") == "failed" and prev.get("final"):
            oc.workflow_id, oc.workflow_status, oc.final, oc.from_record = wid, prev.get("workflow_status"), True, True
            err = prev.get("error") if isinstance(prev.get("error"), dict) else {}
            raise _Settled(f"{str(err.get('message') or 'failed').splitlines()[0]} (recorded earlier; nothing "
                           f"was sent: `--retry {pj.uid}` starts a new workflow)",
                           exit_code=int(err.get("exit_code") or ExitCode.GENERATION_FAILED))
        return wid

    def _execute(self, pj: PlannedJob, oc: Outcome) -> None:
        inst = pj.inst
        fields = self._render(pj)
        digest = bridge.request_hash(pj.kind, fields, self.base_dir)
        oc.request_hash = digest
        oc.details = job_details(pj.kind, fields)
        prev = self._resumable(pj, digest)
        if prev is not None:
            oc.resumed = True
            oc.text = prev.get("text")
            oc.workflow_id = prev.get("workflow_id")
            oc.attempt = int(prev.get("attempt") or 0)
            for o in prev.get("outputs") or []:
                path = self.out_root / o["path"]
                oc.outputs.append({"path": str(path), "sha256": o.get("sha256"), "bytes": o.get("bytes")})
                oc.printed.append(str(path))
            return
        resume = self._attempt(pj, digest, oc)
        if self.cancel.is_set():
            from ..jobs.pipeline import JobCancelled

            raise JobCancelled("interrupted before it started")
        if self.stopping.is_set():
            raise GenerationFailed("cancelled before it started")
        self.display.started(pj.uid)
        job_dir = self.out_root / inst.output if inst.output else self.out_root
        on_exists = self.opts.on_exists or inst.job.on_exists or "overwrite"
        if pj.kind == "chat":
            self._chat(pj, fields, job_dir, on_exists, oc)
        else:
            self._media(pj, fields, job_dir, on_exists, oc, resume)
        if inst.save:
            target = self.out_root / inst.save
            _write_text(target, oc.text or "", self.out_root)
            sha, n = _sha256(target)
            oc.outputs.append({"path": str(target), "sha256": sha, "bytes": n})
            oc.printed.append(str(target))

    def _chat(self, pj: PlannedJob, fields: dict[str, Any], job_dir: Path, on_exists: str, oc: Outcome) -> None:
        from ..api.chat import run_chat
        from ..api.hosted import find_media

        req = bridge.build_chat(fields, self.base_dir)
        key = oc.idempotency_key or job_key(self.plan.name, pj.uid, oc.request_hash or "", oc.attempt)
        self._before_send(pj, oc, key)  # the key is on disk before the chat (which may start paid work) leaves
        result = run_chat(self.client, req, idempotency_key=key)
        oc.text = result.text
        media = find_media(result.extras, result.text, hosted_call_seen=bool(result.hosted_calls))
        if media:
            from ..jobs.chat_media import save_hosted_media

            report = save_hosted_media(self.client, media, prompt=req.prompt, output_dir=job_dir,
                                       name=pj.inst.filename, on_exists=on_exists, no_download=False, quiet=True,
                                       emit=lambda ev: None, root=self.out_root)
            self._collect_saved(report, oc)
            if report.exit_code:
                raise IncompleteError("some media made by hosted tools could not be saved")

    def _before_send(self, pj: PlannedJob, oc: Outcome, key: str) -> None:
        """Just before the paid request leaves: stop when the run is stopping, and put the key on disk."""
        from ..jobs.pipeline import JobCancelled

        oc.idempotency_key = key
        if self.cancel.is_set():
            raise JobCancelled("interrupted before it started")
        if self.stopping.is_set():
            raise GenerationFailed("cancelled before it started")
        starting = Outcome(oc.uid, "starting", request_hash=oc.request_hash, idempotency_key=key,
                           attempt=oc.attempt, workflow_id=oc.workflow_id)
        if not self.write_record(pj, starting, final=False, sync=True):
            raise RecordUnwritable(f"not sent: the run record cannot be written ({self.record.describe_error()})")

    def _resume_in_place(self, pj: PlannedJob, oc: Outcome, options: Any, emit: Callable[[Any], None]) -> Any:
        """``--retry`` of a job whose workflow partly failed: ask the API to resume that workflow (it redoes only
        what failed). None when it cannot be resumed; the caller then starts a new workflow."""
        from ..jobs.lifecycle import WorkflowNotResumable, resume_workflow
        from .display import PipelineSink

        wid = oc.retry_in_place
        assert wid is not None
        self.display.note(f"{pj.uid}: resuming workflow {wid} (only what failed is made again)")
        oc.workflow_id = wid
        try:
            return resume_workflow(self.client, wid, options, progress=PipelineSink(self.display), emit=emit)
        except WorkflowNotResumable as exc:
            self.display.note(f"{pj.uid}: {exc.message.rstrip('.')}; starting a new workflow")
            oc.workflow_id = None
            return None

    def _media(self, pj: PlannedJob, fields: dict[str, Any], job_dir: Path, on_exists: str, oc: Outcome,
               resume: str | None) -> None:
        from ..core.events import WorkflowUpdate
        from ..jobs.pipeline import PipelineOptions, ResumeUnavailable, run_media_job
        from .display import PipelineSink

        job = bridge.bind_template(self.client, bridge.build_media(pj.kind, fields, self.base_dir))
        uid = pj.uid

        def on_created(wid: str) -> None:
            oc.workflow_id = wid
            with self.wid_lock:
                self.wids[uid] = wid
            if wid != oc.resumed_workflow:
                self.write_started(pj, oc)
            if self.cancelling.is_set() and not self.cancel.is_set():  # fail-fast began during the create
                self._cancel(uid, wid)

        def emit(ev: Any) -> None:
            if isinstance(ev, WorkflowUpdate):
                self.display.progress(uid, ev.progress, ev.status)

        timeout = None
        s = self.opts.settings
        if s is not None and getattr(s, "timeout_set", False):
            timeout = s.read_timeout

        def options_for(key: str) -> Any:
            return PipelineOptions(output_dir=job_dir, root=self.out_root, name=pj.inst.filename, on_exists=on_exists,
                                   progress_key=uid, on_created=on_created, timeout=timeout, cancel=self.cancel,
                                   idempotency_key=key, title=job_title(self.plan.name, uid, key),
                                   before_send=lambda k: self._before_send(pj, oc, k), upload_id=key[-16:],
                                   approve=self.money.approver(), download_client=self.download_client())

        options = options_for(oc.idempotency_key or job_key(self.plan.name, uid, oc.request_hash or "", oc.attempt))
        try:
            result = None
            if oc.retry_in_place:
                result = self._resume_in_place(pj, oc, options, emit)
            if resume:
                oc.resumed_workflow = resume
                oc.workflow_id = resume  # known from now on, whatever happens to this attempt to follow it
                options.resume_workflow = resume
                self.display.note(f"{uid}: following workflow {resume} from the earlier run (not sending it again)")
                try:
                    result = run_media_job(self.client, job, options, progress=PipelineSink(self.display),
                                           emit=emit)
                except ResumeUnavailable as exc:
                    self.display.note(f"{uid}: {exc.message.rstrip('.')}; starting a new workflow")
                    oc.resumed_workflow = oc.workflow_id = None
                    oc.attempt += 1
                    oc.idempotency_key = job_key(self.plan.name, uid, oc.request_hash or "", oc.attempt)
                    options = options_for(oc.idempotency_key)
            if result is None:
                result = run_media_job(self.client, job, options, progress=PipelineSink(self.display), emit=emit)
        finally:
            with self.wid_lock:
                self.wids.pop(uid, None)
        oc.workflow_id = result.workflow_id or oc.workflow_id
        oc.workflow_status = result.status
        if result.status == "skipped":
            for saved in result.saved:
                sha, n = _sha256(Path(saved.path))
                saved.sha256, saved.bytes = sha, n
            self.display.note(f"{uid}: every file exists already (on_exists: skip); nothing was sent")
        oc.details = job_details(pj.kind, fields, result)
        self._collect_saved(result, oc)
        self._collect_cost(result, oc)
        if result.texts:
            oc.text = "\n\n".join(result.texts)
        if job.route != "execute" and not result.saved:
            from ..jobs.pipeline import settled

            raise settled(GenerationFailed(f"{job.tool} produced no files"), result.status)

