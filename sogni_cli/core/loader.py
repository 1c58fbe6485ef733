"""Load a recipe with a safe YAML loader that keeps line and column marks.

The YAML is composed into nodes (no object construction) and turned into plain Python values by hand, so
that:

- every value keeps its position (``Doc.mark(path)``), for ``FILE:LINE:COL`` messages;
- duplicate keys, non-standard tags (``!!python/...``, ``!custom``, ``!!binary``, ``!!set``…) and recursive
  aliases are rejected, alias expansion is bounded (billion laughs) and so is nesting (:data:`MAX_DEPTH`);
- files over :data:`MAX_BYTES` are refused before they are parsed;
- plain scalars that YAML 1.1 turns into something else (``no`` → false, ``0042`` → 34, ``1:30`` → 90)
  remember their text, so the schema check can warn (and use the text) where a string was expected.

``yaml`` is imported inside functions: this module is on the start-up path of ``sogni recipe``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_BYTES = 1024 * 1024
#: Nodes visited while expanding aliases; a document past this is refused (billion laughs).
MAX_NODES = 200_000
#: Lists and mappings nested deeper than this are refused (no recipe or input file needs more).
MAX_DEPTH = 100

Path_ = tuple  # a path into the document: ("jobs", 0, "image", "prompt")

_STD = "tag:yaml.org,2002:"
_ALLOWED_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_BOOL_12 = {"true", "false"}
_INT_TRAP = re.compile(r"^[-+]?(0[0-7_]+|0b[01_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*(:[0-5]?[0-9])+|[0-9][0-9_]*_[0-9_]*)$")
_FLOAT_TRAP = re.compile(r"^[-+]?([0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*|[0-9_]*_[0-9_]*\.[0-9_]*|\.[0-9_]+)$")


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


@dataclass
class Problem:
    mark: Mark
    message: str
    warning: bool = False

    def format(self, file: str) -> str:
        kind = "warning: " if self.warning else ""
        return f"{file}:{self.mark.line}:{self.mark.col}: {kind}{self.message}"


@dataclass
class Problems:
    """Every problem found, sorted by position when printed."""

    items: list[Problem] = field(default_factory=list)

    def error(self, mark: Mark, message: str) -> None:
        self.items.append(Problem(mark, message))

    def warn(self, mark: Mark, message: str) -> None:
        self.items.append(Problem(mark, message, warning=True))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.warning]

    def sorted(self) -> list[Problem]:
        seen: set[tuple] = set()
        out = []
        for p in sorted(self.items, key=lambda p: (p.mark.line, p.mark.col, p.warning)):
            key = (p.mark, p.message, p.warning)
            if key not in seen:
                seen.add(key)
                out.append(p)
        return out

    def lines(self, file: str) -> list[str]:
        return [p.format(file) for p in self.sorted()]


@dataclass
class Scalar:
    """What the loader remembers about a plain scalar whose YAML 1.1 type is not a string."""

    text: str
    trap: bool  # YAML 1.2 would read it differently (a string, or another number)


@dataclass
class Doc:
    """A loaded recipe: plain values plus positions."""

    path: str
    data: Any
    marks: dict[tuple, Mark] = field(default_factory=dict)  # value positions
    key_marks: dict[tuple, Mark] = field(default_factory=dict)  # positions of mapping keys (by value path)
    scalars: dict[tuple, Scalar] = field(default_factory=dict)  # plain non-string scalars
    quoted: set[tuple] = field(default_factory=set)  # paths of quoted single-line string scalars
    multiline: set[tuple] = field(default_factory=set)  # paths of block / multi-line string scalars

    def mark(self, path: tuple) -> Mark:
        """The position of the value at ``path`` (or of its nearest ancestor that has one)."""
        p = tuple(path)
        while p:
            m = self.marks.get(p)
            if m is not None:
                return m
            p = p[:-1]
        return self.marks.get((), Mark(1, 1))

    def key_mark(self, path: tuple) -> Mark:
        """The position of the key that holds ``path`` (falls back to the value's position)."""
        m = self.key_marks.get(tuple(path))
        return m if m is not None else self.mark(path)

    def text_offset_mark(self, path: tuple, offset: int) -> Mark:
        """Position of character ``offset`` inside the string scalar at ``path`` (exact for one-line scalars)."""
        m = self.mark(path)
        if tuple(path) in self.multiline:
            return m
        extra = 1 if tuple(path) in self.quoted else 0
        return Mark(m.line, m.col + extra + offset)


class LoadError(Exception):
    """The file cannot be loaded at all (unreadable, too big, not YAML): one problem."""

    def __init__(self, mark: Mark, message: str):
        super().__init__(message)
        self.problem = Problem(mark, message)


def _mk(node_mark: Any) -> Mark:
    return Mark(node_mark.line + 1, node_mark.column + 1)


def read_text(path: str | Path, max_bytes: int = MAX_BYTES) -> str:
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise LoadError(Mark(1, 1), "no such file") from None
    except OSError as exc:
        raise LoadError(Mark(1, 1), f"cannot read the file: {exc.strerror}") from None
    if p.is_dir():
        raise LoadError(Mark(1, 1), "is a folder, not a recipe file")
    if size > max_bytes:
        raise LoadError(Mark(1, 1), f"the file is {size} bytes; recipes are limited to {max_bytes} bytes")
    try:
        with open(p, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise LoadError(Mark(1, 1), f"cannot read the file: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise LoadError(Mark(1, 1), f"the file is over {max_bytes} bytes; recipes are limited to that")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        text = raw[: exc.start].decode("utf-8", "replace")
        line = text.count("\n") + 1
        col = len(text) - (text.rfind("\n") + 1) + 1
        raise LoadError(Mark(line, col), "the file is not UTF-8 text") from None


def load_file(path: str | Path, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> tuple[Doc, Problems]:
    """Read and load a recipe file; a file that cannot be parsed raises :class:`LoadError`."""
    text = read_text(path, max_bytes)
    return load_text(text, str(path), max_nodes=max_nodes)


def load_text(text: str, path: str = "<recipe>", *, max_nodes: int = MAX_NODES,
              max_depth: int = MAX_DEPTH) -> tuple[Doc, Problems]:
    nodes = _compose(text)
    if not nodes:
        raise LoadError(Mark(1, 1), "the file is empty; a recipe starts with `version: 1`")
    if len(nodes) > 1:
        raise LoadError(_mk(nodes[1].start_mark), "a recipe is one YAML document; found more than one")
    problems = Problems()
    doc = Doc(path=path, data=None)
    builder = _Builder(doc, problems, max_nodes, max_depth)
    doc.data = builder.build(nodes[0], ())
    return doc, problems


def load_data(text: str, path: str = "<input>", *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> Any:
    """Plain values from a one-document YAML text (not a recipe: any structure), with the same safety as a
    recipe: no tags beyond plain values, no duplicate keys, bounded alias expansion and nesting. Dates stay
    text. An empty text gives None. The first error raises :class:`LoadError` (with its position)."""
    nodes = _compose(text)
    if not nodes:
        return None
    if len(nodes) > 1:
        raise LoadError(_mk(nodes[1].start_mark), "expected one YAML document; found more than one")
    problems = Problems()
    doc = Doc(path=path, data=None)
    data = _Builder(doc, problems, max_nodes, max_depth).build(nodes[0], ())
    errors = sorted(problems.errors, key=lambda p: (p.mark.line, p.mark.col))
    if errors:
        raise LoadError(errors[0].mark, errors[0].message)
    return data


def too_deep(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """True when lists/mappings in ``value`` (e.g. decoded JSON) nest deeper than ``max_depth``; iterative."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            items = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((x, depth + 1) for x in items if isinstance(x, (dict, list)))
    return False


def _compose(text: str) -> list[Any]:
    """The YAML documents of ``text`` as nodes (no objects built); a parse error raises :class:`LoadError`."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
    try:
        try:
            nodes = list(yaml.compose_all(text, Loader=loader_cls))
        except yaml.MarkedYAMLError:
            if loader_cls is yaml.SafeLoader:
                raise
            # the pure-Python parser points at the problem more precisely than libyaml: ask it where
            nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _mk(mark) if mark is not None else Mark(1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        raise LoadError(where, f"invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise LoadError(Mark(1, 1), f"invalid YAML: {exc}") from None
    except RecursionError:  # the pure-Python composer recurses once per level
        raise LoadError(Mark(1, 1), f"invalid YAML: nested more than {MAX_DEPTH} levels deep") from None
    return [n for n in nodes if n is not None]


class _TooBig(Exception):
    pass


class _TooDeep(Exception):
    def __init__(self, node: Any):
        super().__init__()
        self.node = node


class _Builder:
    def __init__(self, doc: Doc, problems: Problems, max_nodes: int, max_depth: int = MAX_DEPTH):
        import yaml

        self.yaml = yaml
        self.doc = doc
        self.problems = problems
        self.max_nodes = max_nodes
        self.max_depth = max_depth
        self.count = 0
        self.stack: set[int] = set()
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: Any, path: tuple) -> Any:
        try:
            return self._node(node, path)
        except _TooBig:
            raise LoadError(_mk(node.start_mark),
                            f"the document expands to more than {self.max_nodes} values (aliases nested too "
                            "deeply?); refused") from None
        except _TooDeep as exc:
            raise LoadError(_mk(exc.node.start_mark),
                            f"lists and mappings are nested more than {self.max_depth} levels deep; refused") from None
        except RecursionError:  # e.g. a long chain of merge keys (<<) pointing at each other
            raise LoadError(_mk(node.start_mark), "the document is nested too deeply; refused") from None

    def _node(self, node: Any, path: tuple) -> Any:
        y = self.yaml
        self.count += 1
        if self.count > self.max_nodes:
            raise _TooBig()
        if len(self.stack) >= self.max_depth and not isinstance(node, y.ScalarNode):
            raise _TooDeep(node)
        mark = _mk(node.start_mark)
        self.doc.marks[path] = mark
        if id(node) in self.stack:
            self.problems.error(mark, "a recursive alias (a value that contains itself) is not allowed")
            return None
        if isinstance(node, y.ScalarNode):
            return self._scalar(node, path, mark)
        tag = node.tag
        if isinstance(node, y.SequenceNode):
            if tag != _STD + "seq":
                self._bad_tag(mark, tag)
            self.stack.add(id(node))
            try:
                return [self._node(item, path + (i,)) for i, item in enumerate(node.value)]
            finally:
                self.stack.discard(id(node))
        if isinstance(node, y.MappingNode):
            if tag != _STD + "map":
                self._bad_tag(mark, tag)
            self.stack.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self.stack.discard(id(node))
        self.problems.error(mark, "unsupported YAML node")  # pragma: no cover
        return None

    def _bad_tag(self, mark: Mark, tag: str) -> None:
        shown = tag.replace(_STD, "!!") if tag.startswith(_STD) else tag
        self.problems.error(mark, f"the tag {shown} is not allowed: recipes use plain YAML values only "
                                  "(no custom or language-specific tags)")

    def _scalar(self, node: Any, path: tuple, mark: Mark) -> Any:
        tag = node.tag
        text = node.value
        if tag not in _ALLOWED_SCALAR_TAGS:
            self._bad_tag(mark, tag)
            return text
        if node.style in ("'", '"'):
            if "\n" not in text and node.start_mark.line == node.end_mark.line:
                self.doc.quoted.add(path)
            else:
                self.doc.multiline.add(path)
        elif node.style in ("|", ">") or node.start_mark.line != node.end_mark.line:
            self.doc.multiline.add(path)
        if tag == _STD + "str":
            return text
        if tag == _STD + "timestamp":
            # A date-like plain scalar stays the text it was written as.
            return text
        c = self.constructor
        try:
            if tag == _STD + "null":
                return None
            if tag == _STD + "bool":
                value = c.construct_yaml_bool(node)
                self.doc.scalars[path] = Scalar(text, trap=text.lower() not in _BOOL_12)
                return value
            if tag == _STD + "int":
                value = c.construct_yaml_int(node)
                self.doc.scalars[path] = Scalar(text, trap=bool(_INT_TRAP.match(text)))
                return value
            if tag == _STD + "float":
                value = c.construct_yaml_float(node)
                self.doc.scalars[path] = Scalar(text, trap=bool(_FLOAT_TRAP.match(text)))
                return value
        except (ValueError, self.yaml.YAMLError):
            self.problems.error(mark, f"cannot read the value {text!r}")
            return text
        return text  # pragma: no cover

    def _mapping(self, node: Any, path: tuple) -> dict:
        y = self.yaml
        out: dict = {}
        explicit: set = set()
        pairs = list(node.value)
        # Merge keys (<<) first: keys written in this mapping override merged ones.
        for key_node, value_node in pairs:
            if isinstance(key_node, y.ScalarNode) and key_node.tag == _STD + "merge":
                kmark = _mk(key_node.start_mark)
                sources = value_node.value if isinstance(value_node, y.SequenceNode) else [value_node]
                for src in sources:
                    if not isinstance(src, y.MappingNode):
                        self.problems.error(kmark, "a merge key (<<) takes a mapping or a list of mappings")
                        continue
                    for k, v in self._mapping(src, path).items():
                        out.setdefault(k, v)
        for key_node, value_node in pairs:
            kmark = _mk(key_node.start_mark)
            if isinstance(key_node, y.ScalarNode) and key_node.tag == _STD + "merge":
                continue
            if not isinstance(key_node, y.ScalarNode):
                self.problems.error(kmark, "a mapping key must be a plain value, not a list or mapping")
                continue
            if key_node.tag not in _ALLOWED_SCALAR_TAGS:
                self._bad_tag(kmark, key_node.tag)
            # keys are names: keep what was written (`no:` stays "no", `1.5:` stays "1.5")
            key = key_node.value
            if key in explicit:
                first = self.doc.key_marks.get(path + (key,))
                where = f" (first at line {first.line})" if first else ""
                self.problems.error(kmark, f"duplicate key {key!r}{where}")
                continue
            explicit.add(key)
            self.doc.key_marks[path + (key,)] = kmark
            out[key] = self._node(value_node, path + (key,))
        return out
