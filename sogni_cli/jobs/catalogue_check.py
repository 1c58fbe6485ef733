"""Refuse, before paying, a model or LoRA the cached live catalogue says cannot work: an unknown model, an
unknown LoRA, a LoRA the chosen model cannot load, a strength outside the LoRA's range, too many LoRAs.

Only the cache is read (``sogni models`` / ``sogni loras`` fill it): no network call, and nothing is checked
when there is no cache. The API drops a LoRA its model cannot load without an error, so this check is what
stops an image being paid for without it.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ..core.errors import UsageError

__all__ = ["check_job", "problems_for"]


def _kind_of(job: Any) -> str | None:
    from .. import catalog

    tool = catalog.load().get(job.tool) if getattr(job, "tool", None) else None
    media = getattr(tool, "media", None) or getattr(job, "media", None)
    return media if media in ("image", "video", "audio") else None


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _g(v: float | None, missing: str) -> str:
    return missing if v is None else f"{v:g}"


def problems_for(job: Any, cache: dict[str, Any]) -> list[str]:
    """Every problem the cache can tell about ``job`` (a built media job)."""
    args = getattr(job, "arguments", None) or {}
    if not isinstance(args, dict):
        return []
    problems: list[str] = []
    kind = _kind_of(job)
    model_key = "videoModel" if "videoModel" in args else "model"
    model = args.get(model_key) if isinstance(args.get(model_key), str) else None
    entry = ((cache.get("models") or {}).get(kind) or {}) if kind else {}
    known = [str(m.get("id")) for m in entry.get("items") or [] if isinstance(m, dict) and m.get("id")]
    if model and known and model not in known:
        problems.append(f"'{model_key}': no {kind} model '{model}' in the catalogue{_suggest(model, known)} "
                        "(see `sogni models --kind " + str(kind) + "`)")
    names = args.get("loras") if isinstance(args.get("loras"), list) else []
    lentry = cache.get("loras") or {}
    rows = {str(r.get("loraId")): r for r in lentry.get("items") or [] if isinstance(r, dict) and r.get("loraId")}
    by_name = {str(r.get("name")).lower(): r for r in rows.values() if r.get("name")}
    if not names or not rows:
        return problems
    constraints = lentry.get("constraints") if isinstance(lentry.get("constraints"), dict) else {}
    most = constraints.get("maxPerRequest")
    if isinstance(most, int) and len(names) > most:
        problems.append(f"'loras': at most {most} LoRAs per request, got {len(names)}")
    strengths = args.get("loraStrengths") if isinstance(args.get("loraStrengths"), list) else []
    for i, name in enumerate(names):
        row = rows.get(str(name)) or by_name.get(str(name).lower())
        if row is None:
            problems.append(f"'loras': unknown LoRA '{name}'{_suggest(str(name), list(rows))} "
                            "(see `sogni loras`)")
            continue
        ok_models = [str(m) for m in row.get("modelIds") or []]
        if model and ok_models and model not in ok_models:
            problems.append(f"'loras': LoRA '{name}' does not work with model '{model}' (it works with: "
                            f"{', '.join(ok_models)}); did you mean one of those models?")
        value = _num(strengths[i]) if i < len(strengths) else None
        lo = _num(row.get("minStrength"))
        hi = _num(row.get("maxStrength"))
        lo = lo if lo is not None else _num(constraints.get("minStrength"))
        hi = hi if hi is not None else _num(constraints.get("maxStrength"))
        if value is not None and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            problems.append(f"'loras': strength {value:g} for LoRA '{name}' is outside its range "
                            f"{_g(lo, '-inf')}..{_g(hi, 'inf')}")
    return problems


def check_job(job: Any, config_dir: Path | None = None) -> None:
    """Raise UsageError (exit 2) listing what the cached catalogue refuses; silent without a cache."""
    if getattr(job, "route", "workflow") != "workflow" or getattr(job, "kind", None) == "template":
        return
    from ..api.catalogues import load_cache
    from ..core.config import config_dir as default_dir

    try:
        folder = config_dir if config_dir is not None else default_dir()
    except Exception:
        return
    cache = load_cache(folder)
    if not cache:
        return
    problems = problems_for(job, cache)
    if problems:
        tool = getattr(job, "tool", None) or "job"
        raise UsageError(f"Invalid {tool} request: {problems[0]}" if len(problems) == 1 else
                         f"Invalid {tool} request:\n  - " + "\n  - ".join(problems),
                         hint="The catalogue cache says so; refresh it with `sogni models --refresh` and "
                              "`sogni loras --refresh`.")
