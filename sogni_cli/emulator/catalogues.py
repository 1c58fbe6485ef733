"""Model and LoRA catalogues.

- ``GET /api/v1/models/list``: every media model ``{id, SID, name, media: image|video|audio, tier}`` (the list
  the SDK reads to learn which models exist and what they make), built from the models the hosted tools take.
- ``GET /api/v2/models/tiers``: ``{tierName: {type, width?, height?, steps?, duration?}}``, each range
  ``{min, max, default, decimals?}`` (sizes and limits per tier).
- ``GET /v1/loras/comfy[?modelId=]``: ``{lastUpdated, loras: [{loraId, name, description, modelIds,
  minStrength, maxStrength, defaultStrength, triggerWords}], models, constraints: {maxPerRequest,
  minStrength, maxStrength}}``; with ``modelId`` only the LoRAs that model can load.
- ``GET /v1/loras/personal/catalog``: the account's own LoRAs (same rows, ids ``personal-…``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import tools as toolcat

if TYPE_CHECKING:  # pragma: no cover
    from .server import Handler

_KIND_TOOLS = {"image": (("generate_image", "model"), ("edit_image", "model")),
               "video": (("generate_video", "videoModel"), ("animate_photo", "videoModel"),
                         ("sound_to_video", "videoModel"), ("video_to_video", "videoModel")),
               "audio": (("generate_music", "model"), ("generate_speech", "model"))}
_RANGE = lambda lo, hi, default: {"min": lo, "max": hi, "default": default}
TIERS: dict[str, dict[str, Any]] = {
    "image-fast": {"type": "image", "width": _RANGE(256, 2048, 1024), "height": _RANGE(256, 2048, 1024),
                   "steps": _RANGE(1, 12, 8)},
    "image-hq": {"type": "image", "width": _RANGE(256, 2048, 1024), "height": _RANGE(256, 2048, 1024),
                 "steps": _RANGE(10, 60, 30), "guidance": {"min": 1, "max": 20, "default": 4.5, "decimals": 1}},
    "video": {"type": "video", "width": _RANGE(480, 1280, 832), "height": _RANGE(480, 1280, 480),
              "duration": _RANGE(2, 15, 5)},
    "audio": {"type": "audio", "duration": _RANGE(5, 240, 30)},
}
LORAS: list[dict[str, Any]] = [
    {"loraId": "film-grain", "name": "Film grain", "description": "Analog film texture.",
     "modelIds": ["z-turbo", "z-image", "krea-2-turbo", "flux-3-klein"], "minStrength": 0.0, "maxStrength": 2.0,
     "defaultStrength": 0.8, "triggerWords": ["film grain"]},
    {"loraId": "pixel-art", "name": "Pixel art", "description": "Crisp pixel-art sprites.",
     "modelIds": ["chroma1-hd", "pony-v7", "dreamshaper-xl"], "minStrength": 0.0, "maxStrength": 1.5,
     "defaultStrength": 1.0, "triggerWords": ["pixel art"]},
    {"loraId": "anime-lineart", "name": "Anime line art", "description": "Clean ink lines.",
     "modelIds": ["animagine-xl", "pony-v7"], "minStrength": -1.0, "maxStrength": 1.0, "defaultStrength": 0.6,
     "triggerWords": []},
    {"loraId": "slow-motion", "name": "Slow motion", "description": "Smooth slowed-down motion.",
     "modelIds": ["wan22", "ltx25"], "minStrength": 0.0, "maxStrength": 1.0, "defaultStrength": 0.7,
     "triggerWords": ["slow motion"]},
]
PERSONAL: list[dict[str, Any]] = [
    {"loraId": "personal-my-style", "name": "My style", "description": "Imported by the account.",
     "modelIds": ["z-turbo"], "minStrength": 0.0, "maxStrength": 1.0, "defaultStrength": 1.0, "triggerWords": []},
]
CONSTRAINTS = {"maxPerRequest": 8, "minStrength": -100, "maxStrength": 100}


def _tier(kind: str, name: str) -> str:
    if kind != "image":
        return kind
    fast = any(w in name for w in ("turbo", "lightning", "flash", "8step", "klein"))
    return "image-fast" if fast else "image-hq"


def media_models() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for kind, pairs in _KIND_TOOLS.items():
        for tool, arg in pairs:
            info = toolcat.get(tool)
            enum = (info.params.get(arg) or {}).get("enum") if info is not None else None
            for name in enum or []:
                if name in seen:
                    continue
                seen.add(name)
                out.append({"id": name, "SID": len(out) + 1, "name": name.replace("-", " ").replace("_", " "),
                            "media": kind, "tier": _tier(kind, name)})
    return out


def route(h: "Handler", method: str, path: str, query: dict[str, str]) -> bool:
    """Answer the catalogue routes; False for any other path."""
    from .common import ApiFailure

    if path not in ("/api/v1/models/list", "/api/v2/models/tiers", "/v1/loras/comfy", "/v1/loras/personal/catalog"):
        return False
    if method != "GET":
        raise ApiFailure(405, f"{method} is not allowed on {path}", code=405)
    if path == "/api/v1/models/list":
        h.send_json(200, {"status": "success", "data": media_models()})
    elif path == "/api/v2/models/tiers":
        h.send_json(200, {"status": "success", "data": TIERS})
    elif path == "/v1/loras/comfy":
        model = query.get("modelId")
        rows = [r for r in LORAS if not model or model in r["modelIds"]]
        models = sorted({m for r in LORAS for m in r["modelIds"]})
        h.send_json(200, {"status": "success", "data": {"lastUpdated": "2026-11-30T00:00:00.000Z", "loras": rows,
                                                        "models": models, "constraints": CONSTRAINTS}})
    else:
        h.send_json(200, {"status": "success", "data": {"loras": PERSONAL}})
    return True
