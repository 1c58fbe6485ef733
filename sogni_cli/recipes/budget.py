"""Money in a recipe run: ``--budget`` for the whole run, stopping on the first out-of-credit answer, and the
cost of every job in the run record and the reports.

:class:`RunMoney` is what the scheduler asks before it starts a job (:meth:`RunMoney.admit`) and tells when a
job ended (:meth:`RunMoney.finished`):

- With a budget, a job starts only while what was spent (in this output folder and shard, earlier runs
  included) plus the estimates of the jobs still running plus this job's estimate stays within it. The
  estimate is the API's preview of the job's exact request. When a job would cross the budget, no job
  starts any more (running ones finish) and the run ends with exit 9, listing the jobs left out. A job the
  API cannot preview is not started under a budget (its cost cannot be bounded). A job whose files are
  already there, or that follows an earlier run's workflow, costs nothing new and always starts.
- A job that fails with an exit-9 answer (insufficient credit, fair-use or subscription limit) stops new
  jobs from starting, budget or not.
- What a job cost is what the API reports for its workflow; with no report, a job that succeeded counts
  its estimate (when there is one), so a budget is never under-counted.
"""

from __future__ import annotations

import threading
from typing import Any

from ..core.errors import ExitCode, SogniError
from ..core.units import fmt_units, number


def record_cost(rec: dict[str, Any]) -> float | None:
    cost = rec.get("cost")
    return number(cost.get("units")) if isinstance(cost, dict) else None


def spent_in_records(lines: list[dict[str, Any]], shard: str | None) -> float:
    """Units already spent according to a run record's lines (this shard's), each workflow counted once."""
    by_key: dict[str, float] = {}
    for i, rec in enumerate(lines):
        if rec.get("shard") != shard:
            continue
        units = record_cost(rec)
        if units is None:
            continue
        wid = rec.get("workflow_id")
        key = f"wf:{wid}" if isinstance(wid, str) and wid else f"line:{i}"
        by_key[key] = max(by_key.get(key, 0.0), units)
    return sum(by_key.values())


