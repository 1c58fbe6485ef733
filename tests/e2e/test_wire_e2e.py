"""Wire fidelity end to end: what `sogni` sends is what the API takes, whichever tool names it speaks.

Every case runs against the emulator in both tool-name modes (the brief's prefixed default names and the
SDK's flat ones), where names matter.
"""

from __future__ import annotations

import json
import struct

import pytest

CHAT = "/v1/chat/completions"
WF = "/v1/creative-agent/workflows"
MODES = ["prefixed", "flat"]


def _png(path):
    from PIL import Image

    Image.new("RGB", (64, 48), (200, 40, 40)).save(path)
    return path


def _wav(path):
    pcm = b"\x00\x00" * 800
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " +
                     struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(pcm)) + pcm)
    return path


def sent(emulator, method, path):
    return [r for r in emulator.requests if r["method"] == method and r["path"] == path]


@pytest.mark.parametrize("names", MODES)
def test_agent_forces_a_name_the_server_offered(emulator, sogni_env, run_sogni, tmp_path, names):
    emulator.configure({"tool_names": names})
    res = run_sogni(["image", "a red fox", "--width", "512", "--agent", "-o", tmp_path], sogni_env)
    assert res.returncode == 0, res.stderr
    (req,) = sent(emulator, "POST", CHAT)
    assert req["status"] == 200
    assert req["json"]["tool_choice"] == {"type": "function", "function": {"name": "generate_image"}}
    assert req["json"]["sogni_tools"] == "creative-agent"
    assert len(res.stdout.splitlines()) == 1 and (tmp_path / res.stdout.strip()).exists()


@pytest.mark.parametrize("names", MODES)
def test_agent_sound_to_video_uses_zero_based_upload_indices(emulator, sogni_env, run_sogni, tmp_path, names):
    emulator.configure({"tool_names": names})
    img, wav = _png(tmp_path / "face.png"), _wav(tmp_path / "song.wav")
    res = run_sogni(["video", "sing along", "-i", img, "--audio", wav, "--duration", "5", "--agent",
                     "--no-download"], sogni_env)
    assert res.returncode == 0, res.stderr
    (req,) = sent(emulator, "POST", CHAT)
    text = req["json"]["messages"][0]["content"][0]["text"]
    args = json.loads(text[text.index("{"):])
    assert args["audioSourceIndex"] == 0 and args["sourceImageIndex"] == 0 and args["duration"] == 5
    assert req["status"] == 200


def test_emulator_refuses_the_old_negative_index_for_sound_to_video(emulator, sogni_env, run_sogni, tmp_path):
    """What `sogni` sent before (-1 for every tool) is a 400 now: the emulator is as strict as the manifest."""
    wav = _wav(tmp_path / "song.wav")
    res = run_sogni(["video", "sing", "--audio", wav, "--arg", "audioSourceIndex=-1", "--no-download"], sogni_env)
    assert res.returncode == 4
    assert "0-based" in res.stderr


@pytest.mark.parametrize("names", MODES)
def test_uploads_are_bound_with_input_media(emulator, sogni_env, run_sogni, tmp_path, names):
    emulator.configure({"tool_names": names})
    img, wav = _png(tmp_path / "face.png"), _wav(tmp_path / "song.wav")
    res = run_sogni(["video", "sing", "-i", img, "--audio", wav, "--duration", "5.0", "--billing-mode", "tokens",
                     "--no-safe-content-filter", "-o", tmp_path / "out"], sogni_env)
    assert res.returncode == 0, res.stderr
    (req,) = sent(emulator, "POST", WF)
    body = req["json"]
    assert [r["kind"] for r in body["media_references"]] == ["image", "audio"]
    (step,) = body["input"]["steps"]
    assert "audioSourceIndex" not in step["arguments"] and step["arguments"]["duration"] == 5
    assert type(step["arguments"]["duration"]) is int
    assert {(d["targetArgument"], d["sourceArtifactIndex"], d["transform"], d["mediaType"]) for d in step["dependsOn"]} \
        == {("sourceImageIndex", 0, "image_index", "image"), ("audioSourceIndex", 1, "audio_index", "audio")}
    assert body["billing_mode"] == "tokens" and body["safe_content_filter"] is False
    assert req["status"] == 201


def test_chat_billing_mode_and_filter_are_sent_as_the_sdk_names_them(emulator, sogni_env, run_sogni):
    res = run_sogni(["chat", "--tools", "none", "--billing-mode", "subscription", "--no-safe-content-filter", "hi"],
                    sogni_env)
    assert res.returncode == 0, res.stderr
    (req,) = sent(emulator, "POST", CHAT)
    assert req["json"]["billingMode"] == "subscription" and req["json"]["safe_content_filter"] is False
    bad = run_sogni(["chat", "--billing-mode", "credit", "hi"], sogni_env)
    assert bad.returncode == 2 and not sent(emulator, "POST", CHAT)[1:]


@pytest.mark.parametrize("names", MODES)
def test_no_exec_prints_the_calls_in_the_servers_spelling(emulator, sogni_env, run_sogni, names):
    emulator.configure({"tool_names": names})
    res = run_sogni(["chat", "--no-exec", "draw an image of a cat"], sogni_env)
    assert res.returncode == 0, res.stderr
    (call,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert call["name"] == ("sogni_generate_image" if names == "prefixed" else "generate_image")


@pytest.mark.parametrize("names", MODES)
def test_forcing_a_name_that_was_not_offered_is_refused(emulator, sogni_env, run_sogni, names):
    emulator.configure({"tool_names": names})
    wrong = "generate_image" if names == "prefixed" else "sogni_generate_image"
    res = run_sogni(["chat", "--no-exec", "--tool-choice", wrong, "a cat"], sogni_env)
    assert res.returncode == 4 and "not offered" in res.stderr


def test_a_resumed_event_stream_names_the_last_event_twice(emulator, sogni_env, run_sogni):
    slow = [{"id": f"s{i}", "toolName": "generate_image", "arguments": {"prompt": "[slow] fox"}} for i in range(4)]
    wid = emulator.store.start({"input": {"steps": slow}})[0]["workflowId"]
    emulator.script([{"match": "/events/stream", "action": "reset_after", "chunks": 2}])
    res = run_sogni(["workflow", "watch", wid], sogni_env)
    assert res.returncode == 0, res.stderr
    first, second = [r for r in emulator.requests if r["path"].endswith("/events/stream")][:2]
    assert "last-event-id" not in first["headers"] and "after" not in first["query"]
    assert second["headers"]["last-event-id"] == second["query"]["after"]
