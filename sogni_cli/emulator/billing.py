"""The cost preview route: ``POST /v1/creative-agent/workflows/preview`` [our choice; no SDK calls one].

The body is exactly what ``POST /v1/creative-agent/workflows`` takes, checked the same way (a body a start
would refuse is refused here too, with the same 400). The answer is ``{"preview": {...}}`` with the shape of
a workflow record's ``billingPreview`` (``totalEstimatedCapacityUnits``, ``tokenType``, ``billingMode``,
``estimatedCostUSD``, ``validityUntil``, ``perToolBreakdown``) plus ``available`` (what the balance of that
token type still allows). Nothing is created, nothing is charged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .common import ApiFailure

if TYPE_CHECKING:  # pragma: no cover
    from .server import Handler

PREVIEW_PATH = "/v1/creative-agent/workflows/preview"


def preview(store: Any, body: Any, templates: Any = None, account: Any = None) -> dict[str, Any]:
    from .plan import Workflow, preview as plan_preview
    from .workflows import START_FIELDS, _bad

    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    opts: dict[str, Any] = {}
    for key, value in body.items():
        if key not in START_FIELDS:
            raise _bad(f"unknown field {key!r}")
        opts[START_FIELDS[key]] = value
    if "workflow_id" in opts:
        if "input" in opts:
            raise _bad("send input or workflow_id, not both")
        if templates is None:
            raise ApiFailure(404, f"workflow template {opts['workflow_id']!r} not found", code=404, envelope="sogni")
        opts["input"], _ = templates.expand(opts["workflow_id"], opts.get("inputs"), opts.get("template_version"))
    if not isinstance(opts.get("input"), dict):
        raise _bad("input is required (input.steps)")
    store._check_options(opts)  # noqa: SLF001 - the start's own checks, so both refuse the same bodies
    steps = store._check_steps(opts["input"].get("steps"), opts.get("media_references") or [])  # noqa: SLF001
    flow = Workflow("preview", "creative_workflow", opts["input"].get("title"), opts["input"], steps, opts,
                    time.time(), time.monotonic())
    out = plan_preview(flow, time.time())
    if account is not None:
        out["available"] = max(0.0, account.available(out["tokenType"]))
    return out


def route(h: "Handler", method: str, path: str, body: Any) -> bool:
    """Answer the preview route; False when ``path`` is not it."""
    if path != PREVIEW_PATH:
        return False
    if method != "POST":
        raise ApiFailure(405, f"{method} is not allowed on {path}", code=405)
    emu = h.emu
    data = preview(emu.store, body, getattr(emu, "templates", None), getattr(emu, "account", None))
    h.send_json(200, {"status": "success", "data": {"preview": data}})
    return True
