"""``--shard K/N``: a deterministic split of a recipe's jobs over N machines.

Jobs are grouped into connected components of the dependency graph (a job and everything it needs, and
everything that needs it, stay together). Each component goes to shard ``1 + sha256(root) mod N``, where the
root is the smallest instance id in the component, so the split depends only on the recipe, not on the
machine, the order of the run or the other components.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..core.errors import UsageError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    m = _SHARD.match(text or "")
    if not m:
        raise UsageError(f"--shard expects K/N (e.g. 2/4), got {text!r}.")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise UsageError(f"--shard {text}: N must be at least 1.")
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be between 1 and {n}.", hint="Shards are numbered 1..N.")
    return k, n


def components(uids: list[str], deps: dict[str, list[str]]) -> dict[str, str]:
    """uid -> the root (smallest uid) of its connected component."""
    parent = {u: u for u in uids}

    def find(u: str) -> str:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for u in uids:
        for d in deps.get(u, []):
            if d not in parent:
                continue
            a, b = find(u), find(d)
            if a != b:
                if b < a:
                    a, b = b, a
                parent[b] = a
    return {u: find(u) for u in uids}


def shard_of(root: str, n: int) -> int:
    digest = hashlib.sha256(root.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def assign(uids: list[str], deps: dict[str, list[str]], n: int) -> dict[str, int]:
    roots = components(uids, deps)
    return {u: shard_of(roots[u], n) for u in uids}


def check_integrity(assignment: dict[str, int], deps: dict[str, list[str]]) -> list[str]:
    """Every dependency that crosses shards (empty when the split keeps needs together)."""
    bad = []
    for u, ds in deps.items():
        for d in ds:
            if d in assignment and u in assignment and assignment[d] != assignment[u]:
                bad.append(f"{u} (shard {assignment[u]}) needs {d} (shard {assignment[d]})")
    return bad


def apply_shard(plan: Any, shard: tuple[int, int]) -> None:
    """Keep only the plan's jobs of shard K (each job is tagged with its shard)."""
    k, n = shard
    uids = [pj.uid for pj in plan.jobs]
    deps = {pj.uid: list(pj.inst.deps) for pj in plan.jobs}
    assignment = assign(uids, deps, n)
    bad = check_integrity(assignment, deps)
    if bad:
        raise UsageError("A job needs a job on another shard: " + "; ".join(bad[:5]))
    for pj in plan.jobs:
        pj.shard = assignment[pj.uid]
    plan.jobs = [pj for pj in plan.jobs if pj.shard == k]
    plan.by_uid = {pj.uid: pj for pj in plan.jobs}
