"""The channel frame codec (telefunc@0.2.23 ``shared-ws``), sans-I/O.

Every frame on a channel connection is ``[u8 tag][u16 LE ix][u32 LE seq][payload]``:

* ``tag`` says what the frame is (:class:`Tag`); the ranges classify it: ``0x01-0x09``
  connection control, ``0x10-0x29`` the data plane (sequenced, replayable), ``0x30+`` per-channel
  control.
* ``ix`` is the client-assigned channel index on this connection (0 for connection frames).
* ``seq`` is the sender's per-channel sequence number for data frames, 0 otherwise.

Decoding is strict: an unknown tag or a payload too short for its tag raises
:class:`~telefunc.errors.ProtocolError`, which ends the one connection it arrived on. Decoded
frames are :class:`Frame` values holding the raw payload; the typed accessors (:attr:`Frame.u32`,
:meth:`Frame.ack_res`, ...) read the payload of the tags that carry structured data.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any, Final, NamedTuple

from telefunc.errors import ProtocolError

__all__ = [
    "HEADER",
    "AckStatus",
    "Frame",
    "Tag",
    "decode_frame",
    "encode_ack_res",
    "encode_frame",
    "encode_json",
    "encode_u32_frame",
    "is_channel_ctrl",
    "is_conn_ctrl",
    "is_data",
    "unpack_header",
]

#: Size of the fixed frame header in bytes.
HEADER = 7

_HEADER = struct.Struct("<BHI")
#: ``(tag, ix, seq)`` of the header at the start of a frame of at least :data:`HEADER` bytes.
unpack_header = _HEADER.unpack_from
_U32 = struct.Struct("<I")
_ACK_HEAD = struct.Struct("<IB")


class Tag(IntEnum):
    """Frame tags, with the values of telefunc@0.2.23."""

    PING = 0x01
    PONG = 0x02
    FIN = 0x03
    RECONCILE = 0x04
    RECONCILED = 0x05
    STREAM_REQUEST_OPEN_ACK = 0x06
    TEXT = 0x10
    BINARY = 0x11
    TEXT_ACK_REQ = 0x12
    BINARY_ACK_REQ = 0x13
    ACK_RES = 0x14
    PUBLISH = 0x15
    PUBLISH_ACK_REQ = 0x16
    PUBLISH_BINARY = 0x17
    PUBLISH_BINARY_ACK_REQ = 0x18
    CLOSE = 0x30
    CLOSE_ACK = 0x31
    ABORT = 0x32
    ERROR = 0x33
    WINDOW = 0x34
    BROADCAST_SUB = 0x35
    BROADCAST_UNSUB = 0x36
    BDP_PING = 0x37
    BDP_PING_ACK = 0x38
    MSG_WINDOW = 0x39


class AckStatus(IntEnum):
    """The status byte of an ACK_RES frame."""

    OK = 0  #: text is the serialized ack value
    ERROR = 1  #: text is an error message
    ABORT = 2  #: text is the serialized abort value
    SHIELD_ERROR = 3  #: text is the shield validation message


_TAGS = frozenset(int(t) for t in Tag)

#: Each tag as a module global, for the per-frame code of the wire core and the endpoints: an
#: IntEnum attribute lookup costs several times a global one (CPython 3.11). Import these as
#: ``from telefunc.wire.frames import TAG_TEXT``; the values are the :class:`Tag` members.
TAG_PING: Final = Tag.PING
TAG_PONG: Final = Tag.PONG
TAG_FIN: Final = Tag.FIN
TAG_RECONCILE: Final = Tag.RECONCILE
TAG_RECONCILED: Final = Tag.RECONCILED
TAG_STREAM_REQUEST_OPEN_ACK: Final = Tag.STREAM_REQUEST_OPEN_ACK
TAG_TEXT: Final = Tag.TEXT
TAG_BINARY: Final = Tag.BINARY
TAG_TEXT_ACK_REQ: Final = Tag.TEXT_ACK_REQ
TAG_BINARY_ACK_REQ: Final = Tag.BINARY_ACK_REQ
TAG_ACK_RES: Final = Tag.ACK_RES
TAG_PUBLISH: Final = Tag.PUBLISH
TAG_PUBLISH_ACK_REQ: Final = Tag.PUBLISH_ACK_REQ
TAG_PUBLISH_BINARY: Final = Tag.PUBLISH_BINARY
TAG_PUBLISH_BINARY_ACK_REQ: Final = Tag.PUBLISH_BINARY_ACK_REQ
TAG_CLOSE: Final = Tag.CLOSE
TAG_CLOSE_ACK: Final = Tag.CLOSE_ACK
TAG_ABORT: Final = Tag.ABORT
TAG_ERROR: Final = Tag.ERROR
TAG_WINDOW: Final = Tag.WINDOW
TAG_BROADCAST_SUB: Final = Tag.BROADCAST_SUB
TAG_BROADCAST_UNSUB: Final = Tag.BROADCAST_UNSUB
TAG_BDP_PING: Final = Tag.BDP_PING
TAG_BDP_PING_ACK: Final = Tag.BDP_PING_ACK
TAG_MSG_WINDOW: Final = Tag.MSG_WINDOW
#: Minimum payload size per tag (tags not listed accept any payload, including none).
_MIN_PAYLOAD = {
    Tag.ACK_RES: 5,
    Tag.CLOSE: 4,
    Tag.WINDOW: 4,
    Tag.MSG_WINDOW: 4,
    Tag.BROADCAST_SUB: 1,
    Tag.BROADCAST_UNSUB: 1,
    Tag.PUBLISH_BINARY: 12,
}


def is_conn_ctrl(tag: int) -> bool:
    """Whether ``tag`` is a connection-level control tag (PING ... STREAM_REQUEST_OPEN_ACK)."""
    return tag < 0x10


def is_data(tag: int) -> bool:
    """Whether ``tag`` is a sequenced data-plane tag (TEXT ... PUBLISH_BINARY_ACK_REQ)."""
    return 0x10 <= tag < 0x30


def is_channel_ctrl(tag: int) -> bool:
    """Whether ``tag`` is a per-channel control tag (CLOSE ... MSG_WINDOW)."""
    return tag >= 0x30


class Frame(NamedTuple):
    """One decoded frame: header fields plus the raw payload bytes."""

    tag: int
    ix: int
    seq: int
    payload: bytes

    @property
    def text(self) -> str:
        """The payload as UTF-8 text (TEXT, TEXT_ACK_REQ, ABORT, PUBLISH...)."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"frame 0x{self.tag:02x}: payload is not UTF-8") from exc

    @property
    def u32(self) -> int:
        """The leading u32 LE of the payload (CLOSE timeout ms, WINDOW bytes, MSG_WINDOW count)."""
        value: int = _U32.unpack_from(self.payload)[0]
        return value

    @property
    def flag(self) -> bool:
        """The leading u8 of the payload as a boolean (BROADCAST_SUB/UNSUB ``binary``)."""
        return self.payload[0] == 1

    def ack_res(self) -> tuple[int, AckStatus, str]:
        """``(acked_seq, status, text)`` of an ACK_RES frame."""
        acked_seq, status = _ACK_HEAD.unpack_from(self.payload)
        try:
            text = self.payload[5:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("ACK_RES: payload is not UTF-8") from exc
        return acked_seq, AckStatus(status), text

    def json(self) -> Any:
        """The payload parsed as JSON (RECONCILE, RECONCILED)."""
        try:
            return json.loads(self.payload)
        except ValueError as exc:
            raise ProtocolError(f"frame 0x{self.tag:02x}: payload is not JSON") from exc


def encode_frame(tag: int, ix: int = 0, seq: int = 0, payload: bytes = b"") -> bytes:
    """Encode a frame from its header fields and raw payload."""
    return _HEADER.pack(tag, ix, seq) + payload


def encode_u32_frame(tag: int, ix: int, value: int) -> bytes:
    """Encode CLOSE / WINDOW / MSG_WINDOW: a control frame whose payload is one u32 LE."""
    return _HEADER.pack(tag, ix, 0) + _U32.pack(value & 0xFFFFFFFF)


def encode_ack_res(ix: int, seq: int, acked_seq: int, status: int, text: str) -> bytes:
    """Encode ACK_RES: ``[u32 LE acked_seq][u8 status][UTF-8 text]`` after the header."""
    return _HEADER.pack(Tag.ACK_RES, ix, seq) + _ACK_HEAD.pack(acked_seq, status) + text.encode()


def encode_json(tag: int, value: Any) -> bytes:
    """Encode RECONCILE / RECONCILED: a connection frame with a compact JSON payload."""
    return _HEADER.pack(tag, 0, 0) + json.dumps(value, separators=(",", ":")).encode()


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    """Decode one frame, validating its tag and the minimum payload length of that tag.

    Raises :class:`~telefunc.errors.ProtocolError` for a truncated frame, an unknown tag, or an
    ACK_RES with an unknown status.
    """
    if len(data) < HEADER:
        raise ProtocolError(f"frame too short ({len(data)} bytes)")
    tag, ix, seq = _HEADER.unpack_from(data)
    if tag not in _TAGS:
        raise ProtocolError(f"unknown frame tag 0x{tag:02x}")
    payload = bytes(data[HEADER:])
    need = _MIN_PAYLOAD.get(tag, 0)
    if len(payload) < need:
        raise ProtocolError(f"frame 0x{tag:02x}: payload too short ({len(payload)} < {need})")
    if tag == TAG_ACK_RES and payload[4] > AckStatus.SHIELD_ERROR:
        raise ProtocolError(f"ACK_RES: unknown status {payload[4]}")
    return Frame(tag, ix, seq, payload)
