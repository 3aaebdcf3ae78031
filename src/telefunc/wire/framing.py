"""The inline stream encodings of the HTTP transports, sans-I/O: every length prefix and SSE record.

* ``[u32 BE len][body]`` records (SSE channel POST bodies, the ``bin`` upload's metadata):
  :func:`length_prefixed`, and :class:`LengthPrefixedReader`, which refuses a record over its
  bound as soon as the prefix arrives (:class:`RecordTooLarge`), before buffering any of it.
* SSE events (:data:`SSE_OPEN`, :func:`sse_event`, :class:`SseDecoder`).
* The inline response body of ``binary-inline`` / ``sse-inline`` results (docs/protocol.md §6):
  :class:`InlineBodyEncoder` and the incremental :class:`InlineBodyDecoder`
  (:meth:`~InlineBodyDecoder.next_event` returns ``None`` when more data is needed).
* SSE channel request metadata: :func:`encode_sse_metadata` / :func:`parse_sse_metadata`.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from telefunc.errors import ProtocolError, RecordTooLarge

__all__ = [
    "INLINE_ERROR_MARKER",
    "MAX_INLINE_FRAME",
    "SSE_CONTENT_TYPE",
    "SSE_OPEN",
    "InlineBodyDecoder",
    "InlineBodyEncoder",
    "InlineChunk",
    "InlineDone",
    "InlineEnd",
    "InlineError",
    "InlineEvent",
    "InlineMetadata",
    "LengthPrefixedReader",
    "SseDecoder",
    "SseMetadata",
    "b64url_decode",
    "b64url_encode",
    "decode_u32_be",
    "encode_sse_metadata",
    "encode_u32_be",
    "length_prefixed",
    "parse_sse_metadata",
    "sse_event",
]

_U32_BE = struct.Struct(">I")

#: The Content-Type of an event stream.
SSE_CONTENT_TYPE: Final = "text/event-stream"
#: The comment that opens the SSE channel transport's event stream.
SSE_OPEN: Final = b": open\n\n"
#: The length that announces an inline body's error frame.
INLINE_ERROR_MARKER: Final = 0xFFFFFFFF
#: The largest inline frame or metadata a reader accepts (a hostile length must not make it
#: buffer without bound).
MAX_INLINE_FRAME: Final = 256 * 1024 * 1024


def encode_u32_be(n: int) -> bytes:
    """``n`` as 4 big-endian bytes."""
    return _U32_BE.pack(n)


def decode_u32_be(buf: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Read a big-endian u32 at ``offset``."""
    value: int = _U32_BE.unpack_from(buf, offset)[0]
    return value


def b64url_encode(data: bytes) -> str:
    """base64url without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode base64url with or without padding (:class:`ProtocolError` when invalid)."""
    try:
        if isinstance(text, str):
            text = text.encode("ascii")
        return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except ValueError as exc:  # binascii.Error and non-ASCII text are both ValueErrors
        raise ProtocolError("invalid base64url") from exc


# ── length-prefixed records ─────────────────────────────────────────────────────────────────


def length_prefixed(bodies: Iterable[bytes]) -> bytes:
    """Concatenate ``[u32 BE len][body]`` for every body."""
    out = bytearray()
    for body in bodies:
        out += _U32_BE.pack(len(body))
        out += body
    return bytes(out)


