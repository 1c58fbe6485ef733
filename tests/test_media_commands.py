"""Media commands (image, edit, video, music, speech) against a scripted API: exact request bodies, uploads,
--agent, event following, terminal states and exit codes, naming, --dry-run, --detach.

The scripted API (FakeAPI) is also used by the other media test modules."""

from __future__ import annotations

import io
import json
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

BASE = "https://api.sogni.test"
CDN = "https://cdn.sogni.test"
WF = "/v1/creative-agent/workflows"


def png_bytes(w: int = 8, h: int = 6, color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "PNG")
    return buf.getvalue()


def frame(seq: int, type_: str, wf_status: str, wid: str = "wf_t1", message: str | None = None, **data: Any) -> bytes:
    ev = {"id": f"{wid}:{seq}", "workflowId": wid, "sequence": seq, "type": type_, "status": wf_status,
          "message": message or type_, "data": data}
    return f"id: {wid}:{seq}\nevent: {type_}\ndata: {json.dumps(ev)}\n\n".encode()


def happy_events(wid: str = "wf_t1", final: str = "completed", tool: str = "generate_image") -> list[bytes]:
    return [
        frame(1, "workflow_started", "running", wid, status="running", progress=0.0),
        frame(2, "step_started", "running", wid, stepId="step_1", toolName=tool, status="running", progress=0.0),
        frame(3, "workflow_progress", "running", wid, stepId="step_1", toolName=tool, status="running",
              progress=0.5, stepProgress=0.5),
        # a step event whose data.status is the STEP's status: must not end the workflow
        frame(4, "step_completed", "running", wid, stepId="step_1", toolName=tool, status="completed", progress=1.0),
        frame(5, "workflow_completed", final, wid, status=final, progress=1.0),
    ]


class DroppingStream(httpx.SyncByteStream):
    """Yields the chunks, then breaks the connection (or raises ``exc``)."""

    def __init__(self, chunks: list[bytes], exc: BaseException | None = None):
        self.chunks = chunks
        self.exc = exc

    def __iter__(self):
        yield from self.chunks
        if self.exc is not None:
            raise self.exc

    def close(self) -> None:
        pass