class RunMoney:
    def __init__(self, runner: Any, budget: float | None, approve_up_to: float | None = None):
        self.runner = runner
        self.budget = budget
        self.approve_up_to = approve_up_to
        self.lock = threading.Lock()
        self.spent_before = 0.0
        self.spent_now = 0.0
        self.reserved: dict[str, float] = {}
        self.estimates: dict[str, float] = {}
        self.stopped: str | None = None  # why no job starts any more
        self.billing_stop = False
        self.approval_stop = False
        self.left_out: dict[str, str] = {}

    # -- set-up --------------------------------------------------------------------------------------
    def load(self, lines: list[dict[str, Any]]) -> None:
        self.spent_before = spent_in_records(lines, self.runner.shard_label())

    @property
    def spent(self) -> float:
        return self.spent_before + self.spent_now

    def approver(self) -> Any:
        """The cost-approval hook for the run's workflows: ``--approve-up-to`` or exit 9 (nobody to ask)."""
        from ..jobs.approval import ApprovalPolicy, resolve_wait

        policy = ApprovalPolicy(up_to=self.approve_up_to, note=self.runner.display.note)
        return lambda client, wid, rec: resolve_wait(client, wid, rec, policy)

    # -- before a job starts -------------------------------------------------------------------------
    def admit(self, uid: str) -> bool:
        """True when ``uid`` may start; otherwise it is left out (with the reason) and False."""
        if self.stopped:
            self.left_out[uid] = self.stopped
            return False
        if self.budget is None:
            return True
        units, why = self._estimate(uid)
        if self.stopped:  # the preview itself was refused for credit
            self.left_out[uid] = self.stopped
            return False
        if units is None:
            if why is None:
                return True  # nothing new to pay for, or a request the job itself will reject
            self.left_out[uid] = f"not started: {why}, so its cost cannot be kept within the budget"
            return False
        with self.lock:
            running = sum(self.reserved.values())
            if self.spent + running + units > self.budget + 1e-9:
                self.stopped = (f"not started: the budget of {fmt_units(self.budget)} capacity units would be crossed "
                                f"(spent {fmt_units(self.spent)}, running {fmt_units(running)}, "
                                f"next job {fmt_units(units)})")
                self.left_out[uid] = self.stopped
                return False
            self.reserved[uid] = units
            self.estimates[uid] = units
        return True

    def _estimate(self, uid: str) -> tuple[float | None, str | None]:
        """(units, None) with a preview; (None, reason) without one; (None, None) when nothing is paid."""
        from ..jobs.estimate import estimate_job
        from . import bridge
        from .template import TemplateError

        r = self.runner
        pj = r.jobs[uid]
        try:
            fields = r._render(pj)  # noqa: SLF001 - the runner's own rendering, same as the job will use
            digest = bridge.request_hash(pj.kind, fields, r.base_dir)
            if r._resumable(pj, digest) is not None or self._follows_earlier(pj, digest):  # noqa: SLF001
                return None, None
            if pj.kind == "chat":
                return None, "the API does not preview chat jobs"
            job = bridge.build_media(pj.kind, fields, r.base_dir)
            est = estimate_job(r.client, job)
        except TemplateError:
            return None, None
        except SogniError as exc:
            if exc.exit_code == ExitCode.USAGE:
                return None, None  # the job fails the same way when it runs, without paying
            if exc.exit_code == ExitCode.BILLING:
                self.stop_for_billing(uid, exc.message)
                return None, None
            return None, f"its cost preview failed ({exc.message.splitlines()[0]})"
        if est.units is None:
            return None, est.reason or "the API cannot preview it"
        return est.units, None

    def _follows_earlier(self, pj: Any, digest: str) -> bool:
        """The job will follow the workflow an earlier run started for this same request (nothing new)."""
        from .jobrun import RESUME_STATES

        r = self.runner
        prev = r.previous.get(pj.uid)
        if not prev or pj.kind == "chat" or r._retrying(pj) or prev.get("request_hash") != digest:  # noqa: SLF001
            return False
        wid = prev.get("workflow_id")
        return bool(isinstance(wid, str) and wid and prev.get("status") in RESUME_STATES)

    # -- after a job ended ---------------------------------------------------------------------------
    def cost_units(self, oc: Any) -> float:
        units = number((oc.cost or {}).get("units")) if isinstance(getattr(oc, "cost", None), dict) else None
        if units is not None:
            return units
        if oc.status == "succeeded" and not oc.resumed and oc.uid in self.estimates:
            return self.estimates[oc.uid]
        return 0.0

    def finished(self, oc: Any) -> None:
        with self.lock:
            self.reserved.pop(oc.uid, None)
            if not (oc.resumed and oc.status == "succeeded"):
                self.spent_now += self.cost_units(oc)
        if oc.status == "failed" and oc.exit_code == int(ExitCode.BILLING) and not self.stopped:
            from ..jobs.approval import APPROVAL_MARK

            if APPROVAL_MARK in (oc.error or ""):  # not approved: stop too, but this is not about credit
                self.approval_stop = True
                self.stopped = f"not started: {oc.uid} was left waiting for cost approval"
            else:
                self.stop_for_billing(oc.uid, oc.error or "billing")

    def stop_for_billing(self, uid: str, message: str) -> None:
        self.billing_stop = True
        first = message.splitlines()[0] if message else "out of credit"
        self.stopped = f"not started: {uid} was refused for billing ({first})"

    # -- the end -------------------------------------------------------------------------------------
    def exit_code(self) -> int | None:
        """9 when jobs were left out for money or a job was refused for billing; None otherwise."""
        if self.left_out or self.billing_stop or self.approval_stop:
            return int(ExitCode.BILLING)
        return None

    def summary_lines(self) -> list[str]:
        lines = []
        if self.budget is not None:
            lines.append(f"Budget: {fmt_units(self.spent)} of {fmt_units(self.budget)} capacity units spent"
                         + (f" ({fmt_units(self.spent_before)} by earlier runs)" if self.spent_before else ""))
        if self.billing_stop:
            lines.extend(self._balance_lines())
        if self.left_out:
            order = [u for u in self.runner.order if u in self.left_out]
            lines.append(f"Left out ({len(order)}): " + ", ".join(order[:50]) + (", …" if len(order) > 50 else ""))
        return lines


    def _balance_lines(self) -> list[str]:
        """The balance after a billing refusal (best effort: the API may refuse this too)."""
        from ..api.billing import balance, balances

        try:
            found = balances(balance(self.runner.client))
        except SogniError:
            return []
        if not found:
            return []
        return ["Balance: " + ", ".join(f"{t} {fmt_units(v.get('net', v.get('credit')))}" for t, v in found.items())
                + "; add credits at https://dashboard.sogni.ai or change --token-type"]


