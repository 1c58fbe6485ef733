"""Recipe format v1: the structure, checked with positions, turned into a :class:`Recipe` model.

Job fields are not defined here: a chat job's fields are :data:`sogni_cli.api.chat.CHAT_FIELDS`, a media or
tool job's are :data:`sogni_cli.jobs.JOB_FIELDS` (plus ``COMMON_FIELDS``), the same mapping the commands'
flags use. Their value types come from the hosted tool catalogue (the tool argument each field maps to).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.loader import Doc, Problems
from .fields import _KIND_TOOL, TYPE_WORDS, field_types, type_name, type_ok  # noqa: F401 - re-exported
from .template import TemplateError, did_you_mean, has_template, parse

VERSION = 1
KINDS = ("chat", "image", "edit", "video", "music", "speech", "tool", "template")
TOP_KEYS = ("version", "name", "description", "vars", "matrix", "defaults", "jobs")
#: Job keys that are not the job's fields: where and how its outputs are written.
OUTPUT_KEYS = {"output": "string", "filename": "string", "on_exists": "string", "save": "string"}
JOB_KEYS = ("id", "description", "needs", "matrix", *OUTPUT_KEYS, *KINDS)
VAR_KEYS = ("default", "type", "env", "description", "choices", "min", "max")
VAR_TYPES = ("string", "integer", "number", "boolean", "list", "object")
ON_EXISTS = ("suffix", "overwrite", "skip", "error")
MATRIX_SPECIAL = ("include", "exclude")
ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_AXIS_VALUES = 10_000
#: The most cells one matrix may have: its list axes multiplied (a glob axis counts once, its files are not
#: known yet), plus its ``include`` entries. Checked before anything is expanded.
MAX_MATRIX_CELLS = 10_000
#: The most job runs a whole recipe may expand to: every job times the cells of its matrix.
MAX_JOB_RUNS = 50_000
_SHOWN_LIMIT = 10**12  # larger counts are shown as "more than" this



# --------------------------------------------------------------------------------------------- model


@dataclass
class VarSpec:
    name: str
    type: str
    default: Any = None
    has_default: bool = False
    env: str | None = None
    choices: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    path: tuple = ()


@dataclass
class GlobAxis:
    pattern: str
    path: tuple


@dataclass
class MatrixSpec:
    axes: dict[str, Any]  # name -> list of values | GlobAxis
    include: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    path: tuple = ()


@dataclass
class JobSpec:
    id: str
    kind: str
    index: int
    fields: dict[str, Any]
    field_paths: dict[str, tuple]  # where each field was written (the job, or a defaults entry)
    needs: list[str] = field(default_factory=list)
    matrix: Any = None  # None | MatrixSpec | list[str] (axes of the recipe matrix)
    output: str | None = None
    filename: str | None = None
    on_exists: str | None = None  # None: the recipe default (overwrite)
    save: str | None = None
    description: str = ""
    path: tuple = ()
    option_paths: dict[str, tuple] = field(default_factory=dict)  # output/filename/save/on_exists sources


@dataclass
class Recipe:
    file: str
    base_dir: Path
    name: str
    description: str
    vars: dict[str, VarSpec]
    matrix: MatrixSpec | None
    jobs: list[JobSpec]
    doc: Doc


# --------------------------------------------------------------------------------------------- checker


class _Check:
    def __init__(self, doc: Doc, problems: Problems):
        self.doc = doc
        self.p = problems

    def err(self, path: tuple, msg: str) -> None:
        self.p.error(self.doc.mark(path), msg)

    def err_key(self, path: tuple, msg: str) -> None:
        self.p.error(self.doc.key_mark(path), msg)

    def warn(self, path: tuple, msg: str) -> None:
        self.p.warn(self.doc.mark(path), msg)

    def unknown_keys(self, mapping: dict, path: tuple, allowed: Any, what: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.err_key(path + (key,), f"unknown key '{key}' in {what}{did_you_mean(key, allowed)}")

    def string(self, value: Any, path: tuple, what: str) -> Any:
        """A value where a string is expected: YAML 1.1 surprises are turned back into their text."""
        if isinstance(value, str):
            return value
        sc = self.doc.scalars.get(path)
        if sc is not None:
            if sc.trap:
                self.warn(path, f"{what}: `{sc.text}` is read by YAML as {type_name(value)}, not the text "
                                f"'{sc.text}'; using the text — quote it to make that explicit")
            return sc.text
        self.err(path, f"{what} must be a string, got {type_name(value)}")
        return None

    def typed(self, value: Any, path: tuple, expected: str, what: str) -> Any:
        """Check ``value`` against ``expected`` (templates in it are checked after rendering)."""
        if expected == "string":
            return self.string(value, path, what)
        if isinstance(value, str) and has_template(value):
            return value
        if expected in ("paths", "strings") and isinstance(value, list):
            return [self.string(v, path + (i,), f"{what}[{i}]") for i, v in enumerate(value)]
        if not type_ok(value, expected):
            self.err(path, f"{what} must be {TYPE_WORDS.get(expected, expected)}, got {type_name(value)}")
            return None
        return value

    def template(self, value: Any, path: tuple) -> None:
        """Report template syntax errors in every string inside ``value``."""
        if isinstance(value, str):
            if "{{" in value or "}}" in value:
                try:
                    parse(value)
                except TemplateError as exc:
                    self.p.error(self.doc.text_offset_mark(path, exc.offset), exc.message)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.template(v, path + (i,))
        elif isinstance(value, dict):
            for k, v in value.items():
                self.template(v, path + (k,))


def check(doc: Doc, problems: Problems) -> Recipe:
    """Check the structure of a loaded recipe; every problem goes to ``problems``."""
    c = _Check(doc, problems)
    data = doc.data
    file_path = Path(doc.path)
    recipe = Recipe(file=doc.path, base_dir=file_path.resolve().parent if doc.path != "<recipe>" else Path.cwd(),
                    name=file_path.stem, description="", vars={}, matrix=None, jobs=[], doc=doc)
    if not isinstance(data, dict):
        c.err((), f"a recipe is a mapping with `version: 1` and `jobs`, got {type_name(data)}")
        return recipe
    c.unknown_keys(data, (), TOP_KEYS, "the recipe")
    if "version" not in data:
        c.err((), "missing `version: 1`")
    elif data["version"] != VERSION or isinstance(data["version"], bool):
        c.err(("version",), f"unsupported recipe version {data['version']!r}: this sogni reads version 1")
    if "name" in data:
        name = c.string(data["name"], ("name",), "name")
        if isinstance(name, str):
            if not name.strip():
                c.err(("name",), "name must not be empty")
            else:
                recipe.name = name.strip()
    if "description" in data:
        d = c.string(data["description"], ("description",), "description")
        recipe.description = d or ""
    recipe.vars = _vars(c, data.get("vars"), ("vars",)) if "vars" in data else {}
    if "matrix" in data:
        recipe.matrix = _matrix(c, data["matrix"], ("matrix",), "the recipe matrix")
    defaults = _defaults(c, data.get("defaults"), ("defaults",)) if "defaults" in data else {}
    if "jobs" not in data:
        c.err((), "missing `jobs`: a list of jobs, each with an `id` and one of " + ", ".join(KINDS))
        return recipe
    jobs = data["jobs"]
    if not isinstance(jobs, list):
        c.err(("jobs",), f"jobs must be a list, got {type_name(jobs)}")
        return recipe
    if not jobs:
        c.err(("jobs",), "jobs is empty: a recipe needs at least one job")
    seen: dict[str, tuple] = {}
    for i, raw in enumerate(jobs):
        job = _job(c, raw, ("jobs", i), i, defaults, recipe)
        if job is None:
            continue
        if job.id in seen:
            first = doc.mark(seen[job.id])
            c.err(("jobs", i, "id"), f"duplicate job id '{job.id}' (first at line {first.line})")
            continue
        seen[job.id] = ("jobs", i, "id")
        recipe.jobs.append(job)
    _check_runs(c, recipe)
    return recipe


def _vars(c: _Check, raw: Any, path: tuple) -> dict[str, VarSpec]:
    out: dict[str, VarSpec] = {}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        c.err(path, f"vars must be a mapping of names to values or specs, got {type_name(raw)}")
        return out
    for name, spec in raw.items():
        vpath = path + (name,)
        if not NAME_RE.match(name):
            c.err_key(vpath, f"invalid variable name '{name}': letters, digits and _, starting with a letter or _")
            continue
        v = VarSpec(name=name, type="any", path=vpath)
        if isinstance(spec, dict):
            c.unknown_keys(spec, vpath, VAR_KEYS, f"variable '{name}'")
            if "type" in spec:
                t = c.string(spec["type"], vpath + ("type",), "type")
                if t is not None and t not in VAR_TYPES:
                    c.err(vpath + ("type",), f"unknown variable type '{t}': one of {', '.join(VAR_TYPES)}"
                                             f"{did_you_mean(t, VAR_TYPES)}")
                elif t is not None:
                    v.type = t
            if "env" in spec:
                e = c.string(spec["env"], vpath + ("env",), "env")
                if e is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", e):
                    c.err(vpath + ("env",), f"invalid environment variable name '{e}'")
                elif e is not None:
                    v.env = e
            if "description" in spec:
                v.description = c.string(spec["description"], vpath + ("description",), "description") or ""
            for bound in ("min", "max"):
                if bound in spec:
                    b = spec[bound]
                    if not type_ok(b, "number"):
                        c.err(vpath + (bound,), f"{bound} must be a number, got {type_name(b)}")
                    elif bound == "min":
                        v.minimum = b
                    else:
                        v.maximum = b
            if "choices" in spec:
                ch = spec["choices"]
                if not isinstance(ch, list) or not ch:
                    c.err(vpath + ("choices",), "choices must be a non-empty list")
                else:
                    v.choices = ch
            if "default" in spec:
                v.default, v.has_default = spec["default"], True
                dpath = vpath + ("default",)
            else:
                dpath = vpath
        else:
            v.default, v.has_default = spec, True
            dpath = vpath
        if v.type == "any":
            if v.has_default:
                v.type = infer_type(v.default)
            elif v.choices:
                v.type = infer_type(v.choices[0])
            else:
                v.type = "string"
        if v.has_default and v.default is not None:
            if v.type == "string":
                v.default = c.string(v.default, dpath, f"the default of '{name}'")
            else:
                sc = c.doc.scalars.get(dpath)
                if sc is not None and sc.trap:
                    c.warn(dpath, f"`{sc.text}` is read by YAML as {type_name(v.default)}; quote it if you meant "
                                  f"the text '{sc.text}'")
                problem = var_problem(v, v.default)
                if problem:
                    c.err(dpath, f"variable '{name}': {problem}")
        if v.choices and v.type == "string":
            v.choices = [c.string(x, vpath + ("choices", i), "a choice") for i, x in enumerate(v.choices)]
        out[name] = v
    return out


_VAR_TYPES = {"boolean": "boolean", "integer": "integer", "number": "number", "array": "list", "object": "object"}


def infer_type(value: Any) -> str:
    """A variable's type from its default: the catalogue's JSON type, in recipe words (anything else: string)."""
    from ..catalog import json_type

    return _VAR_TYPES.get(json_type(value), "string")


def var_problem(v: VarSpec, value: Any) -> str | None:
    if not type_ok(value, v.type):
        return f"expected {TYPE_WORDS.get(v.type, v.type)}, got {type_name(value)}"
    if v.choices is not None and value not in v.choices:
        return f"{value!r} is not one of {', '.join(map(str, v.choices))}{did_you_mean(str(value), v.choices)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if v.minimum is not None and value < v.minimum:
            return f"{value} is below the minimum {v.minimum}"
        if v.maximum is not None and value > v.maximum:
            return f"{value} is above the maximum {v.maximum}"
    return None


def _matrix(c: _Check, raw: Any, path: tuple, what: str) -> MatrixSpec | None:
    if not isinstance(raw, dict):
        c.err(path, f"{what} must be a mapping of axis names to lists of values, got {type_name(raw)}")
        return None
    spec = MatrixSpec(axes={}, path=path)
    for name, values in raw.items():
        apath = path + (name,)
        if name in MATRIX_SPECIAL:
            if not isinstance(values, list) or not all(isinstance(x, dict) for x in values):
                c.err(apath, f"matrix {name} must be a list of mappings (axis: value)")
                continue
            for i, entry in enumerate(values):
                if not entry:
                    c.err(apath + (i,), f"an empty {name} entry")
            getattr(spec, name).extend(values)
            continue
        if not NAME_RE.match(name):
            c.err_key(apath, f"invalid matrix axis name '{name}': letters, digits and _, starting with a letter or _")
            continue
        if isinstance(values, dict):
            if set(values) != {"glob"}:
                c.unknown_keys(values, apath, ("glob",), f"matrix axis '{name}'")
            if "glob" not in values:
                c.err(apath, f"matrix axis '{name}' must be a list of values or `{{glob: PATTERN}}`")
                continue
            pattern = c.string(values["glob"], apath + ("glob",), "glob")
            if pattern is not None:
                if not pattern.strip():
                    c.err(apath + ("glob",), "glob must not be empty")
                else:
                    c.template(pattern, apath + ("glob",))
                    spec.axes[name] = GlobAxis(pattern, apath + ("glob",))
            continue
        if not isinstance(values, list):
            c.err(apath, f"matrix axis '{name}' must be a list of values, got {type_name(values)}")
            continue
        if not values:
            c.err(apath, f"matrix axis '{name}' is empty: the matrix would have no cells")
            continue
        if len(values) > MAX_AXIS_VALUES:
            c.err(apath, f"matrix axis '{name}' has {len(values)} values; at most {MAX_AXIS_VALUES}")
            continue
        for i, v in enumerate(values):
            sc = c.doc.scalars.get(apath + (i,))
            if sc is not None and sc.trap:
                c.warn(apath + (i,), f"`{sc.text}` is read by YAML as {type_name(v)}, not the text '{sc.text}'; "
                                     "using the text — quote it to make that explicit")
                values[i] = sc.text
            if v is None:
                c.err(apath + (i,), f"matrix axis '{name}' has an empty (null) value")
        spec.axes[name] = values
    if not spec.axes and (spec.include or spec.exclude):
        if not spec.include:
            c.err(path, f"{what} has no axes")
    elif not spec.axes and not spec.include:
        c.err(path, f"{what} is empty: it needs at least one axis")
    cells = matrix_size(spec)
    if cells > MAX_MATRIX_CELLS:
        extra = " plus its include entries" if spec.include else ""
        c.err_key(path, f"{what} has {_count(cells)} cells (its axes multiplied{extra}); at most "
                        f"{MAX_MATRIX_CELLS} — split it over several recipes or jobs")
        _shrink(spec, MAX_MATRIX_CELLS)
    for kind in MATRIX_SPECIAL:
        for i, entry in enumerate(getattr(spec, kind)):
            if kind == "exclude":
                for key in entry:
                    if key not in spec.axes:
                        c.err_key(path + (kind, i, key), f"exclude names '{key}', which is not a matrix axis"
                                                         f"{did_you_mean(key, spec.axes)}")
            else:
                for key in entry:
                    if not NAME_RE.match(str(key)):
                        c.err_key(path + (kind, i, key), f"invalid matrix axis name '{key}'")
    return spec


def _product(sizes: Any) -> int:
    """The product of ``sizes``, saturated just above :data:`_SHOWN_LIMIT` (no huge integers)."""
    n = 1
    for size in sizes:
        n = min(n * size, _SHOWN_LIMIT + 1)
    return n


def _count(n: int) -> str:
    return f"more than {_SHOWN_LIMIT}" if n > _SHOWN_LIMIT else str(n)


def matrix_size(spec: MatrixSpec, axes: Any = None) -> int:
    """How many cells ``spec`` can expand to, without expanding it: its list axes (or only ``axes``)
    multiplied, a glob axis counted once, plus its ``include`` entries (``exclude`` only removes cells)."""
    names = spec.axes if axes is None else [a for a in axes if a in spec.axes]
    sizes = [len(spec.axes[n]) if isinstance(spec.axes[n], list) else 1 for n in names]
    return min(_product(sizes) + len(spec.include), _SHOWN_LIMIT + 1)


def _shrink(spec: MatrixSpec, keep_include: int) -> None:
    """Cut a matrix that was refused as too large down to a token size, so that checking the rest of the
    recipe (which expands it) stays cheap; the recipe is invalid anyway."""
    spec.axes = {k: (v[:1] if isinstance(v, list) else v) for k, v in spec.axes.items()}
    del spec.include[keep_include:]
    spec.exclude.clear()


def _job_runs(job: JobSpec, recipe: Recipe) -> int:
    if job.matrix is True and recipe.matrix is not None:
        return matrix_size(recipe.matrix)
    if isinstance(job.matrix, list) and recipe.matrix is not None:
        return min(matrix_size(recipe.matrix, job.matrix), matrix_size(recipe.matrix))
    if isinstance(job.matrix, MatrixSpec):
        return matrix_size(job.matrix)
    return 1


def _check_runs(c: _Check, recipe: Recipe) -> None:
    """Refuse a recipe whose jobs, times their matrix cells, are more than :data:`MAX_JOB_RUNS`."""
    runs = 0
    for job in recipe.jobs:
        runs = min(runs + _job_runs(job, recipe), _SHOWN_LIMIT + 1)
    if runs <= MAX_JOB_RUNS:
        return
    c.err_key(("jobs",), f"the recipe expands to {_count(runs)} job runs (each job times the cells of its "
                         f"matrix); at most {MAX_JOB_RUNS} — split it over several recipes")
    if recipe.matrix is not None:
        _shrink(recipe.matrix, 1)
    for job in recipe.jobs:
        if isinstance(job.matrix, MatrixSpec):
            _shrink(job.matrix, 1)


def _defaults(c: _Check, raw: Any, path: tuple) -> dict[str, tuple[dict, tuple]]:
    out: dict[str, tuple[dict, tuple]] = {}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        c.err(path, f"defaults must be a mapping of job kinds (or 'all') to fields, got {type_name(raw)}")
        return out
    allowed = ("all", *KINDS)
    for kind, fields in raw.items():
        kpath = path + (kind,)
        if kind not in allowed:
            c.err_key(kpath, f"unknown key '{kind}' in defaults: a job kind or 'all'{did_you_mean(kind, allowed)}")
            continue
        if not isinstance(fields, dict):
            c.err(kpath, f"defaults.{kind} must be a mapping of fields, got {type_name(fields)}")
            continue
        if kind == "all":
            everything = set(OUTPUT_KEYS)
            for k in KINDS:
                everything.update(field_types(k))
            for key in fields:
                if key not in everything:
                    c.err_key(kpath + (key,), f"unknown field '{key}' in defaults.all{did_you_mean(key, sorted(everything))}")
        else:
            types = field_types(kind)
            for key in fields:
                if key not in types and key not in OUTPUT_KEYS:
                    c.err_key(kpath + (key,), f"unknown field '{key}' for {kind} jobs"
                                              f"{did_you_mean(key, [*types, *OUTPUT_KEYS])}")
                elif key == "save" and kind != "chat" and kind != "tool":
                    c.err_key(kpath + (key,), "'save' writes a text reply to a file: chat and tool jobs only")
        c.template(fields, kpath)
        out[kind] = (fields, kpath)
    return out


def _job(c: _Check, raw: Any, path: tuple, index: int, defaults: dict, recipe: Recipe) -> JobSpec | None:
    if not isinstance(raw, dict):
        c.err(path, f"a job must be a mapping with an `id` and one of {', '.join(KINDS)}, got {type_name(raw)}")
        return None
    c.unknown_keys(raw, path, JOB_KEYS, "a job")
    jid = None
    if "id" not in raw:
        c.err(path, "the job has no `id`")
    else:
        jid = c.string(raw["id"], path + ("id",), "id")
        if jid is not None and not ID_RE.match(jid):
            c.err(path + ("id",), f"invalid job id '{jid}': letters, digits, '_' and '-', starting with a letter")
            jid = None
    kinds = [k for k in KINDS if k in raw]
    if not kinds:
        c.err(path, f"the job{' ' + repr(jid) if jid else ''} has no kind: give one of {', '.join(KINDS)}")
        return None
    if len(kinds) > 1:
        c.err_key(path + (kinds[1],), f"a job has exactly one kind; this one has {' and '.join(kinds)}")
    kind = kinds[0]
    if jid is None:
        return None
    job = JobSpec(id=jid, kind=kind, index=index, fields={}, field_paths={}, path=path)
    # defaults first (all, then the kind), then the job's own fields
    types = field_types(kind)
    for dkind in ("all", kind):
        if dkind not in defaults:
            continue
        fields, dpath = defaults[dkind]
        for key, value in fields.items():
            if key in OUTPUT_KEYS:
                if key == "save" and kind not in ("chat", "tool"):
                    continue
                job.option_paths[key] = dpath + (key,)
                _option(c, job, key, value, dpath + (key,))
            elif key in types:
                v = c.typed(value, dpath + (key,), types[key], f"'{key}'")
                if v is not None:
                    job.fields[key] = v
                    job.field_paths[key] = dpath + (key,)
    body = raw[kind]
    kpath = path + (kind,)
    if isinstance(body, str):
        key = "text" if kind == "speech" else ("name" if kind in ("tool", "template") else "prompt")
        body = {key: body}
        c.doc.marks[kpath + (key,)] = c.doc.mark(kpath)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        c.err(kpath, f"'{kind}' must be a mapping of the job's fields, got {type_name(body)}")
        body = {}
    for key, value in body.items():
        fpath = kpath + (key,)
        if key not in types:
            hint = did_you_mean(key, types)
            if key in OUTPUT_KEYS:
                hint = f" ('{key}' belongs to the job itself, next to `id`)"
            c.err_key(fpath, f"unknown field '{key}' for {_article(kind)} {kind} job{hint}")
            continue
        v = c.typed(value, fpath, types[key], f"'{key}'")
        if v is not None:
            job.fields[key] = v
            job.field_paths[key] = fpath
    c.template(body, kpath)
    for key in OUTPUT_KEYS:
        if key in raw:
            if key == "save" and kind not in ("chat", "tool"):
                c.err_key(path + (key,), "'save' writes a text reply to a file: chat and tool jobs only")
                continue
            job.option_paths[key] = path + (key,)
            _option(c, job, key, raw[key], path + (key,))
    if "description" in raw:
        job.description = c.string(raw["description"], path + ("description",), "description") or ""
    if "needs" in raw:
        needs = raw["needs"]
        npath = path + ("needs",)
        if isinstance(needs, str):
            needs = [needs]
            c.doc.marks[npath + (0,)] = c.doc.mark(npath)
        if not isinstance(needs, list):
            c.err(npath, f"needs must be a job id or a list of job ids, got {type_name(needs)}")
        else:
            for i, n in enumerate(needs):
                n = c.string(n, npath + (i,), "needs")
                if n is not None:
                    job.needs.append(n)
    if "matrix" in raw:
        m = raw["matrix"]
        mpath = path + ("matrix",)
        if m is True:
            if recipe.matrix is None:
                c.err(mpath, "`matrix: true` uses the recipe's matrix, but the recipe has no top-level `matrix`")
            else:
                job.matrix = True
        elif m is False or m is None:
            job.matrix = None
        elif isinstance(m, list):
            if recipe.matrix is None:
                c.err(mpath, "a list of axes selects from the recipe's matrix, but the recipe has no top-level `matrix`")
            elif not m:
                c.err(mpath, "an empty list of matrix axes")
            else:
                axes = []
                for i, a in enumerate(m):
                    a = c.string(a, mpath + (i,), "a matrix axis")
                    if a is None:
                        continue
                    known = list(recipe.matrix.axes) + sorted({k for e in recipe.matrix.include for k in e})
                    if a not in known:
                        c.err(mpath + (i,), f"'{a}' is not an axis of the recipe's matrix{did_you_mean(a, known)}")
                    else:
                        axes.append(a)
                job.matrix = axes
        else:
            job.matrix = _matrix(c, m, mpath, f"the matrix of job '{jid}'")
    return job


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _option(c: _Check, job: JobSpec, key: str, value: Any, path: tuple) -> None:
    v = c.string(value, path, key)
    if v is None:
        return
    if key == "on_exists":
        if v not in ON_EXISTS:
            c.err(path, f"on_exists must be one of {', '.join(ON_EXISTS)}, got '{v}'{did_you_mean(v, ON_EXISTS)}")
            return
        job.on_exists = v
        return
    if not v.strip():
        c.err(path, f"{key} must not be empty")
        return
    c.template(v, path)
    setattr(job, key, v)
