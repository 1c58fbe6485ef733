"""Live catalogues: the models per kind (chat, image, video, audio) and the LoRAs, fetched from the API and
kept in ``<config dir>/catalogue-cache.json`` for a while (:data:`TTL`).

The cache lets the media commands and ``recipe validate`` refuse an unknown model or LoRA, a LoRA the
chosen model cannot load, or a strength out of range *before* paying, without a network call. It also
writes the plain name lists shell completion reads (``models-cache.txt``, ``loras-cache.txt``).

Routes: chat models ``GET /v1/models``; media models ``GET /api/v1/models/list`` with the tier limits of
``GET /api/v2/models/tiers``; LoRAs ``GET /v1/loras/comfy`` and (``--personal``) ``GET
/v1/loras/personal/catalog``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..core.errors import UsageError

KINDS = ("chat", "image", "video", "audio")
TTL = 24 * 3600.0
CACHE_FILE = "catalogue-cache.json"
MODEL_NAMES_FILE = "models-cache.txt"
LORA_NAMES_FILE = "loras-cache.txt"


def _data(body: Any) -> Any:
    if isinstance(body, dict) and "data" in body and isinstance(body["data"], (dict, list)):
        return body["data"]
    return body


# --------------------------------------------------------------------------------------------- fetching


def fetch_models(client: Any, kind: str) -> list[dict[str, Any]]:
    """The models of one kind: chat models as the API lists them; media models normalised to ``{id, name,
    kind, tier?, limits?}`` (the limits of the model's tier: sizes, steps, duration)."""
    if kind == "chat":
        items = _data(client.request("GET", "/v1/models"))
        items = items if isinstance(items, list) else []
        out = []
        for m in items:
            if isinstance(m, dict):
                mid = m.get("id") or m.get("modelId") or m.get("name")
                out.append(dict(m, id=str(mid)) if mid is not None else dict(m))
        return out
    items = _data(client.request("GET", "/api/v1/models/list"))
    tiers = _data(client.request("GET", "/api/v2/models/tiers"))
    items = items if isinstance(items, list) else []
    tiers = tiers if isinstance(tiers, dict) else {}
    out = []
    for m in items:
        if not isinstance(m, dict) or (m.get("media") or "image") != kind or not m.get("id"):
            continue
        entry: dict[str, Any] = {"id": str(m["id"]), "name": m.get("name"), "kind": kind}
        tier = m.get("tier")
        if isinstance(tier, str):
            entry["tier"] = tier
            limits = tiers.get(tier)
            if isinstance(limits, dict):
                entry["limits"] = {k: v for k, v in limits.items() if isinstance(v, dict)}
        out.append(entry)
    return out


def fetch_loras(client: Any, *, personal: bool = False) -> dict[str, Any]:
    """``{loras: [...], constraints: {...}}``; personal LoRAs are marked ``personal: true``."""
    data = _data(client.request("GET", "/v1/loras/comfy"))
    data = data if isinstance(data, dict) else {}
    rows = [dict(r) for r in data.get("loras") or [] if isinstance(r, dict) and r.get("loraId")]
    if personal:
        mine = _data(client.request("GET", "/v1/loras/personal/catalog"))
        for r in (mine.get("loras") if isinstance(mine, dict) else None) or []:
            if isinstance(r, dict) and r.get("loraId"):
                rows.append(dict(r, personal=True))
    constraints = data.get("constraints") if isinstance(data.get("constraints"), dict) else {}
    return {"loras": rows, "constraints": constraints}


# --------------------------------------------------------------------------------------------- cache


def cache_path(config_dir: Path) -> Path:
    return Path(config_dir) / CACHE_FILE


def load_cache(config_dir: Path | None) -> dict[str, Any]:
    """The cache as saved (empty when missing or unreadable)."""
    if config_dir is None:
        return {}
    try:
        data = json.loads(cache_path(config_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def fresh(entry: Any, ttl: float = TTL, now: float | None = None) -> bool:
    at = entry.get("at") if isinstance(entry, dict) else None
    return isinstance(at, (int, float)) and ((now if now is not None else time.time()) - at) < ttl


def _write(path: Path, text: str) -> None:
    from ..core.filewrite import write_atomic

    write_atomic(path, text.encode("utf-8"), durable=False)


def _safe_name(name: str) -> bool:
    """A name with a control character, a space or a quote is no model or LoRA name: kept out of completion."""
    return bool(name) and len(name) <= 200 and all(c.isprintable() and not c.isspace() and c not in "'\"`$\\"
                                                   for c in name)


def save_cache(config_dir: Path, cache: dict[str, Any]) -> None:
    """Save the cache and the name lists shell completion reads (best effort: a read-only folder is fine)."""
    try:
        Path(config_dir).mkdir(parents=True, exist_ok=True)
        _write(cache_path(config_dir), json.dumps(cache, indent=1, sort_keys=True) + "\n")
        names: list[str] = []
        for kind in KINDS:
            for m in ((cache.get("models") or {}).get(kind) or {}).get("items") or []:
                if isinstance(m, dict) and m.get("id") and m["id"] not in names:
                    names.append(str(m["id"]))
        _write(Path(config_dir) / MODEL_NAMES_FILE, "".join(n + "\n" for n in names if _safe_name(n)))
        loras = [str(r["loraId"]) for r in (cache.get("loras") or {}).get("items") or [] if isinstance(r, dict)]
        _write(Path(config_dir) / LORA_NAMES_FILE, "".join(n + "\n" for n in loras if _safe_name(n)))
    except (OSError, UsageError):  # the writer refuses a linked or special file with a UsageError
        pass


def models(client: Any, config_dir: Path | None, kind: str, *, refresh: bool = False) -> list[dict[str, Any]]:
    """The models of ``kind``: from the cache while it is fresh, else fetched (and cached)."""
    cache = load_cache(config_dir)
    entry = (cache.get("models") or {}).get(kind)
    if not refresh and fresh(entry):
        return list(entry["items"])
    items = fetch_models(client, kind)
    if config_dir is not None and not getattr(getattr(client, "config", None), "dry_run", False):
        cache.setdefault("models", {})[kind] = {"at": time.time(), "items": items}
        save_cache(config_dir, cache)
    return items


def loras(client: Any, config_dir: Path | None, *, personal: bool = False, refresh: bool = False) -> dict[str, Any]:
    """``{items, constraints}``: from the cache while fresh (and holding personal ones if asked), else fetched."""
    cache = load_cache(config_dir)
    entry = cache.get("loras")
    if not refresh and fresh(entry) and (not personal or entry.get("personal")):
        return {"items": list(entry["items"]), "constraints": entry.get("constraints") or {}}
    got = fetch_loras(client, personal=personal)
    new = {"at": time.time(), "items": got["loras"], "constraints": got["constraints"], "personal": personal}
    if config_dir is not None and not getattr(getattr(client, "config", None), "dry_run", False):
        cache["loras"] = new
        save_cache(config_dir, cache)
    return {"items": got["loras"], "constraints": got["constraints"]}
