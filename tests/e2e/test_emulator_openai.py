"""The official ``openai`` package parses what the emulator sends (streamed, non-streamed, tool calls, models)."""

from __future__ import annotations

import json

import pytest

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(emulator):
    import httpx

    c = openai.OpenAI(base_url=emulator.base_url + "/v1", api_key="sk-test-openai-e2e", max_retries=0,
                      http_client=httpx.Client(trust_env=False, timeout=10))
    yield c
    c.close()


def test_non_streamed_completion(client, emulator):
    resp = client.chat.completions.create(
        model="qwen3.6-35b-a3b-gguf-iq4xs",
        messages=[{"role": "user", "content": "tell me about lighthouses"}],
        extra_body={"sogni_tools": False},
    )
    assert resp.choices[0].message.content == "Echo: tell me about lighthouses"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens > 0
    sent = emulator.requests[-1]
    assert sent["headers"]["authorization"] == "Bearer sk-test-openai-e2e"
    assert sent["json"]["sogni_tools"] is False


def test_streamed_completion_with_usage(client):
    stream = client.chat.completions.create(
        model="qwen3.6-35b-a3b-gguf-iq4xs",
        messages=[{"role": "user", "content": "a calm evening by the sea"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"sogni_tools": False},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert len(pieces) > 3
    assert "".join(pieces) == "Echo: a calm evening by the sea"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == len(pieces)


def test_tool_call_completion(client):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                       "required": ["city", "days"]}}}]
    resp = client.chat.completions.create(
        model="qwen3.6-35b-a3b-gguf-iq4xs",
        messages=[{"role": "user", "content": "Paris"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        extra_body={"sogni_tools": False},
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 1}


def test_streamed_tool_call_accumulates_by_index(client):
    tools = [{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                                         "required": ["q"]}}}]
    stream = client.chat.completions.create(
        model="qwen3.6-35b-a3b-gguf-iq4xs",
        messages=[{"role": "user", "content": "please lookup the tallest tower"}],
        tools=tools, stream=True, extra_body={"sogni_tools": False},
    )
    calls: dict[int, dict] = {}
    finish = None
    argument_pieces = 0
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                if tc.function.name:
                    entry["name"] = tc.function.name
                if tc.function.arguments:
                    entry["arguments"] += tc.function.arguments
                    argument_pieces += 1
    assert finish == "tool_calls"
    assert argument_pieces > 1
    assert calls[0]["name"] == "lookup"
    assert json.loads(calls[0]["arguments"]) == {"q": "please lookup the tallest tower"}


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["qwen3.6-35b-a3b-gguf-iq4xs", "qwen3.5-35b-a3b-abliterated-gguf-q4km"]


def test_openai_error_envelope_is_parsed(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="qwen3.6-35b-a3b-gguf-iq4xs",
                                       messages=[{"role": "user", "content": "hi"}],
                                       extra_body={"not_a_field": 1})
    assert info.value.code == "invalid_parameter"
    assert "not_a_field" in info.value.message
