"""What a media job will write, as far as it is known before anything is sent: the artifacts it asks for
(:func:`planned_refs`), the extensions its tool may give (:data:`MEDIA_EXTS`), whether its output folder can
be written (:func:`check_output_paths`), and which of its files exist already (:func:`existing_outputs`,
for ``--on-exists skip``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.errors import UsageError

FORMAT_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
               "mp4": "video/mp4", "mov": "video/quicktime", "wav": "audio/wav", "mp3": "audio/mpeg",
               "flac": "audio/flac"}


def _num_variations(args: dict[str, Any]) -> int:
    n = args.get("numberOfVariations", 1)
    return int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) and n >= 1 else 1


def _model_of(args: dict[str, Any]) -> str | None:
    for key in ("model", "videoModel"):
        if isinstance(args.get(key), str):
            return args[key]
    return None


def _prompt_of(args: dict[str, Any]) -> str | None:
    for key in ("prompt", "description", "brief", "imagePrompt"):
        if isinstance(args.get(key), str):
            return args[key]
    return None


def _seed_of(args: dict[str, Any], art: dict[str, Any] | None = None) -> int | None:
    for src in ((art or {}).get("metadata"), art, args):
        if isinstance(src, dict) and isinstance(src.get("seed"), int) and not isinstance(src.get("seed"), bool):
            return src["seed"]
    return None


def planned_refs(job: Any) -> list[Any]:
    """Artifact refs as far as they are known before the request (for ``--on-exists error``): one per
    variation, with the content type from an explicit ``outputFormat`` (else unknown → not checked)."""
    from ..media.downloads import ArtifactRef

    args = job.arguments
    fmt = args.get("outputFormat")
    ctype = FORMAT_MIME.get(str(fmt).lower()) if isinstance(fmt, str) else None
    n = _num_variations(args)
    return [ArtifactRef(url="", index=i + 1, count=n, tool=job.tool, prompt=_prompt_of(args), seed=_seed_of(args),
                        model=_model_of(args), arguments=args, content_type=ctype) for i in range(n)]


# Extensions a tool's output may get, by what it makes: for checks made before the server has answered.
MEDIA_EXTS = {"image": ("png", "jpg", "webp", "gif"), "video": ("mp4", "mov", "webm"),
              "audio": ("wav", "mp3", "flac", "m4a", "ogg"), "model": ("glb",)}


def check_output_paths(output_dir: Path, manifest: Path | None = None, root: Path | None = None) -> None:
    """The output folder can be made and written, no folder between ``root`` and it is a link, and the
    manifest is a file: checked before paying."""
    if root is not None:
        from ..core.filewrite import safe_folder

        safe_folder(Path(root), output_dir, create=False)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"The output folder {output_dir} is a file.", hint="Give a folder with -o/--output-dir.")
    if output_dir.is_dir() and not os.access(output_dir, os.W_OK | os.X_OK):
        raise UsageError(f"The output folder {output_dir} is not writable.")
    if manifest is not None:
        manifest = Path(manifest)
        if manifest.is_dir():
            raise UsageError(f"The manifest {manifest} is a folder; give a file name (JSON lines are appended).")
        parent = manifest.parent
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"Cannot write the manifest {manifest}: {parent} is not a folder.")


def _with_type(ref: Any, mime: str) -> Any:
    from dataclasses import replace

    return replace(ref, content_type=mime, url=f"https://planned.invalid/x.{mime.rsplit('/', 1)[-1]}")


def existing_outputs(job: Any, output_dir: Path, name: str | None) -> list[Any] | None:
    """For ``--on-exists skip``: the files already there for every output the job would make, or None
    when any is missing (or its name is only known once the server answers)."""
    from ..catalog import load
    from ..media import naming
    from ..media.downloads import SavedFile

    used = naming.template_fields(name)
    if "workflow" in used:
        return None
    tool = load().get(job.tool)
    exts = MEDIA_EXTS.get(getattr(tool, "media", None) or "", ()) or ("png",)
    found: list[Any] = []
    for ref in planned_refs(job):
        if "seed" in used and ref.seed is None:
            return None
        fmt = ref.content_type and naming.ext_for_content_type(ref.content_type)
        hit = None
        for ext in ([fmt] if fmt else exts):
            fields = {"index": ref.index, "count": ref.count, "tool": ref.tool or "",
                      "slug": naming.slugify(ref.prompt) or naming.slugify(ref.tool) or "sogni",
                      "seed": "" if ref.seed is None else ref.seed, "workflow": "",
                      "date": _today(), "ext": ext}
            path = naming.safe_join(Path(output_dir), naming.render_name(name, fields))
            if path.is_file() and not path.is_symlink():
                hit = path
                break
        if hit is None:
            return None
        found.append(SavedFile(ref=ref, path=hit, bytes=hit.stat().st_size, sha256=None, content_type=None,
                               skipped=True, present=True))
    return found


def _today() -> str:
    import datetime as _dt

    return _dt.date.today().isoformat()
