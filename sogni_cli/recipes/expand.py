"""Expand a checked recipe: variables, matrices (with globs), the job graph and the rendered fields.

One recipe job becomes one :class:`Instance` per matrix cell (one for a job without a matrix). A template
reference ``jobs.ID…`` or a ``needs`` entry makes an instance depend on the instances of job ``ID`` whose
matrix values agree with its own on the axes they share (so ``jobs.image.file`` in an ``animate`` job with
the same ``scene`` axis is the image of the same scene).
"""

from __future__ import annotations

import glob as _glob
import itertools
import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.errors import UsageError
from ..core.loader import Problems
from .schema import MAX_MATRIX_CELLS, GlobAxis, JobSpec, MatrixSpec, Recipe
from .template import (Expr, Pending, TemplateError, did_you_mean, parse, render, render_value, to_text)
from .variables import coerce_text, resolve_vars  # noqa: F401 - re-exported

OUTPUT_ATTRS = ("text", "texts", "files", "file", "workflow")
ROOTS = ("vars", "matrix", "jobs", "job", "recipe")


@dataclass
class Outputs:
    """What a finished instance produced, as templates see it."""

    text: str = ""
    files: list[str] = field(default_factory=list)  # absolute paths
    workflow: str | None = None


@dataclass
class Instance:
    uid: str
    job: JobSpec
    cell: dict[str, Any]
    name: str  # a file-name friendly label: id plus the matrix values
    number: int  # 1-based position among the job's instances
    refs: dict[str, list[str]] = field(default_factory=dict)  # job id -> producer uids
    deps: list[str] = field(default_factory=list)  # uids, in order
    fields: dict[str, Any] = field(default_factory=dict)  # rendered at plan time (may hold Pending)
    output: str = ""  # folder under the run's output folder ("" = the folder itself), posix
    filename: str | None = None  # naming template (recipe templates rendered)
    save: str | None = None  # path of the text file under the output folder
    pending: bool = False
    bad_fields: set = field(default_factory=set)  # fields whose templates failed (reported)

    @property
    def kind(self) -> str:
        return self.job.kind


@dataclass
class Expanded:
    recipe: Recipe
    vars: dict[str, Any]
    instances: list[Instance]  # in dependency order
    by_uid: dict[str, Instance]
    by_job: dict[str, list[Instance]]
    job_order: list[str]


# --------------------------------------------------------------------------------------------- matrices


def _vars_only_lookup(values: dict[str, Any]) -> Callable[[Expr, list[Any]], Any]:
    def lookup(expr: Expr, path: list[Any]) -> Any:
        if path[0] != "vars":
            raise TemplateError(f"only variables can be used here, not '{path[0]}'", expr.offset)
        return walk(values, path[1:], "vars", expr, kind="variable")

    return lookup


def matrix_cells(spec: MatrixSpec, recipe: Recipe, values: dict[str, Any], problems: Problems, *,
                 strict: bool = False) -> tuple[list[dict[str, Any]], set[str]]:
    """The cells of a matrix: the product of its axes, minus ``exclude``, plus ``include``; and the
    names of the glob axes. A glob that matches nothing is a warning (an error with ``strict``)."""
    doc = recipe.doc
    axes: dict[str, list[Any]] = {}
    globbed: set[str] = set()
    empty_glob = False
    for name, vals in spec.axes.items():
        if isinstance(vals, GlobAxis):
            globbed.add(name)
            try:
                pattern = render(parse(vals.pattern), _vars_only_lookup(values))
            except TemplateError as exc:
                problems.error(doc.text_offset_mark(vals.path, exc.offset), exc.message)
                axes[name] = []
                continue
            files = expand_glob(str(pattern), recipe.base_dir)
            if not files:
                msg = f"glob '{pattern}' matches no files (relative to {recipe.base_dir})"
                if strict:
                    problems.error(doc.mark(vals.path), msg)
                else:
                    problems.warn(doc.mark(vals.path), msg + "; its jobs are left out")
                empty_glob = True
            axes[name] = files
        else:
            axes[name] = list(vals)
    names = list(axes)
    if empty_glob:
        return [], globbed
    total = 1
    for n in names:
        total *= max(1, len(axes[n]))
    if total > MAX_MATRIX_CELLS:  # glob axes are only known now: the same cap as the validator's
        problems.error(doc.mark(spec.path), f"the matrix has {total:,} cells, more than the {MAX_MATRIX_CELLS:,} "
                       "allowed — split it over several recipes or jobs")
        return [], globbed
    cells = [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))] if names else []
    if empty_glob:
        return [], globbed
    for ex in spec.exclude:
        cells = [c for c in cells if not all(k in c and c[k] == v for k, v in ex.items())]
    base = list(cells)
    for inc in spec.include:
        added = False
        for c in base:
            if all(c.get(k) == v for k, v in inc.items() if k in axes):
                for k, v in inc.items():
                    if k not in axes:
                        c[k] = v
                added = True
        if not added:
            cells.append(dict(inc))
    if not cells:
        problems.error(doc.mark(spec.path), "the matrix has no cells: every combination is excluded")
    return cells, globbed


