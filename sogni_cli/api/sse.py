"""Incremental Server-Sent Events decoder (WHATWG HTML, "event stream interpretation").

Transport-agnostic: feed it the raw bytes of a ``text/event-stream`` body as they arrive, in chunks of any size,
and it returns the events completed by each chunk.

Rules implemented:

- Lines end with LF, CR or CRLF. A CR at the end of one chunk followed by an LF at the start of the next is one
  line end, not two.
- An empty line dispatches the event being built. A block with no ``data`` field dispatches nothing (a ``data``
  line with an empty value does dispatch an event whose data is ``""``, as the standard says).
- ``data`` lines are joined with ``"\\n"``; one optional space after the colon is removed; a line without a colon
  is a field with an empty value; lines starting with ``:`` are comments; unknown fields are ignored.
- ``event`` names the event (``"message"`` when absent or empty).
- ``id`` sets the last event id unless its value contains U+0000; it persists across events (every later event
  carries it) and :attr:`SSEDecoder.last_event_id` is what a reconnection should send as ``Last-Event-ID``.
  Like the standard's event source, the last event id only changes when a block ends (an empty line), so an id
  inside a block that was cut off never counts.
- ``retry`` is honoured only when it is ASCII digits; it is reported on the event of its block and kept in
  :attr:`SSEDecoder.retry`.
- A UTF-8 byte order mark is skipped at the very start of the stream only (also when split across chunks).
- Text is UTF-8, invalid bytes become U+FFFD. Decoding is incremental by construction: lines are split on the
  raw bytes (CR and LF never occur inside a multi-byte UTF-8 sequence) and a line is decoded only once it is
  complete, so a character split across chunks is reassembled before it is decoded.
- One event may not exceed :data:`MAX_EVENT_BYTES` (its data lines together, or any single line while it is being
  received): a larger one raises :class:`~sogni_cli.core.errors.MalformedResponse` (exit 5) instead of growing
  without bound.
- At the end of the stream an unterminated final block (no empty line after it) is discarded, as the standard
  requires: :meth:`SSEDecoder.close` returns no events for it and sets :attr:`SSEDecoder.discarded`.

Performance: the usual chunk (``data: {...}\\n\\n``) takes one ``split`` and a couple of slices; there is no
per-character loop anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..core.errors import MalformedResponse

__all__ = ["SSEEvent", "SSEDecoder", "iter_sse", "MAX_EVENT_BYTES"]

_BOM = b"\xef\xbb\xbf"
#: The largest event (data of one block, or one line) accepted from a server; looked up at call time.
MAX_EVENT_BYTES = 16 * 1024 * 1024


def _too_large(events: list[SSEEvent] | None = None) -> MalformedResponse:
    """The error for an oversized event; ``events`` (completed before it in the same chunk) ride along on it."""
    limit = MAX_EVENT_BYTES
    size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
    err = MalformedResponse(f"Refused an event larger than {size} from the server.",
                            hint="The server or a proxy in between sent a stream that is not what was expected.")
    err.events = list(events or [])  # type: ignore[attr-defined]
    return err


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: ``feed()`` each chunk of bytes, ``close()`` at the end of the stream."""

    __slots__ = ("_parts", "_pending", "_cr", "_bom", "_data", "_size", "_event", "_block_retry", "_id_buf",
                 "_last_id", "retry", "discarded")

    def __init__(self, last_event_id: str | None = None) -> None:
        self._parts: list[bytes] = []  # pieces of the current incomplete line
        self._pending = 0  # bytes in _parts
        self._cr = False  # the previous chunk ended with CR: drop an LF that starts the next one
        self._bom = True  # still at the start of the stream (BOM not yet ruled out)
        self._data: list[bytes] | None = None  # data lines of the block being built
        self._size = 0  # bytes of the block being built (its data and event values)
        self._event: bytes | None = None
        self._block_retry: int | None = None
        self._id_buf: str | None = last_event_id
        self._last_id: str | None = last_event_id
        #: the latest valid ``retry`` value (milliseconds), or None
        self.retry: int | None = None
        #: True after :meth:`close` when an unterminated final block or line was thrown away
        self.discarded = False

    @property
    def last_event_id(self) -> str | None:
        """The id of the last dispatched block (None until a stream sends an ``id`` field)."""
        return self._last_id

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode one chunk; return the events it completed (often zero or one)."""
        # Fast path: the usual chunk is exactly one whole ``data: ...\n\n`` event and nothing is pending.
        if (type(chunk) is bytes and chunk[:6] == b"data: " and chunk.find(b"\n") == len(chunk) - 2
                and chunk[-1] == 10 and len(chunk) <= MAX_EVENT_BYTES and not self._parts and self._data is None and self._event is None
                and self._block_retry is None and not self._bom and not self._cr and b"\r" not in chunk):
            self._last_id = self._id_buf
            return [SSEEvent("message", chunk[6:-2].decode("utf-8", "replace"), self._last_id, None)]
        if not chunk:
            return []
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        if self._bom:
            head = b"".join(self._parts) + chunk if self._parts else chunk
            if len(head) < 3 and _BOM.startswith(head):
                self._parts = [head]  # could still be a BOM: wait for more bytes
                self._pending = len(head)
                return []
            self._bom = False
            self._parts = []
            self._pending = 0
            chunk = head[3:] if head[:3] == _BOM else head
            if not chunk:
                return []
        if self._cr:
            self._cr = False
            if chunk[0] == 10:
                chunk = chunk[1:]
                if not chunk:
                    return []
        if b"\r" in chunk:
            self._cr = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        limit = MAX_EVENT_BYTES
        if b"\n" not in chunk:
            self._pending += len(chunk)
            if self._pending > limit:
                self._drop()
                raise _too_large()
            self._parts.append(chunk)
            return []
        lines = chunk.split(b"\n")
        if self._parts:
            if self._pending + len(lines[0]) > limit:
                self._drop()
                raise _too_large()
            self._parts.append(lines[0])
            lines[0] = b"".join(self._parts)
        tail = lines.pop()
        self._parts = []
        self._pending = 0
        out = self._lines(lines)
        if len(tail) > limit:
            self._drop()
            raise _too_large(out)
        self._parts = [tail] if tail else []
        self._pending = len(tail)
        return out

    def _drop(self) -> None:
        """Forget the event being received (it was refused as too large)."""
        self._parts = []
        self._pending = 0
        self._data = None
        self._size = 0
        self._event = None

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        data = self._data
        size = self._size
        limit = MAX_EVENT_BYTES
        for line in lines:
            if line[:6] == b"data: ":  # the usual line first
                size += len(line) - 5
                if size > limit:
                    self._drop()
                    raise _too_large(out)
                if data is None:
                    data = [line[6:]]
                else:
                    data.append(line[6:])
                continue
            if not line:  # end of block
                self._last_id = self._id_buf
                if data is not None:
                    text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
                    ev = self._event
                    out.append(SSEEvent(ev.decode("utf-8", "replace") if ev else "message", text, self._last_id,
                                        self._block_retry))
                    data = None
                self._event = None
                self._block_retry = None
                size = 0
                continue
            if line[0] == 58:  # ":" comment
                continue
            i = line.find(b":")
            if i < 0:
                name, value = line, b""
            else:
                name, value = line[:i], line[i + 1:]
                if value[:1] == b" ":
                    value = value[1:]
            if name == b"data" or name == b"event":
                size += len(value) + 1
                if size > limit:
                    self._drop()
                    raise _too_large(out)
            if name == b"data":
                if data is None:
                    data = [value]
                else:
                    data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                if b"\x00" not in value:
                    self._id_buf = value.decode("utf-8", "replace")
            elif name == b"retry":
                if value.isdigit():  # bytes.isdigit() is ASCII-only
                    self._block_retry = self.retry = int(value)
        self._data = data
        self._size = size
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream: discard an unterminated final block (per the standard) and reset for a new stream.

        Always returns an empty list; :attr:`discarded` tells whether anything was thrown away. The last event id
        and retry value are kept, so the same decoder can read the stream of a reconnection.
        """
        pending = bool(self._parts) and not (self._bom and _BOM.startswith(b"".join(self._parts)))
        self.discarded = pending or self._data is not None or self._event is not None \
            or self._block_retry is not None or self._id_buf != self._last_id
        self._parts = []
        self._pending = 0
        self._cr = False
        self._bom = True
        self._data = None
        self._size = 0
        self._event = None
        self._block_retry = None
        self._id_buf = self._last_id
        return []


def iter_sse(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """Yield the events of a whole stream given as an iterable of byte chunks."""
    dec = SSEDecoder()
    for chunk in chunks:
        yield from dec.feed(chunk)
    yield from dec.close()