class FakeAPI:
    """Routes every request; scripts: SSE connections, record states, media bodies."""

    def __init__(self, httpx_mock, *, wid: str = "wf_t1", tool: str = "generate_image", n_artifacts: int = 1,
                 final: str = "completed", ext: str = "png", mime: str = "image/png"):
        self.wid = wid
        self.tool = tool
        self.created: list[dict] = []
        self.streams: list[Any] = [happy_events(wid, final, tool)]  # each: list of chunks | (chunks, exc) | Response
        self.final = final
        self.final_record: dict[str, Any] = {}
        self.records: list[dict[str, Any]] | None = None  # explicit GET /{id} answers in order (last repeats)
        self.media: dict[str, Any] = {}
        self.media_hits: list[str] = []
        self.artifacts = [self.artifact(i, ext, mime) for i in range(n_artifacts)]
        self.execute_answer: dict[str, Any] = {"status": "success", "data": {"message": "done", "result": {}}}
        self.chat_answer: dict[str, Any] | None = None
        self.on_stream: Callable[[httpx.Request], None] | None = None
        self.intercept: Callable[[httpx.Request], httpx.Response | None] | None = None
        httpx_mock.add_callback(self.handle, is_reusable=True, is_optional=True)

    def artifact(self, i: int, ext: str = "png", mime: str = "image/png", body: bytes | None = None) -> dict:
        url = f"{CDN}/runs/{self.wid}/a{i + 1}.{ext}?sig=1"
        self.media[urlsplit(url).path] = body if body is not None else png_bytes(8 + i, 6)
        return {"id": f"art_{i + 1}", "kind": "image", "url": url, "mimeType": mime, "toolName": self.tool,
                "stepId": "step_1"}

    def record(self, status: str | None = None) -> dict[str, Any]:
        body = self.created[-1] if self.created else {}
        rec = {"workflowId": self.wid, "status": status or self.final, "input": body.get("input", {}),
               "steps": [{"id": "step_1", "toolName": self.tool, "status": "completed"}],
               "artifacts": self.artifacts if (status or self.final) in ("completed", "partial_failure") else []}
        rec.update(self.final_record)
        return rec

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.intercept is not None:
            answer = self.intercept(request)
            if answer is not None:
                return answer
        url = request.url
        path = url.path
        m = request.method
        if url.host == "cdn.sogni.test":
            self.media_hits.append(path)
            body = self.media.get(path)
            if callable(body):
                return body(request)
            if body is None:
                return httpx.Response(404)
            ctype = {"png": "image/png", "wav": "audio/wav", "mp4": "video/mp4"}.get(path.rsplit(".", 1)[-1],
                                                                                   "application/octet-stream")
            return httpx.Response(200, content=body, headers={"content-type": ctype})
        if url.host == "upload.sogni.test":
            return httpx.Response(200)
        if m == "GET" and path in ("/v1/image/uploadUrl", "/v1/media/uploadUrl"):
            return httpx.Response(200, json={"data": {"uploadUrl": f"https://upload.sogni.test/put/{url.params['jobId']}"}})
        if m == "GET" and path in ("/v1/image/downloadUrl", "/v1/media/downloadUrl"):
            return httpx.Response(200, json={"data": {"downloadUrl": f"{CDN}/uploads/{url.params['contentType']}"}})
        if m == "POST" and path == WF:
            self.created.append(json.loads(request.content))
            return httpx.Response(201, json={"status": "success", "data": {"workflow": {"workflowId": self.wid,
                                                                                           "status": "queued"}}})
        if m == "POST" and path == "/v1/creative-agent/tools/execute":
            return httpx.Response(200, json=self.execute_answer)
        if m == "POST" and path == "/v1/chat/completions":
            answer = self.chat_answer or {
                "id": "c1", "object": "chat.completion", "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": "Made it."}, "finish_reason": "stop"}],
                "creative_workflows": [{"workflowId": self.wid, "status": "queued"}]}
            return httpx.Response(200, json=answer)
        if m == "GET" and path == f"{WF}/{self.wid}/events/stream":
            if self.on_stream:
                self.on_stream(request)
            if not self.streams:
                return httpx.Response(200, content=b"", headers={"content-type": "text/event-stream"})
            script = self.streams.pop(0)
            if isinstance(script, httpx.Response):
                return script
            exc = None
            if isinstance(script, tuple):
                script, exc = script
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  stream=DroppingStream(list(script), exc))
        if m == "GET" and path == f"{WF}/{self.wid}":
            if self.records:
                rec = self.records.pop(0) if len(self.records) > 1 else self.records[0]
            else:
                rec = self.record()
            return httpx.Response(200, json={"status": "success", "data": {"workflow": rec}})
        if m == "POST" and path == f"{WF}/{self.wid}/cancel":
            return httpx.Response(200, json={"status": "success", "data": {"workflow": self.record("cancelled")}})
        if m == "GET" and path == f"{WF}/{self.wid}/events":
            events = [json.loads(c.split(b"data: ", 1)[1]) for c in happy_events(self.wid, self.final, self.tool)]
            return httpx.Response(200, json={"status": "success", "data": {"events": events}})
        if m == "GET" and path == WF:
            return httpx.Response(200, json={"status": "success", "data": {"workflows": [
                self.record(), dict(self.record("running"), workflowId="wf_t2")]}})
        return httpx.Response(404, json={"status": "error", "message": f"no route {m} {path}", "errorCode": 404})

    # helpers for assertions
    def requests(self, httpx_mock, method: str | None = None, path: str | None = None) -> list[httpx.Request]:
        out = []
        for r in httpx_mock.get_requests():
            if method and r.method != method:
                continue
            if path and r.url.path != path:
                continue
            out.append(r)
        return out


def dry_run_body(stdout: str) -> dict:
    """The JSON body printed by --dry-run (after the headers)."""
    return json.loads(stdout.split("\n\n", 1)[1])


# =============================================================================================== tests

import pytest  # noqa: E402

from tests.conftest import CANARY_KEY  # noqa: E402


@pytest.fixture
def api(httpx_mock, env_key, tmp_cwd):
    return FakeAPI(httpx_mock)


