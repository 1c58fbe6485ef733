"""The small, safe template syntax of recipe strings.

``{{ path | filter | filter(arg, …) }}`` where ``path`` is dotted names and ``[N]`` indices:

- ``vars.NAME``, ``matrix.AXIS`` (and ``matrix.AXIS.key`` for mapping values), ``job.id``, ``job.name``,
  ``recipe.name``;
- ``jobs.ID.text`` (a chat reply or a tool's text), ``jobs.ID.files`` (all saved files), ``jobs.ID.file``
  (the first), ``jobs.ID.files[N]``, ``jobs.ID.workflow``.

Filters: see :data:`FILTERS`. Literals: ``'text'``, ``"text"``, integers, ``true``/``false``. There is no
code execution: no calls except the fixed filters, no attribute access beyond data keys.

A string that is exactly one expression keeps the value's type (``"{{ jobs.shots.files }}"`` is a list);
otherwise values are joined into text. Job outputs that are not known yet render as :class:`Pending`,
which shows the expression itself (``{{ jobs.script.text }}``) in plans.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Callable

_OPEN = "{{"
_CLOSE = "}}"
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_-]*)"
    r"|(?P<op>[.\[\]|(),]))"
)


class TemplateError(Exception):
    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Pending:
    """A value that depends on a job output not known yet; ``text`` is what a plan shows."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class Expr:
    source: str  # the expression as written (without braces), trimmed
    offset: int  # where it starts in the template string (the first '{')
    literal: Any = None  # for literal expressions
    is_literal: bool = False
    path: list[Any] = field(default_factory=list)  # names and int indices
    filters: list[tuple[str, list["Expr"]]] = field(default_factory=list)


