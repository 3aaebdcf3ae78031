"""The in-memory broadcast transport, the fan-out helper and the gap tracker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from _broadcast_util import Collector

from telefunc.broadcast.transport import (
    BroadcastFanout,
    BroadcastGap,
    BroadcastTransport,
    InMemoryBroadcast,
    PublishInfo,
    SeqTracker,
    get_broadcast_transport,
    reset_default_broadcast_transport,
    wait_subscribed,
)
from telefunc.config import config
from telefunc.errors import BroadcastTransportError, NetworkError, UsageError


@pytest.fixture
def clean_config() -> Iterator[None]:
    saved = config.broadcast.transport
    reset_default_broadcast_transport()
    try:
        yield
    finally:
        config.broadcast.transport = saved
        reset_default_broadcast_transport()


async def test_seq_starts_at_one_per_key_and_delivery_is_ordered() -> None:
    transport = InMemoryBroadcast()
    room, other = Collector(), Collector()
    transport.listen("room", room)
    transport.listen("other", other)
    receipts = [await transport.publish("room", f"m{i}") for i in range(5)]
    other_receipt = await transport.publish("other", "x")
    assert [r.seq for r in receipts] == [1, 2, 3, 4, 5]
    assert other_receipt.seq == 1
    assert room.payloads == [f"m{i}" for i in range(5)]
    assert room.seqs == [1, 2, 3, 4, 5]
    assert other.items == [("x", 1, other_receipt.timestamp)]
    assert all(info.key == "room" for info in room.infos)


async def test_delivery_happens_before_publish_returns_and_receipt_shape() -> None:
    transport = InMemoryBroadcast()
    first, second = Collector(), Collector()
    transport.listen("k", first)
    transport.listen("k", second)
    before = time.time() * 1000
    receipt = await transport.publish("k", '{"text":"hey"}')
    after = time.time() * 1000
    # Synchronous: both listeners already have it.
    assert first.items == second.items == [('{"text":"hey"}', 1, receipt.timestamp)]
    assert receipt.meta == {"delivered": 2, "transport": "in-memory"}
    assert before - 1 <= receipt.timestamp <= after + 1
    assert isinstance(receipt.timestamp, int)  # whole ms, as Date.now()
    assert receipt.info == PublishInfo("k", 1, receipt.timestamp)
    assert receipt.to_json() == {
        "key": "k",
        "seq": 1,
        "timestamp": receipt.timestamp,
        "meta": {"delivered": 2, "transport": "in-memory"},
    }
    # The same payload and info objects go to every listener.
    assert first.infos[0] is second.infos[0]


async def test_publish_without_listeners_counts_zero() -> None:
    transport = InMemoryBroadcast()
    receipt = await transport.publish("nobody", "x")
    assert (receipt.seq, receipt.meta["delivered"]) == (1, 0)


async def test_unsubscribe_stops_delivery_and_is_idempotent() -> None:
    transport = InMemoryBroadcast()
    kept, dropped = Collector(), Collector()
    transport.listen("k", kept)
    unsubscribe = transport.listen("k", dropped)
    await transport.publish("k", "a")
    unsubscribe()
    unsubscribe()
    receipt = await transport.publish("k", "b")
    assert dropped.payloads == ["a"]
    assert kept.payloads == ["a", "b"]
    assert receipt.meta["delivered"] == 1
    assert not transport.fanout.keys - {"k"}


def test_listeners_leaving_in_any_order_keep_the_rest_in_order_and_counted() -> None:
    # Leaving only marks a listener (the lane is compacted once half of it left): the others
    # still get every message, in registration order, and the counts stay exact throughout.
    closed: list[str] = []
    fanout = BroadcastFanout(None, closed.append)
    got: list[int] = []
    unsubs = [fanout.add_text("k", lambda _t, _i, n=n: got.append(n)) for n in range(10)]
    info = PublishInfo("k", 1, 0)
    remaining = list(range(10))
    for n in (7, 0, 3, 4, 9, 1):
        unsubs[n]()
        remaining.remove(n)
        got.clear()
        assert fanout.deliver_text("k", "x", info) == len(remaining)
        assert got == remaining
        assert fanout.count("k") == len(remaining)
    unsubs.append(fanout.add_text("k", lambda _t, _i: got.append(10)))  # joins at the end
    got.clear()
    assert fanout.deliver_text("k", "x", info) == 5
    assert got == [2, 5, 6, 8, 10]
    for unsub in unsubs:
        unsub()
    assert closed == ["k"]
    assert not fanout.has_listeners("k")
    assert fanout.deliver_text("k", "x", info) == 0


async def test_same_callable_registered_twice_is_two_listeners() -> None:
    transport = InMemoryBroadcast()
    collector = Collector()
    unsubscribe_one = transport.listen("k", collector)
    transport.listen("k", collector)
    await transport.publish("k", "a")
    unsubscribe_one()
    await transport.publish("k", "b")
    assert collector.payloads == ["a", "a", "b"]


async def test_binary_lane_is_separate_but_shares_the_counter() -> None:
    transport = InMemoryBroadcast()
    text, binary = Collector(), Collector()
    transport.listen("k", text)
    transport.listen_binary("k", binary)
    r1 = await transport.publish("k", "t")
    r2 = await transport.publish_binary("k", b"\x00\xff\n")
    r3 = await transport.publish("k", "u")
    assert text.items == [("t", 1, r1.timestamp), ("u", 3, r3.timestamp)]
    assert binary.items == [(b"\x00\xff\n", 2, r2.timestamp)]
    assert r2.meta == {"delivered": 1, "transport": "in-memory"}


def test_one_upstream_subscription_per_key() -> None:
    opened: list[str] = []
    closed: list[str] = []
    fanout = BroadcastFanout(opened.append, closed.append)
    unsubs = [fanout.add_text("k", lambda *_: None) for _ in range(3)]
    unsubs.append(fanout.add_binary("k", lambda *_: None))
    other = fanout.add_text("j", lambda *_: None)
    assert opened == ["k", "j"]
    assert fanout.count("k") == 4
    for unsub in unsubs[:-1]:
        unsub()
    assert closed == []  # the binary listener still needs the key
    unsubs[-1]()
    assert closed == ["k"]
    assert fanout.keys == {"j"}
    fanout.add_binary("k", lambda *_: None)
    assert opened == ["k", "j", "k"]
    other()
    assert closed == ["k", "j"]


async def test_publish_from_a_listener_keeps_one_order_for_everyone() -> None:
    transport = InMemoryBroadcast()
    first, second = Collector(), Collector()

    def echo(text: str, info: PublishInfo) -> None:
        first(text, info)
        if text == "ping":
            transport.publish_nowait("k", "pong")

    transport.listen("k", echo)
    transport.listen("k", second)
    await transport.publish("k", "ping")
    assert first.items == second.items
    assert first.payloads == ["ping", "pong"]
    assert first.seqs == [1, 2]


async def test_a_raising_listener_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = InMemoryBroadcast()
    collector = Collector()

    def boom(text: str, info: PublishInfo) -> None:
        raise RuntimeError("listener bug")

    transport.listen("k", boom)
    transport.listen("k", collector)
    await transport.publish("k", "a")
    assert collector.payloads == ["a"]
    assert "listener bug" in caplog.text


async def test_closed_transport_refuses_publishes() -> None:
    transport = InMemoryBroadcast()
    await transport.aclose()
    with pytest.raises(BroadcastTransportError) as info:
        await transport.publish("k", "a")
    assert isinstance(info.value, NetworkError)


async def test_non_str_key_is_a_usage_error() -> None:
    transport = InMemoryBroadcast()
    bad: Any = 1
    with pytest.raises(UsageError):
        await transport.publish(bad, "a")
    with pytest.raises(UsageError):
        transport.listen(bad, lambda *_: None)


async def test_get_broadcast_transport_default_and_configured(clean_config: None) -> None:
    config.broadcast.transport = None
    default = get_broadcast_transport()
    assert isinstance(default, InMemoryBroadcast)
    assert get_broadcast_transport() is default
    assert isinstance(default, BroadcastTransport)
    await wait_subscribed(default, "k")
    custom = InMemoryBroadcast()
    config.broadcast.transport = custom
    assert get_broadcast_transport() is custom
    config.broadcast.transport = object()
    with pytest.raises(UsageError, match=r"config\.broadcast\.transport"):
        get_broadcast_transport()


def test_seq_tracker_reports_each_kind_of_break() -> None:
    tracker = SeqTracker()
    assert tracker.observe("k", 10, "e1") is None
    assert tracker.observe("k", 11, "e1") is None
    assert tracker.observe("k", 14, "e1") == BroadcastGap("k", 12, 14, "skipped")
    assert tracker.observe("k", 14, "e1") == BroadcastGap("k", 15, 14, "backwards")
    assert tracker.observe("k", 3, "e2") == BroadcastGap("k", 15, 3, "reset")
    assert tracker.observe("k", 4, "e2") is None
    assert tracker.last("k") == 4
    tracker.forget("k")
    assert tracker.observe("k", 100, "e3") is None
