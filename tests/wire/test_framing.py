"""The inline stream encodings (telefunc.wire.framing): every decoder fed at every split point
gives what one whole feed gives, and a hostile length is refused before its bytes are buffered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telefunc.errors import ProtocolError
from telefunc.wire.framing import (
    SSE_OPEN,
    InlineBodyDecoder,
    InlineBodyEncoder,
    InlineChunk,
    InlineDone,
    InlineEnd,
    InlineError,
    InlineEvent,
    InlineMetadata,
    LengthPrefixedReader,
    RecordTooLarge,
    SseDecoder,
    SseMetadata,
    encode_sse_metadata,
    encode_u32_be,
    length_prefixed,
    parse_sse_metadata,
    sse_event,
)


def splits(data: bytes) -> list[list[bytes]]:
    """``data`` whole, cut at each byte in two, and cut into single bytes."""
    cuts = [[data]] + [[data[:i], data[i:]] for i in range(1, len(data))]
    return [*cuts, [data[i : i + 1] for i in range(len(data))]]


# ── length-prefixed records ─────────────────────────────────────────────────────────────────


def test_records_split_at_every_byte() -> None:
    records = [b"{}", b"", b"\x00\xff" * 5, b"x"]
    stream = length_prefixed(records)
    for pieces in splits(stream):
        reader = LengthPrefixedReader(max_body=10)
        got = [record for piece in pieces for record in reader.feed(piece)]
        assert got == records
        assert reader.pending == 0


def test_a_record_then_unframed_bytes() -> None:
    """The ``bin`` upload: one metadata record, then the files' raw bytes."""
    stream = length_prefixed([b'{"a":1}']) + b"\x00\x00\x00\xffrest"
    for pieces in splits(stream):
        reader = LengthPrefixedReader(max_body=7)
        metadata = None
        fed = 0
        while metadata is None:
            reader.receive_data(pieces[fed])
            fed += 1
            metadata = reader.next_record()
        assert metadata == b'{"a":1}'
        # Raw bytes that look like an oversized prefix are never parsed as one.
        assert reader.take_unparsed() + b"".join(pieces[fed:]) == b"\x00\x00\x00\xffrest"


def test_the_bound_is_checked_before_any_byte_of_the_record_arrives() -> None:
    reader = LengthPrefixedReader(max_body=1000)
    with pytest.raises(RecordTooLarge) as caught:
        reader.feed(encode_u32_be(1001))
    assert caught.value.size == 1001
    assert reader.pending == 0 and reader.error is caught.value
    with pytest.raises(RecordTooLarge):  # the reader stays stopped
        reader.feed(b"\x00" * 1001)
    assert reader.pending == 0  # and buffers nothing more


def test_the_first_record_has_its_own_bound() -> None:
    reader = LengthPrefixedReader(max_body=1000, max_first_body=10)
    with pytest.raises(RecordTooLarge):
        reader.feed(encode_u32_be(11))
    reader = LengthPrefixedReader(max_body=1000, max_first_body=10)
    assert reader.feed(length_prefixed([b"0123456789", b"y" * 1000])) == [
        b"0123456789",
        b"y" * 1000,
    ]


# ── SSE records ─────────────────────────────────────────────────────────────────────────────


def test_sse_events_split_at_every_byte() -> None:
    frames = [b"\x01\x02", b"\xfb\xff", b"x" * 40]
    stream = SSE_OPEN + b"".join(sse_event(frame) for frame in frames)
    stream += b": a comment\r\nevent: ignored\r\ndata: AAE\r\n\r\n"  # CRLF lines, other fields
    stream += b"data:AA\ndata:E\n\n"  # no space after the colon; two lines of one event
    for pieces in splits(stream):
        decoder = SseDecoder(max_event=100)
        got = [event for piece in pieces for event in decoder.feed(piece)]
        assert got == [*frames, b"\x00\x01", b"\x00\x01"]


def test_sse_event_is_base64url_without_padding() -> None:
    assert sse_event(b"\xfb\xff") == b"data: -_8\n\n"
    assert SseDecoder().feed(sse_event(b"\xfb\xff")) == [b"\xfb\xff"]


def test_a_long_sse_line_is_refused_before_more_is_buffered() -> None:
    decoder = SseDecoder(max_event=100)
    decoder.feed(b"data: " + b"A" * 94)  # exactly at the bound, still unterminated
    with pytest.raises(ProtocolError):
        decoder.feed(b"A")


def test_an_sse_event_of_many_lines_is_bounded_too() -> None:
    decoder = SseDecoder(max_event=100)
    decoder.feed(b"data: " + b"A" * 60 + b"\n")
    with pytest.raises(ProtocolError):
        decoder.feed(b"data: " + b"A" * 60 + b"\n")


