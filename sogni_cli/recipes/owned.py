"""Folders are owned: a file a run record says one recipe job saved is not replaced by another's output.

Before anything is sent, the names each job of this run can write (every extension its tool may give, for
each variation; its ``save`` file) are compared with the files the output folder's run records list. A
name recorded by another recipe or another job, still on disk, that this run would overwrite is a clash:
the run stops with every clash listed (exit 2), unless ``--on-exists overwrite`` was given on the command
line. Names that are only known once the server answers (``{workflow}``, a ``{seed}`` the server picks, a
prompt that an earlier job writes) cannot clash in advance and are left out.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path, PurePosixPath
from typing import Iterable

from ..core.errors import UsageError
from .plan import PlannedJob
from .record import owners

EXTS = {"image": ("png", "jpg", "jpeg", "webp", "gif"), "video": ("mp4", "mov", "webm"),
        "audio": ("wav", "mp3", "flac", "m4a", "ogg"), "model": ("glb",)}


def planned_targets(pj: PlannedJob) -> list[str]:
    """The paths (relative to the output folder, posix) this job may write, as far as known in advance."""
    from ..catalog import load
    from ..media import naming

    inst = pj.inst
    base = PurePosixPath(inst.output) if inst.output else PurePosixPath(".")
    out: list[str] = []
    if inst.save:
        out.append(PurePosixPath(inst.save).as_posix())
    req = pj.request or {}
    if pj.kind == "chat" or req.get("media") == "text" or str(req.get("url", "")).endswith("/tools/execute"):
        return out
    tool = load().get(str(req.get("tool") or ""))
    exts = EXTS.get(getattr(tool, "media", None) or "", EXTS["image"])
    used = naming.template_fields(inst.filename)
    fields = pj.fields
    prompt = fields.get("prompt") if pj.kind != "speech" else fields.get("text")
    seed = fields.get("seed")
    if "workflow" in used or ("slug" in used and not isinstance(prompt, str)) or \
            ("seed" in used and not isinstance(seed, int)):
        return out
    count = max(1, int(pj.media or 1))
    for i in range(1, count + 1):
        for ext in exts:
            name = naming.render_name(inst.filename, {
                "index": i, "count": count, "tool": getattr(tool, "name", "") or "",
                "slug": naming.slugify(prompt if isinstance(prompt, str) else None) or "sogni",
                "seed": seed if isinstance(seed, int) else "", "workflow": "", "date": _dt.date.today().isoformat(),
                "ext": ext})
            out.append((base / name).as_posix().removeprefix("./"))
    return out


def check_clashes(recipe: str, jobs: Iterable[PlannedJob], output_dir: Path, on_exists: dict[str, str],
                  overwrite_given: bool) -> None:
    """UsageError listing every file of another recipe or job that this run would replace."""
    if overwrite_given:
        return
    owned = owners(output_dir)
    if not owned:
        return
    clashes: list[str] = []
    for pj in jobs:
        if on_exists.get(pj.uid, "overwrite") != "overwrite":
            continue  # suffix, skip and error never replace a file
        for rel in planned_targets(pj):
            owner = owned.get(rel)
            if owner is None or owner == (recipe, pj.uid):
                continue
            if (Path(output_dir) / rel).exists():
                clashes.append(f"{rel}: saved by recipe {owner[0]!r} job {owner[1]}; job {pj.uid} of "
                               f"{recipe!r} would replace it")
    if clashes:
        shown = clashes[:20] + ([f"… and {len(clashes) - 20} more"] if len(clashes) > 20 else [])
        raise UsageError(f"{len(clashes)} file(s) in {output_dir} belong to another recipe or job; nothing "
                         "was sent:\n  " + "\n  ".join(shown),
                         hint="Use another -o, change `filename`/`output`, --on-exists suffix, or "
                              "--on-exists overwrite to replace them.")

