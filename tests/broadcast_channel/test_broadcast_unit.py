"""BroadcastChannel / Broadcast against a fake client link, in-process (no sockets).

Each test gets a fresh in-memory transport in ``config.broadcast.transport``. Frames the server
writes are decoded and checked at the wire level: BROADCAST_SUB gates delivery, deliveries are
sequenced PUBLISH frames ``"<seq>,<ts>\\n<serialized>"``, client publishes are answered with an
ACK_RES carrying the receipt, and a detached channel buffers deliveries like any send.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest

import telefunc.server.broadcast as broadcast_module
from telefunc.broadcast.transport import (
    InMemoryBroadcast,
    PublishInfo,
)
from telefunc.config import config
from telefunc.errors import (
    Abort,
    BroadcastTransportError,
    ChannelClosedError,
    ProtocolError,
    UsageError,
)
from telefunc.server.broadcast import (
    Broadcast,
    BroadcastChannel,
    decode_publish_binary,
    decode_publish_text,
    encode_publish_binary,
    encode_publish_text,
)
from telefunc.wire.credit import INITIAL_MESSAGES
from telefunc.wire.frames import AckStatus, Frame, Tag, decode_frame, encode_frame
from telefunc.wire.serializer import parse, stringify


@pytest.fixture(autouse=True)
def transport() -> Iterator[InMemoryBroadcast]:
    previous = config.broadcast.transport
    fresh = InMemoryBroadcast()
    config.broadcast.transport = fresh
    yield fresh
    config.broadcast.transport = previous


class Peer:
    """A fake client connection: records every frame the channel writes."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: bytes) -> None:
        self.frames.append(decode_frame(frame))

    def of(self, *tags: int) -> list[Frame]:
        return [f for f in self.frames if f.tag in tags]

    def publishes(self) -> list[tuple[Any, int, float]]:
        """(data, broadcast seq, timestamp) of every PUBLISH frame, in wire order."""
        out = []
        for f in self.of(Tag.PUBLISH):
            body, seq, ts = decode_publish_text(f.payload)
            out.append((parse(body), seq, ts))
        return out


class Client:
    """The client end of one channel on a :class:`Peer`, numbering its own data frames."""

    def __init__(self, ch: BroadcastChannel[Any], peer: Peer, ix: int = 1) -> None:
        self.ch = ch
        self.peer = peer
        self.ix = ix
        self.seq = 0
        ch._core.attach(peer, ix, 0, 0.0)

    def frame(self, tag: int, payload: bytes = b"", *, data: bool = False) -> int:
        seq = 0
        if data:
            self.seq += 1
            seq = self.seq
        self.ch._core.receive(decode_frame(encode_frame(tag, self.ix, seq, payload)), 0.0)
        return seq

    def subscribe(self, binary: bool = False) -> None:
        self.frame(Tag.BROADCAST_SUB, b"\x01" if binary else b"\x00")

    def unsubscribe(self, binary: bool = False) -> None:
        self.frame(Tag.BROADCAST_UNSUB, b"\x01" if binary else b"\x00")

    def publish(self, value: Any) -> int:
        return self.frame(Tag.PUBLISH_ACK_REQ, stringify(value).encode(), data=True)

    def publish_binary(self, data: bytes) -> int:
        return self.frame(Tag.PUBLISH_BINARY_ACK_REQ, data, data=True)

    def acks(self) -> dict[int, tuple[AckStatus, str]]:
        result = {}
        for f in self.peer.of(Tag.ACK_RES):
            acked, status, text = f.ack_res()
            result[acked] = (status, text)
        return result


