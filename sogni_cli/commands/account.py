"""`sogni account`: who the key belongs to, balances per token type, subscription, usage this cycle,
fair-use state and concurrency limits."""

from __future__ import annotations

from typing import Any

import typer

from ..render.output import out, out_json
from ._common import client, make_app

app = make_app(
    help="Balances, subscription, usage this cycle, fair-use state and limits.",
    epilog="""\b
Examples:
  sogni account
  sogni account --json | jq '.balance.spark.net'""",
)

CONCURRENCY_KEYS = ("concurrency", "maxConcurrentWorkflows", "concurrentWorkflows", "maxConcurrency",
                    "concurrentJobs", "maxConcurrentJobs")


def _concurrency(*sources: Any) -> Any:
    """The concurrency limits the API reports (any of the usual names, at the top or under ``limits`` or
    ``capabilities``); None when it reports none."""
    for src in sources:
        if not isinstance(src, dict):
            continue
        for holder in (src, src.get("limits"), src.get("capabilities")):
            if not isinstance(holder, dict):
                continue
            for key in CONCURRENCY_KEYS:
                if holder.get(key) is not None:
                    return holder[key]
    return None


def gather(api: Any) -> dict[str, Any]:
    from ..api import billing

    me = billing.account_me(api)
    bal = billing.balance(api)
    sub = billing.subscription_status(api)
    usage = billing.subscription_usage(api)
    fair = usage.get("fairUse") if isinstance(usage, dict) and isinstance(usage.get("fairUse"), dict) else None
    if fair is None and isinstance(sub, dict) and isinstance(sub.get("fairUse"), dict):
        fair = sub["fairUse"]
    return {"account": {"username": me.get("username"), "email": me.get("currentEmail") or me.get("email"),
                        "wallet": me.get("walletAddress")},
            "balance": billing.balances(bal), "subscription": sub, "usage": usage, "fair_use": fair,
            "concurrency": _concurrency(usage, sub, me)}


def _fmt(value: Any) -> str:
    from ..core.units import fmt_units, number

    n = number(value)
    return fmt_units(n) if n is not None else str(value)


def text(doc: dict[str, Any]) -> list[str]:
    from ..core.term import clean_text

    acct = doc["account"]
    who = acct.get("username") or acct.get("email") or acct.get("wallet") or "?"
    if acct.get("username") and acct.get("email"):
        who = f"{acct['username']} ({acct['email']})"
    lines = [f"Account:      {who}"]
    for token, v in doc["balance"].items():
        extra = [f"{k} {_fmt(v[k])}" for k in ("credit", "debit", "settled", "premiumCredit") if k in v]
        lines.append(f"Balance:      {token} {_fmt(v.get('net', v.get('credit')))}" +
                     (f"  ({', '.join(extra)})" if extra else ""))
    if not doc["balance"]:
        lines.append("Balance:      (the API did not say)")
    sub = doc["subscription"]
    if not isinstance(sub, dict) or not sub.get("active"):
        status = sub.get("status") if isinstance(sub, dict) and sub.get("status") else "none"
        lines.append(f"Subscription: {status}")
    else:
        bits = [str(sub.get("tier") or "active"), str(sub.get("status") or "")]
        end = sub.get("currentPeriodEnd")
        lines.append("Subscription: " + " ".join(b for b in bits if b) + (f", renews {end}" if end else ""))
    usage = doc["usage"]
    if isinstance(usage, dict):
        used = usage.get("capacityUnitsUsed", usage.get("used"))
        since = usage.get("periodStart") or usage.get("currentPeriodStart")
        lines.append(f"Usage:        {_fmt(used) if used is not None else '?'} capacity units this cycle"
                     + (f" (since {since})" if since else ""))
    else:
        lines.append("Usage:        (the API did not say)")
    fair = doc["fair_use"]
    if isinstance(fair, dict) and fair.get("limited") is True:
        reset = fair.get("resetAt")
        lines.append("Fair use:     limited" + (f" until {reset}" if reset else ""))
    elif isinstance(fair, dict):
        lines.append("Fair use:     not limited")
    else:
        lines.append("Fair use:     (the API did not say)")
    conc = doc["concurrency"]
    lines.append(f"Concurrency:  {_fmt(conc) if not isinstance(conc, dict) else conc}" if conc is not None
                 else "Concurrency:  (the API did not say)")
    return [clean_text(line) for line in lines]


@app.command()
def account(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="One JSON document."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the first request instead of sending it."),
) -> None:
    """Balances per token type, subscription and usage this cycle, fair-use state, concurrency limits."""
    doc = gather(client(ctx, dry_run=dry_run))
    if json_out:
        out_json(doc)
        return
    for line in text(doc):
        out(line)
