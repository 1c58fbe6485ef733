"""Declared means tested: the dependency ranges in pyproject.toml are the ones CI installs and runs on."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sogni_cli"
tomllib = pytest.importorskip("tomllib")

#: import name -> distribution name, where they differ
DIST_OF = {"yaml": "pyyaml", "PIL": "pillow"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _name_and_lower(req: str) -> tuple[str, str | None]:
    name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower()
    m = re.search(r">=\s*([0-9][^,;\s]*)", req)
    return name, m.group(1) if m else None


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "lowest.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _same_version(a: str, b: str) -> bool:
    def parts(v: str) -> list[int]:
        out = [int(x) for x in re.findall(r"\d+", v)]
        while out and out[-1] == 0:
            out.pop()
        return out
    return parts(a) == parts(b)


def test_every_lower_bound_is_pinned_in_the_lowest_versions_file():
    project = _project()
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    pins = _pins()
    for req in reqs:
        name, lower = _name_and_lower(req)
        assert lower is not None, f"{req}: every dependency needs a lower bound"
        assert name in pins, f"{name} has no pin in .ci/lowest.txt"
        assert _same_version(pins[name], lower), f"{name}: pyproject says >={lower}, .ci/lowest.txt pins {pins[name]}"


_TREES: dict[Path, ast.AST] = {}


def _imports() -> list[tuple[Path, ast.AST, str]]:
    found: list[tuple[Path, ast.AST, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = _TREES.setdefault(path, ast.parse(path.read_text(encoding="utf-8")))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, node, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((path, node, node.module))
    return found


def test_every_imported_package_is_declared():
    declared = {_name_and_lower(r)[0] for r in _project()["dependencies"]}
    missing = set()
    for path, _node, module in _imports():
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in ("sogni_cli", "__future__"):
            continue
        if top in ("fcntl", "msvcrt", "winreg"):  # platform modules of the standard library
            continue
        if DIST_OF.get(top, top).lower() not in declared:
            missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def _guarded(tree: ast.AST, target: ast.AST) -> bool:
    """Whether ``target`` sits in the body of a ``try`` that handles ImportError."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(target is n for stmt in node.body for n in ast.walk(stmt)):
            for handler in node.handlers:
                names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
                if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
                    return True
    return False


def test_private_modules_of_dependencies_are_imported_only_behind_a_guard():
    unguarded = []
    for path, node, module in _imports():
        top, *rest = module.split(".")
        if top in sys.stdlib_module_names or top == "sogni_cli" or not any(p.startswith("_") for p in rest):
            continue
        if not _guarded(_TREES[path], node):
            unguarded.append(f"{module} in {path.relative_to(ROOT)}:{node.lineno}")
    assert not unguarded, f"unguarded imports of private modules: {unguarded}"


def test_ci_lints_type_checks_and_runs_the_unit_suite_on_the_lowest_versions():
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in run
    assert "ruff check" in run and "mypy" in run
    assert "-c .ci/lowest.txt" in run and '-m "not e2e"' in run
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert {"ruff", "mypy"} <= set(config["tool"])
    dev = {_name_and_lower(r)[0] for r in config["project"]["optional-dependencies"]["dev"]}
    assert {"ruff", "mypy"} <= dev
