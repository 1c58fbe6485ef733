"""`sogni tools list|show|run`."""

from __future__ import annotations

import json

import pytest

from sogni_cli import catalog
from tests.test_media_commands import FakeAPI, png_bytes


def test_list_grouped_by_route(cli):
    res = cli("tools", "list")
    assert res.exit_code == 0
    text = res.stdout
    wf, ex = text.index("Workflow steps"), text.index("Synchronous composition")
    assert wf < text.index("generate_image") < ex < text.index("compose_lyrics")
    assert len([l for l in text.splitlines() if l.startswith("  ")]) == len(catalog.load().tools)


def test_list_family_json(cli):
    res = cli("tools", "list", "--family", "default", "--json")
    names = [t["name"] for t in json.loads(res.stdout)]
    assert names == [t.name for t in catalog.load().family("default")] and len(names) == 6
    assert cli("tools", "list", "--family", "bogus").exit_code == 2


def test_show_table_and_schema(cli):
    res = cli("tools", "show", "sogni_generate_music")
    assert res.exit_code == 0
    row = next(l for l in res.stdout.splitlines() if l.startswith("bpm "))
    assert row.split()[:4] == ["bpm", "number", "no", "30..300"]
    assert next(l for l in res.stdout.splitlines() if l.startswith("prompt ")).split()[2] == "yes"
    schema = json.loads(cli("tools", "show", "generate_music", "--json").stdout)
    assert schema == catalog.load().get("generate_music").json_schema()


def test_show_unknown_tool_suggests(cli):
    res = cli("tools", "show", "generat_image")
    assert res.exit_code == 2 and "generate_image" in res.stderr


@pytest.mark.parametrize("argv, words", [
    (["tools", "run", "nosuch"], "Unknown tool"),
    (["tools", "run", "upscale_image", "--arg", "scale=5"], "'scale' must be one of 2, 3, 4"),
    (["tools", "run", "upscale_image", "--arg", "scale=big"], "'scale' must be a number"),
    (["tools", "run", "compose_lyrics", "--arg", "prompt=x", "--arg", "extra=1"], "unknown parameter 'extra'"),
    (["tools", "run", "compose_lyrics"], "missing required parameter 'prompt'"),
    (["tools", "run", "generate_music", "--audio", "x.wav", "--arg", "prompt=x"], "x.wav"),
])
def test_run_validates_before_sending(cli, httpx_mock, env_key, tmp_cwd, argv, words):
    res = cli(*argv)
    assert res.exit_code == 2, res.stderr
    assert words in res.stderr
    assert httpx_mock.get_requests() == []


def test_run_composition_tool_prints_text(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock)
    api.execute_answer = {"status": "success", "data": {"tool": "compose_lyrics", "message": None,
                                                         "result": {"lyrics": "la la la"}}}
    res = cli("tools", "run", "compose_lyrics", "--arg", "prompt=rain", "--arg", "duration_seconds=30",
              "--token-type", "sogni")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "la la la\n"
    req = api.requests(httpx_mock, "POST", "/v1/creative-agent/tools/execute")[0]
    assert json.loads(req.content) == {"tool": "compose_lyrics", "arguments": {"prompt": "rain",
                                                                             "duration_seconds": 30},
                                       "token_type": "sogni"}
    assert req.headers["Idempotency-Key"]
    res = cli("tools", "run", "compose_lyrics", "--arg", "prompt=rain", "--json")
    assert json.loads(res.stdout)["data"]["result"] == {"lyrics": "la la la"}


def test_run_message_wins(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock)
    api.execute_answer = {"status": "success", "data": {"message": "Enhanced: a fox", "result": {"prompt": "x"}}}
    res = cli("tools", "run", "enhance_prompt", "--args",
              '{"prompt": "fox", "target_output": "image_prompt", "destination_model": "z-turbo"}')
    assert res.exit_code == 0 and res.stdout == "Enhanced: a fox\n"


def test_run_media_tool_as_a_workflow_step_with_upload(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock, tool="upscale_image")
    (tmp_cwd / "p.png").write_bytes(png_bytes())
    res = cli("tools", "run", "upscale_image", "-i", "p.png", "--arg", "scale=2")
    assert res.exit_code == 0, res.stderr
    step = api.created[0]["input"]["steps"][0]
    assert step == {"toolName": "upscale_image", "arguments": {"scale": 2},
                    "dependsOn": [{"sourceStepId": "$input_media", "sourceArtifactIndex": 0,
                                   "targetArgument": "sourceImageIndex", "transform": "image_index",
                                   "mediaType": "image", "required": True}]}
    assert res.stdout.splitlines() == ["upscale-image-1.png"]  # no prompt: the slug is the tool


def test_run_restore_photo_has_no_index_argument(cli, httpx_mock, tmp_cwd):
    (tmp_cwd / "old.png").write_bytes(png_bytes())
    res = cli("tools", "run", "restore_photo", "-i", "old.png", "--arg", "prompt=restore", "--dry-run")
    body = json.loads(res.stdout.split("\n\n", 1)[1])
    assert body["input"]["steps"][0]["arguments"] == {"prompt": "restore"}
    assert body["media_references"][0]["url"] == "<upload of old.png>"


def test_run_accepts_prefixed_names(cli, tmp_cwd):
    res = cli("tools", "run", "sogni_generate_image", "--arg", "prompt=x", "-n", "3", "--dry-run")
    step = json.loads(res.stdout.split("\n\n", 1)[1])["input"]["steps"][0]
    assert step == {"toolName": "generate_image", "arguments": {"prompt": "x", "numberOfVariations": 3}}


def test_run_video_tool_model_goes_to_video_model(cli, tmp_cwd):
    res = cli("tools", "run", "extend_video", "--arg", "duration=4", "--model", "ltx23", "--dry-run")
    assert res.exit_code == 0, res.stderr
    step = json.loads(res.stdout.split("\n\n", 1)[1])["input"]["steps"][0]
    assert step["arguments"] == {"duration": 4, "videoModel": "ltx23"}


def test_agent_refused_for_composition_tools(cli, httpx_mock, env_key):
    res = cli("tools", "run", "compose_lyrics", "--arg", "prompt=x", "--agent")
    assert res.exit_code == 2 and httpx_mock.get_requests() == []
