"""The Redis broadcast transport against a real redis-server, within one test process.

Two ``RedisBroadcast`` instances stand for two processes: each has its own pub/sub and publish
connections, exactly as two servers would.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _broadcast_util import Collector, eventually

from redis_support import RedisServer, free_port
from telefunc.broadcast import RedisBroadcast as LazyRedisBroadcast
from telefunc.broadcast.redis import _PUBLISH_LUA, RedisBroadcast
from telefunc.broadcast.transport import (
    BroadcastGap,
    BroadcastTransport,
    PublishReceipt,
)
from telefunc.errors import BroadcastTransportError, NetworkError, UsageError

TOTAL = 1000


def numsub(server: RedisServer, key: str, prefix: str = "telefunc") -> int:
    """Subscribers of the key's channel, as Redis counts them (one per subscribed connection)."""
    reply = server.command("PUBSUB", "NUMSUB", f"{prefix}:bc:{key}")
    match = re.search(rb":(\d+)\r\n$", reply)
    assert match, reply
    return int(match.group(1))


@pytest.fixture
async def transports(redis_server: RedisServer) -> AsyncIterator[Callable[..., RedisBroadcast]]:
    """A factory of transports to the fixture's server, all closed at teardown."""
    made: list[RedisBroadcast] = []

    def make(url: str | None = None, **kwargs: Any) -> RedisBroadcast:
        transport = RedisBroadcast(url or redis_server.url, **kwargs)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()


def assert_contiguous(seqs: list[int]) -> None:
    assert seqs, "no messages"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "seq not strictly +1 per message"


async def test_thousand_publishes_three_concurrent_publishers_one_order(
    redis_server: RedisServer, transports: Callable[..., RedisBroadcast]
) -> None:
    a, b = transports(), transports()
    assert isinstance(a, BroadcastTransport)
    gaps: list[BroadcastGap] = []
    a.on_gap(gaps.append)
    b.on_gap(gaps.append)
    a1, a2, b1 = Collector(), Collector(), Collector()
    a_bin = Collector()
    unsubscribe_a = [a.listen("room", a1), a.listen("room", a2), a.listen_binary("room", a_bin)]
    b.listen("room", b1)
    await a.wait_subscribed("room")
    await b.wait_subscribed("room")
    # Three local listeners (two lanes) in `a`, one in `b`: still one subscription per process.
    assert numsub(redis_server, "room") == 2

    async def publisher(transport: RedisBroadcast, name: str, count: int) -> list[PublishReceipt]:
        # All publishes in flight at once; the transport keeps this caller's order.
        return await asyncio.gather(
            *(transport.publish("room", f"{name}-{i}") for i in range(count))
        )

    shares = [(a, "p1", 334), (a, "p2", 333), (b, "p3", 333)]
    results = await asyncio.gather(*(publisher(t, n, c) for t, n, c in shares))
    receipts = [r for rs in results for r in rs]
    assert len(receipts) == TOTAL

    for collector in (a1, a2, b1):
        await collector.wait_for(TOTAL)
    # Everyone saw exactly the same sequence: same payloads, seqs and timestamps, same order.
    assert a1.items == a2.items == b1.items
    assert len(a1.items) == TOTAL
    assert_contiguous(a1.seqs)
    timestamps = [item[2] for item in a1.items]
    assert timestamps == sorted(timestamps)
    assert all(isinstance(t, int) for t in timestamps)
    # Receipts match what subscribers saw (seq and timestamp of the very same message).
    seen = {payload: (seq, ts) for payload, seq, ts in a1.items}
    assert {r.info.key for r in receipts} == {"room"}
    for (_, name, count), rs in zip(shares, results, strict=True):
        assert [seen[f"{name}-{i}"] for i in range(count)] == [(r.seq, r.timestamp) for r in rs]
        # Each publisher's messages are ordered as it called publish().
        assert [r.seq for r in rs] == sorted(r.seq for r in rs)
    assert {r.meta["transport"] for r in receipts} == {"redis"}
    assert {r.meta["delivered"] for r in receipts} == {2}  # two processes subscribed
    assert a_bin.items == []  # text publishes do not reach the binary lane
    assert gaps == []

    # Unsubscribing every local listener drops the process's one upstream subscription...
    for unsubscribe in unsubscribe_a:
        unsubscribe()
    await eventually(lambda: numsub(redis_server, "room") == 1, what="a's UNSUBSCRIBE")
    receipt = await a.publish("room", "after-unsubscribe")
    await b1.wait_for(TOTAL + 1)
    # ...and stops delivery to them, while b still receives.
    assert b1.items[-1] == ("after-unsubscribe", receipt.seq, receipt.timestamp)
    assert receipt.seq == a1.seqs[-1] + 1
    assert len(a1.items) == len(a2.items) == TOTAL
    assert receipt.meta["delivered"] == 1


