"""Validate and plan a recipe: load → check → expand → render → build each request (nothing is sent).

:func:`prepare` is what ``validate``, ``plan`` and ``run`` all start with; it collects every problem with its
position and raises :class:`RecipeInvalid` (exit 2) when there is any error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.errors import UsageError
from . import bridge
from .expand import Expanded, Instance, expand, render_instance, render_options
from ..core.loader import LoadError, Problems, load_file
from .schema import Recipe, check
from .template import contains_pending, show_pending

DEFAULT_BASE_URL = "https://api.sogni.ai"


class RecipeInvalid(UsageError):
    """A recipe with errors; ``lines`` are the ``FILE:LINE:COL: message`` lines (warnings included)."""

    def __init__(self, file: str, problems: Problems):
        n = len(problems.errors)
        super().__init__(f"{file}: {n} problem{'s' if n != 1 else ''} found; nothing was sent.",
                         hint=f"Run `sogni recipe validate {file}` after fixing them.")
        self.lines = problems.lines(file)


@dataclass
class PlannedJob:
    inst: Instance
    fields: dict[str, Any]
    request: dict[str, Any] | None = None
    media: int = 0
    shard: int | None = None

    @property
    def uid(self) -> str:
        return self.inst.uid

    @property
    def kind(self) -> str:
        return self.inst.job.kind


@dataclass
class Plan:
    file: str
    recipe: Recipe
    expanded: Expanded
    jobs: list[PlannedJob]
    problems: Problems
    by_uid: dict[str, PlannedJob] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.recipe.name

    def totals(self) -> dict[str, Any]:
        by_kind: dict[str, dict[str, int]] = {}
        for j in self.jobs:
            k = by_kind.setdefault(j.kind, {"jobs": 0, "media": 0})
            k["jobs"] += 1
            k["media"] += j.media
        return {"jobs": len(self.jobs), "media": sum(j.media for j in self.jobs), "by_kind": by_kind}


def prepare(file: str | Path, *, sets: list[str] | None = None, env: Mapping[str, str] | None = None,
            strict: bool = False, settings: Any = None, base_url: str | None = None,
            requests: bool = True, bodies: bool = True) -> Plan:
    """Everything short of sending: raises :class:`RecipeInvalid` listing every problem.

    ``requests``: build (and so check) each job's request. ``bodies`` False: keep only its method, URL, tool
    and media kind, not its body (a run builds the body again when it sends the job, and a plan of
    thousands of jobs would otherwise hold every body for the whole run)."""
    file = str(file)
    problems = Problems()
    try:
        doc, load_problems = load_file(file)
    except LoadError as exc:
        problems.items.append(exc.problem)
        raise RecipeInvalid(file, problems) from None
    problems.items.extend(load_problems.items)
    recipe = check(doc, problems)
    ex = expand(recipe, problems, sets=sets, env=env, strict=strict)
    if base_url is None:
        base_url = getattr(settings, "base_url", None) or DEFAULT_BASE_URL
    plan = Plan(file=file, recipe=recipe, expanded=ex, jobs=[], problems=problems)
    flagged = {p.mark for p in problems.errors}
    for inst in ex.instances:
        render_options(ex, inst, problems)
        fields = render_instance(ex, inst, None, problems)
        if fields is None:
            continue
        fields = bridge.with_profile_defaults(inst.kind, fields, settings)
        inst.pending = contains_pending(fields)
        pj = PlannedJob(inst, fields)
        if requests:
            _build(plan, pj, base_url, flagged)
            if not bodies and pj.request is not None:
                pj.request.pop("body", None)
        else:
            pj.media = bridge.media_count(inst.kind, fields, None)
        plan.jobs.append(pj)
        plan.by_uid[inst.uid] = pj
    _collisions(plan)
    if problems.errors:
        raise RecipeInvalid(file, problems)
    return plan


def _field_words(kind: str, where: tuple, line: str) -> str:
    """Name the recipe field, not the tool argument it maps to ('count', not 'numberOfVariations')."""
    if kind == "chat" or len(where) != 1:
        return line
    from ..jobs import JOB_FIELDS

    arg = JOB_FIELDS.get(kind, {}).get(where[0])
    if arg and arg != where[0]:
        line = line.replace(f"'{arg}'", f"'{where[0]}'").replace("'videoModel'", "'model'")
    return line


def _build(plan: Plan, pj: PlannedJob, base_url: str, flagged: set) -> None:
    """Build the job's request; its problems are reported at the field they are about (unless that
    place already has an error from the structure check)."""
    doc = plan.recipe.doc
    inst = pj.inst
    job = inst.job
    try:
        pj.request = bridge.preview(inst.kind, pj.fields, plan.recipe.base_dir, base_url)
    except UsageError as exc:
        for line in bridge.problem_lines(exc):
            where = bridge.field_for_problem(inst.kind, line, pj.fields)
            if where is not None and where[0] in inst.bad_fields:
                continue
            if where is not None and where[0] in job.field_paths:
                path = job.field_paths[where[0]] + tuple(where[1:])
                line = _field_words(inst.kind, where, line)
                mark = doc.key_mark(path) if len(where) > 1 else doc.mark(path)
            else:
                mark = doc.key_mark(job.path + (job.kind,))
            if mark in flagged:
                continue
            label = f"{inst.uid}: " if inst.cell else ""
            plan.problems.error(mark, label + line + (f" ({exc.hint})" if exc.hint and len(line) < 80 and
                                                      "sogni tools show" not in (exc.hint or "") else ""))
        return
    pj.media = bridge.media_count(inst.kind, pj.fields, pj.request)


def _collisions(plan: Plan) -> None:
    """Two jobs that would write the same files are an error (names are known before the run). Names that
    differ only by case are the same file on macOS and Windows, so they clash too."""
    from ..media.naming import clash_key, slugify

    doc = plan.recipe.doc
    seen: dict[str, PlannedJob] = {}
    reported: set[tuple[str, str]] = set()
    for pj in plan.jobs:
        inst = pj.inst
        keys: list[tuple[str, str]] = []
        if inst.save:
            keys.append(("save", inst.save))
        if pj.kind != "chat" and pj.media and inst.filename is not None:
            tpl = inst.filename
            if "{workflow" not in tpl and "{seed" not in tpl:
                prompt = pj.fields.get("prompt") if pj.kind != "speech" else pj.fields.get("text")
                if "{slug" in tpl and (prompt is None or contains_pending(prompt)):
                    pass
                else:
                    tool = (pj.request or {}).get("tool") or ""
                    name = tpl.replace("{slug}", slugify(str(prompt or ""), 40)).replace("{tool}", tool)
                    keys.append(("media", (inst.output + "/" if inst.output else "") + name))
        for kind, key in keys:
            other = seen.get(kind + ":" + clash_key(key))
            if other is None:
                seen[kind + ":" + clash_key(key)] = pj
                continue
            pair = (other.inst.job.id, inst.job.id)
            if pair in reported:
                continue
            reported.add(pair)
            opt = "save" if kind == "save" else ("filename" if "filename" in inst.job.option_paths else "output")
            path = inst.job.option_paths.get(opt, inst.job.path + ("id",))
            what = f"'{key}'" if kind == "save" else f"the same files ({key})"
            plan.problems.error(doc.mark(path), f"{other.uid} and {inst.uid} would write {what}; give them "
                                                "different `filename`, `output` or `save` values (e.g. with "
                                                "{{ matrix.AXIS }})")


# --------------------------------------------------------------------------------------------- output


def plan_json(plan: Plan, shard: tuple[int, int] | None = None) -> dict[str, Any]:
    jobs = []
    for pj in plan.jobs:
        inst = pj.inst
        item: dict[str, Any] = {
            "id": inst.uid, "job": inst.job.id, "kind": pj.kind, "matrix": inst.cell, "needs": list(inst.deps),
            "request": pj.request, "media": pj.media, "output": inst.output or ".",
        }
        if pj.kind != "chat" and pj.media:
            item["filename"] = inst.filename
        if inst.save:
            item["save"] = inst.save
        if pj.shard is not None:
            item["shard"] = pj.shard
        if pj.request is None:
            item["fields"] = show_pending(pj.fields)
        jobs.append(item)
    doc: dict[str, Any] = {"recipe": plan.name, "file": plan.file, "description": plan.recipe.description,
                           "vars": plan.expanded.vars, **plan.totals(), "jobs": jobs}
    if shard:
        doc["shard"] = f"{shard[0]}/{shard[1]}"
    doc["warnings"] = [p.format(plan.file) for p in plan.problems.sorted() if p.warning]
    from .effects import effects

    doc.update(effects(plan))  # commands, reads_outside, uploads
    return doc


def summary_line(plan: Plan) -> str:
    t = plan.totals()
    parts = []
    for kind, v in t["by_kind"].items():
        s = f"{kind} {v['jobs']} job{'s' if v['jobs'] != 1 else ''}"
        if v["media"]:
            s += f" ({v['media']} media)"
        parts.append(s)
    n = t["jobs"]
    return f"{n} job{'s' if n != 1 else ''}" + (": " + ", ".join(parts) if parts else "")


def plan_text(plan: Plan, shard: tuple[int, int] | None = None) -> str:
    from .effects import effects, effects_text

    lines = [f"Recipe {plan.name} ({plan.file})" + (f", shard {shard[0]}/{shard[1]}" if shard else "")]
    if plan.recipe.description:
        lines.append(plan.recipe.description.strip())
    lines.append(summary_line(plan))
    lines.extend(effects_text(effects(plan)))
    lines.append("")
    lines.append("Graph:")
    for pj in plan.jobs:
        inst = pj.inst
        needs = f" ← {', '.join(inst.deps)}" if inst.deps else ""
        lines.append(f"  {inst.uid} [{pj.kind}]{needs}")
    for pj in plan.jobs:
        inst = pj.inst
        lines.append("")
        media = f", {pj.media} media" if pj.media else ""
        out = inst.output or "."
        where = f"output {out}/" + (inst.filename or "") if pj.kind != "chat" and pj.media else f"output {out}/"
        head = f"== {inst.uid} ({pj.kind}{media}; {where}"
        if inst.save:
            head += f"; save {inst.save}"
        lines.append(head + ")")
        if pj.request is None:
            lines.append(json.dumps(show_pending(pj.fields), indent=2, ensure_ascii=False))
            continue
        lines.append(f"{pj.request['method']} {pj.request['url']}")
        lines.append(json.dumps(pj.request["body"], indent=2, ensure_ascii=False))
    return "\n".join(lines)
