"""Run a planned recipe: dependency order, paced concurrency, resume, fail-fast or keep going.

- Each job's fields are rendered again once the jobs it needs have finished (their text and files known),
  and sent through the same code as the commands (``run_chat`` / ``build_job`` + ``run_media_job``).
- Never pay twice. A media or tool job's paid request carries an Idempotency-Key derived from the job's
  identity (recipe, job instance, request hash, attempt: :func:`~.record.job_key`), and a ``starting`` line
  with that key is on disk before the request leaves. A rerun, a crash, another shard or another machine
  sends the same key for the same job, and the API answers with the workflow it already made.
- The run record (``OUT/.sogni-run/<recipe>.jsonl``, see :mod:`.record`) starts with a ``plan`` line (this
  shard's job ids), then per job ``starting`` (key), ``started`` (workflow id) and one line when it ends.
  A later line never forgets a known workflow id. On the next run a job that succeeded with the same request
  hash and still has its files is not sent again; one with a known workflow is resumed by following and
  downloading *that* workflow; one with only a key resends its create with the same key. Only a workflow
  the API says failed, was cancelled, waits or is gone makes a new attempt (a new key).
- A job whose workflow gave its final answer (failed, partial failure, no media, waiting for the user) is
  reported from the record and not run again; ``--retry ID``/``--retry-failed``/``--force`` make a new
  attempt for the jobs they name (the user chose to pay again).
- Fail-fast (default): the first failure stops jobs from starting; a failure of the job's own work also
  cancels the started workflows, a passing one (network, 429, timeout) lets them finish and be collected.
  ``--continue-on-error``: the jobs that need a failed job are skipped, everything else runs.
- Ctrl-C / SIGTERM: no new job starts, every running job is told to stop (``PipelineOptions.cancel``),
  the started workflows are left running on the server and recorded as ``interrupted``, and the exception
  goes on within about :data:`GRACE` seconds. Worker threads are daemons.
- A record that cannot be written (disk full, read-only): no paid request is sent after that, the running
  jobs stop as for Ctrl-C and are listed with their workflow ids, and the run ends with exit 8.
- Concurrency follows :class:`~.pace.Pace`: halved on 409/429, raised slowly again.
- stdout: the saved paths, one per line, as jobs finish. Exit 0 when every job succeeded, 8 otherwise.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from ..core.errors import ExitCode, SogniError
from .expand import Outputs
from .jobrun import RESUME_STATES, JobSteps, Outcome, _now  # noqa: F401 - RESUME_STATES: part of the run's API
from .pace import Pace
from .plan import Plan, PlannedJob
from .record import RecordUnwritable, RunRecord, job_states
from .report import append_step_summary, summarize, summary_markdown, summary_table

#: Called after each record line the scheduler writes for a job that ended (tests use it to stop a run
#: part-way, like Ctrl-C would). Not called for ``started`` lines nor for the ``interrupted`` lines
#: written while a Ctrl-C is being handled.
after_record: Callable[[dict[str, Any]], None] | None = None
TICK = 0.1
#: After Ctrl-C/SIGTERM, how long running jobs get to stop and report before the interrupt goes on.
GRACE = 1.5
#: Exit codes of failures in a job's own work: fail-fast cancels the other started workflows after them.
#: Any other failure (network, 429 after retries, timeout, a download) lets them finish.
OWN_FAILURES = frozenset({int(ExitCode.USAGE), int(ExitCode.AUTH), int(ExitCode.REJECTED),
                          int(ExitCode.GENERATION_FAILED), int(ExitCode.BILLING)})


class Workers:
    """Threads that run jobs one after another: a job goes to an idle thread, or to a new one when all are
    busy (at most the run's concurrency are ever busy, so that is how many there get to be). Starting a
    thread per job cost about 0.1 ms of CPU each. Daemon threads: one stuck on a silent connection after
    Ctrl-C must not keep the process alive."""

    def __init__(self) -> None:
        self.todo: "queue.SimpleQueue[Callable[[], None] | None]" = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0  # threads waiting for a job (or about to)
        self.count = 0

    def submit(self, fn: Callable[[], None]) -> None:
        with self.lock:
            start = self.idle == 0
            if start:
                self.count += 1
                name = f"recipe-worker-{self.count}"
            else:
                self.idle -= 1
        self.todo.put(fn)
        if start:
            threading.Thread(target=self._loop, name=name, daemon=True).start()

    def close(self) -> None:
        """Let every thread end once it is idle (the run is over: no job is submitted after this)."""
        with self.lock:
            count = self.count
        for _ in range(count):
            self.todo.put(None)

    def _loop(self) -> None:
        while True:
            fn = self.todo.get()
            if fn is None:
                return
            fn()
            with self.lock:
                self.idle += 1


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
    retry: list[str] = field(default_factory=list)  # job ids or globs that get a new workflow
    retry_failed: bool = False  # every job whose last run failed or was cancelled gets a new workflow
    on_exists: str | None = None  # --on-exists: overrides the recipe's on_exists for every job
    budget: float | None = None  # capacity units for the whole run (this folder and shard; see budget.py)
    approve_up_to: float | None = None  # approve workflows that wait for a cost up to this many units


class Runner(JobSteps):
    def __init__(self, client: Any, plan: Plan, opts: RunOptions):
        from .display import RunDisplay

        self.client = client
        self.plan = plan
        self.opts = opts
        self.out_root = Path(opts.output_dir)
        self._roots: tuple[str, ...] | None = None  # the output folder as given and as resolved, for rel()
        self.workers = Workers()
        self.base_dir = plan.recipe.base_dir
        self.stdout = opts.stdout
        self.stderr = opts.stderr
        self.jobs = {pj.uid: pj for pj in plan.jobs}
        self.order = [pj.uid for pj in plan.jobs]
        self.record = RunRecord(self.out_root, plan.name)
        self.record_file = self.record.path
        self.pace = Pace(opts.concurrency)
        self.known: dict[str, dict[str, Any]] = {}  # uid -> workflow id, key, attempt, hash last written
        self.previous: dict[str, dict[str, Any]] = {}
        # What a finished job leaves behind is only what later steps need: its text and files when another
        # job takes them (``outputs``), its row for the summary (in ``run``), and the workflow an interrupted
        # job left running (``kept``). Its Outcome (details, printed paths, …) goes once it is recorded.
        self.producers = {d for pj in plan.jobs for d in pj.inst.deps}
        self.outputs: dict[str, Outputs] = {}
        self.kept: dict[str, str] = {}  # uid -> workflow of a job that ended interrupted with one
        self.wids: dict[str, str] = {}  # running uid -> workflow id
        self.wid_lock = threading.Lock()
        self.stopping = threading.Event()
        self.cancel = threading.Event()  # Ctrl-C/SIGTERM: running jobs stop, their workflows keep running
        self.cancelling = threading.Event()  # fail-fast after a job's own failure: started workflows are cancelled
        self.live: dict[str, Outcome] = {}  # uid -> the outcome a running job is filling in
        self.display = RunDisplay(self._err_stream(), len(self.order), name=plan.name, quiet=opts.quiet,
                                  tty=opts.tty, clock=opts.clock)
        from .budget import RunMoney

        self.money = RunMoney(self, opts.budget, opts.approve_up_to)
        self._downloads: Any = None  # one download client for every job of the run (their media hosts' pool)
        self._downloads_lock = threading.Lock()

    def download_client(self) -> Any:
        """The run's shared download client (no credentials, the run's retry settings), made for the first job."""
        with self._downloads_lock:
            if self._downloads is None:
                from ..jobs.pipeline import PipelineOptions, shared_download_client

                self._downloads = shared_download_client(
                    self.client, PipelineOptions(output_dir=self.out_root, root=self.out_root))
            return self._downloads

    def close_downloads(self) -> None:
        with self._downloads_lock:
            client, self._downloads = self._downloads, None
        if client is not None:
            client.close()

    def shard_label(self) -> str | None:
        return f"{self.opts.shard[0]}/{self.opts.shard[1]}" if self.opts.shard else None

    def _err_stream(self) -> TextIO:
        return self.stderr or sys.stderr

    def _out(self, line: str) -> None:
        # through the display: on a terminal it lifts its live area first, so the path is never drawn over
        self.display.product(line, self.stdout or sys.stdout)

    # -- records ------------------------------------------------------------------------------------
    def load_previous(self) -> None:
        self.previous = job_states(self.record_file)
        self.known = {}
        for uid, rec in self.previous.items():
            self.known[uid] = {k: rec.get(k) for k in ("workflow_id", "idempotency_key", "attempt", "request_hash")}

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the output folder (as written in the record), or as it is when outside it.

        Files are saved through the file writer, which follows no link inside the output folder, so a path
        spelled under the folder (as given, or as the folder resolves) is inside it: that is a string
        check. Anything else is resolved on disk."""
        if self._roots is None:
            given = os.path.abspath(self.out_root)
            self._roots = tuple({given + os.sep, str(self.out_root.resolve()) + os.sep})
        spelled = os.path.abspath(path)
        for root in self._roots:
            if spelled.startswith(root):
                return Path(spelled[len(root):]).as_posix()
        p = Path(path)
        try:
            return p.resolve().relative_to(self.out_root.resolve()).as_posix()
        except ValueError:
            return str(p)

    def write_plan(self) -> None:
        """The job set of this run (and shard) first, on disk before any request: ``report`` finds the jobs
        that never started and the shards that never ran."""
        if not self.record.append(plan_line(self.plan.name, self.order, self.opts.shard), sync=True):
            raise RecordUnwritable(f"Cannot write the run record {self.record_file}: "
                                   f"{self.record.describe_error()}; nothing was sent.",
                                   hint="Free some space (or make the folder writable) and run the same command again.")

    def write_record(self, pj: PlannedJob, oc: Outcome, *, final: bool = True, sync: bool = False) -> bool:
        """Append one line (thread-safe; False when the record cannot be written); ``final``: call
        :data:`after_record`. A known workflow id or key is never replaced by nothing."""
        known = self.known.get(pj.uid) or {}
        same = known.get("request_hash") == oc.request_hash and int(known.get("attempt") or 0) == oc.attempt
        wid = oc.workflow_id or (known.get("workflow_id") if same else None)
        key = oc.idempotency_key or (known.get("idempotency_key") if same else None)
        rec = {
            "recipe": self.plan.name, "id": pj.uid, "job": pj.inst.job.id, "kind": pj.kind, "matrix": pj.inst.cell,
            "status": oc.status, "request_hash": oc.request_hash, "workflow_id": wid,
            "idempotency_key": key, "attempt": oc.attempt,
            "outputs": [{"path": self.rel(o["path"]), "sha256": o.get("sha256"), "bytes": o.get("bytes")}
                        for o in oc.outputs],
            "text": oc.text, "duration": round(oc.duration, 3),
            "error": {"message": oc.error, "exit_code": oc.exit_code} if oc.error else None,
            "workflow_status": oc.workflow_status, "final": oc.final or None,
            "shard": f"{self.opts.shard[0]}/{self.opts.shard[1]}" if self.opts.shard else None,
            "details": oc.details,
            "cost": oc.cost,
            "time": _now(),
        }
        self.known[pj.uid] = {"workflow_id": wid, "idempotency_key": key, "attempt": oc.attempt,
                              "request_hash": oc.request_hash}
        ok = self.record.append(rec, sync=sync)
        if final and after_record is not None:
            after_record(rec)
        return ok

    def write_started(self, pj: PlannedJob, oc: Outcome) -> None:
        """The job's workflow exists: record its id now (on disk), so a rerun after a crash follows it."""
        started = Outcome(oc.uid, "started", workflow_id=oc.workflow_id, request_hash=oc.request_hash,
                          duration=self.opts.clock() - oc.started_at, idempotency_key=oc.idempotency_key,
                          attempt=oc.attempt)
        self.write_record(pj, started, final=False, sync=True)

    def row(self, pj: PlannedJob, oc: Outcome) -> dict[str, Any]:
        return {"recipe": self.plan.name, "id": pj.uid, "kind": pj.kind, "status": oc.status,
                "resumed": oc.resumed, "resumed_workflow": oc.resumed_workflow,
                "outputs": [{"path": self.rel(o["path"])} for o in oc.outputs],
                "duration": round(oc.duration, 3), "cost": oc.cost,
                "error": {"message": oc.error, "exit_code": oc.exit_code} if oc.error else None}

    # -- one job (in a worker thread) ---------------------------------------------------------------
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

        self.workers.submit(work)

    def _finished(self, oc: Outcome, ctx: dict[str, Any]) -> None:
        """Record and report one job that ended; unblock its dependants or start the failure handling."""
        uid = oc.uid
        self.live.pop(uid, None)
        ctx["running"].discard(uid)
        if oc.status == "interrupted" and oc.workflow_id:
            self.kept[uid] = oc.workflow_id
        ctx["state"][uid] = oc.status
        pj = self.jobs[uid]
        rows = ctx["rows"]
        self.money.finished(oc)
        if not (oc.resumed and oc.status == "succeeded") and not oc.from_record:
            self.write_record(pj, oc)
        self.known.pop(uid, None)  # its last line is written: no later line needs its workflow id or key
        rows[uid] = self.row(pj, oc)
        for line in oc.printed:
            self._out(line)
        detail = f"{len(oc.outputs)} file(s)" if oc.outputs else None
        if oc.resumed_workflow and oc.status == "succeeded":
            detail = (detail + ", " if detail else "") + f"from workflow {oc.resumed_workflow}"
        self.display.finished(uid, "resumed" if oc.resumed else oc.status, oc.duration,
                              error=oc.error if oc.status == "failed" else None, detail=detail)
        if oc.status == "succeeded":
            self.pace.succeeded()
            if uid in self.producers:
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
        if self.opts.continue_on_error or oc.from_record:  # old news does not stop the other jobs
            self._skip_dependants(uid, ctx["dependants"], ctx["state"], rows)
        elif not self.stopping.is_set():
            self.stopping.set()
            if oc.exit_code in OWN_FAILURES:  # their results will not be used: stop paying for them
                self.cancelling.set()
                self.cancel_running()
            else:  # a passing failure: the running jobs finish and are collected, a rerun does the rest
                self.display.note(f"{uid} failed ({oc.exit_code}); no new job starts, the running ones finish")

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
            kept = self._stop_running(ctx)
            if kept:
                self.display.note(f"Interrupted: {len(kept)} workflow(s) keep running on the server "
                                  f"({', '.join(kept[:5])}{', …' if len(kept) > 5 else ''}); run the same "
                                  "command again to collect their results without paying twice.")

    def _stop_running(self, ctx: dict[str, Any]) -> list[str]:
        """Record the jobs still running as ``interrupted`` (with their workflow id or key); return the ids
        of the workflows left running on the server."""
        kept = []
        for uid in sorted(ctx["running"], key=self.order.index):
            live = self.live.get(uid) or Outcome(uid, "interrupted")
            wid = live.workflow_id
            oc = Outcome(uid, "interrupted", workflow_id=wid, request_hash=live.request_hash,
                         idempotency_key=live.idempotency_key, attempt=live.attempt,
                         duration=self.opts.clock() - live.started_at if live.started_at else 0.0,
                         error="interrupted" + (f"; workflow {wid} keeps running, a rerun downloads its results"
                                                if wid else ""),
                         exit_code=int(ExitCode.INTERRUPTED))
            self.write_record(self.jobs[uid], oc, final=False)
            if wid:
                kept.append(wid)
        kept += [wid for wid in self.kept.values() if wid not in kept]
        return kept

    def _record_failed(self, done_q: "queue.SimpleQueue[Outcome]", ctx: dict[str, Any]) -> None:
        """The record cannot be written: stop sending, stop the running jobs (their workflows go on), list
        them, and end with exit 8 saying what a rerun will do."""
        self.stopping.set()
        self.cancel.set()
        deadline = time.monotonic() + GRACE
        while ctx["running"] and time.monotonic() < deadline:
            try:
                self._finished(done_q.get(timeout=TICK), ctx)
            except queue.Empty:
                continue
        lines = []
        for uid in sorted(ctx["running"], key=self.order.index):
            live = self.live.get(uid)
            if live is not None and live.workflow_id:
                lines.append(f"  {uid}: workflow {live.workflow_id}")
            elif live is not None and live.idempotency_key:
                lines.append(f"  {uid}: workflow id not known yet (Idempotency-Key {live.idempotency_key})")
        for uid, wid in self.kept.items():
            lines.append(f"  {uid}: workflow {wid}")
        self.display.close()
        head = (f"{len(lines)} job(s) have workflows that keep running on the server:\n" + "\n".join(lines)
                if lines else "No workflow is left running.")
        raise RecordUnwritable(
            f"Cannot write the run record {self.record_file}: {self.record.describe_error()}. No new workflow "
            f"was started after that.\n{head}",
            hint="When the record can be written again, run the same command: it follows these workflows and "
                 "downloads their results instead of starting them again (a job whose workflow id was not "
                 "learned resends its request with the same Idempotency-Key, which the API answers with the "
                 "workflow it already made), and it starts the jobs that never started. It does not pay twice "
                 "for a job; files saved since the record stopped are downloaded again.")

    def check_folders(self) -> None:
        """Before anything is sent: no folder the run writes into below the output folder (the record's,
        each job's ``output``, each ``save`` file's) is a symbolic link or a file (UsageError, exit 2)."""
        from ..core.filewrite import safe_folder

        safe_folder(self.out_root, self.record_file.parent, create=False)
        for pj in self.plan.jobs:
            if pj.inst.output:
                safe_folder(self.out_root, self.out_root / pj.inst.output, create=False)
            if pj.inst.save:
                safe_folder(self.out_root, (self.out_root / pj.inst.save).parent, create=False)

    def _prepare_run(self) -> None:
        """Lock the folder, read the earlier record, refuse clashes, write the plan: before anything is sent."""
        from .owned import check_clashes

        self.check_folders()
        self.record.open()
        try:
            self.load_previous()
            from .report import read_record_file

            self.money.load(read_record_file(self.record_file))
            on_exists = {u: self.opts.on_exists or pj.inst.job.on_exists or "overwrite" for u, pj in self.jobs.items()}
            check_clashes(self.plan.name, self.plan.jobs, self.out_root, on_exists,
                          overwrite_given=self.opts.on_exists == "overwrite")
            if self.record.error is not None:
                raise RecordUnwritable(f"Cannot write the run record {self.record_file}: "
                                       f"{self.record.describe_error()}; nothing was sent.")
            self.write_plan()
        except BaseException:
            self.record.close()
            raise

    def _watch_statuses(self) -> Callable[[], None]:
        """Tell :attr:`pace` about every 409/429 the API answers (the sender's signal), and let a job that waits
        for a free slot start when another job's workflow ends; returns the undo."""
        cfg = getattr(self.client, "config", None)
        if cfg is None or not hasattr(cfg, "on_limited"):
            return lambda: None
        before, woke = cfg.on_limited, getattr(cfg, "wake_on_slot", False)

        def on_limited(limited: Any) -> None:
            self.pace.status(int(getattr(limited, "status", 0) or 0))
            if before is not None:
                before(limited)

        cfg.on_limited = on_limited
        cfg.wake_on_slot = True  # a job that waits for a slot starts as soon as one of ours ends

        def undo() -> None:
            cfg.on_limited = before
            cfg.wake_on_slot = woke

        return undo

    def run(self) -> int:
        started_at = self.opts.clock()
        self._prepare_run()
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
        undo = self._watch_statuses()
        try:
            while (ready or running) and self.record.error is None:
                while ready and len(running) < self.pace.allowed and not self.stopping.is_set():
                    uid = ready.popleft()
                    if not self.money.admit(uid):
                        self._left_out(uid, ctx)
                        continue
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
            if self.record.error is not None:
                self._record_failed(done_q, ctx)
        except RecordUnwritable:
            self.record.close()
            undo()
            raise
        except BaseException:
            # Ctrl-C / SIGTERM: stop starting jobs, stop the running ones, keep their workflows for a rerun.
            try:
                self._interrupted(done_q, ctx)
            finally:
                self.display.close()
                self.record.close()
                undo()
            raise
        for u in self.order:  # jobs never reached because of the money rules are left out too
            if state[u] == "waiting" and (self.money.stopped or self.money.left_out):
                self.money.left_out.setdefault(u, self.money.stopped or "not started: it needs a job left out")
                self._left_out(u, ctx)
        self.record.close()
        undo()
        if self.pace.cuts and not self.opts.quiet:
            self.display.note(f"The API asked to slow down {self.pace.cuts} time(s) (409/429): at most "
                              f"{self.pace.lowest} job(s) ran at once at the slowest.")
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
            self._err_stream().write("\n".join([summary_table(summary), *self.money.summary_lines()]) + "\n")
            self._err_stream().flush()
        title = f"`{self.plan.name}`" + (f" (shard {self.opts.shard[0]}/{self.opts.shard[1]})" if self.opts.shard else "")
        append_step_summary(summary_markdown(summary, title=title), self.opts.env)
        if summary["total"] == summary["succeeded"]:
            return 0
        if first_error is not None and not self.opts.quiet:
            self._err_stream().write(f"Error: {first_error.uid}: {first_error.error.splitlines()[0]}\n")
        return self.money.exit_code() or int(ExitCode.INCOMPLETE)

    def _left_out(self, uid: str, ctx: dict[str, Any]) -> None:
        """A job the money rules kept from starting: recorded (a rerun starts it) and listed."""
        why = self.money.left_out.get(uid) or "not started"
        ctx["state"][uid] = "skipped"
        oc = Outcome(uid, "skipped", error=why, exit_code=int(ExitCode.BILLING))
        pj = self.jobs[uid]
        self.write_record(pj, oc)
        ctx["rows"][uid] = self.row(pj, oc)
        self.display.finished(uid, "skipped", 0.0, detail="left out")

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