def _steps(api: FakeAPI) -> dict:
    assert len(api.created) == 1, api.created
    return api.created[0]["input"]["steps"][0]


def test_image_sends_exactly_the_flags_and_saves_files(cli, api, httpx_mock, tmp_cwd):
    res = cli("image", "a red fox", "--width", "512", "--height", "384", "-n", "2", "--seed", "7",
              "--model", "z-turbo", "--negative", "blur", "--guidance", "4.5", "--format", "png",
              "--aspect-ratio", "4:3", "--lora", "grain:0.7", "--lora", "sharp", "-o", "out")
    assert res.exit_code == 0, res.stderr
    assert _steps(api) == {"toolName": "generate_image", "arguments": {
        "prompt": "a red fox", "width": 512, "height": 384, "numberOfVariations": 2, "seed": 7, "model": "z-turbo",
        "negativePrompt": "blur", "guidance": 4.5, "outputFormat": "png", "aspectRatio": "4:3",
        "loras": ["grain", "sharp"], "loraStrengths": [0.7, 1.0]}}
    assert set(api.created[0]) == {"input"}  # nothing the user did not set
    post = api.requests(httpx_mock, "POST", WF)[0]
    assert post.headers["Authorization"] == f"Bearer {CANARY_KEY}" and post.headers["Idempotency-Key"]
    assert res.stdout.splitlines() == ["out/a-red-fox-1.png"]
    assert (tmp_cwd / "out/a-red-fox-1.png").read_bytes() == api.media["/runs/wf_t1/a1.png"]
    assert "Workflow: wf_t1" in res.stderr
    # media downloads never carry the key
    media = [r for r in httpx_mock.get_requests() if r.url.host == "cdn.sogni.test"]
    assert media and all("authorization" not in r.headers and "api-key" not in r.headers for r in media)


def test_minimal_image_request_has_only_the_prompt(cli, api):
    assert cli("image", "x").exit_code == 0
    assert _steps(api)["arguments"] == {"prompt": "x"}


def test_same_command_same_request(cli, api):
    for _ in range(2):
        assert cli("image", "a cat", "--width", "256", "--arg", "gptImageQuality=high").exit_code == 0
    assert api.created[0] == api.created[1]


def test_billing_flags(cli, api):
    res = cli("image", "x", "--token-type", "spark", "--confirm-cost", "--max-cost", "40")
    assert res.exit_code == 0, res.stderr
    body = api.created[0]
    assert body["token_type"] == "spark" and body["confirm_cost"] is True
    assert body["max_estimated_capacity_units"] == 40


def test_arg_and_args_reach_every_parameter(cli, api, tmp_cwd):
    (tmp_cwd / "a.json").write_text('{"gptImageBackground": "transparent", "width": 640}')
    res = cli("image", "x", "--args", "@a.json", "--arg", "gptImageOutputCompression=80",
              "--arg", "loras=[\"a\"]")
    assert res.exit_code == 0, res.stderr
    assert _steps(api)["arguments"] == {"prompt": "x", "gptImageBackground": "transparent", "width": 640,
                                        "gptImageOutputCompression": 80, "loras": ["a"]}


@pytest.mark.parametrize("argv, problem", [
    (["image", "x", "--arg", "bogus=1"], "unknown parameter 'bogus'"),
    (["image", "x", "--format", "tiff"], "'outputFormat' must be one of"),
    (["image", "x", "-n", "40"], "between 1 and 16"),
    (["image", "x", "--model", "nope"], "'model' must be one of"),
    (["image", "x", "--seed", "1", "--arg", "seed=2"], "set twice"),
    (["music", "x", "--bpm", "900"], "'bpm' must be between 30 and 300"),
    (["speech", "hi", "--voice", "robot"], "'voice' must be one of"),
    (["video", "x", "--ratio", "2:1"], "'ratio' must be one of"),
    (["image", "x", "--token-type", "gold"], "token type"),
    (["image", "x", "--args", "[1]"], "JSON object"),
])
def test_catalogue_validation_rejects_before_sending(cli, httpx_mock, env_key, tmp_cwd, argv, problem):
    res = cli(*argv)
    assert res.exit_code == 2, res.stderr
    assert problem in res.stderr
    assert httpx_mock.get_requests() == []


