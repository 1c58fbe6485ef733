"""`sogni`'s requests next to the official SDK's for the same operations.

Each operation is done once by `sogni` (a subprocess) and once by ``sogni-client`` against the same emulator;
the two requests are compared on what matters on the wire: method, path, the headers that change meaning
(auth, content type, accept, idempotency, resume), query keys, and body keys with their JSON types. Every
difference must be listed (by its key, e.g. ``chat-hosted body.stream``) in the README's "Wire choices" table,
where the choice is explained (``* header.accept`` lists a difference for every operation); an unlisted
difference fails the test.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

pytest.importorskip("sogni_client")

MODEL = "qwen3.6-35b-a3b-gguf-iq4xs"
WF = "/v1/creative-agent/workflows"
README = Path(__file__).resolve().parents[2] / "README.md"
HEADERS = ("authorization", "api-key", "content-type", "accept", "idempotency-key", "last-event-id")


def listed_differences() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Wire choices", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([a-z*-]+ (?:method|path|header\.[a-z-]+|query\.[\w.]+|body\.[\w.\[\]]+))`", section))


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _flatten(value, prefix: str, out: dict[str, str]) -> None:
    out[prefix] = _json_type(value)
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}", out)
    elif isinstance(value, list):
        for v in value:
            _flatten(v, f"{prefix}[]", out)


def _path(p: str) -> str:
    return re.sub(r"/(wf|tpl|run)_[0-9a-f]+", r"/{\1}", p)


def differences(op: str, mine: dict, theirs: dict) -> set[str]:
    found = set()
    if mine["method"] != theirs["method"]:
        found.add(f"{op} method")
    if _path(mine["path"]) != _path(theirs["path"]):
        found.add(f"{op} path")
    for name in HEADERS:
        a, b = mine["headers"].get(name), theirs["headers"].get(name)
        if name == "content-type":
            a, b = (a or "").split(";")[0] or None, (b or "").split(";")[0] or None
        elif name in ("accept",):
            pass
        else:
            a, b = a is not None, b is not None
        if a != b:
            found.add(f"{op} header.{name}")
    for key in set(mine["query"]) ^ set(theirs["query"]):
        found.add(f"{op} query.{key}")
    fa, fb = {}, {}
    if mine["json"] is not None:
        _flatten(mine["json"], "body", fa)
    if theirs["json"] is not None:
        _flatten(theirs["json"], "body", fb)
    for key in set(fa) | set(fb):
        if fa.get(key) != fb.get(key):
            found.add(f"{op} {key}")
    return found


def sdk(emulator, body):
    from sogni_client import SogniClient

    async def main():
        client = await SogniClient.create(api_key="sk-test-sdk", rest_endpoint=emulator.base_url, disable_socket=True)
        try:
            # the client asks who it is in the background as it starts; let that answer arrive before closing
            for _ in range(500):
                if client.current_account.username:
                    break
                await asyncio.sleep(0.01)
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def last(emulator, method: str, path_re: str, before: int = 0) -> dict:
    hits = [r for r in emulator.requests[before:] if r["method"] == method and re.fullmatch(path_re, r["path"])]
    assert hits, f"no {method} {path_re}"
    return hits[-1]


def test_sogni_and_the_sdk_send_the_same_requests(emulator, sogni_env, run_sogni, tmp_path):
    found: set[str] = set()

    def compare(op: str, method: str, path_re: str, cli_args: list, sdk_call) -> None:
        n = len(emulator.requests)
        res = run_sogni(cli_args, sogni_env)
        assert res.returncode == 0, res.stderr
        mine = last(emulator, method, path_re, n)
        n = len(emulator.requests)
        sdk(emulator, sdk_call)
        theirs = last(emulator, method, path_re, n)
        found.update(differences(op, mine, theirs))

    steps = [{"toolName": "generate_image", "arguments": {"prompt": "a fox", "width": 512, "numberOfVariations": 2}}]
    compare("workflow-start", "POST", WF,
            ["image", "a fox", "--width", "512", "-n", "2", "--token-type", "spark", "--billing-mode", "auto",
             "--no-safe-content-filter", "--no-download"],
            lambda c: c.workflows.start(input={"steps": steps}, token_type="spark", billing_mode="auto",
                                        safe_content_filter=False, idempotency_key="side-by-side-1"))
    wid = last(emulator, "POST", WF)["json"] and emulator.store.list(1, 0)["workflows"][0]["workflowId"]
    compare("workflow-get", "GET", rf"{WF}/wf_\w+", ["workflow", "show", wid, "--json"],
            lambda c: c.workflows.get(wid))
    compare("workflow-list", "GET", WF, ["workflow", "list", "--json"], lambda c: c.workflows.list())

    async def sdk_resume(c):
        frames = [f async for f in c.workflows.stream_events(wid, last_event_id=2)]
        return frames

    # long enough (4 slow steps) to still be running when the subprocess has started and been cut off
    slow = [{"id": f"s{i}", "toolName": "generate_image", "arguments": {"prompt": "[slow] a fox"}} for i in range(4)]
    wid = emulator.store.start({"input": {"steps": slow}})[0]["workflowId"]
    emulator.script([{"match": "/events/stream", "action": "reset_after", "chunks": 2}])
    n = len(emulator.requests)
    res = run_sogni(["workflow", "watch", wid], sogni_env)
    assert res.returncode == 0, res.stderr
    streams = [r for r in emulator.requests[n:] if r["path"].endswith("/events/stream")]
    assert len(streams) >= 2  # cut after two events, then resumed
    mine = streams[1]
    n = len(emulator.requests)
    sdk(emulator, sdk_resume)
    found.update(differences("workflow-events-resume", mine, last(emulator, "GET", rf"{WF}/wf_\w+/events/stream", n)))

    compare("chat-hosted", "POST", "/v1/chat/completions",
            ["chat", "--no-stream", "-m", MODEL, "--token-type", "spark", "--billing-mode", "auto",
             "--safe-content-filter", "draw a fox", "--no-download"],
            lambda c: c.chat.hosted.create(model=MODEL, messages=[{"role": "user", "content": "draw a fox"}],
                                           token_type="spark", billingMode="auto", safe_content_filter=True))
    args = {"prompt": "a cat", "target_output": "image_prompt", "destination_model": "z-turbo"}
    compare("tools-execute", "POST", "/v1/creative-agent/tools/execute",
            ["tools", "run", "enhance_prompt", *sum([["--arg", f"{k}={v}"] for k, v in args.items()], [])],
            lambda c: c.chat.hosted.execute_tool(tool="enhance_prompt", arguments=args))

    wav = tmp_path / "a.wav"
    import struct

    pcm = b"\x00\x00" * 800
    wav.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " +
                    struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(pcm)) + pcm)
    compare("upload-media", "GET", "/v1/media/uploadUrl",
            ["video", "dance", "--audio", wav, "--no-download"],
            lambda c: c.projects.media_upload_url(jobId="j1", type="referenceAudio", contentType="audio/wav"))
    n = len(emulator.requests)
    res = run_sogni(["workflow", "cancel", wid], sogni_env)
    mine = last(emulator, "POST", rf"{WF}/wf_\w+/cancel", n)
    n = len(emulator.requests)
    sdk(emulator, lambda c: c.workflows.cancel(wid))
    found.update(differences("workflow-cancel", mine, last(emulator, "POST", rf"{WF}/wf_\w+/cancel", n)))

    listed = listed_differences()
    assert listed, "the README has no Wire choices keys"
    unlisted = sorted(d for d in found if d not in listed and "* " + d.split(" ", 1)[1] not in listed)
    assert not unlisted, "wire differences from the SDK not in the README's Wire choices table:\n" + "\n".join(unlisted)