async def settle(condition: Any, limit: int = 1000) -> None:
    """Let queued publish work run until ``condition()`` holds (bounded number of loop turns)."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


# ── payload encodings ──────────────────────────────────────────────────────


def test_text_payload_matches_the_js_format() -> None:
    wire = encode_publish_text('{"text":"hey"}', 2, 1712345678901)
    assert wire == b'2,1712345678901\n{"text":"hey"}'
    assert decode_publish_text(wire) == ('{"text":"hey"}', 2, 1712345678901.0)
    # a fractional timestamp is printed like JS's Number#toString, and the body may hold "\n"
    wire = encode_publish_text('"a\\nb"', 7, 1.5)
    assert wire == b'7,1.5\n"a\\nb"'
    assert decode_publish_text(b"3,4\nline1\nline2") == ("line1\nline2", 3, 4.0)


@pytest.mark.parametrize("bad", [b"no newline", b"12\nbody", b"x,1\nbody"])
def test_text_payload_rejects_malformed_prefixes(bad: bytes) -> None:
    with pytest.raises(ValueError):
        decode_publish_text(bad)


def test_binary_payload_header_is_u32_seq_and_f64_timestamp_little_endian() -> None:
    wire = encode_publish_binary(b"\x00\xffdata", 258, 1712345678901)
    assert wire[:4] == (258).to_bytes(4, "little")
    assert struct.unpack("<d", wire[4:12])[0] == 1712345678901.0
    assert wire[12:] == b"\x00\xffdata"
    assert decode_publish_binary(wire) == (b"\x00\xffdata", 258, 1712345678901.0)
    assert decode_publish_binary(encode_publish_binary(b"", 1, 0)) == (b"", 1, 0.0)
    with pytest.raises(ValueError):
        decode_publish_binary(b"short")


# ── channel surface ────────────────────────────────────────────────────────


def test_placeholder_carries_channel_id_and_key() -> None:
    registered: list[Any] = []

    class Hub:
        def register(self, ch: Any) -> None:
            registered.append(ch)

    class Scope:
        hub = Hub()

        def hold(self) -> Any:
            return lambda: None

    ch: BroadcastChannel[Any] = BroadcastChannel(key="room/1")
    text = ch.__telefunc_placeholder__(Scope())
    prefix = "!TelefuncBroadcast:"
    assert text.startswith(prefix)
    assert json.loads(text[len(prefix) :]) == {"channelId": ch.id, "key": "room/1"}
    assert registered == [ch]


async def test_channel_methods_that_do_not_apply_raise_usage_errors() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="k")
    with pytest.raises(UsageError):
        ch.send(1)
    with pytest.raises(UsageError):
        ch.send_binary(b"x")
    with pytest.raises(UsageError):
        ch.listen(lambda m: None)
    with pytest.raises(UsageError):
        ch.listen_binary(lambda m: None)
    with pytest.raises(UsageError):
        BroadcastChannel(key=3)  # type: ignore[arg-type]
    ch.abort()
    with pytest.raises(ChannelClosedError):
        ch.publish(1)


# ── delivery to the client ─────────────────────────────────────────────────


async def test_publishes_reach_the_client_only_after_broadcast_sub(
    transport: InMemoryBroadcast,
) -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="room")
    peer = Peer()
    client = Client(ch, peer)
    first = await Broadcast.publish("room", "before")
    assert first["seq"] == 1 and peer.of(Tag.PUBLISH) == []
    client.subscribe()
    receipts = [await Broadcast.publish("room", {"n": i}) for i in range(3)]
    assert [r["seq"] for r in receipts] == [2, 3, 4]
    assert peer.publishes() == [
        ({"n": i}, r["seq"], r["timestamp"]) for i, r in enumerate(receipts)
    ]
    frames = peer.of(Tag.PUBLISH)
    assert all(f.ix == 1 for f in frames)
    assert [f.seq for f in frames] == [1, 2, 3]  # channel seqs: replayable, deduplicated
    assert receipts[0]["meta"] == {"delivered": 1, "transport": "in-memory"}
    assert receipts[0]["key"] == "room"


async def test_client_publish_is_acked_with_the_receipt_and_echoed_to_the_publisher() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="chat")
    peer = Peer()
    client = Client(ch, peer)
    client.subscribe()
    seqs = [client.publish({"text": f"m{i}"}) for i in range(5)]
    await settle(lambda: len(client.acks()) == 5)
    acks = client.acks()
    receipts = []
    for s in seqs:
        status, text = acks[s]
        assert status == AckStatus.OK
        receipts.append(parse(text))
    assert [r["seq"] for r in receipts] == [1, 2, 3, 4, 5]
    assert all(r["key"] == "chat" and r["meta"]["transport"] == "in-memory" for r in receipts)
    got = peer.publishes()
    assert got == [({"text": f"m{i}"}, r["seq"], r["timestamp"]) for i, r in enumerate(receipts)]
    # the publisher sees its own publish before the receipt for it
    order = [f.tag for f in peer.frames if f.tag in (Tag.PUBLISH, Tag.ACK_RES)]
    assert order == [Tag.PUBLISH, Tag.ACK_RES] * 5


async def test_a_replayed_client_publish_is_published_once() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="dup")
    peer = Peer()
    client = Client(ch, peer)
    client.subscribe()
    client.publish("once")
    # the same frame again (as after a reconnect, when the client replays unacknowledged frames)
    ch._core.receive(decode_frame(encode_frame(Tag.PUBLISH_ACK_REQ, 1, 1, b'"once"')), 0.0)
    await settle(lambda: len(peer.of(Tag.ACK_RES)) >= 1)
    await asyncio.sleep(0)
    assert [d for d, _, _ in peer.publishes()] == ["once"]
    assert len(peer.of(Tag.ACK_RES)) == 1


async def test_unsubscribe_stops_delivery_and_drops_the_transport_listener(
    transport: InMemoryBroadcast,
) -> None:
    a: BroadcastChannel[Any] = BroadcastChannel(key="k")
    b: BroadcastChannel[Any] = BroadcastChannel(key="k")
    pa, pb = Peer(), Peer()
    ca, cb = Client(a, pa), Client(b, pb)
    assert transport.fanout.count("k") == 0
    ca.subscribe()
    cb.subscribe()
    assert transport.fanout.count("k") == 2
    await Broadcast.publish("k", 1)
    ca.unsubscribe()
    assert transport.fanout.count("k") == 1
    await Broadcast.publish("k", 2)
    assert [d for d, _, _ in pa.publishes()] == [1]
    assert [d for d, _, _ in pb.publishes()] == [1, 2]
    cb.unsubscribe()
    assert not transport.fanout.has_listeners("k")
    await Broadcast.publish("k", 3)
    assert [d for d, _, _ in pb.publishes()] == [1, 2]
    # a server-side subscriber keeps the listener even when the client unsubscribes
    seen: list[int] = []
    unsub = a.subscribe(lambda data, info: seen.append(info.seq))
    ca.subscribe()
    ca.unsubscribe()
    assert transport.fanout.count("k") == 1
    await Broadcast.publish("k", 4)
    assert seen == [4] and [d for d, _, _ in pa.publishes()] == [1]
    unsub()
    assert not transport.fanout.has_listeners("k")


async def test_shutdown_drops_the_channels_listeners(transport: InMemoryBroadcast) -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="gone")
    client = Client(ch, Peer())
    client.subscribe()
    client.subscribe(binary=True)
    ch.subscribe(lambda d, i: None)
    assert transport.fanout.count("gone") == 2  # one listener per lane per channel
    ch.abort("bye")
    assert not transport.fanout.has_listeners("gone")


async def test_the_publish_payload_is_built_once_for_all_channels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = broadcast_module.encode_publish_text

    def counting(serialized: str, seq: int, timestamp: float) -> bytes:
        calls.append(seq)
        return real(serialized, seq, timestamp)

    monkeypatch.setattr(broadcast_module, "encode_publish_text", counting)
    peers = []
    for _ in range(20):
        ch: BroadcastChannel[Any] = BroadcastChannel(key="fan")
        peer = Peer()
        Client(ch, peer).subscribe()
        peers.append(peer)
    for i in range(3):
        await Broadcast.publish("fan", i)
    assert calls == [1, 2, 3]
    for peer in peers:
        assert [(d, s) for d, s, _ in peer.publishes()] == [(0, 1), (1, 2), (2, 3)]


# ── detached clients ───────────────────────────────────────────────────────


async def test_deliveries_while_detached_are_buffered_and_flushed_in_order() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="away")
    peer = Peer()
    client = Client(ch, peer)
    client.subscribe()
    for i in range(3):
        await Broadcast.publish("away", i)
    received_seq = peer.of(Tag.PUBLISH)[1].seq  # the client got 2 of the 3 before the cut
    ch._core.detach(peer, 0.0, permanent=False)
    for i in range(3, 8):
        await Broadcast.publish("away", i)
    assert ch._core.buffered == 5
    again = Peer()
    ch._core.attach(again, 4, received_seq, 1.0)
    got = again.publishes()
    assert [d for d, _, _ in got] == [2, 3, 4, 5, 6, 7]  # replay, then the buffered ones
    assert [s for _, s, _ in got] == [3, 4, 5, 6, 7, 8]
    assert [f.seq for f in again.of(Tag.PUBLISH)] == [3, 4, 5, 6, 7, 8]
    assert all(f.ix == 4 for f in again.of(Tag.PUBLISH))


async def test_a_detached_channel_overflows_like_any_send() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="big", buffer_limit=200)
    peer = Peer()
    client = Client(ch, peer)
    client.subscribe()
    ch._core.detach(peer, 0.0, permanent=False)
    for i in range(50):
        await Broadcast.publish("big", "x" * 20 + str(i))
    again = Peer()
    ch._core.attach(again, 1, 0, 1.0)
    got = again.publishes()
    # the oldest were evicted, the newest kept, order and seqs intact
    assert 0 < len(got) < 50
    assert [d for d, _, _ in got] == ["x" * 20 + str(i) for i in range(50 - len(got), 50)]
    assert [s for _, s, _ in got] == list(range(51 - len(got), 51))
    assert not ch.is_closed


# ── server-side subscribers, binary, errors ────────────────────────────────


async def test_server_subscribers_get_data_and_info() -> None:
    seen: list[tuple[Any, PublishInfo]] = []
    unsub = Broadcast.subscribe("srv", lambda data, info: seen.append((data, info)))
    ch: BroadcastChannel[Any] = BroadcastChannel(key="srv")
    on_channel: list[int] = []
    ch.subscribe(lambda data, info: on_channel.append(info.seq))
    r1 = await ch.publish({"a": [1, 2]})
    r2 = await Broadcast.publish("srv", None)
    assert [(d, i.seq, i.key, i.timestamp) for d, i in seen] == [
        ({"a": [1, 2]}, r1["seq"], "srv", r1["timestamp"]),
        (None, r2["seq"], "srv", r2["timestamp"]),
    ]
    assert on_channel == [1, 2]
    unsub()
    await Broadcast.publish("srv", 3)
    assert len(seen) == 2 and on_channel == [1, 2, 3]


async def test_abort_in_a_subscriber_aborts_the_channel() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="ab")
    peer = Peer()
    Client(ch, peer)

    def refuse(data: Any, info: PublishInfo) -> None:
        raise Abort({"no": data})

    ch.subscribe(refuse)
    await Broadcast.publish("ab", 5)
    assert ch.is_closed
    assert [parse(f.text) for f in peer.of(Tag.ABORT)] == [{"no": 5}]


async def test_binary_publish_and_subscribe(transport: InMemoryBroadcast) -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="bin")
    peer = Peer()
    client = Client(ch, peer)
    client.subscribe(binary=True)
    server_got: list[tuple[bytes, int]] = []
    Broadcast.subscribe_binary("bin", lambda data, info: server_got.append((data, info.seq)))
    text_got: list[Any] = []
    Broadcast.subscribe("bin", lambda data, info: text_got.append(data))
    r1 = await Broadcast.publish_binary("bin", b"\x00\x01\x02")
    s = client.publish_binary(b"\xff" * 10)
    await settle(lambda: len(client.acks()) == 1)
    status, text = client.acks()[s]
    r2 = parse(text)
    assert status == AckStatus.OK and r2["seq"] == r1["seq"] + 1
    r3 = await ch.publish_binary(bytearray(b"srv"))
    frames = peer.of(Tag.PUBLISH_BINARY)
    decoded = [decode_publish_binary(f.payload) for f in frames]
    assert decoded == [
        (b"\x00\x01\x02", r1["seq"], r1["timestamp"]),
        (b"\xff" * 10, r2["seq"], r2["timestamp"]),
        (b"srv", r3["seq"], r3["timestamp"]),
    ]
    assert server_got == [(b"\x00\x01\x02", 1), (b"\xff" * 10, 2), (b"srv", 3)]
    assert text_got == [] and peer.of(Tag.PUBLISH) == []


async def test_a_failing_transport_answers_the_client_with_an_error() -> None:
    class Down(InMemoryBroadcast):
        async def publish(self, key: str, text: str) -> Any:
            raise BroadcastTransportError("broadcast transport redis://127.0.0.1:1 unreachable")

    config.broadcast.transport = Down()
    ch: BroadcastChannel[Any] = BroadcastChannel(key="down")
    peer = Peer()
    client = Client(ch, peer)
    s = client.publish("lost")
    await settle(lambda: len(client.acks()) == 1)
    status, text = client.acks()[s]
    assert status == AckStatus.ERROR and "unreachable" in text
    with pytest.raises(BroadcastTransportError):
        await ch.publish("lost too")


async def test_publishes_from_one_channel_keep_their_order() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="order")
    seen: list[Any] = []
    Broadcast.subscribe("order", lambda data, info: seen.append(data))
    futures = [ch.publish(i) for i in range(200)]  # not awaited one by one
    receipts = await asyncio.gather(*futures)
    assert [r["seq"] for r in receipts] == list(range(1, 201))
    assert seen == list(range(200))


async def test_a_close_waits_for_the_publish_in_flight_to_be_answered() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="closing")
    peer = Peer()
    client = Client(ch, peer)
    s = client.publish("last words")
    client.frame(Tag.CLOSE, struct.pack("<I", 5000))  # the client closes right away
    assert not ch._core.is_shutdown  # held open by the queued publish
    await settle(lambda: ch._core.is_shutdown)
    assert client.acks()[s][0] == AckStatus.OK
    tags = [f.tag for f in peer.frames]
    assert tags.index(Tag.CLOSE_ACK) < tags.index(Tag.ACK_RES)


async def test_a_read_only_channel_refuses_client_publishes_but_delivers() -> None:
    ch: BroadcastChannel[Any] = BroadcastChannel(key="announcements", read_only=True)
    peer = Peer()
    client = Client(ch, peer)
    client.subscribe()
    text_seq = client.publish({"forged": True})
    binary_seq = client.publish_binary(b"forged")
    receipt = await Broadcast.publish("announcements", {"from": "server"})
    await settle(lambda: len(peer.publishes()) == 1)
    acks = client.acks()
    assert acks[text_seq] == (AckStatus.ERROR, broadcast_module.READ_ONLY_ERROR)
    assert acks[binary_seq] == (AckStatus.ERROR, broadcast_module.READ_ONLY_ERROR)
    assert receipt["seq"] == 1  # the refused publishes never reached the key
    assert [data for data, _, _ in peer.publishes()] == [{"from": "server"}]


async def test_client_publishes_awaiting_their_receipt_are_bounded() -> None:
    """Publishes bypass credit: a client that floods them without waiting for receipts is a
    protocol violation once ``max_window_overrun`` initial windows of them are queued."""
    ch: BroadcastChannel[Any] = BroadcastChannel(key="flood")
    peer = Peer()
    client = Client(ch, peer)
    bound = config.limits.max_window_overrun * INITIAL_MESSAGES
    for i in range(bound):  # all queued at once: the publish worker has not run yet
        client.publish(i)
    with pytest.raises(ProtocolError):
        client.publish("one too many")
    # Within the bound, every one of them is answered with its receipt.
    await settle(lambda: len(client.acks()) == bound, limit=20 * bound)
    assert all(status == AckStatus.OK for status, _ in client.acks().values())