def test_validation_lists_every_problem(cli, httpx_mock, env_key):
    res = cli("image", "x", "--format", "tiff", "-n", "0", "--arg", "foo=1")
    assert res.exit_code == 2
    assert "outputFormat" in res.stderr and "numberOfVariations" in res.stderr and "foo" in res.stderr
    assert httpx_mock.get_requests() == []


def test_dry_run_needs_no_key_and_sends_nothing(cli, httpx_mock, tmp_cwd):
    res = cli("image", "a fox", "--width", "300", "--dry-run")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.startswith("POST https://api.sogni.ai/v1/creative-agent/workflows")
    assert dry_run_body(res.stdout) == {"input": {"steps": [{"toolName": "generate_image",
                                                              "arguments": {"prompt": "a fox", "width": 300}}]}}
    assert httpx_mock.get_requests() == []


def test_dry_run_shows_placeholder_uploads(cli, httpx_mock, tmp_cwd):
    (tmp_cwd / "photo.jpg").write_bytes(png_bytes())  # content decides, not the name
    res = cli("edit", "make it night", "-i", "photo.jpg", "--dry-run")
    assert res.exit_code == 0, res.stderr
    body = dry_run_body(res.stdout)
    assert body["media_references"] == [{"id": "media_ref_1", "kind": "image", "url": "<upload of photo.jpg>",
                                         "mime_type": "image/png", "filename": "photo.jpg"}]
    assert body["input"]["steps"][0] == {
        "toolName": "edit_image", "arguments": {"prompt": "make it night"},
        "dependsOn": [{"sourceStepId": "$input_media", "sourceArtifactIndex": 0, "targetArgument": "sourceImageIndex",
                       "transform": "image_index", "mediaType": "image", "required": True}]}
    assert httpx_mock.get_requests() == []


def test_edit_uploads_through_presigned_flow(cli, api, httpx_mock, tmp_cwd):
    (tmp_cwd / "a.png").write_bytes(png_bytes(4, 4))
    (tmp_cwd / "b.png").write_bytes(png_bytes(5, 5))
    res = cli("edit", "combine", "-i", "a.png", "-i", "b.png", "--model", "qwen")
    assert res.exit_code == 0, res.stderr
    ups = api.requests(httpx_mock, "GET", "/v1/image/uploadUrl")
    assert len(ups) == 2
    q = dict(ups[0].url.params)
    assert q["type"] == "referenceImage" and q["contentType"] == "image/png" and q["jobId"] and q["imageId"]
    downs = api.requests(httpx_mock, "GET", "/v1/image/downloadUrl")
    assert [dict(d.url.params) for d in downs] == [dict(u.url.params) for u in ups]
    puts = [r for r in httpx_mock.get_requests() if r.method == "PUT"]
    assert [p.content for p in puts] == [(tmp_cwd / "a.png").read_bytes(), (tmp_cwd / "b.png").read_bytes()]
    for p in puts:
        assert p.headers["content-type"] == "image/png"
        assert "authorization" not in p.headers and "api-key" not in p.headers
    body = api.created[0]
    assert [r["id"] for r in body["media_references"]] == ["media_ref_1", "media_ref_2"]
    assert body["media_references"][0]["url"] == f"{CDN}/uploads/image/png"
    assert body["media_references"][1]["filename"] == "b.png"
    step = body["input"]["steps"][0]
    assert step["arguments"] == {"prompt": "combine", "model": "qwen"}
    assert [(d["sourceArtifactIndex"], d["targetArgument"]) for d in step["dependsOn"]] == [(0, "sourceImageIndex")]


def test_edit_refuses_a_file_that_is_not_an_image(cli, httpx_mock, env_key, tmp_cwd):
    (tmp_cwd / "notes.png").write_text("just text")
    res = cli("edit", "x", "-i", "notes.png")
    assert res.exit_code == 2 and "notes.png" in res.stderr
    assert httpx_mock.get_requests() == []


