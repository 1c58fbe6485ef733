"""`sogni recipe plan` (text and --json), templates, the examples and the JSON Schema."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from sogni_cli.recipes.template import Pending, TemplateError, parse, render

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
WF = "/v1/creative-agent/workflows"

STORY = """\
version: 1
name: story
vars:
  topic: {default: whales}
matrix:
  scene: [1, 2]
jobs:
  - id: script
    matrix: true
    chat: {prompt: "Scene {{ matrix.scene }} about {{ vars.topic }}", tools: none}
  - id: frame
    matrix: true
    image: {prompt: "{{ jobs.script.text | trim }}", width: 512, height: 512}
    output: frames
  - id: clip
    matrix: true
    video: {prompt: "Animate", image: "{{ jobs.frame.file }}", duration: 5}
  - id: poster
    edit: {prompt: "A collage", images: "{{ jobs.frame.files }}"}
"""


# --------------------------------------------------------------------------------------------- templates


def _lookup(values):
    def lookup(expr, path):
        v = values
        for seg in path:
            v = v[seg]
        return v

    return lookup


@pytest.mark.parametrize("text, expected", [
    ("plain", "plain"),
    ("{{ a }}", 3),
    ("n={{ a }}", "n=3"),
    ("{{ s | slug }}", "hello-world"),
    ("{{ s | upper }}-{{ s | lower }}", "HELLO, WORLD!-hello, world!"),
    ("{{ s | truncate(5) }}", "Hello"),
    ("{{ lines | line(2) }}", "second"),
    ("{{ path | stem }}/{{ path | basename }}", "cat/cat.jpg"),
    ("{{ files | join(' ') }}", "a.png b.png"),
    ("{{ files | first }}", "a.png"),
    ("{{ empty | default('x') }}", "x"),
    ("{{ s | replace('World', 'there') }}", "Hello, there!"),
    ("{{ m.k }}", "v"),
    ("{{ files[1] }}", "b.png"),
    ("{{ '{{' }}", "{{"),
])
def test_template_render(text, expected):
    values = {"a": 3, "s": "Hello, World!", "lines": "1. first\n\n2. second\n", "path": "inputs/cat.jpg",
              "files": ["a.png", "b.png"], "empty": "", "m": {"k": "v"}}
    assert render(parse(text), _lookup(values)) == expected


@pytest.mark.parametrize("text, message, offset", [
    ("x {{ a", "'{{' without a closing '}}'", 2),
    ("{{ a | nope }}", "unknown filter 'nope'", 7),
    ("{{ a | truncate }}", "filter 'truncate' takes 1 argument(s), got 0", 7),
    ("{{ }}", "empty '{{ }}'", 0),
    ("{{ a + 1 }}", "unexpected '+' in a template expression", 5),
    ("a }} b", "'}}' without an opening '{{'", 2),
    ("{{ __import__('os') }}", "unexpected '(' in a template expression", 13),
])
def test_template_errors(text, message, offset):
    with pytest.raises(TemplateError) as info:
        parse(text)
    assert info.value.message.startswith(message)
    assert info.value.offset == offset


def test_pending_values_show_their_expression():
    def lookup(expr, path):
        return Pending("") if path[0] == "jobs" else "x"

    assert render(parse("{{ jobs.a.text | slug }}"), lookup) == Pending("{{ jobs.a.text | slug }}")
    assert render(parse("A {{ v }} {{ jobs.a.text }}"), lookup) == Pending("A x {{ jobs.a.text }}")


# --------------------------------------------------------------------------------------------- plan


def test_plan_json_graph_requests_and_placeholders(cli, tmp_cwd):
    (tmp_cwd / "r.yaml").write_text(STORY)
    res = cli("recipe", "plan", "r.yaml", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["recipe"] == "story"
    assert doc["jobs"] and doc["by_kind"] == {"chat": {"jobs": 2, "media": 0}, "image": {"jobs": 2, "media": 2},
                                              "video": {"jobs": 2, "media": 2}, "edit": {"jobs": 1, "media": 1}}
    assert doc["media"] == 5
    jobs = {j["id"]: j for j in doc["jobs"]}
    assert list(jobs) == ["script[1]", "script[2]", "frame[1]", "frame[2]", "clip[1]", "clip[2]", "poster"]
    assert jobs["frame[2]"]["needs"] == ["script[2]"]
    assert jobs["clip[1]"]["needs"] == ["frame[1]"]
    assert jobs["poster"]["needs"] == ["frame[1]", "frame[2]"]
    chat = jobs["script[2]"]["request"]
    assert chat["method"] == "POST" and chat["url"] == "https://api.sogni.ai/v1/chat/completions"
    assert chat["body"] == {"messages": [{"role": "user", "content": "Scene 2 about whales"}], "stream": True,
                            "stream_options": {"include_usage": True}, "sogni_tools": False}
    img = jobs["frame[1]"]["request"]
    assert img["url"] == "https://api.sogni.ai" + WF
    assert img["body"] == {"input": {"steps": [{"toolName": "generate_image", "arguments": {
        "prompt": "{{ jobs.script.text | trim }}", "width": 512, "height": 512}}]}}
    clip = jobs["clip[1]"]["request"]["body"]
    assert clip["input"]["steps"][0]["toolName"] == "animate_photo"
    assert clip["media_references"][0]["url"] == "<upload of {{ jobs.frame.file }}>"
    assert jobs["frame[1]"]["output"] == "frames" and jobs["frame[1]"]["filename"] == "frame-1-{index}"


def test_plan_text_needs_no_key_and_sends_nothing(cli, tmp_cwd, monkeypatch):
    (tmp_cwd / "r.yaml").write_text(STORY)
    monkeypatch.setenv("SOGNI_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    res = cli("recipe", "plan", "r.yaml")
    assert res.exit_code == 0, res.stderr
    out = res.stdout
    assert "7 jobs: chat 2 jobs, image 2 jobs (2 media), video 2 jobs (2 media), edit 1 job (1 media)" in out
    assert "  frame[1] [image] ← script[1]" in out
    assert "POST http://127.0.0.1:9/v1/creative-agent/workflows" in out
    assert '"prompt": "{{ jobs.script.text | trim }}"' in out


def test_plan_shortens_data_uris_and_redacts(cli, tmp_cwd, env_key):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_cwd / "p.png")
    (tmp_cwd / "r.yaml").write_text("version: 1\njobs:\n  - id: a\n    chat: {prompt: what is this, images: [p.png]}\n")
    res = cli("recipe", "plan", "r.yaml", "--json")
    assert res.exit_code == 0, res.stderr
    body = json.loads(res.stdout)["jobs"][0]["request"]["body"]
    url = body["messages"][0]["content"][1]["image_url"]["url"]
    assert re.fullmatch(r"data:image/jpeg;base64,…\(\d+ bytes\)", url), url
    assert env_key not in res.stdout


def test_plan_shard_subset(cli, tmp_cwd):
    (tmp_cwd / "r.yaml").write_text(STORY)
    ids = []
    for k in (1, 2, 3):
        doc = json.loads(cli("recipe", "plan", "r.yaml", "--json", "--shard", f"{k}/3").stdout)
        assert all(j["shard"] == k for j in doc["jobs"])
        ids += [j["id"] for j in doc["jobs"]]
    assert sorted(ids) == sorted(["script[1]", "script[2]", "frame[1]", "frame[2]", "clip[1]", "clip[2]", "poster"])


def test_a_thousand_job_matrix_plans_quickly(cli, tmp_cwd):

    (tmp_cwd / "r.yaml").write_text(textwrap.dedent("""\
        version: 1
        matrix: {a: [%s], b: [%s]}
        jobs:
          - id: shot
            matrix: true
            image: {prompt: "item {{ matrix.a }} in style {{ matrix.b }}", width: 512, height: 512}
        """) % (", ".join(map(str, range(40))), ", ".join(map(str, range(25)))))
    res = cli("recipe", "plan", "r.yaml", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["jobs"][-1]["id"] == "shot[39,24]"  # speed: bench/bench_recipes.py


# --------------------------------------------------------------------------------------------- examples


def test_there_are_six_examples():
    names = {p.stem for p in RECIPES}
    assert {"product-shots", "storyboard", "podcast-kit", "batch-edit", "captions", "tool-pipeline"} <= names
    for img in (ROOT / "recipes" / "inputs").iterdir():
        assert img.stat().st_size < 20_000


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_examples_validate(cli, path):
    res = cli("recipe", "validate", str(path))
    assert res.exit_code == 0, res.stderr
    assert "warning" not in res.stderr


def test_product_shots_is_three_by_two_by_two(cli):
    doc = json.loads(cli("recipe", "plan", str(ROOT / "recipes" / "product-shots.yaml"), "--json").stdout)
    assert doc["jobs"] and len(doc["jobs"]) == 12 and doc["media"] == 12
    assert {(j["matrix"]["product"], j["matrix"]["style"], j["matrix"]["size"]["name"]) for j in doc["jobs"]} == {
        (p, s, z) for p in ("ceramic mug", "desk lamp", "lounge chair") for s in ("studio", "outdoor")
        for z in ("square", "wide")}


# --------------------------------------------------------------------------------------------- JSON Schema


def check_schema(value, schema, root, path="$") -> list[str]:
    """A small JSON Schema (draft-07) checker for the keywords recipes/schema.json uses."""
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/definitions/")
        return check_schema(value, root["definitions"][ref.split("/")[-1]], root, path)
    errs: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        ok = any({
            "object": isinstance(value, dict), "array": isinstance(value, list), "string": isinstance(value, str),
            "boolean": isinstance(value, bool), "null": value is None,
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        }[t] for t in names)
        if not ok:
            return [f"{path}: not {types}"]
    if "const" in schema and value != schema["const"]:
        errs.append(f"{path}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: not one of {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errs.append(f"{path}: does not match {schema['pattern']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(f"{path}: above {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errs.append(f"{path}: too few items")
        if "items" in schema:
            for i, v in enumerate(value):
                errs += check_schema(v, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errs.append(f"{path}: missing {key}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errs += check_schema(v, props[k], root, f"{path}.{k}")
            elif extra is False:
                errs.append(f"{path}: unexpected {k}")
            elif isinstance(extra, dict):
                errs += check_schema(v, extra, root, f"{path}.{k}")
    if "anyOf" in schema:
        if not any(not check_schema(value, s, root, path) for s in schema["anyOf"]):
            errs.append(f"{path}: matches none of anyOf")
    if "oneOf" in schema:
        n = sum(1 for s in schema["oneOf"] if not check_schema(value, s, root, path))
        if n != 1:
            errs.append(f"{path}: matches {n} of oneOf")
    return errs


def test_schema_file_is_current(cli):
    from sogni_cli.recipes.jsonschema import build_schema

    assert json.loads((ROOT / "recipes" / "schema.json").read_text()) == build_schema()
    res = cli("recipe", "schema")
    assert json.loads(res.stdout) == build_schema()


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_examples_match_the_json_schema(path):
    import yaml

    schema = json.loads((ROOT / "recipes" / "schema.json").read_text())
    assert check_schema(yaml.safe_load(path.read_text()), schema, schema) == []


def test_the_schema_rejects_what_validate_rejects():
    schema = json.loads((ROOT / "recipes" / "schema.json").read_text())
    bad = [
        {"version": 2, "jobs": [{"id": "a", "chat": "hi"}]},
        {"version": 1, "jobs": [{"id": "a", "chat": "hi", "image": "x"}]},
        {"version": 1, "jobs": [{"id": "a", "image": {"widht": 5}}]},
        {"version": 1, "jobs": [{"id": "a", "image": {"count": 40}}]},
        {"version": 1, "jobs": [{"id": "a", "speech": {"text": "x", "voice": "nobody"}}]},
        {"version": 1, "jobs": [{"id": "a", "chat": "x", "on_exists": "replace"}]},
        {"version": 1, "jobs": [{"id": "1a", "chat": "x"}]},
    ]
    for doc in bad:
        assert check_schema(doc, schema, schema), doc
    good = {"version": 1, "jobs": [{"id": "a", "image": {"width": "{{ matrix.size.width }}", "count": 2}}]}
    assert check_schema(good, schema, schema) == []
