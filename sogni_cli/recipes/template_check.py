"""``recipe validate`` for ``template:`` jobs against the API's templates: the template exists and every
input the job gives is declared (with a suggestion for a near miss) and every required one is given.

Structure (a name, a mapping of inputs, a whole-number version) is checked offline with the other job
kinds; this check needs the template list, so it runs only when the API can be asked.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import UsageError
from .template import contains_pending


def _stand_in(decl: Any) -> Any:
    options = decl.get("options") if isinstance(decl, dict) else None
    return options[0] if isinstance(options, list) and options else "pending"


def check_templates(plan: Any, client: Any) -> int:
    """Add a problem to ``plan.problems`` for each template job the API's templates refuse; return the count."""
    from ..api.templates import check_inputs, declared, resolve

    doc = plan.recipe.doc
    found: dict[tuple[str, Any], Any] = {}
    count = 0
    for pj in plan.jobs:
        if pj.kind != "template":
            continue
        job = pj.inst.job
        name, version = pj.fields.get("name"), pj.fields.get("version")
        if not isinstance(name, str) or contains_pending(name):
            continue
        label = f"{pj.inst.uid}: " if pj.inst.cell else ""
        try:
            key = (name, version)
            if key not in found:
                found[key] = resolve(client, name, version if isinstance(version, int) else None)
            inputs = pj.fields.get("inputs") if isinstance(pj.fields.get("inputs"), dict) else {}
            decls = declared(found[key])
            # a value another job will make is not known yet: it stands for any allowed value
            given = {k: (_stand_in(decls.get(k)) if contains_pending(v) else v) for k, v in inputs.items()}
            check_inputs(found[key], given, typed=False)
        except UsageError as exc:
            lines = [ln for ln in exc.message.split("\n") if ln.strip()]
            for line in lines:
                path = job.field_paths.get("name", job.path)
                inputs_path = job.field_paths.get("inputs")
                for k in (pj.fields.get("inputs") or {}) if inputs_path else ():
                    if f"input '{k}'" in line or f"input {k!r}" in line:
                        path = inputs_path + (k,)
                        break
                else:
                    if inputs_path and "needs input" in line:
                        path = inputs_path
                mark = doc.key_mark(path) if inputs_path and path[:len(inputs_path)] == inputs_path and \
                    len(path) > len(inputs_path) else doc.mark(path)
                plan.problems.error(mark, label + line[:1].lower() + line[1:])
                count += 1
    return count