class LengthPrefixedReader:
    """Incrementally split a byte stream of ``[u32 BE len][body]`` records.

    :meth:`feed` takes a chunk and returns every record it completed. ``max_body`` bounds one
    record, checked as soon as its length prefix arrives, so a hostile length cannot make us
    buffer gigabytes: :class:`RecordTooLarge`, kept in :attr:`error` (the buffer is dropped; the
    records completed before it are still returned, and the error is raised by the next call).
    ``max_first_body`` gives the first record its own bound (a metadata record leading the
    stream). For a stream that goes on unframed after some records, take them one at a time
    with :meth:`receive_data` / :meth:`next_record`, then the rest with :meth:`take_unparsed`.
    """

    __slots__ = ("_buf", "_first", "_max_body", "_max_first_body", "_pos", "error")

    def __init__(
        self, max_body: int = MAX_INLINE_FRAME, *, max_first_body: int | None = None
    ) -> None:
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already handed out
        self._max_body = max_body
        self._max_first_body = max_body if max_first_body is None else max_first_body
        self._first = True
        #: The oversized record that stopped this reader, once one arrived.
        self.error: RecordTooLarge | None = None

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (nothing is parsed until :meth:`next_record`)."""
        if self.error is not None:
            raise self.error
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_record(self) -> bytes | None:
        """The next complete record, or ``None`` until more data arrived."""
        if self.error is not None:
            raise self.error
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            return None
        size: int = _U32_BE.unpack_from(buf, pos)[0]
        if size > (self._max_first_body if self._first else self._max_body):
            self.error = RecordTooLarge(size)
            self._buf, self._pos = bytearray(), 0
            raise self.error
        end = pos + 4 + size
        if len(buf) < end:
            return None
        self._first = False
        self._pos = end
        return bytes(buf[pos + 4 : end])

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Append ``chunk`` and return the complete records now available, in order."""
        self.receive_data(chunk)
        out: list[bytes] = []
        try:
            while (record := self.next_record()) is not None:
                out.append(record)
        except RecordTooLarge:
            if not out:
                raise
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        return out

    def take_unparsed(self) -> bytes:
        """The bytes received beyond the records taken (the stream goes on unframed)."""
        rest = bytes(self._buf[self._pos :])
        self._buf, self._pos = bytearray(), 0
        return rest

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete record."""
        return len(self._buf) - self._pos


# ── SSE records ─────────────────────────────────────────────────────────────────────────────


def sse_event(data: bytes) -> bytes:
    """``data: <base64url, no padding>`` and a blank line: one SSE event carrying ``data``."""
    return b"data: " + base64.urlsafe_b64encode(data).rstrip(b"=") + b"\n\n"


class SseDecoder:
    """Incrementally decode an event stream whose events carry base64url ``data:`` lines.

    :meth:`feed` returns the decoded bytes of every event a chunk completed. Comments (``: open``)
    and other fields carry nothing; several ``data:`` lines of one event are concatenated. With
    ``max_event`` a line or an event over that many bytes raises :class:`ProtocolError` before
    more of it is buffered.
    """

    __slots__ = ("_buf", "_data", "_max_event", "_scan")

    def __init__(self, max_event: int | None = None) -> None:
        self._buf = bytearray()
        self._scan = 0  # where to look for the next newline (a 1 MiB frame is one long line)
        self._data: bytearray | None = None  # the current event's data, once it has some
        self._max_event = max_event

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Append ``chunk``; the decoded data of each event it completed, in order."""
        buf = self._buf
        buf += chunk
        out: list[bytes] = []
        start = 0
        while (nl := buf.find(b"\n", self._scan)) >= 0:
            line = bytes(buf[start:nl]).rstrip(b"\r")
            start = self._scan = nl + 1
            if not line:
                if self._data is not None:
                    out.append(b64url_decode(bytes(self._data)))
                    self._data = None
            elif line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                if self._data is None:
                    self._data = bytearray(value)
                else:
                    self._data += value
                self._check(len(self._data))
        if start:
            del buf[:start]
        self._scan = len(buf)
        self._check(len(buf))
        return out

    def _check(self, size: int) -> None:
        if self._max_event is not None and size > self._max_event:
            raise ProtocolError(f"SSE event too large (more than {self._max_event} bytes)")


# ── the inline response body ────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class InlineMetadata:
    """The body's leading metadata (the call's result with its placeholders), UTF-8."""

    data: bytes


@dataclass(frozen=True, slots=True)
class InlineChunk:
    """One non-empty chunk of streaming value ``index``."""

    index: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class InlineDone:
    """Streaming value ``index`` has no more chunks."""

    index: int


@dataclass(frozen=True, slots=True)
class InlineEnd:
    """The body ended normally (every value is done)."""


@dataclass(frozen=True, slots=True)
class InlineError:
    """The body ended with an error: ``{"type":"abort","abortValue":…}`` or ``{"type":"bug"}``."""

    payload: bytes


InlineEvent = InlineMetadata | InlineChunk | InlineDone | InlineEnd | InlineError