async def test_binary_lane_is_binary_safe_and_shares_the_counter(
    transports: Callable[..., RedisBroadcast],
) -> None:
    pub, sub = transports(), transports()
    text, binary = Collector(), Collector()
    sub.listen("k", text)
    sub.listen_binary("k", binary)
    await sub.wait_subscribed("k")
    payloads = [b"", b"\x00\n\r\n\xff\xfe", bytes(range(256)) * 100, b"t1,2,3\nfake header"]
    receipts = [await pub.publish_binary("k", p) for p in payloads]
    text_receipt = await pub.publish("k", "h\u00e9llo\n\u2603")
    await binary.wait_for(len(payloads))
    await text.wait_for(1)
    assert binary.items == [
        (p, r.seq, r.timestamp) for p, r in zip(payloads, receipts, strict=True)
    ]
    assert text.items == [("h\u00e9llo\n\u2603", text_receipt.seq, text_receipt.timestamp)]
    assert_contiguous([r.seq for r in [*receipts, text_receipt]])
    assert all(isinstance(p, bytes) for p in binary.payloads)


async def test_keys_are_independent_and_prefixes_isolate_apps(
    redis_server: RedisServer, transports: Callable[..., RedisBroadcast]
) -> None:
    app1, app2 = transports(prefix="app1"), transports(prefix="app2")
    got1, got2 = Collector(), Collector()
    app1.listen("k", got1)
    app2.listen("k", got2)
    await app1.wait_subscribed("k")
    await app2.wait_subscribed("k")
    r1 = await app1.publish("k", "one")
    r2 = await app2.publish("k", "two")
    r3 = await app1.publish("j", "other key")
    await got1.wait_for(1)
    await got2.wait_for(1)
    assert got1.payloads == ["one"]
    assert got2.payloads == ["two"]
    assert r3.meta["delivered"] == 0
    assert numsub(redis_server, "k", "app1") == numsub(redis_server, "k", "app2") == 1
    assert r1.meta["epoch"] != r3.meta["epoch"] or r1.seq != r3.seq  # separate counters exist
    assert r2.seq >= r1.seq - 5  # both initialised from Redis time


