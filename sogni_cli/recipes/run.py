"""Run a planned recipe: dependency order, bounded concurrency, resume, fail-fast or keep going.

- Each job's fields are rendered again once the jobs it needs have finished (their text and files known),
  and sent through the same code as the commands (``run_chat`` / ``build_job`` + ``run_media_job``).
- A job whose last record says it succeeded with the same request hash, and whose files are all still
  there, is not sent again (``--force`` sends it anyway): a run stopped by Ctrl-C or a crash resumes.
- The run record (``OUT/.sogni-run/<recipe>.jsonl``) gets one line per finished job, flushed at once.
- Fail-fast (default): the first failure stops jobs from starting and cancels started workflows.
  ``--continue-on-error``: the jobs that need a failed job are skipped, everything else runs.
- stdout: the saved paths, one per line, as jobs finish. Exit 0 when every job succeeded, 8 otherwise.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from ..secrets import redact, redact_obj
from ..errors import ExitCode, GenerationFailed, IncompleteError, SogniError, UsageError
from . import bridge
from .expand import Outputs, render_instance
from .plan import Plan, PlannedJob
from .report import append_step_summary, read_record_file, record_path, summarize, summary_markdown, summary_table
from .template import TemplateError

#: Called after each record line is written (tests use it to stop a run part-way, like Ctrl-C would).
after_record: Callable[[dict[str, Any]], None] | None = None
TICK = 0.1


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
    status: str  # succeeded | failed | cancelled | skipped
    outputs: list[dict[str, Any]] = field(default_factory=list)  # path (absolute), sha256, bytes
    text: str | None = None
    workflow_id: str | None = None
    request_hash: str | None = None
    duration: float = 0.0
    error: str | None = None
    exit_code: int = 0
    resumed: bool = False
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
    def load_previous(self) -> None:
        for rec in read_record_file(self.record_file):
            self.previous[rec["id"]] = rec

    def rel(self, path: str | Path) -> str:
        p = Path(path)
        try:
            return p.resolve().relative_to(self.out_root.resolve()).as_posix()
        except ValueError:
            return str(p)

    def write_record(self, pj: PlannedJob, oc: Outcome) -> dict[str, Any]:
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
        if self._rec_fh is not None:
            self._rec_fh.write(json.dumps(redact_obj(rec), ensure_ascii=False, default=str) + "\n")
            self._rec_fh.flush()
        if after_record is not None:
            after_record(rec)
        return rec

    def row(self, pj: PlannedJob, oc: Outcome) -> dict[str, Any]:
        return {"recipe": self.plan.name, "id": pj.uid, "kind": pj.kind, "status": oc.status,
                "resumed": oc.resumed, "outputs": [{"path": self.rel(o["path"])} for o in oc.outputs],
                "duration": round(oc.duration, 3),
                "error": {"message": oc.error, "exit_code": oc.exit_code} if oc.error else None}

    # -- one job (in a worker thread) ---------------------------------------------------------------
    def execute(self, uid: str) -> Outcome:
        pj = self.jobs[uid]
        start = self.opts.clock()
        oc = Outcome(uid, "failed")
        try:
            self._execute(pj, oc)
            oc.status = "succeeded"
        except SogniError as exc:
            oc.error = exc.message.strip()
            oc.exit_code = int(exc.exit_code)
            oc.status = "cancelled" if self.stopping.is_set() and isinstance(exc, GenerationFailed) else "failed"
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
            from ..media.chat_media import save_hosted_media

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
        from ..events import WorkflowUpdate
        from ..media.pipeline import PipelineOptions, run_media_job
        from .display import PipelineSink

        job = bridge.build_media(pj.kind, fields, self.base_dir)
        uid = pj.uid

        def on_created(wid: str) -> None:
            oc.workflow_id = wid
            with self.wid_lock:
                self.wids[uid] = wid
            if self.stopping.is_set():  # fail-fast began while this one was being created
                self._cancel(uid, wid)

        def emit(ev: Any) -> None:
            if isinstance(ev, WorkflowUpdate):
                self.display.progress(uid, ev.progress, ev.status)

        timeout = None
        s = self.opts.settings
        if s is not None and getattr(s, "timeout_set", False):
            timeout = s.read_timeout
        options = PipelineOptions(output_dir=job_dir, name=pj.inst.filename, on_exists=on_exists,
                                  progress_key=uid, on_created=on_created, timeout=timeout)
        try:
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
    def run(self) -> int:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        started_at = self.opts.clock()
        try:
            self.record_file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"Cannot create the output folder {self.out_root}: {exc.strerror or exc}") from None
        self.load_previous()
        deps = {u: [d for d in self.jobs[u].inst.deps if d in self.jobs] for u in self.order}
        dependants: dict[str, list[str]] = {u: [] for u in self.order}
        for u, ds in deps.items():
            for d in ds:
                dependants[d].append(u)
        waiting = {u: len(ds) for u, ds in deps.items()}
        ready = deque(u for u in self.order if waiting[u] == 0)
        state = {u: "waiting" for u in self.order}
        rows: dict[str, dict[str, Any]] = {}
        futures: dict[Any, str] = {}
        first_error: Outcome | None = None
        pool = ThreadPoolExecutor(max_workers=self.opts.concurrency, thread_name_prefix="recipe")
        self._rec_fh = open(self.record_file, "a", encoding="utf-8")
        try:
            while ready or futures:
                while ready and len(futures) < self.opts.concurrency and not self.stopping.is_set():
                    uid = ready.popleft()
                    state[uid] = "running"
                    futures[pool.submit(self.execute, uid)] = uid
                if not futures:
                    break
                done, _ = wait(list(futures), timeout=TICK, return_when=FIRST_COMPLETED)
                self.display.tick()
                for fut in done:
                    uid = futures.pop(fut)
                    oc = fut.result()
                    self.results[uid] = oc
                    state[uid] = oc.status
                    pj = self.jobs[uid]
                    if not (oc.resumed and oc.status == "succeeded"):
                        self.write_record(pj, oc)
                    rows[uid] = self.row(pj, oc)
                    for line in oc.printed:
                        self._out(line)
                    self.display.finished(uid, "resumed" if oc.resumed else oc.status, oc.duration,
                                          error=oc.error if oc.status == "failed" else None,
                                          detail=f"{len(oc.outputs)} file(s)" if oc.outputs else None)
                    if oc.status == "succeeded":
                        self.outputs[uid] = Outputs(text=oc.text or "",
                                                    files=[str(Path(o["path"]).resolve()) for o in oc.outputs],
                                                    workflow=oc.workflow_id)
                        for d in dependants[uid]:
                            waiting[d] -= 1
                            if waiting[d] == 0 and state[d] == "waiting":
                                ready.append(d)
                        continue
                    if first_error is None and oc.status == "failed":
                        first_error = oc
                    if self.opts.continue_on_error:
                        self._skip_dependants(uid, dependants, state, rows)
                    elif not self.stopping.is_set():
                        self.stopping.set()
                        self.cancel_running()
        except BaseException:
            # Ctrl-C / SIGTERM: stop starting jobs, cancel the started workflows, keep what finished.
            self.stopping.set()
            self.cancel_running()
            pool.shutdown(wait=False, cancel_futures=True)
            self.display.close()
            self._rec_fh.close()
            raise
        pool.shutdown(wait=True)
        self._rec_fh.close()
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


def run_plan(client: Any, plan: Plan, opts: RunOptions) -> int:
    """Run ``plan`` with ``client``; returns the exit code (0 all succeeded, 8 some did not)."""
    return Runner(client, plan, opts).run()
