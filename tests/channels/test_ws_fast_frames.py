"""TelefuncWebSocketProtocol parses a client's binary, ping and pong frames itself once
websockets' parser waits at a frame boundary, and hands every other frame (text, fragments,
close, unmasked, too large) back to websockets, which answers as it always did.

The protocol is driven through a fake transport with bytes a real client would send; a receiver
set through the scope extension gets binary messages directly, anything else reaches the app's
``receive`` in order.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from fake_ws import HANDSHAKE, binary, client_frame, serve_on_fake_transport
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State

from telefunc.asgi.websocket import TRANSPORT_EXTENSION

MAX_SIZE = 100_000


class Harness:
    """One protocol instance behind a fake transport, with an app that accepts and records."""

    def __init__(self, *, use_receiver: bool = True) -> None:
        self.direct: list[bytes] = []
        self.events: list[dict[str, Any]] = []
        self.accepted = asyncio.Event()
        self.got_event = asyncio.Event()
        self.use_receiver = use_receiver

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            if self.use_receiver:
                scope["extensions"][TRANSPORT_EXTENSION]["set_receiver"](self._direct)
            self.accepted.set()
            while True:
                message = await receive()
                self.events.append(message)
                self.got_event.set()
                if message["type"] == "websocket.disconnect":
                    return

        self.protocol, self.transport = serve_on_fake_transport(
            app, ws_max_size=MAX_SIZE, ws_ping_interval=None
        )

    def _direct(self, data: Any) -> None:
        self.direct.append(bytes(data))

    async def open(self) -> None:
        self.protocol.data_received(HANDSHAKE)
        await asyncio.wait_for(self.accepted.wait(), 5)
        self.transport.writes.clear()

    async def next_event(self) -> dict[str, Any]:
        while not self.events:
            self.got_event.clear()
            await asyncio.wait_for(self.got_event.wait(), 5)
        return self.events.pop(0)

    def feed(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def written_frames(self) -> list[Frame]:
        """The server's frames in what it wrote (unmasked, as a server sends them)."""
        data, frames = b"".join(self.transport.writes), []
        pos = 0
        while pos < len(data):
            first, second = data[pos], data[pos + 1]
            size, pos = second & 0x7F, pos + 2
            if size == 126:
                size, pos = struct.unpack("!H", data[pos : pos + 2])[0], pos + 2
            elif size == 127:
                size, pos = struct.unpack("!Q", data[pos : pos + 8])[0], pos + 8
            opcode, fin = Opcode(first & 0x0F), bool(first & 0x80)
            frames.append(Frame(opcode, data[pos : pos + size], fin=fin))
            pos += size
        return frames

    def close_code(self) -> int | None:
        for frame in self.written_frames():
            if frame.opcode is Opcode.CLOSE:
                return Close.parse(frame.data).code
        return None


SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70_000]


async def test_binary_frames_of_every_length_class_reach_the_receiver_in_order() -> None:
    h = Harness()
    await h.open()
    payloads = [bytes([n % 251]) * n for n in SIZES]
    h.feed(b"".join(binary(p) for p in payloads))
    assert h.protocol._fast
    assert h.direct == payloads
    assert h.events == []  # nothing went through the ASGI queue


async def test_frames_split_at_every_byte_are_put_back_together() -> None:
    h = Harness()
    await h.open()
    payloads = [b"a" * 3, b"b" * 130, b"c" * 66_000, b""]
    stream = b"".join(binary(p) for p in payloads)
    for i in range(len(stream)):
        h.feed(stream[i : i + 1])
    assert h.direct == payloads
    assert h.protocol._partial is None


async def test_without_a_receiver_messages_go_to_receive_as_uvicorn_queues_them() -> None:
    h = Harness(use_receiver=False)
    await h.open()
    h.feed(binary(b"one") + binary(b"two"))
    assert [(await h.next_event())["bytes"] for _ in range(2)] == [b"one", b"two"]
    assert h.direct == []


async def test_a_ping_is_answered_with_its_payload_and_a_pong_is_ignored() -> None:
    h = Harness()
    await h.open()
    h.feed(
        client_frame(Opcode.PING, b"are you there")
        + client_frame(Opcode.PONG, b"unsolicited")
        + binary(b"after")
    )
    pongs = [f for f in h.written_frames() if f.opcode is Opcode.PONG]
    assert [bytes(f.data) for f in pongs] == [b"are you there"]
    assert h.direct == [b"after"]
    assert h.protocol._fast


async def test_a_text_frame_goes_to_websockets_and_later_binaries_stay_behind_it() -> None:
    h = Harness()
    await h.open()
    h.feed(binary(b"first") + client_frame(Opcode.TEXT, "héllo".encode()) + binary(b"third"))
    assert h.direct == [b"first"]
    # websockets parsed the text frame and what followed; the binary waits behind it in the queue
    assert await h.next_event() == {"type": "websocket.receive", "text": "héllo"}
    assert await h.next_event() == {"type": "websocket.receive", "bytes": b"third"}
    # the queue is empty again and websockets waits at a frame boundary: back to the fast path
    h.feed(binary(b"fourth"))
    assert h.direct == [b"first", b"fourth"]
    assert h.protocol._fast