@dataclass
class Template:
    text: str
    parts: list[Any]  # str | Expr

    @property
    def is_plain(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    @property
    def single(self) -> Expr | None:
        if len(self.parts) == 1 and isinstance(self.parts[0], Expr):
            return self.parts[0]
        return None

    def exprs(self) -> list[Expr]:
        out: list[Expr] = []
        for p in self.parts:
            if isinstance(p, Expr):
                out.append(p)
                for _, args in p.filters:
                    out.extend(a for a in args if not a.is_literal)
        return out


# --------------------------------------------------------------------------------------------- filters


def _text(v: Any) -> str:
    return to_text(v)


def _slug(v: Any, n: Any = 60) -> str:
    from ..media.naming import slugify

    return slugify(_text(v), max_len=int(n))


def _truncate(v: Any, n: Any) -> str:
    s = _text(v)
    n = int(n)
    return s if len(s) <= n else s[:n].rstrip()


def _line(v: Any, n: Any) -> str:
    lines = [ln.strip() for ln in _text(v).splitlines() if ln.strip()]
    i = int(n)
    if not 1 <= i <= len(lines):
        raise TemplateError(f"line({i}): the text has {len(lines)} non-empty line(s)")
    return re.sub(r"^\s*(?:[-*•]|\d+[.)]|scene\s*\d+\s*[:.-])\s*", "", lines[i - 1], flags=re.I)


def _default(v: Any, d: Any) -> Any:
    return d if v in (None, "", []) else v


def _join(v: Any, sep: Any = ", ") -> str:
    if isinstance(v, (list, tuple)):
        return str(sep).join(_text(x) for x in v)
    return _text(v)


def _first(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        if not v:
            raise TemplateError("first: the list is empty")
        return v[0]
    return v


def _last(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        if not v:
            raise TemplateError("last: the list is empty")
        return v[-1]
    return v


def _stem(v: Any) -> str:
    return PurePath(_text(v)).stem


def _basename(v: Any) -> str:
    return PurePath(_text(v)).name


def _replace(v: Any, a: Any, b: Any) -> str:
    return _text(v).replace(str(a), str(b))


#: name -> (function, minimum args, maximum args, help)
FILTERS: dict[str, tuple[Callable[..., Any], int, int, str]] = {
    "slug": (_slug, 0, 1, "lower-case ASCII words joined by '-' (optional maximum length)"),
    "lower": (lambda v: _text(v).lower(), 0, 0, "lower case"),
    "upper": (lambda v: _text(v).upper(), 0, 0, "upper case"),
    "title": (lambda v: _text(v).title(), 0, 0, "Title Case"),
    "trim": (lambda v: _text(v).strip(), 0, 0, "strip surrounding white space"),
    "truncate": (_truncate, 1, 1, "at most N characters"),
    "line": (_line, 1, 1, "the Nth non-empty line (1-based), without a list marker"),
    "default": (_default, 1, 1, "a fallback for an empty value"),
    "join": (_join, 0, 1, "join a list with a separator (default ', ')"),
    "first": (_first, 0, 0, "the first item of a list"),
    "last": (_last, 0, 0, "the last item of a list"),
    "stem": (_stem, 0, 0, "a file name without folder and extension"),
    "basename": (_basename, 0, 0, "a file name without folder"),
    "replace": (_replace, 2, 2, "replace text A with B"),
    "json": (lambda v: json.dumps(v, ensure_ascii=False), 0, 0, "the value as JSON"),
}


def did_you_mean(word: str, choices: Any) -> str:
    import difflib

    hits = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{hits[0]}'?)" if hits else ""


# --------------------------------------------------------------------------------------------- parsing

_CACHE: dict[str, Template] = {}


def has_template(text: Any) -> bool:
    return isinstance(text, str) and _OPEN in text


def parse(text: str) -> Template:
    """Parse (and cache) a template string; raises TemplateError with the offset of the problem."""
    hit = _CACHE.get(text)
    if hit is not None:
        return hit
    parts: list[Any] = []
    i = 0
    n = len(text)
    buf: list[str] = []
    while i < n:
        j = text.find(_OPEN, i)
        if j < 0:
            buf.append(text[i:])
            break
        buf.append(text[i:j])
        k = text.find(_CLOSE, j + 2)
        if k < 0:
            raise TemplateError("'{{' without a closing '}}'", j)
        inner = text[j + 2:k]
        expr = _parse_expr(inner, j)
        if buf and "".join(buf):
            parts.append("".join(buf))
        buf = []
        parts.append(expr)
        i = k + 2
    if "".join(buf):
        parts.append("".join(buf))
    close = text.find(_CLOSE)
    if close >= 0 and not any(isinstance(p, Expr) for p in parts):
        raise TemplateError("'}}' without an opening '{{'", close)
    tpl = Template(text, parts)
    if len(_CACHE) < 50_000:
        _CACHE[text] = tpl
    return tpl


def _tokens(inner: str, base: int) -> list[tuple[str, Any, int]]:
    out: list[tuple[str, Any, int]] = []
    pos = 0
    while pos < len(inner):
        if inner[pos:].strip() == "":
            break
        m = _TOKEN.match(inner, pos)
        if not m or m.end() == pos:
            bad = pos + (len(inner[pos:]) - len(inner[pos:].lstrip()))
            raise TemplateError(f"unexpected {inner[bad]!r} in a template expression", base + 2 + bad)
        at = base + 2 + m.start(m.lastgroup)
        if m.group("str") is not None:
            raw = m.group("str")
            out.append(("lit", raw[1:-1].encode("utf-8").decode("unicode_escape") if "\\" in raw else raw[1:-1], at))
        elif m.group("num") is not None:
            s = m.group("num")
            out.append(("lit", float(s) if "." in s else int(s), at))
        elif m.group("name") is not None:
            name = m.group("name")
            if name in ("true", "false"):
                out.append(("lit", name == "true", at))
            else:
                out.append(("name", name, at))
        else:
            out.append(("op", m.group("op"), at))
        pos = m.end()
    return out


class _P:
    def __init__(self, toks: list[tuple[str, Any, int]], end: int):
        self.toks = toks
        self.i = 0
        self.end = end

    def peek(self) -> tuple[str, Any, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, Any, int]:
        t = self.peek()
        if t is None:
            raise TemplateError("the template expression ends too early", self.end)
        self.i += 1
        return t

    def at_op(self, op: str) -> bool:
        t = self.peek()
        return t is not None and t[0] == "op" and t[1] == op


def _parse_expr(inner: str, offset: int) -> Expr:
    src = inner.strip()
    if not src:
        raise TemplateError("empty '{{ }}'", offset)
    p = _P(_tokens(inner, offset), offset + 2 + len(inner))
    expr = _operand(p, src, offset)
    while p.at_op("|"):
        p.take()
        kind, name, at = p.take()
        if kind != "name":
            raise TemplateError("a filter name is expected after '|'", at)
        if name not in FILTERS:
            raise TemplateError(f"unknown filter '{name}'{did_you_mean(name, FILTERS)}", at)
        args: list[Expr] = []
        if p.at_op("("):
            p.take()
            while not p.at_op(")"):
                args.append(_operand(p, "", at))
                if p.at_op(","):
                    p.take()
                elif not p.at_op(")"):
                    t = p.peek()
                    raise TemplateError("',' or ')' expected in the filter's arguments", t[2] if t else p.end)
            p.take()
        _, lo, hi, _h = FILTERS[name]
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise TemplateError(f"filter '{name}' takes {want} argument(s), got {len(args)}", at)
        expr.filters.append((name, args))
    t = p.peek()
    if t is not None:
        raise TemplateError(f"unexpected {t[1]!r} in a template expression", t[2])
    expr.source = src
    expr.offset = offset
    return expr


def _operand(p: _P, src: str, offset: int) -> Expr:
    kind, value, at = p.take()
    if kind == "lit":
        return Expr(source=src, offset=offset, literal=value, is_literal=True)
    if kind != "name":
        raise TemplateError(f"unexpected {value!r} in a template expression", at)
    path: list[Any] = [value]
    while True:
        if p.at_op("."):
            p.take()
            k, v, a = p.take()
            if k != "name" and not (k == "lit" and isinstance(v, int) and not isinstance(v, bool)):
                raise TemplateError("a name is expected after '.'", a)
            path.append(v if k == "name" else int(v))
        elif p.at_op("["):
            p.take()
            k, v, a = p.take()
            if k != "lit" or isinstance(v, bool) or not isinstance(v, (int, str)):
                raise TemplateError("an index (a whole number) or a quoted key is expected in '[ ]'", a)
            path.append(v)
            k2, v2, a2 = p.take()
            if k2 != "op" or v2 != "]":
                raise TemplateError("']' expected", a2)
        else:
            break
    return Expr(source=src, offset=offset, path=path)


# --------------------------------------------------------------------------------------------- rendering


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(to_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _pending_text(expr: Expr) -> str:
    return "{{ " + expr.source + " }}"


def evaluate(expr: Expr, lookup: Callable[[Expr, list[Any]], Any]) -> Any:
    """The value of one expression; ``lookup(expr, path)`` resolves a path (may return :class:`Pending`)."""
    if expr.is_literal:
        value = expr.literal
    else:
        value = lookup(expr, expr.path)
    if isinstance(value, Pending):
        return Pending(_pending_text(expr))
    for name, args in expr.filters:
        vals = []
        for a in args:
            av = a.literal if a.is_literal else lookup(a, a.path)
            if isinstance(av, Pending):
                return Pending(_pending_text(expr))
            vals.append(av)
        fn = FILTERS[name][0]
        try:
            value = fn(value, *vals)
        except TemplateError as exc:
            raise TemplateError(exc.message, expr.offset) from None
        except (ValueError, TypeError) as exc:
            raise TemplateError(f"filter '{name}': {exc}", expr.offset) from None
    return value


def render(tpl: Template, lookup: Callable[[Expr, list[Any]], Any], *, escape: Callable[[str], str] | None = None) -> Any:
    """Render a template. A single expression keeps its type; a Pending part makes the result Pending."""
    single = tpl.single
    if single is not None:
        return evaluate(single, lookup)
    out: list[str] = []
    pending = False
    for part in tpl.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = evaluate(part, lookup)
        if isinstance(value, Pending):
            pending = True
            out.append(value.text)
        else:
            text = to_text(value)
            out.append(escape(text) if escape else text)
    text = "".join(out)
    return Pending(text) if pending else text


def render_value(value: Any, lookup: Callable[[Expr, list[Any]], Any], on_error: Callable[[tuple, TemplateError], None] | None = None,
                 path: tuple = ()) -> Any:
    """Render every template string inside ``value`` (lists and mappings too)."""
    if isinstance(value, str):
        if _OPEN not in value and _CLOSE not in value:
            return value
        try:
            return render(parse(value), lookup)
        except TemplateError as exc:
            if on_error is None:
                raise
            on_error(path, exc)
            return value
    if isinstance(value, list):
        out: list[Any] = []
        for i, v in enumerate(value):
            r = render_value(v, lookup, on_error, path + (i,))
            if isinstance(r, list) and isinstance(v, str) and has_template(v):
                out.extend(r)  # "{{ jobs.x.files }}" inside a list adds every file
            else:
                out.append(r)
        return out
    if isinstance(value, dict):
        return {k: render_value(v, lookup, on_error, path + (k,)) for k, v in value.items()}
    return value


def contains_pending(value: Any) -> bool:
    if isinstance(value, Pending):
        return True
    if isinstance(value, list):
        return any(contains_pending(v) for v in value)
    if isinstance(value, dict):
        return any(contains_pending(v) for v in value.values())
    return False


def show_pending(value: Any) -> Any:
    """Replace Pending values with their text (for plans)."""
    if isinstance(value, Pending):
        return value.text
    if isinstance(value, list):
        return [show_pending(v) for v in value]
    if isinstance(value, dict):
        return {k: show_pending(v) for k, v in value.items()}
    return value
