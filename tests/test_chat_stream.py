"""Chat stream parser: deltas, reasoning (fields and <think> tags split anywhere), tool calls, errors, end."""

from __future__ import annotations

import itertools
import json

import pytest

from sogni_cli.api.chat_stream import ChatStreamParser, parse_completion
from sogni_cli.api.sse import SSEEvent, iter_sse
from sogni_cli.core.errors import ApiError, ExitCode, StreamError, UnavailableError
from sogni_cli.core.events import Delta, Done, Reasoning, ToolCall, Usage


def chunk(content=None, *, role=None, reasoning_content=None, reasoning=None, tool_calls=None, finish=None, **top):
    delta = {"role": role} if role else {}
    if content is not None:
        delta["content"] = content
    if reasoning_content is not None:
        delta["reasoning_content"] = reasoning_content
    if reasoning is not None:
        delta["reasoning"] = reasoning
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "qwen3",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    obj.update(top)
    return SSEEvent(data=json.dumps(obj))


DONE = SSEEvent(data="[DONE]")


def run(events):
    p = ChatStreamParser()
    out = []
    for ev in events:
        out += p.feed_event(ev)
    out += p.finish()
    return p, out


def texts(events, cls):
    return "".join(e.text for e in events if isinstance(e, cls))


def test_content_deltas_are_emitted_immediately():
    p = ChatStreamParser()
    assert p.feed_event(chunk("", role="assistant")) == []
    assert p.feed_event(chunk("Hello")) == [Delta("Hello")]
    assert p.feed_event(chunk(", world")) == [Delta(", world")]
    assert p.feed_event(chunk("! 1 < 2", finish="stop")) == [Delta("! 1 < 2")]
    assert p.feed_event(DONE) == []
    p.feed_event(DONE)
    assert p.finish() == [Done("stop")]
    assert (p.content, p.reasoning, p.done, p.finish_reason) == ("Hello, world! 1 < 2", "", True, "stop")
    assert (p.id, p.model, p.tool_calls, p.extras) == ("chatcmpl-1", "qwen3", [], {})


def test_possible_tag_prefix_is_held_only_until_the_next_piece():
    p = ChatStreamParser()
    assert p.feed_event(chunk("Hi <th")) == [Delta("Hi ")]
    assert p.feed_event(chunk("ere")) == [Delta("<there")]
    assert p.feed_event(chunk("a <")) == [Delta("a ")]
    assert p.feed_event(chunk("b>")) == [Delta("<b>")]
    assert p.feed_event(chunk("end </thin")) == [Delta("end ")]
    assert p.feed_event(chunk(finish="stop")) == []
    assert p.feed_event(DONE) == []
    assert p.finish() == [Delta("</thin"), Done("stop")]
    assert p.content == "Hi <therea <b>end </thin"


def test_held_tail_is_released_by_finish():
    p = ChatStreamParser()
    assert p.feed_event(chunk("x <thi", finish="stop")) == [Delta("x ")]
    assert p.feed_event(DONE) == []
    assert p.finish() == [Delta("<thi"), Done("stop")]
    assert p.content == "x <thi"


THINK = "<think>Let me see: a<b and x</th.</think>\n\nThe answer is <b>bold</b>, 1 < 2 and <think-not."
THINK_REASONING = "Let me see: a<b and x</th."
THINK_CONTENT = "The answer is <b>bold</b>, 1 < 2 and <think-not."


def _check_split(pieces):
    p, out = run([chunk(s) for s in pieces if s] + [chunk(finish="stop"), DONE])
    assert texts(out, Reasoning) == THINK_REASONING, pieces
    assert texts(out, Delta) == THINK_CONTENT, pieces
    assert (p.reasoning, p.content) == (THINK_REASONING, THINK_CONTENT)
    assert out[-1] == Done("stop")


def test_think_tags_split_at_every_position():
    _check_split([THINK])
    for i in range(len(THINK) + 1):
        _check_split([THINK[:i], THINK[i:]])
    _check_split(list(THINK))


