"""The synchronous composition tools (``POST /v1/creative-agent/tools/execute``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import tools as toolcat
from .common import ApiFailure

EXECUTE_FIELDS = {
    "tool": "tool", "arguments": "arguments", "app_source": "app_source", "appSource": "app_source",
    "token_type": "token_type", "tokenType": "token_type", "safe_content_filter": "safe_content_filter",
    "safeContentFilter": "safe_content_filter",
}


def _bad(message: str, code: Any = 400, details: Any = None) -> ApiFailure:
    return ApiFailure(400, message, code=code, details=details, envelope="sogni")


def check_request(body: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    opts: dict[str, Any] = {}
    for key, value in body.items():
        if key not in EXECUTE_FIELDS:
            raise _bad(f"unknown field {key!r}")
        opts[EXECUTE_FIELDS[key]] = value
    name = opts.get("tool")
    if not isinstance(name, str) or not name:
        raise _bad("tool is required")
    tool = toolcat.get(name)
    if tool is None or tool.name not in toolcat.SYNC_TOOLS:
        raise _bad(f"tool {name!r} cannot run synchronously; supported: {', '.join(toolcat.SYNC_TOOLS)} "
                   "(run media tools as a workflow)", code="PARAMETER_INVALID")
    if "token_type" in opts and opts["token_type"] not in ("spark", "sogni", "auto"):
        raise _bad("token_type must be spark, sogni or auto")
    if "safe_content_filter" in opts and not isinstance(opts["safe_content_filter"], bool):
        raise _bad("safe_content_filter must be a boolean")
    if "app_source" in opts and not isinstance(opts["app_source"], str):
        raise _bad("app_source must be a string")
    args = opts.get("arguments", {})
    if not isinstance(args, dict):
        raise _bad("arguments must be an object")
    problems = tool.validate(args)
    if problems:
        raise _bad(f"{tool.name}: " + "; ".join(problems), code="PARAMETER_INVALID",
                   details={"toolName": tool.name, "problems": problems})
    return tool.name, args


def run(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` of a tools/execute answer: toolCallId, tool, result, message."""
    text = str(args.get("prompt") or args.get("brief") or "")
    if "[fail]" in text.lower():
        raise ApiFailure(500, f"{name} failed: the input asked for [fail]", code=500, envelope="sogni")
    result: dict[str, Any]
    if name == "enhance_prompt":
        prompt = f"{text}, richly detailed, cinematic lighting, sharp focus, {args.get('target_output')}"
        result = {"prompt": prompt, "target_output": args.get("target_output"),
                  "destination_model": args.get("destination_model")}
        message = prompt
    elif name == "compose_lyrics":
        lyrics = (f"[Verse 1]\n{text}\nunder open skies\n\n[Chorus]\nsing it, {text}\nsing it again\n\n"
                  f"[Verse 2]\n{text}\nas the night goes by\n\n[Chorus]\nsing it, {text}\nsing it again")
        result = {"lyrics": lyrics, "title": text[:60], "structure": ["verse", "chorus", "verse", "chorus"],
                  "music_prompt": args.get("music_prompt") or f"uplifting pop song about {text}"}
        message = lyrics
    elif name == "compose_instrumental":
        prompt = args.get("music_prompt") or f"instrumental piece about {text}, warm pads, steady beat"
        result = {"prompt": prompt, "structure": ["intro", "theme", "bridge", "theme", "outro"],
                  "duration_seconds": args.get("duration_seconds", 60)}
        message = prompt
    elif name == "compose_script":
        count = int(args.get("scene_count") or 3)
        scenes = [{"scene": i + 1, "description": f"Scene {i + 1}: {text}", "duration_seconds":
                   round(float(args.get("duration_seconds") or 15) / count, 2)} for i in range(count)]
        script = "\n".join(s["description"] for s in scenes)
        result = {"script": script, "scenes": scenes, "script_type": args.get("script_type", "video_prompt")}
        message = script
    else:  # compose_workflow / compose_workflow_template
        count = int(args.get("scene_count") or 2)
        steps: list[dict[str, Any]] = [
            {"id": f"scene_{i + 1}", "toolName": "generate_image",
             "arguments": {"prompt": f"{text}, scene {i + 1}"}} for i in range(count)]
        if args.get("include_audio"):
            steps.append({"id": "music", "toolName": "generate_music",
                          "arguments": {"prompt": f"soundtrack for {text}"}})
        plan = {"title": text[:80], "steps": steps}
        result = {"plan": plan}
        message = f"Planned {len(steps)} steps for: {text}"
        if name == "compose_workflow_template":
            result["template_draft"] = {"name": args.get("name"), "description": args.get("description") or text,
                                        "category": args.get("category", "custom"),
                                        "visibility": args.get("visibility", "private"),
                                        "inputs": args.get("inputs", []), "plan": plan}
        result["json"] = json.dumps(plan)
    result["message"] = message
    call_id = "call_" + hashlib.sha256(json.dumps([name, args], sort_keys=True).encode()).hexdigest()[:20]
    return {"toolCallId": call_id, "tool": name, "result": result, "message": message}