def expand_glob(pattern: str, base_dir: Path) -> list[str]:
    """Files matching ``pattern`` (relative to ``base_dir`` unless absolute), sorted, as posix paths."""
    if os.path.isabs(pattern):
        hits = _glob.glob(pattern, recursive=True)
        return sorted(h for h in hits if os.path.isfile(h))
    hits = _glob.glob(pattern, root_dir=str(base_dir), recursive=True)
    return sorted(h.replace(os.sep, "/") for h in hits if os.path.isfile(os.path.join(base_dir, h)))


# --------------------------------------------------------------------------------------------- lookups


def walk(value: Any, rest: list[Any], shown: str, expr: Expr, kind: str = "value") -> Any:
    for seg in rest:
        if isinstance(value, Pending):
            return value
        if isinstance(value, dict):
            if seg not in value:
                what = f"unknown {kind} '{shown}.{seg}'" if kind != "value" else f"'{shown}' has no key '{seg}'"
                raise TemplateError(what + did_you_mean(str(seg), list(value)), expr.offset)
            value = value[seg]
            kind = "value"
        elif isinstance(value, (list, tuple)) and isinstance(seg, int):
            if not -len(value) <= seg < len(value):
                raise TemplateError(f"'{shown}[{seg}]' is out of range ({len(value)} item(s))", expr.offset)
            value = value[seg]
        else:
            raise TemplateError(f"'{shown}' has no {'item' if isinstance(seg, int) else 'key'} {seg!r}",
                                expr.offset)
        shown = f"{shown}[{seg}]" if isinstance(seg, int) else f"{shown}.{seg}"
    return value


def _label(value: Any, is_path: bool) -> str:
    if isinstance(value, dict):
        for key in ("name", "id", "label"):
            if isinstance(value.get(key), (str, int)) and not isinstance(value.get(key), bool):
                return str(value[key])
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return to_text(value)


class Context:
    """Template lookups for one instance. ``outputs`` None: job outputs are Pending (plan time)."""

    def __init__(self, ex: "Expander", inst: Instance, outputs: Mapping[str, Outputs] | None,
                 allow_jobs: bool = True):
        self.ex = ex
        self.inst = inst
        self.outputs = outputs
        self.allow_jobs = allow_jobs

    def __call__(self, expr: Expr, path: list[Any]) -> Any:
        root = path[0]
        if root == "vars":
            if len(path) < 2:
                raise TemplateError("'vars' needs a name: vars.NAME", expr.offset)
            return walk(self.ex.values, path[1:], "vars", expr, kind="variable")
        if root == "matrix":
            if len(path) < 2:
                raise TemplateError("'matrix' needs an axis: matrix.AXIS", expr.offset)
            if not self.inst.cell:
                raise TemplateError(f"'matrix.{path[1]}' is used, but job '{self.inst.job.id}' has no matrix "
                                    "(add `matrix: true` to the job)", expr.offset)
            return walk(self.inst.cell, path[1:], "matrix", expr, kind="matrix axis")
        if root == "job":
            info = {"id": self.inst.job.id, "name": self.inst.name, "kind": self.inst.job.kind,
                    "index": self.inst.number}
            return walk(info, path[1:], "job", expr, kind="job attribute")
        if root == "recipe":
            return walk({"name": self.ex.recipe.name}, path[1:], "recipe", expr, kind="recipe attribute")
        if root == "jobs":
            if not self.allow_jobs:
                raise TemplateError("job outputs cannot be used here (output folders and file names must be "
                                    "known before the run)", expr.offset)
            return self._job_output(expr, path)
        raise TemplateError(f"unknown variable '{'.'.join(map(str, path))}': use vars.NAME, matrix.AXIS, "
                            f"jobs.ID.text|files|file, job.id|name or recipe.name{did_you_mean(root, ROOTS)}",
                            expr.offset)

    def _job_output(self, expr: Expr, path: list[Any]) -> Any:
        if len(path) < 3:
            raise TemplateError("use jobs.ID.text, jobs.ID.files, jobs.ID.file or jobs.ID.workflow", expr.offset)
        jid, attr = path[1], path[2]
        if jid not in self.ex.jobs:
            raise TemplateError(f"unknown job '{jid}'{did_you_mean(str(jid), self.ex.jobs)}", expr.offset)
        if attr not in OUTPUT_ATTRS:
            raise TemplateError(f"unknown output '{attr}' of job '{jid}': one of {', '.join(OUTPUT_ATTRS)}"
                                f"{did_you_mean(str(attr), OUTPUT_ATTRS)}", expr.offset)
        if jid not in self.inst.refs:
            if self.outputs is None:  # an edge left out because it closes a cycle (reported)
                return Pending("")
            raise TemplateError(f"job '{jid}' is not wired to {self.inst.uid}", expr.offset)
        producers = self.inst.refs[jid]
        if attr in ("text", "workflow") and len(producers) != 1:
            raise TemplateError(
                f"jobs.{jid}.{attr}: {len(producers)} instances of '{jid}' match here; give this job the same "
                f"matrix axes as '{jid}', or use jobs.{jid}.texts / jobs.{jid}.files", expr.offset)
        if self.outputs is None:
            return Pending("")
        outs = [self.outputs[p] for p in producers if p in self.outputs]
        if attr == "text":
            value: Any = outs[0].text if outs else ""
        elif attr == "texts":
            value = [o.text for o in outs]
        elif attr == "workflow":
            value = outs[0].workflow if outs else None
        else:
            files = [f for o in outs for f in o.files]
            if attr == "file":
                if not files:
                    raise TemplateError(f"jobs.{jid}.file: job '{jid}' saved no file", expr.offset)
                value = files[0]
            else:
                value = files
        return walk(value, path[3:], f"jobs.{jid}.{attr}", expr)