def test_think_tags_split_at_every_pair_of_positions():
    for i, j in itertools.combinations(range(1, len(THINK)), 2):
        _check_split([THINK[:i], THINK[i:j], THINK[j:]])


def test_think_block_text_before_it_and_first_line_indentation():
    p, out = run([chunk("\n<think>r</think>\n\n    indented\nnext"), DONE])
    assert [type(e) for e in out] == [Reasoning, Delta, Done]
    assert (p.reasoning, p.content) == ("r", "    indented\nnext")


def test_closing_tag_without_opener_before_visible_text_is_reasoning():
    p, out = run([chunk("\n"), chunk("The user wants X.</think>\n\nAnswer."), chunk(finish="stop"), DONE])
    assert texts(out, Reasoning) == "\nThe user wants X."
    assert texts(out, Delta) == "Answer."
    assert out[-1] == Done("stop")


def test_closing_tag_after_visible_text_stays_literal():
    p, out = run([chunk("Visible"), chunk(" text</think> more"), DONE])
    assert texts(out, Reasoning) == ""
    assert p.content == "Visible text</think> more"


def test_unterminated_think_is_reasoning():
    p, out = run([chunk("<think>still thinking</th"), chunk(finish="length"), DONE])
    assert (p.reasoning, p.content) == ("still thinking</th", "")
    assert out[-1] == Done("length")


def test_reasoning_fields():
    p = ChatStreamParser()
    assert p.feed_event(chunk(reasoning_content="step 1. ")) == [Reasoning("step 1. ")]
    assert p.feed_event(chunk(reasoning="step 2.")) == [Reasoning("step 2.")]
    # both fields present: reasoning_content wins, no duplicate
    assert p.feed_event(chunk(reasoning_content="!", reasoning="!")) == [Reasoning("!")]
    assert p.feed_event(chunk("Answer", reasoning_content="")) == [Delta("Answer")]
    p.feed_event(chunk(finish="stop"))
    p.feed_event(DONE)
    assert p.finish() == [Done("stop")]
    assert (p.reasoning, p.content) == ("step 1. step 2.!", "Answer")


def test_two_parallel_tool_calls_accumulate_by_index():
    tc = lambda **kw: chunk(tool_calls=[kw])  # noqa: E731
    events = [
        tc(index=0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}),
        tc(index=1, id="call_b", type="function", function={"name": "get_time", "arguments": ""}),
        tc(index=0, function={"arguments": '{"city": '}),
        tc(index=1, function={"arguments": '{"tz"'}),
        tc(index=0, function={"arguments": '"Paris"}'}),
        chunk(tool_calls=[{"index": 1, "function": {"arguments": ': "UTC"}'}},
                          {"index": 2, "id": "call_c", "function": {"name": "broken", "arguments": "{not json"}}]),
        chunk(finish="tool_calls"),
        DONE,
    ]
    p = ChatStreamParser()
    streamed = []
    for ev in events:
        streamed += p.feed_event(ev)
    assert streamed == []  # tool calls are reported once complete
    assert p.finish() == [
        ToolCall("call_a", "get_weather", {"city": "Paris"}),
        ToolCall("call_b", "get_time", {"tz": "UTC"}),
        ToolCall("call_c", "broken", "{not json"),
        Done("tool_calls"),
    ]
    assert p.tool_calls[:2] == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'}},
    ]


def test_tool_call_without_id_or_arguments():
    p, out = run([chunk(tool_calls=[{"index": 0, "function": {"name": "ping"}}]), chunk(finish="tool_calls"), DONE])
    assert out == [ToolCall("call_0", "ping", {}), Done("tool_calls")]