async def test_a_fragmented_binary_message_is_joined_by_websockets() -> None:
    h = Harness()
    await h.open()
    h.feed(
        client_frame(Opcode.BINARY, b"frag-", fin=False)
        + client_frame(Opcode.PING, b"mid")  # control frames may come between fragments
        + client_frame(Opcode.CONT, b"ment", fin=True)
    )
    assert await h.next_event() == {"type": "websocket.receive", "bytes": b"frag-ment"}
    assert [bytes(f.data) for f in h.written_frames() if f.opcode is Opcode.PONG] == [b"mid"]
    h.feed(binary(b"whole"))
    assert h.direct == [b"whole"]


async def test_an_invalid_utf8_text_frame_closes_with_1007() -> None:
    h = Harness()
    await h.open()
    h.feed(binary(b"ok") + client_frame(Opcode.TEXT, b"\xff\xfe"))
    assert h.direct == [b"ok"]
    assert h.close_code() == 1007


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(Opcode.BINARY, b"x" * (MAX_SIZE + 1)), 1009),  # past ws_max_size
        (client_frame(Opcode.BINARY, b"unmasked", mask=False), 1002),
        (client_frame(Opcode.PING, b"p" * 126), 1002),  # control frame over 125 bytes
        (client_frame(Opcode.PING, b"p", fin=False), 1002),  # fragmented control frame
        (client_frame(Opcode.CONT, b"orphan"), 1002),  # continuation without a start
        (bytes([0x80 | 0x40 | Opcode.BINARY, 0x80]) + b"\0\0\0\0", 1002),  # reserved bit
        (bytes([0x80 | 0x03, 0x80]) + b"\0\0\0\0", 1002),  # reserved opcode
    ],
    ids=["too-large", "unmasked", "long-ping", "fragmented-ping", "orphan-cont", "rsv", "opcode"],
)
async def test_a_frame_websockets_refuses_gets_its_close_code(frame: bytes, code: int) -> None:
    h = Harness()
    await h.open()
    h.feed(binary(b"before") + frame + binary(b"never"))
    assert h.direct == [b"before"]
    assert h.close_code() == code
    assert not h.protocol._fast


async def test_an_announced_oversized_frame_is_refused_before_its_payload_arrives() -> None:
    h = Harness()
    await h.open()
    # only the header of a frame past max_size: nothing of it is buffered, websockets refuses it
    h.feed(struct.pack("!BBQ", 0x82, 0x80 | 127, 2**40) + b"\0\0\0\0")
    assert h.close_code() == 1009
    assert h.protocol._partial is None


async def test_a_close_frame_gets_the_close_handshake_and_the_app_its_disconnect() -> None:
    h = Harness()
    await h.open()
    h.feed(binary(b"last") + client_frame(Opcode.CLOSE, Close(1000, "bye").serialize()))
    assert h.direct == [b"last"]
    assert h.close_code() == 1000
    assert h.protocol.conn.state is State.CLOSED or h.protocol.conn.state is State.CLOSING
    h.protocol.connection_lost(None)
    assert (await h.next_event())["type"] == "websocket.disconnect"


async def test_messages_queued_before_the_receiver_was_set_come_first() -> None:
    h = Harness(use_receiver=False)
    await h.open()
    h.feed(binary(b"queued-1") + binary(b"queued-2"))
    h.protocol._set_receiver(h._direct)
    h.feed(binary(b"later"))  # the queue still holds two: this one waits behind them
    assert h.direct == []
    assert [(await h.next_event())["bytes"] for _ in range(3)] == [
        b"queued-1",
        b"queued-2",
        b"later",
    ]
    h.feed(binary(b"direct"))
    assert h.direct == [b"direct"]


async def test_frames_pipelined_before_the_app_accepted_go_through_websockets() -> None:
    h = Harness()
    # the handshake and a frame in one read: websockets parses both (the app has not accepted)
    h.protocol.data_received(HANDSHAKE + binary(b"early"))
    await asyncio.wait_for(h.accepted.wait(), 5)
    assert await h.next_event() == {"type": "websocket.receive", "bytes": b"early"}
    h.feed(binary(b"then"))
    assert h.direct == [b"then"]


async def test_a_partial_frame_header_then_the_rest_is_not_misparsed() -> None:
    h = Harness(use_receiver=False)
    # handshake plus the first bytes of a frame: websockets' parser is inside a frame with an
    # empty buffer, which is not a frame boundary, so it keeps parsing
    frame = binary(b"split across the handshake read")
    h.protocol.data_received(HANDSHAKE + frame[:6])
    await asyncio.wait_for(h.accepted.wait(), 5)
    assert not h.protocol._at_frame_boundary()
    h.feed(frame[6:] + binary(b"next"))
    assert [(await h.next_event())["bytes"] for _ in range(2)] == [
        b"split across the handshake read",
        b"next",
    ]