def test_invalid_base64url_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        SseDecoder().feed(b"data: A\n\n")  # one character is never whole bytes


# ── the inline response body ────────────────────────────────────────────────────────────────


def inline_body(encoder: InlineBodyEncoder, *, error: bool) -> tuple[bytes, list[InlineEvent]]:
    body = encoder.header('{"ret":1}')
    events: list[InlineEvent] = [InlineMetadata(b'{"ret":1}')]
    for index, payload in [(0, b"a"), (255, b"\x00" * 20), (0, b"bc")]:
        body += encoder.chunk(index, payload)
        events.append(InlineChunk(index, payload))
    body += encoder.done(0)
    events.append(InlineDone(0))
    if error:
        body += encoder.error(b'{"type":"bug"}')
        events.append(InlineError(b'{"type":"bug"}'))
    else:
        body += encoder.end()
        events.append(InlineEnd())
    return body, events


def drain(decoder: InlineBodyDecoder, pieces: list[bytes]) -> list[InlineEvent]:
    out: list[InlineEvent] = []
    for piece in pieces:
        decoder.receive_data(piece)
        while (event := decoder.next_event()) is not None:
            out.append(event)
    return out


@pytest.mark.parametrize("sse", [False, True])
@pytest.mark.parametrize("error", [False, True])
def test_inline_body_split_at_every_byte(sse: bool, error: bool) -> None:
    body, events = inline_body(InlineBodyEncoder(sse=sse), error=error)
    for pieces in splits(body):
        assert drain(InlineBodyDecoder(sse=sse, max_frame=100), pieces) == events


def test_sse_inline_is_the_binary_body_cut_into_events() -> None:
    binary, _ = inline_body(InlineBodyEncoder(sse=False), error=True)
    sse, _ = inline_body(InlineBodyEncoder(sse=True), error=True)
    assert b"".join(SseDecoder().feed(sse)) == binary
    # One event per unit, as telefunc@0.2.23 sends them: the header's length is an event alone.
    assert sse.startswith(sse_event(encode_u32_be(9)) + sse_event(b'{"ret":1}'))


def test_nothing_is_read_after_the_end() -> None:
    decoder = InlineBodyDecoder(sse=False)
    body = length_prefixed([b"{}"]) + encode_u32_be(0) + b"garbage that is never parsed"
    assert drain(decoder, [body]) == [InlineMetadata(b"{}"), InlineEnd()]
    assert drain(decoder, [encode_u32_be(2**32 - 2)]) == []


@pytest.mark.parametrize(
    "prefix",
    [
        encode_u32_be(101),  # the metadata
        length_prefixed([b"{}"]) + encode_u32_be(101),  # a frame
        length_prefixed([b"{}"]) + encode_u32_be(0xFFFFFFFF) + encode_u32_be(101),  # an error
    ],
)
@pytest.mark.parametrize("sse", [False, True])
def test_an_oversized_inline_frame_is_refused_from_its_length(prefix: bytes, sse: bool) -> None:
    decoder = InlineBodyDecoder(sse=sse, max_frame=100)
    data = b"".join(sse_event(bytes([b])) for b in prefix) if sse else prefix
    with pytest.raises(ProtocolError, match="too large"):
        drain(decoder, [data])


def test_an_oversized_sse_inline_event_is_refused_before_it_is_buffered() -> None:
    decoder = InlineBodyDecoder(sse=True, max_frame=100)
    with pytest.raises(ProtocolError):
        decoder.receive_data(b"data: " + b"A" * 1000)


def test_an_empty_chunk_is_refused_by_the_encoder() -> None:
    with pytest.raises(ValueError):
        InlineBodyEncoder(sse=False).chunk(0, b"")


# ── SSE channel request metadata ────────────────────────────────────────────────────────────


def test_sse_metadata_round_trip() -> None:
    raw = encode_sse_metadata("c1", stream_response=True)
    assert raw == b'{"connId":"c1","streamResponse":true}'
    assert parse_sse_metadata(raw) == SseMetadata("c1", True, False)
    assert encode_sse_metadata("c2") == b'{"connId":"c2"}'
    assert parse_sse_metadata(encode_sse_metadata("c", stream_request=True)).stream_request


@pytest.mark.parametrize(
    "raw", [b"", b"\xff", b"[]", b"{}", b'{"connId":""}', b'{"connId":1}', b"{not json"]
)
def test_bad_sse_metadata_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_sse_metadata(raw)


@given(st.lists(st.binary(max_size=30), max_size=8), st.data())
def test_sse_decoder_any_chunking(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(sse_event(frame) for frame in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = SseDecoder()
    out: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += decoder.feed(stream[prev:cut])
        prev = cut
    assert out == frames
