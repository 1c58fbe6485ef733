"""A job that runs a saved workflow template (the recipe ``template:`` kind): a template name (or id), an
optional version, and the inputs. It runs through the same pipeline as a media job; :func:`bind` looks the
template up (one API read), checks the inputs against its declaration and fills in the template id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import UsageError

#: Field name -> value type for recipe jobs of this kind (besides the billing fields every kind takes).
FIELDS = {"name": "string", "version": "integer", "inputs": "object"}


@dataclass
class TemplateJob:
    name: str
    version: int | None = None
    template_inputs: dict[str, Any] = field(default_factory=dict)
    template_id: str | None = None  # filled by bind()
    kind: str = "template"
    tool: str | None = None  # the step's tool, when the template has one step (for file names)
    route: str = "workflow"
    media: str | None = None
    inputs: list[Any] = field(default_factory=list)  # no local uploads of the media-job kind
    bindings: list[Any] = field(default_factory=list)
    prompt: str | None = None
    token_type: str | None = None
    confirm_cost: bool = False
    max_cost: int | None = None
    safe_content_filter: bool | None = None
    billing_mode: str | None = None

    @property
    def arguments(self) -> dict[str, Any]:
        """What the job asks for, as shown in plans and used for file names."""
        args: dict[str, Any] = {"template": self.name, "inputs": dict(self.template_inputs)}
        if self.version is not None:
            args["version"] = self.version
        for key in ("prompt", "subject", "description"):
            if isinstance(self.template_inputs.get(key), str):
                args.setdefault("prompt", self.template_inputs[key])
        return args

    def body(self) -> dict[str, Any]:
        """The workflow start body (the template's name stands in for its id until :func:`bind`)."""
        body: dict[str, Any] = {"workflow_id": self.template_id or self.name, "inputs": dict(self.template_inputs)}
        if self.version is not None:
            body["template_version"] = self.version
        if self.token_type:
            body["token_type"] = self.token_type
        if self.billing_mode:
            body["billing_mode"] = self.billing_mode
        if self.safe_content_filter is not None:
            body["safe_content_filter"] = self.safe_content_filter
        if self.confirm_cost:
            body["confirm_cost"] = True
        if self.max_cost is not None:
            body["max_estimated_capacity_units"] = self.max_cost
        return body

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "template": self.name, "version": self.version, "inputs": self.template_inputs,
                "token_type": self.token_type}


def build_template_job(fields: dict[str, Any]) -> TemplateJob:
    """Check a template job's fields (structure only: no API call) and build it."""
    from . import BILLING_MODES, COMMON_FIELDS, TOKEN_TYPES

    problems: list[str] = []
    values = {k: v for k, v in (fields or {}).items() if v is not None}
    for key in values:
        if key not in FIELDS and key not in COMMON_FIELDS:
            problems.append(f"unknown field {key!r} for a template job (fields: "
                            f"{', '.join(sorted([*FIELDS, *COMMON_FIELDS]))})")
    name = values.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("a template job needs the template 'name'")
        name = ""
    version = values.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        problems.append(f"'version' must be a whole number from 1, got {version!r}")
        version = None
    inputs = values.get("inputs", {})
    if not isinstance(inputs, dict):
        problems.append("'inputs' must be a mapping of template inputs")
        inputs = {}
    token = values.get("token_type")
    if token is not None and token not in TOKEN_TYPES:
        problems.append(f"'token_type' must be one of {', '.join(TOKEN_TYPES)}, got {token!r}")
    mode = values.get("billing_mode")
    if mode is not None and mode not in BILLING_MODES:
        problems.append(f"'billing_mode' must be one of {', '.join(BILLING_MODES)}, got {mode!r}")
    if problems:
        raise UsageError("Invalid template request:\n  - " + "\n  - ".join(problems) if len(problems) > 1
                         else f"Invalid template request: {problems[0]}")
    return TemplateJob(name=name.strip(), version=version, template_inputs=dict(inputs), token_type=token,
                       confirm_cost=bool(values.get("confirm_cost")), max_cost=values.get("max_cost"),
                       safe_content_filter=values.get("safe_content_filter"), billing_mode=mode)


def check_against(job: TemplateJob, tpl: dict[str, Any]) -> dict[str, Any]:
    """The job's inputs, checked and typed by the template's declaration (exit 2 with a suggestion)."""
    from ..api.templates import check_inputs

    return check_inputs(tpl, job.template_inputs)


def bind(client: Any, job: TemplateJob) -> TemplateJob:
    """Look the template up, check the inputs, and fill in its id and (for one step) its tool."""
    from ..api.templates import resolve, template_id

    tpl = resolve(client, job.name, job.version)
    job.template_inputs = check_against(job, tpl)
    job.template_id = template_id(tpl)
    steps = (tpl.get("input") or {}).get("steps") if isinstance(tpl.get("input"), dict) else None
    if isinstance(steps, list) and len(steps) == 1 and isinstance(steps[0], dict):
        job.tool = steps[0].get("toolName")
    return job