# --------------------------------------------------------------------------------------------- expansion


def template_job_refs(value: Any, out: list[tuple[str, tuple, int]], path: tuple = ()) -> None:
    """(job id, path within value, offset) of every ``jobs.ID`` reference in the strings of ``value``."""
    if isinstance(value, str):
        if "{{" not in value:
            return
        try:
            tpl = parse(value)
        except TemplateError:
            return
        for e in tpl.exprs():
            if not e.is_literal and len(e.path) >= 2 and e.path[0] == "jobs":
                out.append((str(e.path[1]), path, e.offset))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            template_job_refs(v, out, path + (i,))
    elif isinstance(value, dict):
        for k, v in value.items():
            template_job_refs(v, out, path + (k,))


class Expander:
    def __init__(self, recipe: Recipe, problems: Problems, values: dict[str, Any], *, strict: bool = False):
        self.recipe = recipe
        self.problems = problems
        self.values = values
        self.strict = strict
        self.doc = recipe.doc
        self.jobs: dict[str, JobSpec] = {j.id: j for j in recipe.jobs}
        self.back_edges: set[tuple[str, str]] = set()

    def err_at(self, path: tuple, msg: str, offset: int | None = None) -> None:
        if offset is None:
            self.problems.error(self.doc.mark(path), msg)
        else:
            self.problems.error(self.doc.text_offset_mark(path, offset), msg)

    # -- the job graph ------------------------------------------------------------------------------
    def job_edges(self) -> dict[str, list[tuple[str, tuple, int | None]]]:
        """job id -> [(needed job id, doc path of the reference, offset)] (unknown ids reported)."""
        edges: dict[str, list[tuple[str, tuple, int | None]]] = {}
        for job in self.recipe.jobs:
            lst: list[tuple[str, tuple, int | None]] = []
            for i, n in enumerate(job.needs):
                p = job.path + ("needs", i)
                if n not in self.jobs:
                    self.err_at(p, f"needs '{n}', which is not a job of this recipe{did_you_mean(n, self.jobs)}")
                elif n == job.id:
                    self.err_at(p, f"job '{job.id}' needs itself")
                else:
                    lst.append((n, p, None))
            refs: list[tuple[str, tuple, int]] = []
            for fname, value in job.fields.items():
                found: list[tuple[str, tuple, int]] = []
                template_job_refs(value, found)
                base = job.field_paths[fname]
                refs.extend((jid, base + sub, off) for jid, sub, off in found)
            for key in ("save",):
                v = getattr(job, key)
                if v:
                    found = []
                    template_job_refs(v, found)
                    refs.extend((jid, job.option_paths.get(key, job.path), off) for jid, _, off in found)
            for jid, p, off in refs:
                if jid not in self.jobs:
                    self.err_at(p, f"unknown job '{jid}'{did_you_mean(jid, self.jobs)}", off)
                elif jid == job.id:
                    self.err_at(p, f"job '{job.id}' uses its own output", off)
                elif all(jid != e[0] for e in lst):
                    lst.append((jid, p, off))
            edges[job.id] = lst
        return edges

    def order(self, edges: dict[str, list[tuple[str, tuple, int | None]]]) -> list[str] | None:
        """Jobs in dependency order; a cycle is reported (and None returned)."""
        state: dict[str, int] = {}
        order: list[str] = []
        found_cycle = False

        def visit(jid: str, trail: list[str]) -> None:
            nonlocal found_cycle
            state[jid] = 1
            for dep, p, off in edges.get(jid, []):
                if state.get(dep) == 1:
                    cycle = (trail[trail.index(dep):] if dep in trail else [jid]) + [dep]
                    if (jid, dep) not in self.back_edges:
                        self.err_at(p, "circular needs: " + " → ".join(cycle), off)
                    self.back_edges.add((jid, dep))
                    found_cycle = True
                elif state.get(dep) is None:
                    visit(dep, trail + [dep])
            state[jid] = 2
            order.append(jid)

        for job in self.recipe.jobs:
            if state.get(job.id) is None:
                visit(job.id, [job.id])
        return None if found_cycle else order

    # -- instances ----------------------------------------------------------------------------------
    def cells_for(self, job: JobSpec, recipe_cells: list[dict] | None, recipe_glob: set[str]) -> tuple[list[dict], set[str]]:
        if job.matrix is None:
            return [{}], set()
        if job.matrix is True:
            return [dict(c) for c in (recipe_cells or [])], recipe_glob
        if isinstance(job.matrix, list):
            seen: set[str] = set()
            out: list[dict] = []
            for c in recipe_cells or []:
                proj = {a: c[a] for a in job.matrix if a in c}
                key = json.dumps(proj, sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    out.append(proj)
            return out, recipe_glob & set(job.matrix)
        if isinstance(job.matrix, MatrixSpec):
            return matrix_cells(job.matrix, self.recipe, self.values, self.problems, strict=self.strict)
        return [{}], set()

    def run(self) -> Expanded:
        from ..media.naming import slugify

        edges = self.job_edges()
        job_order = self.order(edges)
        if job_order is None:  # reported; drop the edges that close cycles and check the rest
            edges = {k: [e for e in v if (k, e[0]) not in self.back_edges] for k, v in edges.items()}
            job_order = self.order(edges) or [j.id for j in self.recipe.jobs]
        recipe_cells: list[dict] | None = None
        recipe_glob: set[str] = set()
        if self.recipe.matrix is not None and any(j.matrix is True or isinstance(j.matrix, list)
                                                  for j in self.recipe.jobs):
            recipe_cells, recipe_glob = matrix_cells(self.recipe.matrix, self.recipe, self.values, self.problems,
                                                     strict=self.strict)
        by_job: dict[str, list[Instance]] = {}
        by_uid: dict[str, Instance] = {}
        instances: list[Instance] = []
        index_cache: dict[tuple, dict[str, list[str]]] = {}
        for jid in job_order:
            job = self.jobs[jid]
            cells, globbed = self.cells_for(job, recipe_cells, recipe_glob)
            mine: list[Instance] = []
            for n, cell in enumerate(cells, 1):
                if cell:
                    labels = [_label(v, k in globbed) for k, v in cell.items()]
                    uid = f"{jid}[{','.join(labels)}]"
                    parts = [jid] + [slugify(Path(str(v)).stem if k in globbed else lab, 40) or "x"
                                     for (k, v), lab in zip(cell.items(), labels)]
                    name = "-".join(parts)
                else:
                    uid, name = jid, jid
                if uid in by_uid:
                    uid = f"{uid}#{n}"
                    name = f"{name}-{n}"
                inst = Instance(uid=uid, job=job, cell=cell, name=name, number=n)
                dropped = False
                for dep, p, off in edges.get(jid, []):
                    producers = by_job.get(dep, [])
                    if not producers:
                        dropped = True  # its input (a glob) is empty: nothing to do
                        break
                    matched = self.match(inst, dep, producers, index_cache)
                    if not matched:
                        self.err_at(p, f"no instance of '{dep}' matches {uid} (matrix values differ)", off)
                        dropped = True
                        break
                    inst.refs[dep] = matched
                    for m in matched:
                        if m not in inst.deps:
                            inst.deps.append(m)
                if dropped:
                    continue
                by_uid[uid] = inst
                mine.append(inst)
                instances.append(inst)
            by_job[jid] = mine
        return Expanded(self.recipe, self.values, instances, by_uid, by_job, job_order)

    def match(self, inst: Instance, dep: str, producers: list[Instance], cache: dict) -> list[str]:
        keys = tuple(k for k in producers[0].cell if k in inst.cell) if producers[0].cell else ()
        if not keys:
            return [p.uid for p in producers]
        ck = (dep, keys)
        index = cache.get(ck)
        if index is None:
            index = {}
            for p in producers:
                index.setdefault(_key(p.cell, keys), []).append(p.uid)
            cache[ck] = index
        return index.get(_key(inst.cell, keys), [])


def _key(cell: dict, keys: tuple) -> str:
    return json.dumps([cell.get(k) for k in keys], sort_keys=True, default=str)


def expand(recipe: Recipe, problems: Problems, *, sets: list[str] | None = None,
           env: Mapping[str, str] | None = None, strict: bool = False) -> Expanded:
    values = resolve_vars(recipe, problems, sets, env)
    return Expander(recipe, problems, values, strict=strict).run()


# --------------------------------------------------------------------------------------------- rendering


def _escape_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def safe_relative(text: str) -> str | None:
    """``text`` as a normalised relative posix path inside the output folder, or None when it leaves it."""
    t = text.replace("\\", "/").strip()
    if not t or t.startswith("/") or (len(t) > 1 and t[1] == ":") or "\x00" in t:
        return None
    norm = posixpath.normpath(t)
    if norm == ".":
        return ""
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


def render_instance(ex: Expanded, inst: Instance, outputs: Mapping[str, Outputs] | None,
                    problems: Problems | None = None) -> dict[str, Any] | None:
    """Render the instance's fields (``outputs`` None: plan time, job outputs Pending). Problems go to
    ``problems`` with positions (None returned when there were any), or raise TemplateError."""
    doc = ex.recipe.doc
    ctx = Context(_ExView(ex), inst, outputs)

    def on_error(path: tuple, exc: TemplateError) -> None:
        if problems is None:
            raise exc
        fname = path[0]
        inst.bad_fields.add(fname)
        base = inst.job.field_paths.get(fname, inst.job.path)
        problems.error(doc.text_offset_mark(base + tuple(path[1:]), exc.offset), exc.message)

    # With ``problems``, a string whose template fails stays as written (the rest can still be checked).
    return render_value(inst.job.fields, ctx, on_error)


class _ExView:
    """What :class:`Context` needs from an expansion (the same attributes as :class:`Expander`)."""

    def __init__(self, ex: Expanded):
        self.values = ex.vars
        self.recipe = ex.recipe
        self.jobs = {j.id: j for j in ex.recipe.jobs}


def render_options(ex: Expanded, inst: Instance, problems: Problems) -> None:
    """Render the output folder, file-name template and save path of an instance (no job outputs)."""
    from ..media.naming import template_fields

    doc = ex.recipe.doc
    job = inst.job
    ctx = Context(_ExView(ex), inst, None, allow_jobs=False)

    def one(key: str, escape: bool) -> str | None:
        raw = getattr(job, key)
        if raw is None:
            return None
        path = job.option_paths.get(key, job.path)
        try:
            value = render(parse(raw), ctx, escape=_escape_braces if escape else None)
        except TemplateError as exc:
            problems.error(doc.text_offset_mark(path, exc.offset), exc.message)
            return None
        return to_text(value)

    out_dir = one("output", False)
    if out_dir is not None:
        rel = safe_relative(out_dir)
        if rel is None:
            problems.error(doc.mark(job.option_paths.get("output", job.path)),
                           f"output '{out_dir}' leaves the output folder (use a relative path inside it)")
        else:
            inst.output = rel
    fname = one("filename", True)
    if fname is not None:
        if "/" in fname or "\\" in fname:
            problems.error(doc.mark(job.option_paths.get("filename", job.path)),
                           f"filename '{fname}' has a folder in it: put folders in `output`")
        else:
            try:
                template_fields(fname)
                inst.filename = fname
            except UsageError as exc:
                problems.error(doc.mark(job.option_paths.get("filename", job.path)), exc.message +
                               (f" ({exc.hint})" if exc.hint else ""))
    else:
        inst.filename = _escape_braces(inst.name) + "-{index}"
    save = one("save", False)
    if save is not None:
        rel = safe_relative(save)
        if not rel:
            problems.error(doc.mark(job.option_paths.get("save", job.path)),
                           f"save '{save}' leaves the output folder (use a relative file path inside it)")
        else:
            inst.save = posixpath.join(inst.output, rel) if inst.output else rel