class InlineBodyEncoder:
    """Writes an inline response body; with ``sse`` each unit is one ``data:`` event."""

    __slots__ = ("sse",)

    def __init__(self, *, sse: bool) -> None:
        self.sse = sse

    def _units(self, *units: bytes) -> bytes:
        if self.sse:
            return b"".join(sse_event(unit) for unit in units)
        return b"".join(units)

    def header(self, metadata: str) -> bytes:
        """``[u32 BE len][metadata UTF-8]``: the start of the body."""
        data = metadata.encode("utf-8")
        return self._units(_U32_BE.pack(len(data)), data)

    def chunk(self, index: int, payload: bytes) -> bytes:
        """``[u32 BE 1+len][u8 index][payload]``: one chunk of streaming value ``index``."""
        if not payload:
            raise ValueError("an empty payload means 'done': use done()")
        return self._units(_U32_BE.pack(1 + len(payload)) + bytes((index,)) + payload)

    def done(self, index: int) -> bytes:
        """``[u32 BE 1][u8 index]``: streaming value ``index`` has no more chunks."""
        return self._units(_U32_BE.pack(1) + bytes((index,)))

    def end(self) -> bytes:
        """``[u32 0]``: the body ends normally."""
        return self._units(_U32_BE.pack(0))

    def error(self, payload: bytes) -> bytes:
        """``[u32 0xFFFFFFFF][u32 BE len][payload]``: the body ends with an error."""
        return self._units(_U32_BE.pack(INLINE_ERROR_MARKER), _U32_BE.pack(len(payload)), payload)


class InlineBodyDecoder:
    """Reads an inline response body (``sse``: from its event stream), one event at a time.

    Frames and metadata over ``max_frame`` bytes raise :class:`ProtocolError` as soon as their
    length arrives. After :class:`InlineEnd` or :class:`InlineError` nothing more is read.
    """

    __slots__ = ("_buf", "_ended", "_max_frame", "_metadata", "_pos", "_sse")

    def __init__(self, *, sse: bool, max_frame: int = MAX_INLINE_FRAME) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max_frame = max_frame
        self._metadata = True  # the metadata comes first
        self._ended = False
        # An event line is ``data: `` and the base64 (4 characters per 3 bytes) of at most one
        # frame with its length prefix.
        self._sse = SseDecoder(max_event=8 + 4 * ((max_frame + 4 + 2) // 3)) if sse else None

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes of the body as they arrived."""
        if self._ended:
            return
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        if self._sse is None:
            self._buf += data
        else:
            for decoded in self._sse.feed(data):
                self._buf += decoded

    def _u32_at(self, offset: int) -> int | None:
        start = self._pos + offset
        if len(self._buf) < start + 4:
            return None
        value: int = _U32_BE.unpack_from(self._buf, start)[0]
        return value

    def _take(self, skip: int, size: int) -> bytes | None:
        start = self._pos + skip
        end = start + size
        if len(self._buf) < end:
            return None
        self._pos = end
        return bytes(self._buf[start:end])

    def next_event(self) -> InlineEvent | None:
        """The next event, or ``None`` until more data arrived (and forever after the end)."""
        if self._ended:
            return None
        size = self._u32_at(0)
        if size is None:
            return None
        if self._metadata:
            if size > self._max_frame:
                raise ProtocolError(f"streaming response metadata too large ({size} bytes)")
            data = self._take(4, size)
            if data is None:
                return None
            self._metadata = False
            return InlineMetadata(data)
        if size == 0:
            self._pos += 4
            self._ended = True
            return InlineEnd()
        if size == INLINE_ERROR_MARKER:
            length = self._u32_at(4)
            if length is None:
                return None
            if length > self._max_frame:
                raise ProtocolError(f"streaming error frame too large ({length} bytes)")
            payload = self._take(8, length)
            if payload is None:
                return None
            self._ended = True
            return InlineError(payload)
        if size > self._max_frame:
            raise ProtocolError(f"streaming frame too large ({size} bytes)")
        frame = self._take(4, size)
        if frame is None:
            return None
        if len(frame) == 1:
            return InlineDone(frame[0])
        return InlineChunk(frame[0], frame[1:])


# ── SSE channel request metadata ────────────────────────────────────────────────────────────


class SseMetadata(NamedTuple):
    """The metadata record that starts every SSE channel POST body."""

    conn_id: str
    stream_response: bool
    stream_request: bool


def encode_sse_metadata(
    conn_id: str, *, stream_response: bool = False, stream_request: bool = False
) -> bytes:
    """The metadata JSON of an SSE channel POST (a flag is sent only when set)."""
    data: dict[str, object] = {"connId": conn_id}
    if stream_response:
        data["streamResponse"] = True
    if stream_request:
        data["streamRequest"] = True
    return json.dumps(data, separators=(",", ":")).encode()


def parse_sse_metadata(raw: bytes) -> SseMetadata:
    """Parse the metadata JSON; :class:`ProtocolError` unless it has a non-empty ``connId``."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("SSE request metadata is not JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError("SSE request metadata is not an object")
    conn_id = data.get("connId")
    if not isinstance(conn_id, str) or not conn_id:
        raise ProtocolError("SSE request metadata has no connId")
    return SseMetadata(
        conn_id, data.get("streamResponse") is True, data.get("streamRequest") is True
    )
