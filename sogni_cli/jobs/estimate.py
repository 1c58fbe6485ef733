"""Cost previews for jobs: what the API says a request would cost, asked without starting it.

:func:`estimate_job` sends the exact workflow body the job would start (inputs uploaded first, as a start
would) to the preview route. Requests the API does not preview (synchronous tools, chat calls, an API
without the route) get an :class:`Estimate` with a ``reason`` and no number: a cost is never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.units import fmt_units


@dataclass
class Estimate:
    preview: dict[str, Any] | None = None
    reason: str | None = None  # why there is no preview
    request: dict[str, Any] | None = None  # the body that was previewed

    @property
    def units(self) -> float | None:
        from ..api.billing import preview_units

        return preview_units(self.preview)

    @property
    def token_type(self) -> str | None:
        from ..api.billing import preview_token

        return preview_token(self.preview) if self.preview else None

    def to_json(self) -> dict[str, Any]:
        return {"previewed": self.preview is not None, "units": self.units, "token_type": self.token_type,
                "preview": self.preview, "reason": self.reason}

    def line(self) -> str:
        if self.preview is None:
            return f"no preview: {self.reason or 'the API cannot preview this request'}"
        from .approval import describe

        return describe(self.preview)


def not_previewed(reason: str) -> Estimate:
    return Estimate(reason=reason)


def estimate_job(client: Any, job: Any, *, agent: bool = False) -> Estimate:
    """The API's cost preview for ``job`` (a :class:`~sogni_cli.jobs.MediaJob`); starts nothing."""
    from ..api.billing import preview_workflow
    from . import placeholder_refs, workflow_body
    from .pipeline import upload_inputs

    if job.route == "execute":
        return not_previewed(f"{job.tool} runs synchronously; the API does not preview its cost")
    if agent:
        return not_previewed("a chat call (--agent) is not previewed by the API")
    dry = bool(getattr(getattr(client, "config", None), "dry_run", False))
    refs = placeholder_refs(job) if dry else upload_inputs(client, job.inputs)
    body = workflow_body(job, refs)
    preview = preview_workflow(client, body)
    if preview is None:
        return Estimate(reason="the API cannot preview this request", request=body)
    return Estimate(preview=preview, request=body)


@dataclass
class Totals:
    """Previewed units per token type, and how many jobs had no preview."""

    by_token: dict[str, float] = field(default_factory=dict)
    previewed: int = 0
    not_previewed: int = 0

    def add(self, est: Estimate) -> None:
        if est.units is None:
            self.not_previewed += 1
            return
        self.previewed += 1
        token = est.token_type or "spark"
        self.by_token[token] = self.by_token.get(token, 0.0) + est.units

    def line(self) -> str:
        parts = [f"{fmt_units(v)} {t}" for t, v in sorted(self.by_token.items())] or ["0"]
        text = "Total: " + ", ".join(parts) + " capacity units"
        if self.not_previewed:
            text += f" (not counting {self.not_previewed} job{'s' if self.not_previewed != 1 else ''} " \
                    "without a preview)"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"by_token_type": dict(sorted(self.by_token.items())), "previewed": self.previewed,
                "not_previewed": self.not_previewed}