def plan_line(recipe: str, uids: list[str], shard: tuple[int, int] | None) -> dict[str, Any]:
    """The record's first line for a run: the job instances this run (or shard) is to do."""
    return {"recipe": recipe, "record": "plan", "jobs": list(uids),
            "shard": f"{shard[0]}/{shard[1]}" if shard else None, "shards": shard[1] if shard else 1,
            "time": _now()}


def touch_record(output_dir: Path, recipe_name: str, shard: tuple[int, int] | None = None) -> Path:
    """Record a run with zero jobs (its plan line), so ``recipe report`` over every shard's folder knows the
    shard ran; UsageError when it cannot be written."""
    rec = RunRecord(Path(output_dir), recipe_name)
    rec.open()
    try:
        if not rec.append(plan_line(recipe_name, [], shard), sync=True):
            raise RecordUnwritable(f"Cannot write the run record {rec.path}: {rec.describe_error()}")
    finally:
        rec.close()
    return rec.path


def run_plan(client: Any, plan: Plan, opts: RunOptions) -> int:
    """Run ``plan`` with ``client``; returns the exit code (0 all succeeded, 8 some did not)."""
    runner = Runner(client, plan, opts)
    try:
        return runner.run()
    finally:
        runner.workers.close()
        runner.close_downloads()
