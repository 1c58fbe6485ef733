"""SSE decoder: one table of raw streams, each decoded whole, split at every byte, byte by byte, and (for some
rows) at every pair of split points."""

from __future__ import annotations

import itertools
import json

import pytest

from sogni_cli.api.sse import SSEDecoder, SSEEvent, iter_sse

M = "message"

# (name, raw bytes, expected [(event, data, id, retry), ...])
CASES = [
    ("simple", b"data: hello\n\n", [(M, "hello", None, None)]),
    ("two events", b"data: a\n\ndata: b\n\n", [(M, "a", None, None), (M, "b", None, None)]),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", [(M, "a", None, None), (M, "b", None, None)]),
    ("cr only", b"data: a\r\rdata: b\r\r", [(M, "a", None, None), (M, "b", None, None)]),
    ("mixed line ends", b"data: a\rdata: b\r\ndata: c\n\r\n", [(M, "a\nb\nc", None, None)]),
    ("lf then cr is two line ends", b"data: a\n\rdata: b\n\n", [(M, "a", None, None), (M, "b", None, None)]),
    ("cr cr lf", b"data: a\r\r\ndata: b\r\n\r\n", [(M, "a", None, None), (M, "b", None, None)]),
    ("multi-line data", b"data: a\ndata: b\ndata: c\n\n", [(M, "a\nb\nc", None, None)]),
    ("one space stripped", b"data:no space\ndata:  two\ndata: \ndata:x \n\n", [(M, "no space\n two\n\nx ", None, None)]),
    ("colons in value", b"data: a: b:c\n\n", [(M, "a: b:c", None, None)]),
    ("event name then reset", b"event: update\ndata: 1\n\ndata: 2\n\n", [("update", "1", None, None), (M, "2", None, None)]),
    ("empty event name", b"event:\ndata: x\n\n", [(M, "x", None, None)]),
    ("id persists", b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n",
     [(M, "a", "7", None), (M, "b", "7", None), (M, "c", "8", None)]),
    ("id with NUL ignored", b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", [(M, "a", "1", None), (M, "b", "1", None)]),
    ("empty id resets", b"id: 5\ndata: a\n\nid\ndata: b\n\n", [(M, "a", "5", None), (M, "b", "", None)]),
    ("id keeps extra space", b"id:  x\ndata: a\n\n", [(M, "a", " x", None)]),
    ("retry digits", b"retry: 3000\ndata: a\n\ndata: b\n\n", [(M, "a", None, 3000), (M, "b", None, None)]),
    ("retry not digits", b"retry: 30s\ndata: a\n\nretry: -1\ndata: b\n\nretry:\ndata: c\n\nretry: 1.5\ndata: d\n\n",
     [(M, "a", None, None), (M, "b", None, None), (M, "c", None, None), (M, "d", None, None)]),
    ("all fields", b"event: e\nid: 1\nretry: 10\ndata: d\n\n", [("e", "d", "1", 10)]),
    ("comments", b": keepalive\n:\ndata: a\n: mid\n\n", [(M, "a", None, None)]),
    ("comment-only blocks", b": ping\n\n: ping\n\n", []),
    ("no colon: spec example", b"data\n\ndata\ndata\n\ndata:", [(M, "", None, None), (M, "\n", None, None)]),
    ("unknown fields ignored", b"foo: bar\ndata: a\nbaz\n\n", [(M, "a", None, None)]),
    ("field names are case-sensitive", b"DATA: a\nData: b\n data: c\n\n", []),
    ("block without data dispatches nothing", b"event: x\nid: 3\n\ndata: y\n\n", [(M, "y", "3", None)]),
    ("leading blank lines", b"\n\n\ndata: a\n\n\n\n", [(M, "a", None, None)]),
    ("bom", b"\xef\xbb\xbfdata: a\n\n", [(M, "a", None, None)]),
    ("bom only at the very start", b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\n", [(M, "a", None, None)]),
    ("second bom is not skipped", b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", []),
    ("multi-byte utf-8", "data: héllo € 𝄞 日本\n\n".encode(), [(M, "héllo € 𝄞 日本", None, None)]),
    ("invalid utf-8", b"data: a\xffb\xe2\x82\nevent: \xc3\n\n", [("\ufffd", "a\ufffdb\ufffd", None, None)]),
    ("unterminated block discarded", b"data: a\n\ndata: b\n", [(M, "a", None, None)]),
    ("unterminated line discarded", b"data: a\n\ndata: b", [(M, "a", None, None)]),
    ("openai stream", b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: [DONE]\n\n',
     [(M, '{"choices":[{"delta":{"content":"Hi"}}]}', None, None), (M, "[DONE]", None, None)]),
    ("crlf everywhere", b": c\r\nevent: x\r\nid: 9\r\ndata: 1\r\ndata: 2\r\n\r\n", [("x", "1\n2", "9", None)]),
]

PAIR_ROWS = {"crlf", "mixed line ends", "cr cr lf", "bom", "multi-byte utf-8", "invalid utf-8", "all fields"}


def decode(chunks) -> list[tuple]:
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for c in chunks:
        out += dec.feed(c)
    out += dec.close()
    return [(e.event, e.data, e.id, e.retry) for e in out]


@pytest.mark.parametrize("raw,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_table(raw: bytes, expected: list[tuple]) -> None:
    assert decode([raw]) == expected
    for i in range(len(raw) + 1):
        assert decode([raw[:i], raw[i:]]) == expected, f"split at {i}"
    assert decode([raw[i:i + 1] for i in range(len(raw))]) == expected
    assert [(e.event, e.data, e.id, e.retry) for e in iter_sse(iter([raw]))] == expected


@pytest.mark.parametrize("raw,expected", [c[1:] for c in CASES if c[0] in PAIR_ROWS],
                         ids=[c[0] for c in CASES if c[0] in PAIR_ROWS])
def test_table_every_pair_of_splits(raw: bytes, expected: list[tuple]) -> None:
    for i, j in itertools.combinations_with_replacement(range(len(raw) + 1), 2):
        assert decode([raw[:i], raw[i:j], raw[j:]]) == expected, f"split at {i},{j}"


def test_table_has_enough_rows() -> None:
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


def test_event_is_returned_by_the_chunk_that_completes_it() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a") == []
    assert dec.feed(b"\n") == []
    assert dec.feed(b"\n") == [SSEEvent("message", "a")]
    assert dec.feed(b"data: b\n\ndata: c\n\n") == [SSEEvent(data="b"), SSEEvent(data="c")]


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\n") == []  # the LF completes the CRLF, it is not an empty line
    assert dec.feed(b"data: b\r") == []
    assert dec.feed(b"\r") == [SSEEvent(data="a\nb")]


def test_last_event_id_persists_and_only_changes_at_block_end() -> None:
    dec = SSEDecoder()
    assert dec.last_event_id is None
    dec.feed(b"id: 1\ndata: a\n\n")
    assert dec.last_event_id == "1"
    evs = dec.feed(b"data: b\n\n")
    assert evs[0].id == "1" and dec.last_event_id == "1"
    dec.feed(b"id: 2\ndata: c\n")  # block not ended yet
    assert dec.last_event_id == "1"
    assert dec.close() == []
    assert dec.discarded is True
    assert dec.last_event_id == "1"  # the cut-off block's id never counts
    dec.feed(b"id: 3\n\n")  # a block with no data still moves the id
    assert dec.last_event_id == "3"


def test_close_discards_and_resets_for_a_new_stream() -> None:
    dec = SSEDecoder(last_event_id="41")
    assert dec.feed(b"retry: 250\ndata: x\n\n") == [SSEEvent("message", "x", "41", 250)]
    assert dec.retry == 250
    assert dec.feed(b"event: e\ndata: partial") == []
    assert dec.close() == []
    assert dec.discarded is True
    # a reconnection's stream may start with its own BOM and must not see the old partial block
    assert dec.feed(b"\xef\xbb\xbfdata: y\n\n") == [SSEEvent("message", "y", "41", None)]
    assert dec.close() == [] and dec.discarded is False
    assert dec.retry == 250


def test_close_after_complete_stream_discards_nothing() -> None:
    dec = SSEDecoder()
    dec.feed(b"data: a\n\n: trailing comment\n")
    dec.close()
    assert dec.discarded is False


def test_accepts_bytearray_and_memoryview() -> None:
    dec = SSEDecoder()
    assert dec.feed(bytearray(b"data: a\n")) == []
    assert dec.feed(memoryview(b"\n")) == [SSEEvent(data="a")]


def test_long_line_in_many_chunks() -> None:
    payload = json.dumps({"x": "y" * 200_000}).encode()
    raw = b"data: " + payload + b"\n\n"
    evs = decode(raw[i:i + 1000] for i in range(0, len(raw), 1000))
    assert len(evs) == 1 and evs[0][1] == payload.decode()


def test_twenty_thousand_chunks_decode() -> None:
    chunks = [b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m",'
              b'"choices":[{"index":0,"delta":{"content":"token %d "},"finish_reason":null}]}\n\n' % i
              for i in range(20_000)]
    dec = SSEDecoder()
    counts = [len(dec.feed(c)) for c in chunks]
    assert counts == [1] * 20_000  # speed: bench/bench_stream.py
