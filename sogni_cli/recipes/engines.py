"""``--shard auto``: the shard index and count, read where a batch engine puts them.

Engines number their parallel tasks from 0; ``sogni`` numbers shards from 1 (``--shard 1/4`` is the first
of four). So an engine index ``i`` of ``n`` is shard ``i + 1`` of ``n`` here, and nothing else changes.

| engine | index | count |
|---|---|---|
| GitHub Actions | ``SOGNI_SHARD_INDEX`` (set to ``${{ strategy.job-index }}``) | ``SOGNI_SHARD_COUNT`` (``${{ strategy.job-total }}``) |
| Kubernetes Indexed Job | ``JOB_COMPLETION_INDEX`` | ``SOGNI_SHARD_COUNT`` or ``--shards N`` (Kubernetes does not export it) |
| AWS Batch array job | ``AWS_BATCH_JOB_ARRAY_INDEX`` | ``AWS_BATCH_JOB_ARRAY_SIZE`` |
| Cloud Run job | ``CLOUD_RUN_TASK_INDEX`` | ``CLOUD_RUN_TASK_COUNT`` |

GitHub Actions exports no matrix index of its own, so its shard is passed explicitly, and only counts
when ``GITHUB_ACTIONS`` is ``true``. ``SOGNI_SHARD=K/N`` (1-based, like ``--shard``) is read when no
``--shard`` is given; ``SOGNI_SHARD=auto`` asks for detection.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

from ..core.errors import UsageError

_INT = re.compile(r"^\s*\d{1,9}\s*$")


@dataclass(frozen=True)
class Engine:
    key: str
    title: str
    index_var: str
    count_var: str | None  # None: the count comes from SOGNI_SHARD_COUNT or --shards
    marker: tuple[str, str] | None = None  # (variable, value) that must also be set


ENGINES: tuple[Engine, ...] = (
    Engine("github", "GitHub Actions", "SOGNI_SHARD_INDEX", "SOGNI_SHARD_COUNT", ("GITHUB_ACTIONS", "true")),
    Engine("kubernetes", "Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", None),
    Engine("aws-batch", "AWS Batch array job", "AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"),
    Engine("cloud-run", "Cloud Run job", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT"),
)


@dataclass(frozen=True)
class Found:
    engine: Engine
    index: int  # 0-based, as the engine numbers it
    count: int
    source: str  # the variables it came from, for the message

    @property
    def shard(self) -> tuple[int, int]:
        return self.index + 1, self.count


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "")
    if not _INT.match(raw):
        raise UsageError(f"--shard auto: {name}={raw!r} is not a whole number.")
    return int(raw)


def _found(e: Engine, env: Mapping[str, str], shards: int | None) -> Found | None:
    if e.index_var not in env:
        return None
    if e.marker and env.get(e.marker[0], "").strip().lower() != e.marker[1]:
        return None
    index = _int(env, e.index_var)
    src = f"{e.index_var}={index}"
    if e.count_var:
        if e.count_var not in env:
            raise UsageError(f"--shard auto: {e.title}: {e.index_var} is set but {e.count_var} is not.")
        count = _int(env, e.count_var)
        src += f", {e.count_var}={count}"
    elif "SOGNI_SHARD_COUNT" in env:
        count = _int(env, "SOGNI_SHARD_COUNT")
        src += f", SOGNI_SHARD_COUNT={count}"
    elif shards is not None:
        count = shards
        src += f", --shards {count}"
    else:
        raise UsageError(f"--shard auto: {e.title} gives the index ({e.index_var}) but not the count.",
                         hint="Set SOGNI_SHARD_COUNT to the Job's completions, or pass --shards N.")
    if count < 1:
        raise UsageError(f"--shard auto: {e.title}: the count must be at least 1, got {count}.")
    if index >= count:
        raise UsageError(f"--shard auto: {e.title}: index {index} is not below the count {count}.",
                         hint="Engines number tasks from 0 to count-1.")
    if shards is not None and count != shards:
        raise UsageError(f"--shard auto: {e.title} says {count} shards but --shards says {shards}.")
    return Found(e, index, count, src)


def detect(env: Mapping[str, str] | None = None, shards: int | None = None) -> Found:
    """The one engine in ``env``; UsageError (exit 2) when none is found or two disagree."""
    env = os.environ if env is None else env
    found = [f for f in (_found(e, env, shards) for e in ENGINES) if f is not None]
    if not found:
        names = ", ".join(e.index_var for e in ENGINES)
        raise UsageError("--shard auto: no batch engine found in the environment.",
                         hint=f"Looked for {names}; or pass --shard K/N.")
    first = found[0]
    for other in found[1:]:
        if other.shard != first.shard:
            raise UsageError(f"--shard auto: {first.engine.title} says shard {first.shard[0]}/{first.shard[1]} "
                             f"({first.source}) but {other.engine.title} says {other.shard[0]}/{other.shard[1]} "
                             f"({other.source}).", hint="Pass --shard K/N to choose.")
    return first


def resolve_shard(text: str | None, shards: int | None = None, env: Mapping[str, str] | None = None,
                  ) -> tuple[tuple[int, int] | None, str | None]:
    """``--shard`` (or ``SOGNI_SHARD``) as (K, N) and, for ``auto``, the line that says where it came from."""
    from .shard import parse_shard

    env = os.environ if env is None else env
    if text is None:
        text = env.get("SOGNI_SHARD") or None
        if text is None:
            if shards is not None:
                raise UsageError("--shards N goes with --shard auto.")
            return None, None
    if text.strip().lower() != "auto":
        sh = parse_shard(text)
        if shards is not None and shards != sh[1]:
            raise UsageError(f"--shard {text} and --shards {shards} disagree.")
        return sh, None
    if shards is not None and shards < 1:
        raise UsageError(f"--shards must be at least 1, got {shards}.")
    f = detect(env, shards)
    k, n = f.shard
    names = ", ".join(e.title for e in ENGINES if e is not f.engine and _quiet_found(e, env, shards, f))
    also = f" (and {names}, which agree)" if names else ""
    return f.shard, f"Shard {k}/{n} from {f.engine.title} ({f.source}){also}."


def _quiet_found(e: Engine, env: Mapping[str, str], shards: int | None, first: Found) -> bool:
    try:
        other = _found(e, env, shards)
    except UsageError:
        return False
    return other is not None and other.shard == first.shard