async def test_restart_resubscribes_by_itself_keeps_seq_increasing_and_reports_the_reset(
    redis_server: RedisServer,
    transports: Callable[..., RedisBroadcast],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pub, sub = transports(), transports()
    gaps: list[BroadcastGap] = []
    sub.on_gap(gaps.append)
    got = Collector()
    sub.listen("room", got)
    await sub.wait_subscribed("room")
    before = [await pub.publish("room", f"before-{i}") for i in range(5)]
    await got.wait_for(5)
    assert gaps == []

    redis_server.restart()  # unpersisted: the key's counter is gone
    assert redis_server.command("EXISTS", "telefunc:bcseq:room") == b":0\r\n"

    # The subscription comes back by itself (no call on our side).
    await eventually(lambda: sub.reconnects >= 1, what="pub/sub reconnect")
    await sub.wait_subscribed("room")
    # A process that never saw the key publishes first: seq still goes up, because the
    # subscriber pushed the lost counter back up to what it had seen when it resubscribed.
    fresh = transports()
    after_fresh = await fresh.publish("room", "after-fresh")
    after = await pub.publish("room", "after")
    await got.wait_for(7)

    assert got.payloads == [*(f"before-{i}" for i in range(5)), "after-fresh", "after"]
    assert got.seqs == sorted(set(got.seqs)), "seq must stay strictly increasing"
    assert got.seqs[5:] == [after_fresh.seq, after.seq]
    assert after_fresh.seq > before[-1].seq
    assert after.seq == after_fresh.seq + 1
    assert after_fresh.meta["epoch"] != before[-1].meta["epoch"]
    # The break is reported, not hidden: through on_gap and the log.
    assert gaps == [BroadcastGap("room", before[-1].seq + 1, after_fresh.seq, "reset")]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("expected seq" in m and "reset" in m for m in warnings), warnings
    assert any("reconnected to Redis" in m for m in warnings), warnings


async def test_missed_messages_while_disconnected_are_reported_as_skipped(
    redis_server: RedisServer, transports: Callable[..., RedisBroadcast]
) -> None:
    pub, sub = transports(), transports()
    gaps: list[BroadcastGap] = []
    sub.on_gap(gaps.append)
    got = Collector()
    sub.listen("k", got)
    await sub.wait_subscribed("k")
    first = await pub.publish("k", "first")
    await got.wait_for(1)
    # Cut only the subscriber's connection (Redis keeps running, the counter survives) and
    # publish right away, with no event-loop turn in between: the subscriber cannot be back yet.
    redis_server.command("CLIENT", "KILL", "TYPE", "pubsub")
    reply = redis_server.command(
        "EVAL", _PUBLISH_LUA, "1", "telefunc:bcseq:k", "telefunc:bc:k", "t", "missed", "0"
    )
    missed_seq = int(reply.split(b"\r\n")[2])
    await eventually(lambda: sub.reconnects >= 1, what="pub/sub reconnect")
    await sub.wait_subscribed("k")
    last = await pub.publish("k", "last")
    await got.wait_for(2)
    assert got.payloads == ["first", "last"]
    assert missed_seq == first.seq + 1
    assert last.seq == missed_seq + 1
    assert gaps == [BroadcastGap("k", first.seq + 1, last.seq, "skipped")]


async def test_counter_going_backwards_is_reported(
    redis_server: RedisServer, transports: Callable[..., RedisBroadcast]
) -> None:
    pub, sub = transports(), transports()
    gaps: list[BroadcastGap] = []
    sub.on_gap(gaps.append)
    got = Collector()
    sub.listen("k", got)
    await sub.wait_subscribed("k")
    first = await pub.publish("k", "first")
    # Simulate a counter that came back smaller (e.g. failover to a lagging replica).
    redis_server.command("HSET", "telefunc:bcseq:k", "s", "1", "e", "replica")
    fresh = transports()  # knows nothing about the key, so it cannot lift the counter
    low = await fresh.publish("k", "low")
    await got.wait_for(2)
    assert low.seq == 2
    assert gaps == [BroadcastGap("k", first.seq + 1, 2, "reset")]
    # A process that has seen the higher seq lifts the counter above it again.
    high = await pub.publish("k", "high")
    assert high.seq == first.seq + 1


async def test_publish_while_redis_is_down_fails_fast_with_a_clear_error(
    transports: Callable[..., RedisBroadcast],
) -> None:
    url = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    transport = transports(url)
    started = time.monotonic()
    with pytest.raises(BroadcastTransportError) as info:
        await transport.publish("k", "x")
    assert time.monotonic() - started < 5.0
    assert isinstance(info.value, NetworkError)
    assert url in str(info.value)
    with pytest.raises(BroadcastTransportError):
        await transport.publish_binary("k", b"x")
    # Listening while Redis is down is fine: the reader keeps retrying in the background.
    transport.listen("k", lambda *_: None)


async def test_publish_to_an_unresponsive_server_times_out(
    transports: Callable[..., RedisBroadcast],
) -> None:
    # Accepts TCP connections (kernel backlog) but never answers: a hung Redis.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        url = f"redis://127.0.0.1:{hole.getsockname()[1]}"
        transport = transports(url, connect_timeout=0.5, command_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(BroadcastTransportError) as info:
            await transport.publish("k", "x")
        elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert url in str(info.value)


async def test_publish_recovers_after_redis_comes_back(
    redis_server: RedisServer, transports: Callable[..., RedisBroadcast]
) -> None:
    transport = transports()
    first = await transport.publish("k", "a")
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(BroadcastTransportError, match=re.escape(redis_server.url)):
        await transport.publish("k", "b")
    assert time.monotonic() - started < 5.0
    redis_server.start()
    again = await transport.publish("k", "c")
    assert again.seq > first.seq  # the floor this process saw survives the lost counter


async def test_closed_transport_and_usage_errors(transports: Callable[..., RedisBroadcast]) -> None:
    assert LazyRedisBroadcast is RedisBroadcast
    with pytest.raises(UsageError):
        RedisBroadcast("http://not-redis")
    transport = transports()
    with pytest.raises(UsageError):
        await transport.wait_subscribed("nobody-listens")
    bad: Any = 42
    with pytest.raises(UsageError):
        await transport.publish("k", bad)
    await transport.aclose()
    with pytest.raises(BroadcastTransportError, match="closed"):
        await transport.publish("k", "x")
    with pytest.raises(BroadcastTransportError, match="closed"):
        transport.listen("k", lambda *_: None)


def test_construction_needs_no_event_loop() -> None:
    # The CLI builds the transport before uvicorn starts its loop.
    transport = RedisBroadcast("redis://127.0.0.1:1", prefix="x")
    assert "127.0.0.1:1" in repr(transport)


async def test_quick_unsubscribe_and_resubscribe_keeps_one_subscription(
    redis_server: RedisServer, transports: Callable[..., RedisBroadcast]
) -> None:
    pub, sub = transports(), transports()
    first, second = Collector(), Collector()
    unsubscribe = sub.listen("k", first)
    await sub.wait_subscribed("k")
    unsubscribe()
    sub.listen("k", second)  # UNSUBSCRIBE and SUBSCRIBE both in flight
    await sub.wait_subscribed("k")
    receipt = await pub.publish("k", "x")
    await second.wait_for(1)
    assert second.items == [("x", receipt.seq, receipt.timestamp)]
    assert first.items == []
    assert numsub(redis_server, "k") == 1


async def test_a_hung_redis_is_detected_and_the_subscription_recovers(
    redis_server: RedisServer,
    transports: Callable[..., RedisBroadcast],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pub = transports()
    sub = transports(health_check_interval=0.2, connect_timeout=0.5)
    got = Collector()
    sub.listen("k", got)
    await sub.wait_subscribed("k")
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)  # alive but silent: no FIN, no replies
    try:
        await eventually(
            lambda: "lost the pub/sub connection" in caplog.text, what="dead-peer detection"
        )
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    await eventually(lambda: sub.reconnects >= 1, what="pub/sub reconnect")
    await sub.wait_subscribed("k")
    receipt = await pub.publish("k", "back")
    await got.wait_for(1)
    assert got.items == [("back", receipt.seq, receipt.timestamp)]
