"""Run a planned recipe: dependency order, bounded concurrency, resume, fail-fast or keep going.

- Each job's fields are rendered again once the jobs it needs have finished (their text and files known),
  and sent through the same code as the commands (``run_chat`` / ``build_job`` + ``run_media_job``).
- A job whose last record says it succeeded with the same request hash, and whose files are all still
  there, is not sent again (``--force`` sends it anyway): a run stopped by Ctrl-C or a crash resumes.
- The run record (``OUT/.sogni-run/<recipe>.jsonl``) gets a ``started`` line as soon as a job's workflow
  exists (with its id and request hash) and one line when the job ends, each flushed at once; the last
  line for a job is its state. A job whose last line is ``started``, ``interrupted``, ``failed`` or
  ``cancelled`` with a workflow id and the same request hash is resumed by following and downloading
  *that* workflow, not by starting (and paying for) a new one; if the API says it failed, was cancelled,
  waits for the user or is gone, a new one is started.
- Fail-fast (default): the first failure stops jobs from starting and cancels started workflows.
  ``--continue-on-error``: the jobs that need a failed job are skipped, everything else runs.
- Ctrl-C / SIGTERM: no new job starts, every running job is told to stop (``PipelineOptions.cancel``:
  following and downloads end, ``.part`` files stay), the started workflows are left running on the
  server and recorded as ``interrupted`` with their ids, and the exception goes on within about
  :data:`GRACE` seconds. Worker threads are daemons, so one stuck on a silent connection cannot hold the
  process open.
- A run holds a lock on its run record throughout (POSIX): a second run of the recipe into the same
  folder stops at once (exit 2) before sending anything, so no job is paid for twice.
- stdout: the saved paths, one per line, as jobs finish. Exit 0 when every job succeeded, 8 otherwise.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from ..core.secrets import redact, redact_obj
from ..core.errors import ExitCode, GenerationFailed, IncompleteError, SogniError, UsageError
from . import bridge
from .expand import Outputs, render_instance
from .plan import Plan, PlannedJob
from .report import append_step_summary, read_record_file, record_path, summarize, summary_markdown, summary_table
from .template import TemplateError

#: Called after each record line the scheduler writes for a job that ended (tests use it to stop a run
#: part-way, like Ctrl-C would). Not called for ``started`` lines nor for the ``interrupted`` lines
#: written while a Ctrl-C is being handled.
after_record: Callable[[dict[str, Any]], None] | None = None
TICK = 0.1
#: After Ctrl-C/SIGTERM, how long running jobs get to stop and report before the interrupt goes on.
GRACE = 1.5
#: Last record states whose workflow a rerun follows and downloads instead of starting a new one.
RESUME_STATES = frozenset({"started", "interrupted", "failed", "cancelled"})


@dataclass
class RunOptions:
    output_dir: Path = Path(".")
    concurrency: int = 4
    continue_on_error: bool = False
    force: bool = False
    shard: tuple[int, int] | None = None
    quiet: bool = False
    settings: Any = None
    stderr: TextIO | None = None
    stdout: TextIO | None = None
    env: dict[str, str] | None = None
    tty: bool | None = None
    clock: Callable[[], float] = time.monotonic


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


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with open(part, "w", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") or not text else text + "\n")
    os.replace(part, path)


class Runner:
    def __init__(self, client: Any, plan: Plan, opts: RunOptions):
        from .display import RunDisplay

        self.client = client
        self.plan = plan
        self.opts = opts
        self.out_root = Path(opts.output_dir)
        self.base_dir = plan.recipe.base_dir
        self.stdout = opts.stdout
        self.stderr = opts.stderr
        self.jobs = {pj.uid: pj for pj in plan.jobs}
        self.order = [pj.uid for pj in plan.jobs]
        self.record_file = record_path(self.out_root, plan.name)
        self.previous: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, Outputs] = {}
        self.results: dict[str, Outcome] = {}
        self.wids: dict[str, str] = {}  # running uid -> workflow id
        self.wid_lock = threading.Lock()
        self.stopping = threading.Event()
        self.cancel = threading.Event()  # Ctrl-C/SIGTERM: running jobs stop, their workflows keep running
        self.live: dict[str, Outcome] = {}  # uid -> the outcome a running job is filling in
        self.rec_lock = threading.Lock()
        self.display = RunDisplay(self._err_stream(), len(self.order), name=plan.name, quiet=opts.quiet,
                                  tty=opts.tty, clock=opts.clock)
        self._rec_fh: Any = None

    def _err_stream(self) -> TextIO:
        return self.stderr or sys.stderr

    def _out(self, line: str) -> None:
        stream = self.stdout or sys.stdout
        stream.write(line + "\n")
        stream.flush()

    # -- records ------------------------------------------------------------------------------------
    def open_record(self) -> None:
        """Open the run record for appending and lock it for the whole run (closing it lets it go); a
        UsageError when another run holds it."""
        from ..core.filewrite import try_lock

        try:
            fh = open(self.record_file, "a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"Cannot write the run record {self.record_file}: {exc.strerror or exc}") from None
        if not try_lock(fh.fileno()):
            fh.close()
            raise UsageError(f"another run is using {self.out_root}; wait for it or use another -o",
                             f"{self.record_file} is held by a running `sogni recipe run`.")
        self._rec_fh = fh

    def load_previous(self) -> None:
        for rec in read_record_file(self.record_file):
            self.previous[rec["id"]] = rec

    def rel(self, path: str | Path) -> str:
        p = Path(path)
        try:
            return p.resolve().relative_to(self.out_root.resolve()).as_posix()
        except ValueError:
            return str(p)

    def write_record(self, pj: PlannedJob, oc: Outcome, *, final: bool = True) -> dict[str, Any]:
        """Append one line (thread-safe; dropped once the record is closed); ``final``: call :data:`after_record`."""
        rec = {
            "recipe": self.plan.name, "id": pj.uid, "job": pj.inst.job.id, "kind": pj.kind, "matrix": pj.inst.cell,
            "status": oc.status, "request_hash": oc.request_hash, "workflow_id": oc.workflow_id,
            "outputs": [{"path": self.rel(o["path"]), "sha256": o.get("sha256"), "bytes": o.get("bytes")}
                        for o in oc.outputs],
            "text": oc.text, "duration": round(oc.duration, 3),
            "error": {"message": oc.error, "exit_code": oc.exit_code} if oc.error else None,
            "shard": f"{self.opts.shard[0]}/{self.opts.shard[1]}" if self.opts.shard else None,
            "time": _now(),
        }
        line = json.dumps(redact_obj(rec), ensure_ascii=False, default=str) + "\n"
        with self.rec_lock:  # worker threads write ``started`` lines
            if self._rec_fh is not None and not self._rec_fh.closed:
                self._rec_fh.write(line)
                self._rec_fh.flush()
        if final and after_record is not None:
            after_record(rec)
        return rec

    def write_started(self, pj: PlannedJob, oc: Outcome) -> None:
        """The job's workflow exists: record its id now, so a rerun after a crash follows it."""
        started = Outcome(oc.uid, "started", workflow_id=oc.workflow_id, request_hash=oc.request_hash,
                          duration=self.opts.clock() - oc.started_at)
        try:
            self.write_record(pj, started, final=False)
        except (OSError, ValueError) as exc:  # a full disk must not lose the job itself
            self.display.note(f"warning: could not write the run record: {exc}")

    def row(self, pj: PlannedJob, oc: Outcome) -> dict[str, Any]:
        return {"recipe": self.plan.name, "id": pj.uid, "kind": pj.kind, "status": oc.status,
                "resumed": oc.resumed, "resumed_workflow": oc.resumed_workflow, "outputs": [{"path": self.rel(o["path"])} for o in oc.outputs],
                "duration": round(oc.duration, 3),
                "error": {"message": oc.error, "exit_code": oc.exit_code} if oc.error else None}

    # -- one job (in a worker thread) ---------------------------------------------------------------
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
            partial = getattr(exc, "result", None)
            if partial is not None:
                self._collect_saved(partial, oc)
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

    def _collect_saved(self, result: Any, oc: Outcome) -> None:
        for s in getattr(result, "saved", []) or []:
            oc.outputs.append({"path": str(s.path), "sha256": s.sha256, "bytes": s.bytes})
            oc.printed.append(str(s.path))

    def _render(self, pj: PlannedJob) -> dict[str, Any]:
        fields = render_instance(self.plan.expanded, pj.inst, self.outputs)
        assert fields is not None
        return bridge.with_profile_defaults(pj.kind, fields, self.opts.settings)

    def _resumable(self, pj: PlannedJob, digest: str) -> dict[str, Any] | None:
        if self.opts.force:
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

    def _resume_workflow(self, pj: PlannedJob, digest: str) -> str | None:
        """The workflow an earlier run started for this same request and did not finish collecting."""
        if self.opts.force or pj.kind == "chat":
            return None
        prev = self.previous.get(pj.uid)
        if not prev or prev.get("status") not in RESUME_STATES or prev.get("request_hash") != digest:
            return None
        wid = prev.get("workflow_id")
        return wid if isinstance(wid, str) and wid else None

    def _execute(self, pj: PlannedJob, oc: Outcome) -> None:
        inst = pj.inst
        fields = self._render(pj)
        digest = bridge.request_hash(pj.kind, fields, self.base_dir)
        oc.request_hash = digest
        prev = self._resumable(pj, digest)
        if prev is not None:
            oc.resumed = True
            oc.text = prev.get("text")
            oc.workflow_id = prev.get("workflow_id")
            for o in prev.get("outputs") or []:
                path = self.out_root / o["path"]
                oc.outputs.append({"path": str(path), "sha256": o.get("sha256"), "bytes": o.get("bytes")})
                oc.printed.append(str(path))
            return
        if self.cancel.is_set():
            from ..jobs.pipeline import JobCancelled

            raise JobCancelled("interrupted before it started")
        if self.stopping.is_set():
            raise GenerationFailed("cancelled before it started")
        self.display.started(pj.uid)
        job_dir = self.out_root / inst.output if inst.output else self.out_root
        on_exists = inst.job.on_exists or "overwrite"
        if pj.kind == "chat":
            self._chat(pj, fields, job_dir, on_exists, oc)
        else:
            self._media(pj, fields, job_dir, on_exists, oc)
        if inst.save:
            target = self.out_root / inst.save
            _write_text(target, oc.text or "")
            sha, n = _sha256(target)
            oc.outputs.append({"path": str(target), "sha256": sha, "bytes": n})
            oc.printed.append(str(target))

    def _chat(self, pj: PlannedJob, fields: dict[str, Any], job_dir: Path, on_exists: str, oc: Outcome) -> None:
        from ..api.chat import run_chat
        from ..api.hosted import find_media

        req = bridge.build_chat(fields, self.base_dir)
        result = run_chat(self.client, req)
        oc.text = result.text
        media = find_media(result.extras, result.text)
        if media:
            from ..jobs.chat_media import save_hosted_media

            report = save_hosted_media(self.client, media, prompt=req.prompt, output_dir=job_dir,
                                       name=pj.inst.filename, on_exists=on_exists, no_download=False, quiet=True,
                                       emit=lambda ev: None)
            for p in report.paths:
                sha, n = _sha256(Path(p))
                oc.outputs.append({"path": p, "sha256": sha, "bytes": n})
                oc.printed.append(p)
            if report.exit_code:
                raise IncompleteError("some media made by hosted tools could not be saved")

    def _media(self, pj: PlannedJob, fields: dict[str, Any], job_dir: Path, on_exists: str, oc: Outcome) -> None:
        from ..core.events import WorkflowUpdate
        from ..jobs.pipeline import PipelineOptions, ResumeUnavailable, run_media_job
        from .display import PipelineSink

        job = bridge.build_media(pj.kind, fields, self.base_dir)
        uid = pj.uid

        def on_created(wid: str) -> None:
            oc.workflow_id = wid
            with self.wid_lock:
                self.wids[uid] = wid
            if wid != oc.resumed_workflow:
                self.write_started(pj, oc)
            if self.stopping.is_set() and not self.cancel.is_set():  # fail-fast began during the create
                self._cancel(uid, wid)

        def emit(ev: Any) -> None:
            if isinstance(ev, WorkflowUpdate):
                self.display.progress(uid, ev.progress, ev.status)

        timeout = None
        s = self.opts.settings
        if s is not None and getattr(s, "timeout_set", False):
            timeout = s.read_timeout
        options = PipelineOptions(output_dir=job_dir, name=pj.inst.filename, on_exists=on_exists,
                                  progress_key=uid, on_created=on_created, timeout=timeout, cancel=self.cancel)
        resume = self._resume_workflow(pj, oc.request_hash or "")
        try:
            result = None
            if resume:
                oc.resumed_workflow = resume
                options.resume_workflow = resume
                self.display.note(f"{uid}: following workflow {resume} from the earlier run (not sending it again)")
                try:
                    result = run_media_job(self.client, job, options, progress=PipelineSink(self.display),
                                           emit=emit)
                except ResumeUnavailable as exc:
                    self.display.note(f"{uid}: {exc.message.rstrip('.')}; starting a new workflow")
                    oc.resumed_workflow = None
                    options.resume_workflow = None
            if result is None:
                result = run_media_job(self.client, job, options, progress=PipelineSink(self.display), emit=emit)
        finally:
            with self.wid_lock:
                self.wids.pop(uid, None)
        oc.workflow_id = result.workflow_id or oc.workflow_id
        self._collect_saved(result, oc)
        if result.texts:
            oc.text = "\n\n".join(result.texts)
        if job.route != "execute" and not result.saved:
            raise GenerationFailed(f"{job.tool} produced no files")

    def _cancel(self, uid: str, wid: str) -> None:
        from ..api import workflows

        try:
            workflows.cancel(self.client, wid)
            self.display.note(f"Cancelled workflow {wid} ({uid}).")
        except SogniError as exc:
            self.display.note(f"Could not cancel workflow {wid} ({uid}): {exc.message}")

    def cancel_running(self) -> None:
        with self.wid_lock:
            items = list(self.wids.items())
        for uid, wid in items:
            self._cancel(uid, wid)

    # -- the scheduler (main thread) ----------------------------------------------------------------
    def _start(self, uid: str, done_q: "queue.SimpleQueue[Outcome]") -> None:
        oc = Outcome(uid, "failed")
        self.live[uid] = oc

        def work() -> None:
            try:
                res = self.execute(uid, oc)
            except BaseException as exc:  # noqa: BLE001 - execute catches Exception; this is a last resort
                oc.status, oc.error, oc.exit_code = "failed", f"internal error: {exc!r}", int(ExitCode.INTERNAL)
                res = oc
            done_q.put(res)

        # Daemon threads: one stuck on a silent connection after Ctrl-C must not keep the process alive.
        threading.Thread(target=work, name=f"recipe-{uid}", daemon=True).start()

    def _finished(self, oc: Outcome, ctx: dict[str, Any]) -> None:
        """Record and report one job that ended; unblock its dependants or start the failure handling."""
        uid = oc.uid
        self.live.pop(uid, None)
        ctx["running"].discard(uid)
        self.results[uid] = oc
        ctx["state"][uid] = oc.status
        pj = self.jobs[uid]
        rows = ctx["rows"]
        if not (oc.resumed and oc.status == "succeeded"):
            self.write_record(pj, oc)
        rows[uid] = self.row(pj, oc)
        for line in oc.printed:
            self._out(line)
        detail = f"{len(oc.outputs)} file(s)" if oc.outputs else None
        if oc.resumed_workflow and oc.status == "succeeded":
            detail = (detail + ", " if detail else "") + f"from workflow {oc.resumed_workflow}"
        self.display.finished(uid, "resumed" if oc.resumed else oc.status, oc.duration,
                              error=oc.error if oc.status == "failed" else None, detail=detail)
        if oc.status == "succeeded":
            self.outputs[uid] = Outputs(text=oc.text or "",
                                        files=[str(Path(o["path"]).resolve()) for o in oc.outputs],
                                        workflow=oc.workflow_id)
            for d in ctx["dependants"][uid]:
                ctx["waiting"][d] -= 1
                if ctx["waiting"][d] == 0 and ctx["state"][d] == "waiting":
                    ctx["ready"].append(d)
            return
        if ctx["first_error"] is None and oc.status == "failed":
            ctx["first_error"] = oc
        if self.cancel.is_set():
            return
        if self.opts.continue_on_error:
            self._skip_dependants(uid, ctx["dependants"], ctx["state"], rows)
        elif not self.stopping.is_set():
            self.stopping.set()
            self.cancel_running()

    def _interrupted(self, done_q: "queue.SimpleQueue[Outcome]", ctx: dict[str, Any]) -> None:
        """Ctrl-C/SIGTERM: tell running jobs to stop, give them :data:`GRACE` seconds to report, and record
        the rest as ``interrupted`` with their workflow ids. Their workflows keep running on the server."""
        self.stopping.set()
        self.cancel.set()
        deadline = time.monotonic() + GRACE
        try:
            while ctx["running"]:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    oc = done_q.get(timeout=min(TICK, left))
                except queue.Empty:
                    continue
                self._finished(oc, ctx)
        finally:
            kept = []
            for uid in sorted(ctx["running"], key=self.order.index):
                live = self.live.get(uid) or Outcome(uid, "interrupted")
                wid = live.workflow_id
                oc = Outcome(uid, "interrupted", workflow_id=wid, request_hash=live.request_hash,
                             duration=self.opts.clock() - live.started_at if live.started_at else 0.0,
                             error="interrupted" + (f"; workflow {wid} keeps running, a rerun downloads its results"
                                                    if wid else ""),
                             exit_code=int(ExitCode.INTERRUPTED))
                try:
                    self.write_record(self.jobs[uid], oc, final=False)
                except (OSError, ValueError):
                    pass
                if wid:
                    kept.append(wid)
            kept += [r.workflow_id for r in self.results.values()
                     if r.status == "interrupted" and r.workflow_id and r.workflow_id not in kept]
            if kept:
                self.display.note(f"Interrupted: {len(kept)} workflow(s) keep running on the server "
                                  f"({', '.join(kept[:5])}{', …' if len(kept) > 5 else ''}); run the same "
                                  "command again to collect their results without paying twice.")

    def run(self) -> int:
        started_at = self.opts.clock()
        try:
            self.record_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"Cannot create the output folder {self.out_root}: {exc.strerror or exc}") from None
        self.open_record()
        try:
            self.load_previous()
        except BaseException:
            self._rec_fh.close()
            raise
        deps = {u: [d for d in self.jobs[u].inst.deps if d in self.jobs] for u in self.order}
        dependants: dict[str, list[str]] = {u: [] for u in self.order}
        for u, ds in deps.items():
            for d in ds:
                dependants[d].append(u)
        waiting = {u: len(ds) for u, ds in deps.items()}
        ready = deque(u for u in self.order if waiting[u] == 0)
        state = {u: "waiting" for u in self.order}
        rows: dict[str, dict[str, Any]] = {}
        running: set[str] = set()
        ctx: dict[str, Any] = {"running": running, "state": state, "rows": rows, "ready": ready,
                               "waiting": waiting, "dependants": dependants, "first_error": None}
        done_q: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        try:
            while ready or running:
                while ready and len(running) < self.opts.concurrency and not self.stopping.is_set():
                    uid = ready.popleft()
                    state[uid] = "running"
                    running.add(uid)
                    self._start(uid, done_q)
                if not running:
                    break
                try:
                    oc = done_q.get(timeout=TICK)
                except queue.Empty:
                    self.display.tick()
                    continue
                self._finished(oc, ctx)
                while True:  # everything else that ended meanwhile
                    try:
                        oc = done_q.get_nowait()
                    except queue.Empty:
                        break
                    self._finished(oc, ctx)
                self.display.tick()
        except BaseException:
            # Ctrl-C / SIGTERM: stop starting jobs, stop the running ones, keep their workflows for a rerun.
            try:
                self._interrupted(done_q, ctx)
            finally:
                self.display.close()
                with self.rec_lock:
                    self._rec_fh.close()
            raise
        with self.rec_lock:
            self._rec_fh.close()
        first_error: Outcome | None = ctx["first_error"]
        for u in self.order:
            if state[u] == "waiting":
                state[u] = "cancelled" if self.stopping.is_set() else "skipped"
                rows[u] = {"recipe": self.plan.name, "id": u, "kind": self.jobs[u].kind, "status": state[u],
                           "outputs": [], "duration": None,
                           "error": {"message": "not started: an earlier job failed", "exit_code": 0}}
        self.display.close()
        summary = summarize([rows[u] for u in self.order if u in rows],
                            duration=self.opts.clock() - started_at)
        if not self.opts.quiet:
            self._err_stream().write(summary_table(summary) + "\n")
            self._err_stream().flush()
        title = f"`{self.plan.name}`" + (f" (shard {self.opts.shard[0]}/{self.opts.shard[1]})" if self.opts.shard else "")
        append_step_summary(summary_markdown(summary, title=title), self.opts.env)
        if summary["total"] == summary["succeeded"]:
            return 0
        if first_error is not None and not self.opts.quiet:
            self._err_stream().write(f"Error: {first_error.uid}: {first_error.error.splitlines()[0]}\n")
        return int(ExitCode.INCOMPLETE)

    def _skip_dependants(self, uid: str, dependants: dict[str, list[str]], state: dict[str, str],
                         rows: dict[str, dict[str, Any]]) -> None:
        stack = list(dependants[uid])
        while stack:
            d = stack.pop()
            if state[d] != "waiting":
                continue
            state[d] = "skipped"
            oc = Outcome(d, "skipped", error=f"skipped: {uid} failed", exit_code=0)
            pj = self.jobs[d]
            self.write_record(pj, oc)
            rows[d] = self.row(pj, oc)
            self.display.finished(d, "skipped", 0.0, detail=f"needs {uid}")
            stack.extend(dependants[d])


def touch_record(output_dir: Path, recipe_name: str) -> Path:
    """Make sure the run record exists (empty for a run with zero jobs); UsageError when it cannot be made."""
    path = record_path(Path(output_dir), recipe_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise UsageError(f"Cannot write the run record {path}: {exc.strerror or exc}") from None
    return path


def run_plan(client: Any, plan: Plan, opts: RunOptions) -> int:
    """Run ``plan`` with ``client``; returns the exit code (0 all succeeded, 8 some did not)."""
    return Runner(client, plan, opts).run()