ERRORS = [
    ("billing openai envelope", {"error": {"message": "Insufficient balance", "type": "insufficient_balance",
                                           "code": 402}}, ExitCode.BILLING, "Insufficient balance"),
    ("billing code only", {"error": {"message": "Pay up", "code": 402}}, ExitCode.BILLING, "Pay up"),
    ("billing sogni envelope", {"status": "error", "message": "Not enough credits", "errorCode": 4078},
     ExitCode.BILLING, "Not enough credits"),
    ("auth code", {"error": {"message": "Invalid API key", "type": "invalid_request_error", "code": 401}},
     ExitCode.AUTH, "Invalid API key"),
    ("auth type", {"error": {"message": "bad key", "type": "authentication_error"}}, ExitCode.AUTH, "bad key"),
    ("auth status", {"error": {"message": "denied", "status": 403}}, ExitCode.AUTH, "denied"),
    ("rate limit", {"error": {"message": "Too many requests", "type": "rate_limit_exceeded", "code": 429}},
     ExitCode.UNAVAILABLE, "Too many requests"),
    ("rate limit type", {"error": {"message": "slow down", "type": "rate_limit_exceeded"}},
     ExitCode.UNAVAILABLE, "slow down"),
    ("server error", {"error": {"message": "worker crashed", "type": "server_error"}},
     ExitCode.UNAVAILABLE, "worker crashed"),
    ("generic", {"error": {"message": "something odd"}}, ExitCode.UNAVAILABLE, "something odd"),
    ("rejected", {"error": {"message": "context too long", "type": "invalid_request_error",
                            "code": "context_length_exceeded"}}, ExitCode.REJECTED, "context too long"),
    ("socket style", {"error": "llm_failed", "message": "model crashed"}, ExitCode.UNAVAILABLE, "model crashed"),
]


@pytest.mark.parametrize("body,code,message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error_object_inside_a_200_stream(body, code, message):
    raw = (b'data: {"choices":[{"index":0,"delta":{"content":"Partial"}}]}\n\n'
           + b"data: " + json.dumps(body).encode() + b"\n\n")
    p = ChatStreamParser()
    seen = []
    with pytest.raises(ApiError) as ei:
        for ev in iter_sse([raw]):
            seen += p.feed_event(ev)
    assert ei.value.exit_code == code
    assert message in ei.value.message
    assert seen == [Delta("Partial")] and p.content == "Partial"


def test_billing_error_has_a_hint():
    p = ChatStreamParser()
    with pytest.raises(ApiError) as ei:
        p.feed_event(SSEEvent(data=json.dumps({"error": {"message": "no", "code": 401}})))
    assert ei.value.status == 401 and "API key" in (ei.value.hint or "")


def test_non_json_data_is_unavailable():
    p = ChatStreamParser()
    with pytest.raises(UnavailableError) as ei:
        p.feed_event(SSEEvent(data="<html>Bad gateway</html>"))
    assert ei.value.exit_code == ExitCode.UNAVAILABLE
    assert "not JSON" in ei.value.message and "Bad gateway" in ei.value.message


def test_named_error_event_with_text():
    with pytest.raises(UnavailableError) as ei:
        ChatStreamParser().feed_event(SSEEvent(event="error", data="upstream closed"))
    assert ei.value.exit_code == 5 and "upstream closed" in ei.value.message


def test_missing_done_and_finish_reason_is_a_stream_error():
    p = ChatStreamParser()
    p.feed_event(chunk("Half an ans"))
    p.feed_event(chunk("wer <"))
    with pytest.raises(StreamError) as ei:
        p.finish()
    assert ei.value.exit_code == ExitCode.UNAVAILABLE == 5
    assert "ended before it was complete" in ei.value.message and ei.value.hint
    assert ei.value.events == [Delta("<")]  # the held tail can still be written
    assert p.content == "Half an answer <"


def test_finish_reason_without_done_is_an_error():
    """Contract §5: only data: [DONE] ends a stream; a cut after the finish chunk is still exit 5."""
    p = ChatStreamParser()
    assert p.feed_event(chunk("ok")) == [Delta("ok")]
    assert p.feed_event(chunk(finish="stop")) == []
    with pytest.raises(StreamError) as exc:
        p.finish()
    assert exc.value.exit_code == 5


def test_done_without_finish_reason_is_accepted_and_later_data_ignored():
    p, out = run([chunk("ok"), DONE, chunk("late")])
    assert out == [Delta("ok"), Done(None)] and p.content == "ok"


def test_usage_event_and_extras():
    cw = [{"workflowId": "wf_1", "status": "queued", "url": "https://x/wf_1"}]
    events = [
        chunk("a", usage=None),
        chunk(finish="stop", usage=None, sogni_tool_results=[{"tool": "generate_image"}]),
        SSEEvent(data=json.dumps({"id": "chatcmpl-1", "choices": [], "creative_workflows": cw,
                                  "creativeWorkflows": cw,
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})),
        DONE,
    ]
    p, out = run(events)
    assert out == [Delta("a"), Usage({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}), Done("stop")]
    assert p.usage["total_tokens"] == 7
    assert p.extras == {"sogni_tool_results": [{"tool": "generate_image"}], "creative_workflows": cw,
                        "creativeWorkflows": cw}
    assert out[1].to_json() == {"event": "usage", "usage": p.usage}


def test_other_named_events_are_kept_not_interpreted():
    p = ChatStreamParser()
    ev = SSEEvent(event="progress", data='{"choices":[{"index":0,"delta":{"content":"no"}}]}')
    assert p.feed_event(ev) == [] and p.other_events == [ev] and p.content == ""


def test_full_byte_stream_through_the_decoder():
    pieces = [b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"<th"}}]}',
              b'data: {"choices":[{"index":0,"delta":{"content":"ink>hm</think>Caf\xc3\xa9"}}]}',
              b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}', b"data: [DONE]"]
    raw = b"\r\n\r\n".join(pieces) + b"\r\n\r\n"
    for i in range(len(raw) + 1):
        p, out = run(iter_sse([raw[:i], raw[i:]]))
        assert (texts(out, Reasoning), texts(out, Delta), p.done, out[-1]) == ("hm", "Café", True, Done("stop"))