def test_edit_takes_at_most_six_images(cli, httpx_mock, env_key, tmp_cwd):
    (tmp_cwd / "a.png").write_bytes(png_bytes())
    res = cli("edit", "x", *sum([["-i", "a.png"] for _ in range(7)], []))
    assert res.exit_code == 2 and "at most 6" in res.stderr
    assert httpx_mock.get_requests() == []


def _wav() -> bytes:
    import struct

    data = b"\x00\x00" * 100
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
            + b"data" + struct.pack("<I", len(data)) + data)


def _mp4() -> bytes:
    return (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x10moov\x00\x00\x00\x08free"
            + b"\x00\x00\x00\x48mdat" + b"\x00" * 64)


@pytest.mark.parametrize("extra, tool, args, bound", [
    ([], "generate_video", {"prompt": "p", "duration": 5, "ratio": "16:9", "videoModel": "ltx23",
                            "generateAudio": True}, None),
    (["-i", "a.png"], "animate_photo", {"prompt": "p", "duration": 5, "ratio": "16:9", "videoModel": "ltx23",
                                        "generateAudio": True}, ("sourceImageIndex", "image")),
    (["--audio", "a.wav"], "sound_to_video", {"prompt": "p", "duration": 5, "ratio": "16:9", "videoModel": "ltx23",
                                              "generateAudio": True}, ("audioSourceIndex", "audio")),
    (["--video", "v.mp4"], "video_to_video", {"prompt": "p", "duration": 5, "ratio": "16:9",
                                              "videoModel": "ltx23", "generateAudio": True},
     ("videoSourceIndex", "video")),
])
def test_video_chooses_the_tool_from_the_inputs(cli, tmp_cwd, httpx_mock, extra, tool, args, bound):
    (tmp_cwd / "a.png").write_bytes(png_bytes())
    (tmp_cwd / "a.wav").write_bytes(_wav())
    (tmp_cwd / "v.mp4").write_bytes(_mp4())
    argv = ["video", "p", "--duration", "5", "--ratio", "16:9", "--with-audio", *extra, "--dry-run"]
    # videoModel values differ per tool: pass one each accepts via --arg when not generate_video
    model = {"generate_video": "ltx23", "animate_photo": "ltx23", "sound_to_video": "ltx23-a2v",
             "video_to_video": "ltx23-v2v"}[tool]
    argv += ["--model", model]
    args = dict(args, videoModel=model)
    if tool == "video_to_video":
        argv.remove("--ratio"), argv.remove("16:9")
        args.pop("ratio")
    res = cli(*argv)
    assert res.exit_code == 0, res.stderr
    step = dry_run_body(res.stdout)["input"]["steps"][0]
    assert step["toolName"] == tool and step["arguments"] == args
    assert type(step["arguments"]["duration"]) is int  # 5, not 5.0
    if bound:
        assert step["dependsOn"] == [{"sourceStepId": "$input_media", "sourceArtifactIndex": 0,
                                      "targetArgument": bound[0], "transform": f"{bound[1]}_index",
                                      "mediaType": bound[1], "required": True}]
    else:
        assert "dependsOn" not in step
    assert httpx_mock.get_requests() == []


def test_video_no_audio_sends_false(cli, tmp_cwd):
    res = cli("video", "p", "--no-audio", "--dry-run")
    assert dry_run_body(res.stdout)["input"]["steps"][0]["arguments"] == {"prompt": "p", "generateAudio": False}


def test_music_fields_and_lyrics_from_stdin(cli, tmp_cwd):
    res = cli("music", "folk", "--duration", "30", "--bpm", "90", "--key", "D major", "--time-signature", "3",
              "--model", "ace_step_1.5_turbo", "--lyrics", "-", "--dry-run", input="la la\nlo\n")
    assert res.exit_code == 0, res.stderr
    assert dry_run_body(res.stdout)["input"]["steps"][0] == {"toolName": "generate_music", "arguments": {
        "prompt": "folk", "duration": 30.0, "bpm": 90, "keyscale": "D major", "lyrics": "la la\nlo\n",
        "model": "ace_step_1.5_turbo", "timesig": 3}}


