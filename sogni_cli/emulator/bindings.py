"""How a tool call addresses media: ``dependsOn`` bindings and index arguments, checked as strictly as the API.

Uploads reach a workflow step as request ``media_references`` bound with ``dependsOn`` entries whose
``sourceStepId`` is ``$input_media``: ``sourceArtifactIndex`` (0-based position in ``media_references``) or
``sourceArtifactId`` (the reference's ``id``) picks the upload, ``mediaType`` must be its kind, and the
``transform`` must fit it (``image_index`` fills an image index argument, ``image_url`` a URL argument, ...).

Index arguments follow each argument's own convention from the catalogue (``uploadIndex``): ``negative``
(uploads are -1, -2, ...; 0, 1, ... are results made earlier), ``zero-based`` (uploads are 0, 1, ...) or
``either`` (0-based, with -1 for the first upload tolerated). A wrong index is a 400.
"""

from __future__ import annotations

from typing import Any

from .common import ApiFailure

KINDS = ("image", "video", "audio")
INDEX_TRANSFORMS = {"image_index": "image", "video_index": "video", "audio_index": "audio"}
URL_TRANSFORMS = {"image_url": "image", "video_url": "video", "audio_url": "audio"}
ANY_KIND_TRANSFORMS = {"artifact_url", "artifact_data_uri", "asset_ref"}


def _bad(message: str, envelope: str = "sogni") -> ApiFailure:
    if envelope == "openai":
        return ApiFailure(400, message, code="invalid_parameter", type="invalid_request_error", envelope="openai")
    return ApiFailure(400, message, code="PARAMETER_INVALID", envelope="sogni")


def ref_kind(ref: dict[str, Any]) -> str | None:
    kind = ref.get("kind") or ref.get("mediaType") or ref.get("media_type")
    if kind in KINDS:
        return kind
    mime = str(ref.get("mime_type") or ref.get("mimeType") or "")
    head = mime.split("/", 1)[0]
    return head if head in KINDS else None


def upload_counts(refs: list[dict[str, Any]], images: int = 0) -> dict[str, int]:
    counts = {k: 0 for k in KINDS}
    counts["image"] += images
    for ref in refs:
        kind = ref_kind(ref) if isinstance(ref, dict) else None
        if kind:
            counts[kind] += 1
    return counts


def _arg_kind(tool: Any, arg: str) -> str | None:
    for kind, name in (getattr(tool, "inputs", None) or {}).items():
        if name == arg:
            return kind
    low = arg.lower()
    for kind in KINDS:
        if kind in low:
            return kind
    return None


def check_indices(tool: Any, args: dict[str, Any], counts: dict[str, int], results: dict[str, int],
                  where: str, envelope: str = "sogni") -> None:
    """Check every index argument of ``args`` against the uploads (``counts``) and earlier results."""
    for arg, value in args.items():
        spec = tool.params.get(arg) if isinstance(tool.params, dict) else None
        conv = spec.get("uploadIndex") if isinstance(spec, dict) else None
        if conv is None:
            continue
        kind = _arg_kind(tool, arg) or "image"
        n, made = counts.get(kind, 0), results.get(kind, 0)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool) or not isinstance(v, int):
                continue  # the type check reports it
            label = f"{where}: {tool.name}.{arg}={v}"
            if conv == "zero-based":
                if v < 0:
                    raise _bad(f"{label}: this index is 0-based (0 is the first uploaded {kind})", envelope)
                if v >= n:
                    raise _bad(f"{label}: there {'is' if n == 1 else 'are'} {n} uploaded {kind}(s) (0 is the first)",
                               envelope)
            elif conv == "either":
                if (v < 0 and -v > n) or (v >= 0 and v >= n):
                    raise _bad(f"{label}: there {'is' if n == 1 else 'are'} {n} uploaded {kind}(s) "
                               "(0 is the first; -1 is accepted for it too)", envelope)
            else:
                if v < 0 and -v > n:
                    raise _bad(f"{label}: there {'is' if n == 1 else 'are'} {n} uploaded {kind}(s) "
                               "(-1 is the first upload)", envelope)
                if v >= 0 and v >= made:
                    raise _bad(f"{label}: there {'is' if made == 1 else 'are'} {made} earlier {kind} result(s); "
                               "uploads use negative indices (-1 is the first upload)", envelope)


def check_depends(tool: Any, sid: str, args: dict[str, Any], deps: list[Any], refs: list[dict[str, Any]],
                  earlier: set[str], where: str) -> None:
    """Check a step's ``dependsOn`` entries (shape, sources, transforms, targets)."""
    from .workflows import TRANSFORMS

    ids = {r.get("id"): i for i, r in enumerate(refs) if isinstance(r, dict) and r.get("id")}
    params = tool.params if isinstance(tool.params, dict) else {}
    for j, dep in enumerate(deps):
        w = f"{where}.dependsOn[{j}]"
        if not isinstance(dep, dict):
            raise _bad(f"{w} must be an object")
        src = dep.get("sourceStepId")
        target = dep.get("targetArgument")
        transform = dep.get("transform")
        if src != "$input_media" and src not in earlier:
            raise _bad(f"{w}.sourceStepId must name an earlier step or $input_media")
        if not isinstance(target, str):
            raise _bad(f"{w}.targetArgument is required")
        if transform not in TRANSFORMS:
            raise _bad(f"{w}.transform must be one of {sorted(TRANSFORMS)}")
        if target in args:
            raise _bad(f"{w}: {target} is set both in arguments and by dependsOn")
        if params and target not in params and not getattr(tool, "open_params", False):
            raise _bad(f"{w}: {tool.name} has no argument {target!r}")
        if src != "$input_media":
            continue
        if not refs:
            raise _bad(f"{w}: $input_media is empty (the request has no media_references)")
        pos = dep.get("sourceArtifactIndex")
        if "sourceArtifactId" in dep:
            if dep["sourceArtifactId"] not in ids:
                raise _bad(f"{w}.sourceArtifactId {dep['sourceArtifactId']!r} names no media reference")
            pos = ids[dep["sourceArtifactId"]]
        if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < len(refs):
            raise _bad(f"{w}.sourceArtifactIndex must be 0..{len(refs) - 1} (the position in media_references)")
        kind = ref_kind(refs[pos])
        if dep.get("mediaType") is not None and dep["mediaType"] != kind:
            raise _bad(f"{w}.mediaType is {dep['mediaType']!r} but media_references[{pos}] is {kind or 'unknown'}")
        fits = INDEX_TRANSFORMS.get(transform) or URL_TRANSFORMS.get(transform)
        if transform not in ANY_KIND_TRANSFORMS and fits != kind:
            raise _bad(f"{w}.transform {transform} does not fit a {kind or 'media'} upload")
        if transform in INDEX_TRANSFORMS and _arg_kind(tool, target) != kind:
            raise _bad(f"{w}: {tool.name}.{target} does not take a {kind} index")
    _ = sid