# ------------------------------------------------------------------------------------------- reports


def cost_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Costs per kind and in total, per token type, from the jobs' ``cost`` fields."""
    total: dict[str, float] = {}
    by_kind: dict[str, dict[str, float]] = {}
    jobs_with_cost = 0
    for r in rows:
        units = record_cost(r)
        if units is None:
            continue
        jobs_with_cost += 1
        token = (r.get("cost") or {}).get("token_type") or "spark"
        token = token if isinstance(token, str) else "spark"
        kind = str(r.get("kind") or "?")
        total[token] = total.get(token, 0.0) + units
        by_kind.setdefault(kind, {})
        by_kind[kind][token] = by_kind[kind].get(token, 0.0) + units
    return {"total": total, "by_kind": by_kind, "jobs": jobs_with_cost}


def cost_text(by_token: dict[str, float]) -> str:
    if not by_token:
        return "0"
    return ", ".join(f"{fmt_units(v)} {t}" for t, v in sorted(by_token.items()))


def cost_cell(r: dict[str, Any]) -> str:
    units = record_cost(r)
    if units is None:
        return ""
    token = (r.get("cost") or {}).get("token_type")
    return fmt_units(units) + (f" {token}" if isinstance(token, str) and token else "")


def cost_lines(summary: dict[str, Any]) -> list[str]:
    """``Cost: 7 spark (image 7 spark)`` for the table and the Markdown summary; nothing when no job has one."""
    cost = summary.get("cost")
    if not isinstance(cost, dict) or not cost.get("jobs"):
        return []
    kinds = "; ".join(f"{k} {cost_text(v)}" for k, v in sorted(cost["by_kind"].items()))
    return [f"Cost: {cost_text(cost['total'])} capacity units" + (f" ({kinds})" if kinds else "")]


# ------------------------------------------------------------------------------------------- plan --estimate


def estimate_plan(client: Any, plan: Any) -> tuple[dict[str, Any], Any]:
    """The API's preview for every planned job (uid -> Estimate) and the totals per token type. A job whose
    request depends on another job's output, a chat job or a request the API does not preview gets a reason
    instead of a number."""
    from ..jobs.estimate import Totals, estimate_job, not_previewed
    from . import bridge

    found: dict[str, Any] = {}
    totals = Totals()
    base_dir = plan.recipe.base_dir
    for pj in plan.jobs:
        if pj.kind == "chat":
            est = not_previewed("the API does not preview chat jobs")
        elif pj.request is None:
            needs = ", ".join(pj.inst.deps) or "another job"
            est = not_previewed(f"its request depends on the output of {needs}")
        else:
            est = estimate_job(client, bridge.build_media(pj.kind, pj.fields, base_dir))
        found[pj.uid] = est
        totals.add(est)
    return found, totals


def estimate_text(plan: Any, found: dict[str, Any], totals: Any) -> str:
    width = max([len(pj.uid) for pj in plan.jobs] + [3])
    lines = ["", "Cost previews:"]
    for pj in plan.jobs:
        lines.append(f"  {pj.uid:<{width}}  {found[pj.uid].line()}")
    lines.append(totals.line())
    from ..core.term import clean_text

    return clean_text("\n".join(lines))
