"""What a job asked for and what it cost, kept in its run-record line (``details``) for reports.

``prompt``, ``model`` and ``seed`` come from the job's rendered fields (the seed, when the recipe left it to
the server, from the first saved file). The cost has its own field in the record (``cost``). Every value is
data from the recipe or the server: reports escape it.
"""

from __future__ import annotations

from typing import Any

PROMPT_KEYS = ("prompt", "text", "brief")
MAX_PROMPT = 2000


def job_details(kind: str, fields: dict[str, Any] | None, result: Any = None) -> dict[str, Any] | None:
    fields = fields or {}
    out: dict[str, Any] = {}
    for key in PROMPT_KEYS:
        if isinstance(fields.get(key), str) and fields[key].strip():
            out["prompt"] = fields[key][:MAX_PROMPT]
            break
    if kind == "tool" and isinstance(fields.get("name"), str):
        out["tool"] = fields["name"]
    if isinstance(fields.get("model"), str):
        out["model"] = fields["model"]
    seed = fields.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        out["seed"] = seed
    if result is not None:
        saved = getattr(result, "saved", None) or []
        ref = getattr(saved[0], "ref", None) if saved else None
        if ref is not None:
            if "seed" not in out and isinstance(getattr(ref, "seed", None), int):
                out["seed"] = ref.seed
            if "model" not in out and isinstance(getattr(ref, "model", None), str):
                out["model"] = ref.model
            if "prompt" not in out and isinstance(getattr(ref, "prompt", None), str):
                out["prompt"] = ref.prompt[:MAX_PROMPT]
    return out or None