def test_speech_fields(cli, tmp_cwd):
    res = cli("speech", "Hello", "--voice", "serena", "--voice-description", "warm", "--language", "english",
              "--format", "mp3", "--seed", "3", "--dry-run")
    assert res.exit_code == 0, res.stderr
    assert dry_run_body(res.stdout)["input"]["steps"][0] == {"toolName": "generate_speech", "arguments": {
        "prompt": "Hello", "voice": "serena", "voiceDescription": "warm", "language": "english",
        "outputFormat": "mp3", "seed": 3}}


def test_profile_image_model_is_a_default(cli, tmp_path, tmp_cwd):
    cfg = tmp_path / "config"
    cfg.mkdir(exist_ok=True)
    (cfg / "config.yaml").write_text("profiles:\n  default:\n    image_model: z-turbo\n")
    res = cli("image", "x", "--dry-run")
    assert dry_run_body(res.stdout)["input"]["steps"][0]["arguments"] == {"prompt": "x", "model": "z-turbo"}
    res = cli("image", "x", "--model", "flux-3-klein", "--dry-run")
    assert dry_run_body(res.stdout)["input"]["steps"][0]["arguments"]["model"] == "flux-3-klein"


# ------------------------------------------------------------------------------------------ --agent


def test_agent_forces_a_flat_name_of_the_creative_agent_family(cli, api, httpx_mock, tmp_cwd):
    res = cli("image", "a fox", "--width", "512", "--agent")
    assert res.exit_code == 0, res.stderr
    chat = api.requests(httpx_mock, "POST", "/v1/chat/completions")
    assert len(chat) == 1 and api.created == []
    body = json.loads(chat[0].content)
    assert body["tool_choice"] == {"type": "function", "function": {"name": "generate_image"}}
    assert body["sogni_tools"] == "creative-agent"
    assert body["sogni_tool_execution"] is True and body["stream"] is False
    text = body["messages"][0]["content"]
    assert text.startswith("a fox") and '{"prompt": "a fox", "width": 512}' in text
    # media collected from creative_workflows, followed through the API base URL
    assert res.stdout.splitlines() == ["a-fox-1.png"]
    assert (tmp_cwd / "a-fox-1.png").exists()


def test_agent_flat_names_and_inline_images(cli, api, httpx_mock, tmp_cwd):
    (tmp_cwd / "p.png").write_bytes(png_bytes(20, 10))
    res = cli("tools", "run", "apply_style", "-i", "p.png", "--arg", "prompt=as a watercolour", "--agent")
    assert res.exit_code == 0, res.stderr
    body = json.loads(api.requests(httpx_mock, "POST", "/v1/chat/completions")[0].content)
    assert body["tool_choice"]["function"]["name"] == "apply_style"
    assert body["sogni_tools"] == "creative-agent"
    parts = body["messages"][0]["content"]
    assert parts[0]["type"] == "text" and '"sourceImageIndex": -1' in parts[0]["text"]
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert not api.requests(httpx_mock, "GET", "/v1/image/uploadUrl")  # inline, not uploaded


def test_agent_without_media_is_generation_failed(cli, api):
    api.chat_answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "No."},
                                    "finish_reason": "stop"}]}
    res = cli("image", "x", "--agent")
    assert res.exit_code == 7 and "did not run the tool" in res.stderr


# ------------------------------------------------------------------------------------------ terminal states


def test_zero_artifacts_is_exit_7(cli, api):
    api.artifacts = []
    res = cli("image", "x")
    assert res.exit_code == 7 and "no media" in res.stderr and res.stdout == ""


def test_partial_failure_downloads_what_exists_exit_8(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock, final="partial_failure", n_artifacts=2)
    res = cli("image", "x", "-n", "4")
    assert res.exit_code == 8, res.stderr
    assert res.stdout.splitlines() == ["x-1.png", "x-2.png"]
    assert "sogni workflow download wf_t1" in res.stderr
    assert len(api.media_hits) == 2


@pytest.mark.parametrize("final, code, words", [
    ("failed", 7, "GPU exploded"),
    ("cancelled", 7, "cancelled"),
])
def test_failed_and_cancelled_exit_7_with_reason(cli, httpx_mock, env_key, tmp_cwd, final, code, words):
    api = FakeAPI(httpx_mock, final=final)
    api.final_record = {"error": {"message": "GPU exploded"}} if final == "failed" else {}
    res = cli("image", "x")
    assert res.exit_code == code and words in res.stderr
    assert api.media_hits == []