def test_parse_completion_with_think_tools_usage_and_extras():
    body = {
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "qwen3",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "<think>plan</think>\n\nSure.",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "generate_image", "arguments": "{\"prompt\": \"a cat\"}"}}]}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        "creative_workflows": [{"workflowId": "wf_9", "status": "queued"}],
    }
    events, summary = parse_completion(body)
    assert events == [Reasoning("plan"), Delta("Sure."), Usage({"prompt_tokens": 3, "completion_tokens": 4}),
                      ToolCall("call_1", "generate_image", {"prompt": "a cat"}), Done("tool_calls")]
    assert summary["content"] == "Sure." and summary["reasoning"] == "plan"
    assert summary["finish_reason"] == "tool_calls" and summary["usage"]["completion_tokens"] == 4
    assert summary["tool_calls"] == body["choices"][0]["message"]["tool_calls"]
    assert summary["extras"] == {"creative_workflows": [{"workflowId": "wf_9", "status": "queued"}]}


def test_parse_completion_reasoning_content_and_openerless_think():
    events, summary = parse_completion({"choices": [{"finish_reason": "stop", "message": {
        "content": "hidden</think>Shown", "reasoning_content": "field "}}]})
    assert events == [Reasoning("field "), Reasoning("hidden"), Delta("Shown"), Done("stop")]
    assert (summary["reasoning"], summary["content"], summary["tool_calls"]) == ("field hidden", "Shown", [])


def test_parse_completion_error_body():
    with pytest.raises(ApiError) as ei:
        parse_completion({"status": "error", "message": "Insufficient funds", "errorCode": 4079})
    assert ei.value.exit_code == ExitCode.BILLING


def test_long_stream_collects_all_text():
    piece = "x" * 199 + " "
    p = ChatStreamParser()
    ev = chunk(piece)
    for _ in range(20_000):
        p.feed_event(ev)
    assert len(p.content) == 20_000 * 200 and p.content[-200:] == piece  # speed: bench/bench_stream.py
