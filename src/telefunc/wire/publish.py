"""Payloads of the broadcast delivery frames (telefunc@0.2.23), for both sides of the wire.

PUBLISH carries ``"<seq>,<timestampMs>\\n<serialized>"`` (numbers formatted as JavaScript
does); PUBLISH_BINARY carries ``[u32 LE seq][f64 LE timestamp][bytes]``. ``seq`` is the key's
broadcast order, not the channel's frame sequence number.
"""

from __future__ import annotations

import struct

from telefunc.wire.serializer import format_js_number

__all__ = [
    "decode_publish_binary",
    "decode_publish_text",
    "encode_publish_binary",
    "encode_publish_text",
]

_BINARY_INFO = struct.Struct("<Id")


def encode_publish_text(serialized: str, seq: int, timestamp: float) -> bytes:
    """PUBLISH payload: ``"<seq>,<timestamp>\\n<serialized>"`` (numbers formatted as JS does)."""
    return f"{seq},{format_js_number(float(timestamp))}\n{serialized}".encode()


def decode_publish_text(payload: bytes) -> tuple[str, int, float]:
    """Split a PUBLISH payload into ``(serialized, seq, timestamp)``; raises ``ValueError``."""
    text = payload.decode("utf-8")
    head, sep, body = text.partition("\n")
    seq_text, comma, ts_text = head.partition(",")
    if not sep or not comma:
        raise ValueError("PUBLISH payload without a '<seq>,<timestamp>' line")
    return body, int(seq_text), float(ts_text)


def encode_publish_binary(data: bytes, seq: int, timestamp: float) -> bytes:
    """PUBLISH_BINARY payload: ``[u32 LE seq][f64 LE timestamp][bytes]``."""
    return _BINARY_INFO.pack(seq & 0xFFFFFFFF, float(timestamp)) + data


def decode_publish_binary(payload: bytes) -> tuple[bytes, int, float]:
    """Split a PUBLISH_BINARY payload into ``(data, seq, timestamp)``; raises ``ValueError``."""
    if len(payload) < _BINARY_INFO.size:
        raise ValueError("PUBLISH_BINARY payload shorter than its 12-byte header")
    seq, timestamp = _BINARY_INFO.unpack_from(payload)
    return payload[_BINARY_INFO.size :], seq, timestamp
