"""Money on the wire: the account, balances, the subscription, cost previews, cost approval and the cost a
workflow reports after it ran.

Routes (``data`` envelope, as the official SDKs read them):

- ``GET /v1/account/me``: who the key belongs to (``username``, ``email``/``currentEmail``, ``walletAddress``).
- ``GET /v4/account/balance``: ``{spark|sogni: {credit, debit, net, settled[, premiumCredit]}}`` (decimal
  strings).
- ``GET /v1/subscriptions/status`` → ``data.subscription``; ``GET /v1/subscriptions/usage`` → ``data.usage``
  (the current cycle; fair-use state).
- ``POST /v1/creative-agent/workflows/preview`` with exactly the body a start would send: the cost preview
  (``totalEstimatedCapacityUnits``, ``tokenType``, ``validityUntil``, ``perToolBreakdown``) and nothing
  started. An API without the route (404/405/501) cannot preview: :func:`preview_workflow` says so with
  None and never guesses a number.
- ``POST /v1/creative-agent/workflows/{id}/confirm-cost`` ``{decision, acceptedCostPreview}`` (one
  ``Idempotency-Key``): approve the preview a waiting workflow shows, sent back unchanged; 409 when it
  expired or changed.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any
from urllib.parse import quote

from ..core.errors import ApiError, UnavailableError
from ..core.units import number

PREVIEW_PATH = "/v1/creative-agent/workflows/preview"
NO_PREVIEW_STATUSES = frozenset({404, 405, 501})
APPROVAL_REASONS = frozenset({"cost_approval_required", "cost_reauthorization_required"})
TOKEN_TYPES = ("spark", "sogni")


def _data(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        return body["data"]
    return body if isinstance(body, dict) else {}


# ------------------------------------------------------------------------------------------- account


def account_me(client: Any) -> dict[str, Any]:
    return _data(client.request("GET", "/v1/account/me"))


def balance(client: Any) -> dict[str, Any]:
    return _data(client.request("GET", "/v4/account/balance"))


def _optional(client: Any, path: str, key: str) -> dict[str, Any] | None:
    """A route some accounts or deployments lack: None for 404/405/501."""
    try:
        data = _data(client.request("GET", path))
    except ApiError as exc:
        if exc.status in NO_PREVIEW_STATUSES:
            return None
        raise
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else None


def subscription_status(client: Any) -> dict[str, Any] | None:
    return _optional(client, "/v1/subscriptions/status", "subscription")


def subscription_usage(client: Any) -> dict[str, Any] | None:
    return _optional(client, "/v1/subscriptions/usage", "usage")


def display_name(me: dict[str, Any]) -> str:
    """``username (email)`` or whatever of the two (or the wallet) the API told."""
    user = me.get("username") if isinstance(me.get("username"), str) else None
    mail = me.get("currentEmail") or me.get("email")
    mail = mail if isinstance(mail, str) else None
    wallet = me.get("walletAddress") if isinstance(me.get("walletAddress"), str) else None
    if user and mail:
        return f"{user} ({mail})"
    return user or mail or wallet or "an account the API did not name"


def balances(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{token type: {net, credit, debit, settled, …}} with numbers, for the token types the answer has."""
    out: dict[str, dict[str, float]] = {}
    for token in TOKEN_TYPES:
        entry = data.get(token)
        if not isinstance(entry, dict):
            continue
        values = {k: number(v) for k, v in entry.items()}
        out[token] = {k: v for k, v in values.items() if v is not None}
    return out


# ------------------------------------------------------------------------------------------- previews


def preview_from(obj: Any) -> dict[str, Any] | None:
    """The cost preview in a preview answer, a workflow record, a chat run or an error's details."""
    if not isinstance(obj, dict):
        return None
    if number(obj.get("totalEstimatedCapacityUnits")) is not None:
        return obj
    for path in (("preview",), ("costPreview",), ("costApprovalPreview",), ("details", "costApprovalPreview"),
                 ("waiting", "details", "costApprovalPreview"), ("billingPreview",)):
        cur: Any = obj
        for key in path:
            cur = cur.get(key) if isinstance(cur, dict) else None
        if isinstance(cur, dict) and number(cur.get("totalEstimatedCapacityUnits")) is not None:
            return cur
    previews = obj.get("billingPreviews")
    if isinstance(previews, list):
        for item in reversed(previews):
            if isinstance(item, dict) and number(item.get("totalEstimatedCapacityUnits")) is not None:
                return item
    return None


def preview_units(preview: dict[str, Any] | None) -> float | None:
    return number(preview.get("totalEstimatedCapacityUnits")) if isinstance(preview, dict) else None


def preview_token(preview: dict[str, Any] | None, default: str | None = None) -> str:
    token = preview.get("tokenType") if isinstance(preview, dict) else None
    return token if isinstance(token, str) and token else (default or "spark")


def _when(text: Any) -> _dt.datetime | None:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text) / (1000.0 if text > 1e11 else 1.0)
        try:
            return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(text, str) or not text:
        return None
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def expired(preview: dict[str, Any] | None, now: _dt.datetime | None = None) -> bool:
    """True when the preview's ``validityUntil`` has passed (a preview without one never expires here)."""
    until = _when(preview.get("validityUntil")) if isinstance(preview, dict) else None
    if until is None:
        return False
    return (now or _dt.datetime.now(_dt.timezone.utc)) >= until


def preview_workflow(client: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    """The API's cost preview for the workflow ``body`` would start; None when the API cannot preview it."""
    try:
        answer = client.request("POST", PREVIEW_PATH, json=body)
    except ApiError as exc:
        if exc.status in NO_PREVIEW_STATUSES:
            return None
        raise
    preview = preview_from(_data(answer))
    if preview is None:
        raise UnavailableError("The API answered the cost preview without an estimate.")
    return preview


def waiting_for_approval(rec: Any) -> bool:
    """A workflow record that waits for its cost to be approved."""
    if not isinstance(rec, dict) or rec.get("status") != "waiting_for_user":
        return False
    return rec.get("waitingReason") in APPROVAL_REASONS or rec.get("awaitingCostApproval") is True


def confirm_cost(client: Any, wid: str, preview: dict[str, Any], decision: str = "confirm") -> dict[str, Any]:
    """Approve (or decline) the preview of a waiting workflow; the workflow record afterwards."""
    path = f"/v1/creative-agent/workflows/{quote(str(wid), safe='')}/confirm-cost"
    body: dict[str, Any] = {"decision": decision}
    if decision == "confirm":
        body["acceptedCostPreview"] = preview
    data = _data(client.request("POST", path, json=body, idempotent=True))
    rec = data.get("workflow") if isinstance(data.get("workflow"), dict) else data
    return rec if isinstance(rec, dict) else {}


# ------------------------------------------------------------------------------------------- after paying


def cost_of(rec: Any) -> dict[str, Any] | None:
    """What the API reports a workflow cost: ``{"units": N, "token_type": T}``, or None when it says nothing."""
    if not isinstance(rec, dict):
        return None
    for key in ("cost", "billing", "actualCost"):
        entry = rec.get(key)
        if not isinstance(entry, dict):
            continue
        for field in ("capacityUnits", "totalCapacityUnits", "units", "spentCapacityUnits"):
            units = number(entry.get(field))
            if units is not None and units >= 0:
                token = entry.get("tokenType")
                return {"units": units, "token_type": token if isinstance(token, str) and token else None}
    return None
