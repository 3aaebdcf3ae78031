"""Frame codec, framing helpers: round trips for every tag, and strict decoding."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telefunc.errors import ProtocolError, RecordTooLarge
from telefunc.wire.frames import (
    AckStatus,
    Tag,
    decode_frame,
    encode_ack_res,
    encode_frame,
    encode_json,
    encode_u32_frame,
)
from telefunc.wire.framing import (
    LengthPrefixedReader,
    b64url_decode,
    b64url_encode,
    length_prefixed,
)

SAMPLE_PAYLOAD = {
    Tag.CLOSE: struct.pack("<I", 5000),
    Tag.WINDOW: struct.pack("<I", 2 * 1024 * 1024),
    Tag.MSG_WINDOW: struct.pack("<I", 100),
    Tag.BROADCAST_SUB: b"\x01",
    Tag.BROADCAST_UNSUB: b"\x00",
    Tag.ACK_RES: struct.pack("<IB", 7, 0) + b'"ok"',
    Tag.PUBLISH_BINARY: struct.pack("<Id", 3, 1.5) + b"\x00\xff",
    Tag.RECONCILE: b'{"open":[]}',
    Tag.RECONCILED: b'{"sessionId":"s","open":[]}',
    Tag.TEXT: b'"h\\u00e9"',
    Tag.BINARY: bytes(range(256)),
}


@pytest.mark.parametrize("tag", list(Tag), ids=lambda t: t.name)
def test_every_tag_round_trips(tag: Tag) -> None:
    payload = SAMPLE_PAYLOAD.get(tag, b"")
    raw = encode_frame(tag, 513, 0x01020304, payload)
    assert raw[:7] == bytes([tag, 0x01, 0x02, 0x04, 0x03, 0x02, 0x01])
    frame = decode_frame(raw)
    assert (frame.tag, frame.ix, frame.seq, frame.payload) == (tag, 513, 0x01020304, payload)


def test_structured_payloads() -> None:
    assert decode_frame(encode_u32_frame(Tag.CLOSE, 3, 1234)).u32 == 1234
    assert decode_frame(encode_u32_frame(Tag.WINDOW, 3, 0xFFFFFFFF)).u32 == 0xFFFFFFFF
    ack = decode_frame(encode_ack_res(2, 9, 4, AckStatus.SHIELD_ERROR, "bad ✓"))
    assert (ack.tag, ack.ix, ack.seq) == (Tag.ACK_RES, 2, 9)
    assert ack.ack_res() == (4, AckStatus.SHIELD_ERROR, "bad ✓")
    assert decode_frame(encode_json(Tag.RECONCILE, {"open": [1]})).json() == {"open": [1]}
    assert decode_frame(encode_frame(Tag.BROADCAST_SUB, 1, 0, b"\x01")).flag is True


@given(
    tag=st.sampled_from([Tag.TEXT, Tag.BINARY, Tag.TEXT_ACK_REQ, Tag.BINARY_ACK_REQ, Tag.ABORT]),
    ix=st.integers(0, 0xFFFF),
    seq=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=300),
)
def test_data_frames_round_trip(tag: Tag, ix: int, seq: int, payload: bytes) -> None:
    frame = decode_frame(encode_frame(tag, ix, seq, payload))
    assert frame == (tag, ix, seq, payload)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x10\x00\x00\x00\x00\x00",  # 6 bytes: truncated header
        bytes([0x7F, 0, 0, 0, 0, 0, 0]),  # unknown tag
        bytes([0x00, 0, 0, 0, 0, 0, 0]),  # tag 0 is not a tag
        encode_frame(Tag.CLOSE, 1, 0, b"\x01\x02"),  # CLOSE needs a u32
        encode_frame(Tag.ACK_RES, 1, 1, b"\x01\x00\x00"),  # ACK_RES needs 5 bytes
        encode_frame(Tag.ACK_RES, 1, 1, struct.pack("<IB", 1, 9)),  # unknown status
    ],
)
def test_malformed_frames_raise_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_frame(raw)


@given(st.lists(st.binary(max_size=50), max_size=20), st.data())
def test_length_prefixed_reader_any_chunking(bodies: list[bytes], data: st.DataObject) -> None:
    stream = length_prefixed(bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    reader = LengthPrefixedReader()
    out: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += reader.feed(stream[prev:cut])
        prev = cut
    assert out == bodies
    assert reader.pending == 0


def test_length_prefixed_reader_rejects_huge_records() -> None:
    with pytest.raises(ProtocolError):
        LengthPrefixedReader(max_body=10).feed(b"\x00\x00\x00\x0b")


def test_an_oversized_record_is_refused_from_its_prefix_after_the_records_before_it() -> None:
    reader = LengthPrefixedReader(max_body=10, max_first_body=3)
    with pytest.raises(RecordTooLarge):
        reader.feed(length_prefixed([b"four"]))  # the first record has its own bound
    reader = LengthPrefixedReader(max_body=10, max_first_body=3)
    stream = length_prefixed([b"abc", b"0123456789"]) + (2**32 - 1).to_bytes(4, "big")
    assert reader.feed(stream) == [b"abc", b"0123456789"]
    assert isinstance(reader.error, RecordTooLarge) and reader.pending == 0  # nothing kept
    with pytest.raises(RecordTooLarge):
        reader.feed(b"more")


@given(st.binary(max_size=100))
def test_b64url_round_trip_without_padding(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == data