def test_waiting_for_cost_approval_not_on_a_terminal_exit_9_with_the_approve_command(cli, httpx_mock, env_key,
                                                                                      tmp_cwd):
    api = FakeAPI(httpx_mock, final="waiting_for_user")
    api.final_record = {"waitingReason": "cost_approval_required", "message": "needs approval",
                        "billingPreview": {"totalEstimatedCapacityUnits": 12}}
    res = cli("image", "x")
    assert res.exit_code == 9
    assert "Workflow wf_t1 is waiting for cost approval: 12 capacity units" in res.stderr
    assert "`sogni workflow approve wf_t1 --up-to 12`" in res.stderr
    assert not api.requests(httpx_mock, "POST", f"{WF}/wf_t1/confirm-cost")


def test_waiting_for_credit_exit_9(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock, final="waiting_for_user")
    api.final_record = {"waitingReason": "insufficient_credit", "message": "Not enough credit"}
    res = cli("image", "x")
    assert res.exit_code == 9 and "Not enough credit" in res.stderr


def test_detach_prints_the_id_and_does_not_follow(cli, api, httpx_mock):
    res = cli("image", "x", "--detach")
    assert res.exit_code == 0 and res.stdout == "wf_t1\n"
    assert [(r.method, r.url.path) for r in httpx_mock.get_requests()] == [("POST", WF)]


def test_ctrl_c_cancels_the_workflow_then_exits_130(cli, api, httpx_mock):
    def interrupt(request):
        raise KeyboardInterrupt

    api.on_stream = interrupt
    res = cli("image", "x")
    assert res.exit_code == 130
    assert len(api.requests(httpx_mock, "POST", f"{WF}/wf_t1/cancel")) == 1


def test_sigterm_cancels_then_exits_143(cli, api, httpx_mock):
    from sogni_cli.__main__ import Terminated

    def term(request):
        raise Terminated()

    api.on_stream = term
    res = cli("image", "x")
    assert res.exit_code == 143
    assert len(api.requests(httpx_mock, "POST", f"{WF}/wf_t1/cancel")) == 1


def test_detach_with_json_prints_one_document(cli, api, httpx_mock):
    res = cli("image", "x", "--detach", "--json")
    assert res.exit_code == 0
    assert json.loads(res.stdout) == {"workflow_id": "wf_t1", "status": "queued", "tool": "generate_image",
                                      "arguments": {"prompt": "x"}, "artifacts": []}
    assert api.requests(httpx_mock, "POST", f"{WF}/wf_t1/cancel") == []


# ------------------------------------------------------------------------------------------ output & naming


def test_no_download_prints_urls(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock, n_artifacts=2)
    res = cli("image", "x", "-n", "2", "--no-download")
    assert res.exit_code == 0
    assert res.stdout.splitlines() == [a["url"] for a in api.artifacts]
    assert api.media_hits == [] and not list(tmp_cwd.glob("*.png"))


