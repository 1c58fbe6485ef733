"""The hosted tool catalogue: coverage of the spec table, lookup, validation, coercion and JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sogni_cli import catalog
from sogni_cli.catalog import Catalog, Param, Tool, families, load, parse_arg
from sogni_cli.core.errors import ExitCode, UsageError

SPEC = Path(__file__).with_name("data") / "hosted_tools_table.md"
JSON_PATH = Path(catalog.__file__).with_name("tools.json")

APP_TOOLS = [
    "analyze_image", "analyze_video", "extract_metadata", "ask_clarifying_question", "finalize_response",
    "create_asset_manifest", "inspect_asset", "label_asset", "map_assets_for_model", "validate_asset_references",
]
DEFAULT_SIX = ["generate_image", "edit_image", "generate_video", "sound_to_video", "video_to_video", "generate_music"]
EXECUTE_TOOLS = {"enhance_prompt", "compose_lyrics", "compose_instrumental", "compose_script", "compose_workflow",
                 "compose_workflow_template"}


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load()


# ------------------------------------------------------------------------------------ spec coverage


def _parse_spec_table(text: str) -> dict[str, dict]:
    """tool -> {"class": str, "closed": bool, "params": {name: (type_text, required, constraint_text)}}."""
    tools: dict[str, dict] = {}
    row = re.compile(r"^\| `([a-z0-9_]+)`( \(additionalProperties:false\))? \| ([^|]+) \| (.*) \|$")
    for line in text.splitlines():
        m = row.match(line)
        if not m:
            continue
        params = {}
        for chunk in re.split(r";\s*(?=`)", m.group(4)):
            pm = re.match(r"`(\w+)(\*?)`:\s*(obj\[\]\{[^}]*\}|obj\{[^}]*\}|\S+)\s*(\[.*\])?\s*$", chunk.strip())
            assert pm, chunk
            params[pm.group(1)] = (pm.group(3), pm.group(2) == "*", (pm.group(4) or "")[1:-1])
        tools[m.group(1)] = {"class": m.group(3).strip(), "closed": bool(m.group(2)), "params": params}
    return tools


def _num(text: str):
    v = float(text)
    return int(v) if "." not in text else v


def test_every_spec_tool_and_parameter_is_in_the_catalogue(cat):
    spec = _parse_spec_table(SPEC.read_text(encoding="utf-8"))
    assert len(spec) == 30
    for name, row in spec.items():
        tool = cat.get(name)
        assert tool is not None, name
        assert tool.name == name
        assert set(tool.params) == set(row["params"]), name
        assert tool.additional_properties is (not row["closed"]), name
        expected_group = {"direct-6": "direct", "hosted-only": "hosted"}.get(row["class"], "composition")
        assert tool.group == expected_group, name
        assert tool.route == ("execute" if expected_group == "composition" else "workflow"), name
        for pname, (ptype, required, cons) in row["params"].items():
            p = tool.params[pname]
            assert p.required is required, (name, pname)
            if ptype.startswith("obj[]"):
                assert p.type == "array" and p.items["type"] == "object", (name, pname)
                assert p.items["properties"] == ptype[ptype.index("{") + 1:-1].split(","), (name, pname)
            elif ptype.startswith("obj{"):
                assert p.type == "object" and p.properties == ptype[4:-1].split(","), (name, pname)
            elif ptype.endswith("[]"):
                assert p.type == "array" and p.items["type"] == ptype[:-2], (name, pname)
            else:
                assert p.type == ptype, (name, pname)
            # constraints, exactly as listed
            if cons.startswith("∈{"):
                vals = cons[2:-1].split(",")
                want = [_num(v) for v in vals] if p.type in ("number", "integer") else vals
                assert p.enum == want, (name, pname)
            else:
                assert p.enum is None, (name, pname)
            if cons.startswith("items∈{"):
                assert p.items["enum"] == cons[len("items∈{"):-1].split(","), (name, pname)
            bounds = {"": ("minimum", "maximum"), "items ": ("min_items", "max_items"),
                      "len ": ("min_length", "max_length")}
            for prefix, (lo_attr, hi_attr) in bounds.items():
                rng = re.fullmatch(re.escape(prefix) + r"(-?[\d.]*)\.\.(-?[\d.]*)", cons)
                if rng:
                    lo, hi = rng.groups()
                    assert getattr(p, lo_attr) == (_num(lo) if lo else None), (name, pname, cons)
                    assert getattr(p, hi_attr) == (_num(hi) if hi else None), (name, pname, cons)
                else:
                    if not any(re.fullmatch(re.escape(o) + r"(-?[\d.]*)\.\.(-?[\d.]*)", cons)
                               for o in bounds if o != prefix):
                        assert getattr(p, lo_attr) is None and getattr(p, hi_attr) is None, (name, pname)
    # catalogue has nothing beyond the spec tools and the app tools
    assert set(cat.names()) == set(spec) | set(APP_TOOLS)


def test_catalogue_shape(cat):
    raw = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    assert raw["version"] == "2026-08-24.1" == cat.version
    assert len(cat.tools) == 40 and len(set(cat.names())) == 40
    for t in cat.tools:
        assert t.route in ("workflow", "execute")
        assert t.group in ("direct", "hosted", "composition", "app")
        assert t.media in ("image", "video", "audio", "model", "text", None)
        assert t.description and len(t.description) < 120
        for kind, arg in t.inputs.items():
            assert kind in ("image", "audio", "video")
            assert arg is None or arg in t.params, (t.name, arg)
        for p in t.params.values():
            assert p.type in ("string", "number", "integer", "boolean", "array", "object")
            assert p.description
    assert {t.name for t in cat.tools if t.route == "execute"} == EXECUTE_TOOLS
    assert [t.name for t in cat.tools if t.group == "direct"] == DEFAULT_SIX
    for name in APP_TOOLS:
        t = cat.get(name)
        assert t.group == "app" and t.route == "workflow" and t.params == {} and t.additional_properties
        assert t.note and "not published" in t.note
    for name in EXECUTE_TOOLS:
        assert cat.get(name).additional_properties is False
    assert cat.get("generate_image").additional_properties is True
    # the file is pretty-printed with a stable order: re-dumping gives the same text
    assert JSON_PATH.read_text(encoding="utf-8") == json.dumps(raw, indent=2, ensure_ascii=False) + "\n"


def test_load_is_cached(cat):
    assert load() is cat


# ------------------------------------------------------------------------------------ lookup


@pytest.mark.parametrize("name", DEFAULT_SIX)
def test_prefixed_aliases_resolve(cat, name):
    tool = cat.get(name)
    assert tool.aliases == ["sogni_" + name]
    assert cat.get("sogni_" + name) is tool
    assert cat.require("sogni_" + name) is tool


def test_prefix_stripped_generally_and_unknown_is_none(cat):
    assert cat.get("sogni_upscale_video").name == "upscale_video"
    assert cat.get("sogni_compose_lyrics").name == "compose_lyrics"
    assert cat.get("Generate-Image").name == "generate_image"
    assert cat.get("generate_picture") is None
    assert cat.get("sogni_") is None


def test_require_unknown_tool_suggests(cat):
    with pytest.raises(UsageError) as ei:
        cat.require("genrate_video")
    assert ei.value.message == "Unknown tool 'genrate_video'"
    assert ei.value.hint == "did you mean 'generate_video'? See `sogni tools list`."
    assert ei.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError) as ei:
        cat.require("zzzzqqq")
    assert ei.value.hint == "See `sogni tools list`."


def test_families(cat):
    assert families("default") == ["sogni_" + n for n in DEFAULT_SIX]
    rich = families("rich")
    assert rich == families("creative-tools") == families("hosted")
    assert "compose_workflow" not in rich and "ask_clarifying_question" not in rich
    assert {"analyze_image", "enhance_prompt", "image_to_3d", "generate_speech"} <= set(rich)
    agent = families("creative-agent")
    assert set(agent) == set(rich) | {"ask_clarifying_question", "finalize_response", "create_asset_manifest",
                                      "inspect_asset", "label_asset", "map_assets_for_model",
                                      "validate_asset_references", "compose_workflow", "compose_workflow_template"}
    assert len(agent) == 40
    assert families("none") == [] and families("false") == []
    with pytest.raises(UsageError) as ei:
        families("creative-agnet")
    assert "creative-agent" in ei.value.hint


# ------------------------------------------------------------------------------------ validation


def test_valid_arguments_have_no_problems(cat):
    assert cat.get("generate_image").validate({"prompt": "a fox", "width": 1024, "height": 768.0,
                                               "numberOfVariations": 4, "seed": 7, "outputFormat": "webp",
                                               "loras": ["a"], "loraStrengths": [0.5]}) == []
    assert cat.get("apply_style").validate({"prompt": "ink", "scale": 1.5}) == []
    assert cat.get("upscale_video").validate({"seed": -1, "targetResolution": 1440}) == []
    assert cat.get("orbit_video").validate({"angles": ["back view", "left side view"]}) == []
    assert cat.get("stitch_video").validate({"videoIndices": [0, 1], "transition": {"type": "fade"}}) == []
    assert cat.get("generate_image").validate({"prompt": "x", "seed": 5.0}) == []  # integral float is an integer


def test_unknown_parameter_with_suggestion(cat):
    problems = cat.get("generate_image").validate({"prompt": "x", "negativeprompt": "blur", "qqq": 1})
    assert problems == ["unknown parameter 'negativeprompt' for generate_image (did you mean 'negativePrompt'?)",
                        "unknown parameter 'qqq' for generate_image"]
    # tools whose manifest does not say additionalProperties:false are still checked
    assert cat.get("upscale_image").validate({"scal": 2})[0].endswith("(did you mean 'scale'?)")


def test_missing_required(cat):
    assert cat.get("replace_video_segment").validate({"prompt": "x"}) == [
        "missing required parameter 'startSeconds'", "missing required parameter 'endSeconds'"]
    assert cat.get("enhance_prompt").validate({}) == [
        "missing required parameter 'prompt'", "missing required parameter 'target_output'",
        "missing required parameter 'destination_model'"]


@pytest.mark.parametrize("tool,args,msg", [
    ("generate_image", {"prompt": "x", "width": "1024"}, "'width' must be a number, got string \"1024\""),
    ("generate_image", {"prompt": "x", "width": True}, "'width' must be a number, got boolean true"),
    ("generate_image", {"prompt": "x", "width": float("nan")}, "'width' must be a number, got number NaN"),
    ("generate_image", {"prompt": "x", "seed": 1.5},
     "'seed' must be an integer, got number 1.5 (it must be a whole number)"),
    ("generate_image", {"prompt": 5}, "'prompt' must be a string, got integer 5"),
    ("generate_video", {"prompt": "x", "watermark": "yes"},
     "'watermark' must be a boolean (true/false), got string \"yes\""),
    ("generate_video", {"prompt": "x", "referenceImageIndices": 0},
     "'referenceImageIndices' must be an array, got integer 0"),
    ("stitch_video", {"videoIndices": [0], "transition": [1]}, "'transition' must be an object, got array [1]"),
])
def test_wrong_type(cat, tool, args, msg):
    assert cat.get(tool).validate(args) == [msg]


def test_int_accepted_for_number(cat):
    assert cat.get("generate_speech").validate({"prompt": "hi", "creativity": 1}) == []


@pytest.mark.parametrize("tool,args,msg", [
    ("generate_image", {"prompt": "x", "numberOfVariations": 17}, "'numberOfVariations' must be between 1 and 16, got 17"),
    ("generate_image", {"prompt": "x", "numberOfVariations": 0}, "'numberOfVariations' must be between 1 and 16, got 0"),
    ("generate_speech", {"prompt": "x", "creativity": 0.05}, "'creativity' must be between 0.1 and 2, got 0.05"),
    ("sound_to_video", {"prompt": "x", "audioStart": -1}, "'audioStart' must be at least 0, got -1"),
    ("compose_workflow", {"brief": "x", "max_estimated_capacity_units": 0},
     "'max_estimated_capacity_units' must be at least 1, got 0"),
])
def test_out_of_range(cat, tool, args, msg):
    assert cat.get(tool).validate(args) == [msg]


def test_not_in_enum_short_and_long(cat):
    assert cat.get("generate_image").validate({"prompt": "x", "outputFormat": "gif"}) == [
        "'outputFormat' must be one of png, jpg, jpeg, webp; got \"gif\""]
    assert cat.get("upscale_image").validate({"scale": 2.5}) == ["'scale' must be one of 2, 3, 4; got 2.5"]
    (msg,) = cat.get("generate_video").validate({"prompt": "x", "videoModel": "ltx-25"})
    assert msg.startswith("'videoModel' must be one of 29 values, e.g. ltx25, ltx23, wan22, …; got \"ltx-25\"")
    assert msg.endswith("(did you mean 'ltx25'?)")
    # numeric enums accept equal ints/floats but not booleans
    assert cat.get("generate_music").validate({"prompt": "x", "timesig": 4.0}) == []
    assert cat.get("generate_music").validate({"prompt": "x", "timesig": True})[0].startswith("'timesig' must be a number")


def test_string_length(cat):
    t = cat.get("compose_workflow_template")
    assert t.validate({"brief": "b", "name": ""}) == ["'name' must be at least 1 character long, got 0"]
    assert t.validate({"brief": "b", "name": "n" * 201}) == ["'name' must be at most 200 characters long, got 201"]
    assert cat.get("generate_speech").validate({"prompt": "p" * 4097}) == [
        "'prompt' must be at most 4096 characters long, got 4097"]


def test_array_items_and_counts(cat):
    gi = cat.get("generate_image")
    assert gi.validate({"prompt": "x", "loras": []}) == ["'loras' needs at least 1 item, got 0"]
    assert gi.validate({"prompt": "x", "loras": ["a"] * 9}) == ["'loras' takes at most 8 items, got 9"]
    assert gi.validate({"prompt": "x", "loraStrengths": [0.5, "high"]}) == [
        "'loraStrengths[1]' must be a number, got string \"high\""]
    assert cat.get("orbit_video").validate({"angles": ["back view", "top view"]}) == [
        "'angles[1]' must be one of front-right quarter view, right side view, back-right quarter view, back view, "
        "back-left quarter view, left side view, front-left quarter view; got \"top view\""]
    assert cat.get("overlay_video").validate({"overlays": []}) == ["'overlays' needs at least 1 item, got 0"]
    assert cat.get("overlay_video").validate({"overlays": ["text"]}) == [
        "'overlays[0]' must be an object, got string \"text\""]


def test_every_problem_is_reported_at_once(cat):
    problems = cat.get("generate_image").validate({"promt": "x", "width": "w", "numberOfVariations": 99})
    assert len(problems) == 4
    assert problems[-1] == "missing required parameter 'prompt'"


def test_non_object_arguments(cat):
    assert cat.get("generate_image").validate(["prompt"]) == [
        "arguments for generate_image must be a JSON object, got array"]


def test_app_tools_accept_any_object(cat):
    t = cat.get("analyze_image")
    assert t.validate({"anything": [1, 2], "question": "what?"}) == []
    assert t.validate("text") != []


def test_check_raises_usage_error_with_all_problems(cat):
    tool = cat.get("generate_music")
    tool.check({"prompt": "lofi", "bpm": 90})  # no exception
    with pytest.raises(UsageError) as ei:
        tool.check({"bpm": 500, "model": "ace"})
    err = ei.value
    assert err.exit_code == ExitCode.USAGE
    assert err.hint == "See `sogni tools show generate_music`."
    assert "'bpm' must be between 30 and 300, got 500" in err.message
    assert "missing required parameter 'prompt'" in err.message
    assert "'model' must be one of minimax_music3" in err.message
    with pytest.raises(UsageError) as ei:
        tool.check({})
    assert ei.value.message == "Invalid arguments for generate_music: missing required parameter 'prompt'"


# ------------------------------------------------------------------------------------ --arg


def test_parse_arg():
    assert parse_arg("prompt=a=b") == ("prompt", "a=b")
    assert parse_arg(" width =1024") == ("width", "1024")
    assert parse_arg("negativePrompt=") == ("negativePrompt", "")
    for bad in ("prompt", "=x"):
        with pytest.raises(UsageError) as ei:
            parse_arg(bad)
        assert "KEY=VALUE" in ei.value.message


def test_coerce(cat):
    gi = cat.get("generate_image")
    assert gi.coerce("prompt", "5") == "5"
    assert gi.coerce("prompt", "[1,2]") == "[1,2]"
    assert gi.coerce("width", "1024") == 1024 and isinstance(gi.coerce("width", "1024"), int)
    assert gi.coerce("guidance", "1.5") == 1.5
    assert gi.coerce("loras", '["a","b"]') == ["a", "b"]
    assert gi.coerce("loraStrengths", "[0.5, 1]") == [0.5, 1]
    assert cat.get("generate_video").coerce("watermark", "true") is True
    assert cat.get("stitch_video").coerce("transition", '{"type":"fade"}') == {"type": "fade"}
    # unparsable value for a typed parameter stays text, and validation names the problem
    assert gi.coerce("width", "big") == "big"
    assert gi.validate({"prompt": "x", "width": gi.coerce("width", "big")}) == [
        "'width' must be a number, got string \"big\""]
    # unknown keys: JSON when it parses, else text
    app = cat.get("analyze_image")
    assert app.coerce("n", "3") == 3 and app.coerce("q", "what is this") == "what is this"
    assert app.coerce("o", '{"a":1}') == {"a": 1}


# ------------------------------------------------------------------------------------ JSON Schema


def _schema_errors(schema: dict, value, path: str = "$") -> list[str]:
    """A tiny draft 2020-12 checker for the keywords the catalogue emits."""
    errs: list[str] = []
    t = schema.get("type")
    checks = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer()),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if t and not checks[t](value):
        return [f"{path}: type"]
    if "enum" in schema and not any(value == e and isinstance(value, bool) == isinstance(e, bool)
                                    for e in schema["enum"]):
        errs.append(f"{path}: enum")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{path}: minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(f"{path}: maximum")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errs.append(f"{path}: minLength")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append(f"{path}: maxLength")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errs.append(f"{path}: minItems")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(f"{path}: maxItems")
        for i, item in enumerate(value):
            errs += _schema_errors(schema.get("items", {}), item, f"{path}[{i}]")
    if isinstance(value, dict) and t == "object":
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                errs.append(f"{path}: required {k}")
        for k, v in value.items():
            if k in props:
                errs += _schema_errors(props[k], v, f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errs.append(f"{path}: additional {k}")
    return errs


EXAMPLES = [
    ("generate_image", {"prompt": "A square product render of translucent headphones", "width": 1024,
                        "height": 1024}, True),
    ("generate_image", {"prompt": "x", "model": "z-turbo", "numberOfVariations": 2, "gptImageOutputCompression": 80,
                        "loras": ["a", "b"], "loraStrengths": [0.4, 1]}, True),
    ("generate_image", {"prompt": "x", "numberOfVariations": 0}, False),
    ("generate_image", {"width": 512}, False),
    ("generate_image", {"prompt": "x", "extra": 1}, False),
    ("edit_image", {"prompt": "make it blue", "sourceImageIndex": -1, "model": "qwen"}, True),
    ("generate_music", {"prompt": "lofi", "duration": 30, "bpm": 90, "timesig": 3}, True),
    ("generate_music", {"prompt": "lofi", "timesig": 5}, False),
    ("generate_speech", {"prompt": "hi", "voice": "ryan", "seed": 4294967295, "creativity": 0.7}, True),
    ("generate_speech", {"prompt": "hi", "seed": 4294967296}, False),
    ("orbit_video", {"angles": ["back view"], "elevation": "eye-level shot"}, True),
    ("orbit_video", {"angles": ["up"]}, False),
    ("segment_image", {"text": "cat", "points": [{"x": 1, "y": 2, "label": 1}], "threshold": 0.4}, True),
    ("segment_image", {"text": ""}, False),
    ("enhance_prompt", {"prompt": "fox", "target_output": "image_prompt", "destination_model": "z-turbo"}, True),
    ("enhance_prompt", {"prompt": "fox", "target_output": "poem", "destination_model": "z-turbo"}, False),
    ("compose_workflow", {"brief": "ad", "scene_count": 3, "aspect_ratio": "9:16", "return_format": "json"}, True),
    ("compose_workflow", {"brief": "ad", "scene_count": 2.5}, False),
    ("stitch_video", {"videoIndices": [0, 1, 2], "audioIndex": 0}, True),
    ("image_to_3d", {"sourceImageIndex": -1, "shapeResolution": 1536, "textureSize": 2048}, True),
    ("image_to_3d", {"textureSize": 512}, False),
    ("animate_photo", {"prompt": "wave", "sourceImageIndices": list(range(17))}, False),
]


@pytest.mark.parametrize("name,args,ok", EXAMPLES)
def test_json_schema_agrees_with_validate(cat, name, args, ok):
    tool = cat.get(name)
    schema = tool.json_schema()
    assert (_schema_errors(schema, args) == []) is ok, _schema_errors(schema, args)
    assert (tool.validate(args) == []) is ok, tool.validate(args)


def test_json_schema_structure(cat):
    s = cat.get("generate_image").json_schema()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["type"] == "object" and s["additionalProperties"] is False
    assert s["required"] == ["prompt"]
    assert s["properties"]["numberOfVariations"] == {
        "type": "number", "description": "How many outputs to make.", "minimum": 1, "maximum": 16}
    assert s["properties"]["loras"]["items"] == {"type": "string"}
    assert s["properties"]["loras"]["minItems"] == 1 and s["properties"]["loras"]["maxItems"] == 8
    assert len(s["properties"]["model"]["enum"]) == 30
    o = cat.get("orbit_video").json_schema()["properties"]["angles"]
    assert o["items"]["enum"][0] == "front-right quarter view"
    ov = cat.get("overlay_video").json_schema()
    assert ov["properties"]["overlays"]["items"]["type"] == "object"
    assert "fontSizePct" in ov["properties"]["overlays"]["items"]["properties"]
    assert cat.get("compose_workflow_template").json_schema()["properties"]["name"]["maxLength"] == 200
    app = cat.get("inspect_asset").json_schema()
    assert app["additionalProperties"] is True and app["properties"] == {} and "required" not in app
    assert "required" not in cat.get("upscale_image").json_schema()
    # every schema is JSON-serialisable and every property carries a type and a description
    for tool in cat.tools:
        schema = json.loads(json.dumps(tool.json_schema()))
        for prop in schema["properties"].values():
            assert prop["type"] and prop["description"]


def test_dataclasses_exposed(cat):
    p = cat.get("generate_speech").params["voiceDescription"]
    assert isinstance(p, Param) and p.max_length == 512 and p.min_length is None
    assert isinstance(cat.get("generate_speech"), Tool)
    assert cat.get("generate_speech").inputs == {"audio": "voiceSourceIndex"}
    assert cat.get("generate_video").inputs["image"] == "referenceImageIndices"
    assert cat.get("generate_speech").params["creativity"].minimum == 0.1
    assert cat.get("restore_photo").inputs == {"image": None}
