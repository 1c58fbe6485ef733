"""Cost approval by policy, and out-of-credit errors that say what is left.

A workflow that waits with ``cost_approval_required`` (or ``cost_reauthorization_required``) shows a
preview. :func:`resolve_wait` decides, by :class:`ApprovalPolicy`:

1. a preview at most ``up_to`` capacity units (``--approve-up-to``) is approved;
2. otherwise, when ``ask`` is set (a terminal), the preview is shown and the question asked; the answer
   defaults to no;
3. otherwise nothing is approved: :class:`ApprovalNeeded` (exit 9) names the workflow, the preview and
   the exact command that approves it.

A preview whose ``validityUntil`` has passed is fetched again before anything is decided, and a preview
the API calls stale (409) is read again and decided again: a preview is never approved blindly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.errors import ApiError, BillingError, SogniError
from ..core.units import fmt_units, number

MAX_ROUNDS = 3
#: In every message about a workflow left waiting for approval (a recipe tells these from credit refusals).
APPROVAL_MARK = "waiting for cost approval"
DASHBOARD = "https://dashboard.sogni.ai"


@dataclass
class ApprovalPolicy:
    up_to: float | None = None  # approve previews up to this many capacity units
    ask: Callable[[str], bool] | None = None  # a yes/no question on a terminal; None when there is none
    note: Callable[[str], None] | None = None  # where the preview is shown (stderr)
    flag: str = "--approve-up-to"  # how the limit was given, for messages
    approved: dict[str, Any] | None = None  # the last preview approved (set by resolve_wait)


class ApprovalNeeded(BillingError):
    """A workflow waits for its cost to be approved and the policy did not approve it (exit 9)."""

    def __init__(self, message: str, hint: str | None = None, *, workflow_id: str | None = None,
                 preview: dict[str, Any] | None = None):
        super().__init__(message, hint)
        self.workflow_id = workflow_id
        self.preview = preview


def describe(preview: dict[str, Any] | None) -> str:
    """``10 capacity units (spark), valid until 2026-12-04T16:40:00Z``."""
    from ..api.billing import preview_token, preview_units

    if not isinstance(preview, dict):
        return "an unknown cost"
    text = f"{fmt_units(preview_units(preview))} capacity units ({preview_token(preview)})"
    usd = number(preview.get("estimatedCostUSD"))
    if usd is not None:
        text += f", about ${usd:.2f}"
    until = preview.get("validityUntil")
    if isinstance(until, str) and until:
        text += f", valid until {until}"
    return text


def breakdown_lines(preview: dict[str, Any] | None) -> list[str]:
    items = preview.get("perToolBreakdown") if isinstance(preview, dict) else None
    lines = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            name = item.get("toolName") or item.get("stepId") or "step"
            units = number(item.get("estimatedCapacityUnits", item.get("capacityUnits")))
            lines.append(f"  {name}: {fmt_units(units)} capacity units")
    return lines


def approve_command(wid: str, preview: dict[str, Any] | None) -> str:
    from ..api.billing import preview_units

    units = preview_units(preview)
    return f"sogni workflow approve {wid}" + (f" --up-to {fmt_units(units)}" if units is not None else "")


def needed_error(wid: str, preview: dict[str, Any] | None, why: str = "") -> ApprovalNeeded:
    msg = f"Workflow {wid} is {APPROVAL_MARK}: {describe(preview)}{why}."
    lines = breakdown_lines(preview)
    if lines:
        msg += "\n" + "\n".join(lines)
    return ApprovalNeeded(msg, hint=f"Approve it with `{approve_command(wid, preview)}`, or start again with "
                                    "--approve-up-to UNITS.", workflow_id=wid, preview=preview)


def _fresh(client: Any, wid: str) -> dict[str, Any]:
    from ..api import workflows

    return workflows.get(client, wid)


def resolve_wait(client: Any, wid: str, rec: dict[str, Any], policy: ApprovalPolicy) -> dict[str, Any]:
    """Approve the waiting workflow ``wid`` if the policy allows; its record afterwards (or once it no longer
    waits for approval). Raises :class:`ApprovalNeeded` when it stays unapproved."""
    from ..api.billing import confirm_cost, expired, preview_from, preview_units, waiting_for_approval

    for _ in range(MAX_ROUNDS):
        preview = preview_from(rec)
        if preview is None or expired(preview):
            rec = _fresh(client, wid)  # the expired preview is never the one approved
            if not waiting_for_approval(rec):
                return rec
            preview = preview_from(rec)
            if preview is None or expired(preview):
                raise needed_error(wid, preview, " (the API did not give a current preview)")
        units = preview_units(preview)
        if policy.up_to is not None and units is not None and units <= policy.up_to:
            if policy.note:
                policy.note(f"Approving {describe(preview)} for workflow {wid} "
                            f"(within {policy.flag} {fmt_units(policy.up_to)}).")
        elif policy.ask is not None:
            if policy.note:
                policy.note(f"Workflow {wid} waits for cost approval: {describe(preview)}.")
                for line in breakdown_lines(preview):
                    policy.note(line)
            if not policy.ask(f"Approve {fmt_units(units)} capacity units for workflow {wid}? [y/N] "):
                raise ApprovalNeeded(f"Not approved: workflow {wid} is still {APPROVAL_MARK} ({describe(preview)}).",
                                     hint=f"Approve it later with `{approve_command(wid, preview)}`, or "
                                          f"`sogni workflow cancel {wid}`.", workflow_id=wid, preview=preview)
        else:
            above = (f" (above {policy.flag} {fmt_units(policy.up_to)})"
                     if policy.up_to is not None and units is not None else "")
            raise needed_error(wid, preview, above)
        try:
            after = confirm_cost(client, wid, preview)
            policy.approved = preview
            return after
        except ApiError as exc:
            if exc.status != 409:
                raise
            rec = _fresh(client, wid)  # expired or changed meanwhile: decide again on the current preview
            if not waiting_for_approval(rec):
                return rec
    raise needed_error(wid, preview_from(rec), " (its preview kept changing)")


def terminal_question(stdin: Any, stderr: Any) -> Callable[[str], bool] | None:
    """A yes/no question read from ``stdin`` when it is a terminal (None otherwise); empty or EOF is no."""
    try:
        if not stdin.isatty():
            return None
    except (AttributeError, ValueError):
        return None

    def ask(question: str) -> bool:
        from ..core.term import clean_text

        stderr.write(clean_text(question))
        stderr.flush()
        line = stdin.readline()
        return line.strip().lower() in ("y", "yes")

    return ask


# ------------------------------------------------------------------------------------------- out of credit


def _needed(details: Any) -> str | None:
    from ..api.billing import preview_from, preview_units

    if not isinstance(details, dict):
        return None
    for key in ("needed", "required", "requiredCapacityUnits", "neededCapacityUnits", "estimatedCapacityUnits"):
        value = number(details.get(key))
        if value is not None:
            return fmt_units(value)
    units = preview_units(preview_from(details))
    return fmt_units(units) if units is not None else None


def is_out_of_credit(exc: BaseException) -> bool:
    """An exit-9 answer about money (not a cost approval the policy declined)."""
    from ..core.errors import ExitCode

    return (isinstance(exc, SogniError) and exc.exit_code == ExitCode.BILLING
            and not isinstance(exc, ApprovalNeeded))


def out_of_credit(client: Any, exc: SogniError, needed: float | None = None) -> BillingError:
    """``exc`` (an exit-9 error) with the balance, what was needed when the API said, and a hint."""
    from ..api import billing

    if getattr(exc, "explained", False):
        return exc  # type: ignore[return-value]
    lines = [exc.message.rstrip(".") + "."]
    need = _needed(getattr(exc, "details", None))
    if need is None and needed is not None:
        need = fmt_units(needed)
    if need is not None and "needed" not in exc.message:
        lines.append(f"Needed: {need} capacity units.")
    hint = f"Add credits at {DASHBOARD}, or pay with the other token type (--token-type spark|sogni)."
    if exc.hint and "plan" in exc.hint:  # the API named the subscription plans that allow it
        hint = exc.hint
    if client is not None:
        try:
            found = billing.balances(billing.balance(client))
            if found:
                lines.append("Balance: " + ", ".join(f"{t} {fmt_units(v.get('net', v.get('credit')))}"
                                                     for t, v in found.items()))
        except SogniError:
            pass
        try:
            usage = billing.subscription_usage(client)
            fair = usage.get("fairUse") if isinstance(usage, dict) else None
            if isinstance(fair, dict) and fair.get("limited") is True:
                reset = fair.get("resetAt")
                lines.append("Fair-use limit reached" + (f"; it resets at {reset}" if reset else "") + ".")
                hint = "Wait for the fair-use limit to reset, or pay with tokens (--token-type spark|sogni)."
        except SogniError:
            pass
    out = BillingError("\n".join(lines), hint=hint)
    out.explained = True  # type: ignore[attr-defined]
    for name in ("workflow_id", "preview", "result"):
        if hasattr(exc, name):
            setattr(out, name, getattr(exc, name))
    return out