def test_json_document(cli, api, tmp_cwd):
    res = cli("image", "x", "--width", "64", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    data = api.media["/runs/wf_t1/a1.png"]
    import hashlib

    assert doc == {"workflow_id": "wf_t1", "status": "completed", "tool": "generate_image",
                   "arguments": {"prompt": "x", "width": 64},
                   "artifacts": [{"path": "x-1.png", "url": api.artifacts[0]["url"],
                                  "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                                  "content_type": "image/png"}],
                   "cost": None}  # the scripted API reports no cost


def test_jsonl_events_then_done(cli, api):
    res = cli("image", "x", "--jsonl")
    assert res.exit_code == 0, res.stderr
    lines = [json.loads(l) for l in res.stdout.splitlines()]
    kinds = [l["event"] for l in lines]
    assert kinds[0] == "workflow" and kinds[-1] == "done" and "artifact" in kinds
    assert kinds.index("artifact") > max(i for i, k in enumerate(kinds) if k == "workflow")
    seqs = [l["sequence"] for l in lines if l.get("sequence") is not None]
    assert seqs == [1, 2, 3, 4, 5]
    assert lines[-1]["finish_reason"] == "completed"


def test_name_template_and_output_dir(cli, httpx_mock, env_key, tmp_cwd):
    FakeAPI(httpx_mock, n_artifacts=2)
    res = cli("image", "A Big Cat!", "-n", "2", "--seed", "5", "--name", "{tool}_{seed}_{index:02}", "-o", "o")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == ["o/generate_image_5_01.png", "o/generate_image_5_02.png"]


def test_on_exists_error_checked_before_sending(cli, httpx_mock, env_key, tmp_cwd):
    (tmp_cwd / "x-1.png").write_bytes(b"old")
    res = cli("image", "x", "--format", "png", "--on-exists", "error")
    assert res.exit_code == 2 and "exists" in res.stderr
    assert httpx_mock.get_requests() == []


def test_on_exists_skip_and_suffix(cli, api, tmp_cwd):
    (tmp_cwd / "x-1.png").write_bytes(b"old")
    res = cli("image", "x", "--on-exists", "skip")
    assert res.exit_code == 0 and res.stdout.splitlines() == ["x-1.png"]
    assert (tmp_cwd / "x-1.png").read_bytes() == b"old"
    res = cli("image", "x")
    assert res.exit_code == 0 and res.stdout.splitlines() == ["x-1-1.png"]


def test_bad_on_exists_value(cli, httpx_mock, env_key):
    res = cli("image", "x", "--on-exists", "merge")
    assert res.exit_code == 2 and httpx_mock.get_requests() == []


def test_manifest_lines(cli, httpx_mock, env_key, tmp_cwd):
    api = FakeAPI(httpx_mock, n_artifacts=2)
    res = cli("image", "x", "-n", "2", "--seed", "9", "--manifest", "m.jsonl")
    assert res.exit_code == 0, res.stderr
    lines = [json.loads(l) for l in (tmp_cwd / "m.jsonl").read_text().splitlines()]
    assert sorted(l["path"] for l in lines) == ["x-1.png", "x-2.png"]
    for l in lines:
        assert l["workflow_id"] == "wf_t1" and l["tool"] == "generate_image" and l["seed"] == 9
        assert l["arguments"] == {"prompt": "x", "numberOfVariations": 2, "seed": 9}
        assert l["url"] in [a["url"] for a in api.artifacts]


def test_max_download_size_refuses_big_files(cli, api, tmp_cwd):
    res = cli("image", "x", "--max-download-size", "10")
    assert res.exit_code == 8
    assert not (tmp_cwd / "x-1.png").exists()
    assert "sogni workflow download wf_t1" in res.stderr


def test_timeout_flag_must_be_positive(cli, httpx_mock, env_key):
    res = cli("image", "x", "--timeout", "0")
    assert res.exit_code == 2 and httpx_mock.get_requests() == []


def test_plain_workflow_display_rate_limits_and_heartbeats():
    from sogni_cli.core.events import WorkflowUpdate
    from sogni_cli.render.workflow_view import WorkflowDisplay

    now = [0.0]
    buf = io.StringIO()
    d = WorkflowDisplay(buf, tty=False, clock=lambda: now[0])
    upd = lambda **kw: WorkflowUpdate(workflow_id="wf_1", tool="generate_image", step="s1", **kw)  # noqa: E731
    d.update(upd(status="running", progress=0.1, eta_seconds=75))
    d.update(upd(status="running", progress=0.2))  # same state, within 5 s: no line
    now[0] = 6.0
    d.update(upd(status="running", progress=0.6))  # 5 s later: a progress line
    d.heartbeat()  # just printed: quiet
    now[0] = 37.0
    d.heartbeat()  # 31 s of silence: a heartbeat line
    d.update(upd(status="completed", progress=1.0))
    assert buf.getvalue().splitlines() == [
        "generate_image: running 10% (ETA 1m15s)",
        "generate_image: running 60%",
        "still waiting: wf_1 running",
        "generate_image: completed 100%",
    ]


def test_terminal_progress_display_does_not_break(cli, api):
    res = cli("image", "x", stderr_tty=True)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.splitlines() == ["x-1.png"]
