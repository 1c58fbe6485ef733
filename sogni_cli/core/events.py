"""Typed events shared by chat, workflows, recipes and the ``--jsonl`` output.

Every long-running operation is an iterator of these; renderers decide what reaches stdout/stderr.
``to_json()`` gives the ``--jsonl`` line for each (the ``event`` key names the kind).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Event:
    kind = "event"

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return {"event": self.kind, **data}


@dataclass
class Delta(Event):
    """A piece of assistant text."""

    text: str
    kind = "delta"


@dataclass
class Reasoning(Event):
    """A piece of reasoning (``<think>`` content or a reasoning delta field): stderr only with --show-thinking."""

    text: str
    kind = "reasoning"


@dataclass
class ToolCall(Event):
    id: str
    name: str
    arguments: Any  # parsed object when the JSON is valid, else the raw string
    kind = "tool_call"


@dataclass
class ToolResult(Event):
    id: str
    name: str
    content: str
    kind = "tool_result"


@dataclass
class Artifact(Event):
    """A media file found (url) or saved (path)."""

    url: str | None = None
    path: str | None = None
    workflow_id: str | None = None
    tool: str | None = None
    content_type: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    kind = "artifact"


@dataclass
class Usage(Event):
    usage: dict[str, Any] = field(default_factory=dict)
    kind = "usage"


@dataclass
class Done(Event):
    finish_reason: str | None = None
    kind = "done"


@dataclass
class WorkflowUpdate(Event):
    """A workflow (or one of its steps) changed: id, status, progress 0..1, message."""

    workflow_id: str
    status: str | None = None
    step: str | None = None
    tool: str | None = None
    progress: float | None = None
    eta_seconds: float | None = None
    message: str | None = None
    sequence: int | None = None
    type: str | None = None
    kind = "workflow"


@dataclass
class Cost(Event):
    """What a workflow cost, as the API reports it after it ran (``units`` None: the API did not say)."""

    workflow_id: str | None = None
    units: float | None = None
    token_type: str | None = None
    kind = "cost"
