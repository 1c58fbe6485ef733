"""Imports go one way between the parts of the package, including imports made inside functions.

Each part is a sub-package or a top-level module of ``sogni_cli``. A part may import only parts on a lower
layer (or its own); the layers below are the design, and the test fails on any import that runs back up,
whether it sits at the top of a file or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sogni_cli"

#: Lowest first. Parts on one line are one layer and must not form a circle among themselves.
LAYERS: list[set[str]] = [
    {"__init__"},
    {"core", "fastlane_table"},
    {"cli_errors"},
    {"catalog", "emulator"},
    {"api"},
    {"media"},
    {"jobs"},
    {"recipes"},
    {"render", "completion_shells"},
    {"commands"},
    {"app"},
    {"completion_gen", "fastlane"},
    {"__main__"},
]
LAYER_OF = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def _part(module: str) -> str:
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def _module_of(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _edges() -> list[tuple[str, str, str]]:
    """(importing part, imported part, where) for every import of one part by another."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module, is_pkg = _module_of(path)
        here = _part(module) if "." in module else "__init__"
        if path.parent == PACKAGE and not is_pkg:
            here = path.stem
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_pkg else module.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{alias.name}" for alias in node.names] if not node.module else [mod]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                if target != "sogni_cli" and not target.startswith("sogni_cli."):
                    continue
                there = _part(target)
                if (PACKAGE / f"{there}.py").exists() or (PACKAGE / there).is_dir():
                    pass
                else:  # `from sogni_cli import __version__` and friends: the package face
                    there = "__init__"
                if there != here:
                    found.append((here, there, f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"))
    return found


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_file() and p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts - set(LAYER_OF) == set()


def test_imports_never_run_back_up():
    upward = [f"{where}: {src} imports {dst}" for src, dst, where in _edges()
              if LAYER_OF[dst] >= LAYER_OF[src] and dst != src]
    assert upward == []


def test_an_import_inside_a_function_is_seen():
    """The checker sees imports made inside functions (the kind that would hide a circle)."""
    where = {w for src, dst, w in _edges() if src == "commands" and dst == "render"}
    nested = [w for w in where if w.startswith("sogni_cli/commands/_media.py")]
    assert nested, "commands/_media.py imports the progress display inside a function"
