"""Client BroadcastChannels against our server (tests/apps/broadcast): two clients and the server
publish to one key at once; everyone sees one order."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from telefunc.client import BroadcastChannel, Client, PublishInfo
from telefunc.errors import UsageError

APPS = Path(__file__).resolve().parents[1] / "apps"
ROOM = "/room.telefunc.py"


class Subscriber:
    """Records ``(seq, who, i)`` of every non-marker delivery; knows which markers came back."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.received: list[tuple[int, str, int]] = []
        self.markers: set[str] = set()
        self.changed = asyncio.Event()

    def __call__(self, data: Any, info: PublishInfo) -> None:
        assert info["key"] == self.key and isinstance(info["timestamp"], int | float)
        if data["kind"] == "marker":
            self.markers.add(data["who"])
        else:
            self.received.append((info["seq"], data["who"], data["i"]))
        self.changed.set()

    async def until(self, condition: Any, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


async def test_two_clients_and_the_server_publish_in_one_order(live_server: Any) -> None:
    server = live_server(APPS / "broadcast")
    await two_clients_and_the_server_publish(server.origin, ROOM)


async def two_clients_and_the_server_publish(origin: str, file: str, n: int = 40) -> None:
    """The ordering scenario, against any server serving ``room`` and ``server_publish``."""
    key = f"room-{uuid.uuid4()}"
    async with Client(origin) as a, Client(origin) as b:
        ch_a = await a.call(file, "room", key)
        ch_b = await b.call(file, "room", key)
        assert isinstance(ch_a, BroadcastChannel) and ch_a.key == key
        subs = {"a": Subscriber(key), "b": Subscriber(key)}
        ch_a.subscribe(subs["a"])
        ch_b.subscribe(subs["b"])
        # Once a client's own marker came back, the server forwards the key's publishes to it.
        for who, ch in (("a", ch_a), ("b", ch_b)):
            receipt = await ch.publish({"kind": "marker", "who": who})
            assert receipt["key"] == key and receipt["seq"] >= 1
            await subs[who].until(lambda who=who: who in subs[who].markers)

        async def publish_all(ch: BroadcastChannel[Any], who: str) -> list[int]:
            futures = [ch.publish({"kind": "msg", "who": who, "i": i}) for i in range(n)]
            return [r["seq"] for r in await asyncio.gather(*futures)]

        seqs_a, seqs_b, server_receipts = await asyncio.gather(
            publish_all(ch_a, "a"),
            publish_all(ch_b, "b"),
            a.call(file, "server_publish", key, n, "server"),
        )
        total = 3 * n
        for sub in subs.values():
            await sub.until(lambda sub=sub: len(sub.received) >= total)

    got_a, got_b = subs["a"].received, subs["b"].received
    assert got_a == got_b  # one order for everyone, the publishers included
    seqs = [seq for seq, _, _ in got_a]
    assert seqs == sorted(seqs) and len(set(seqs)) == total
    for who in ("a", "b", "server"):  # each publisher's messages keep their own order
        assert [i for _, w, i in got_a if w == who] == list(range(n))
    by_seq = {seq: (who, i) for seq, who, i in got_a}
    assert [by_seq[s] for s in seqs_a] == [("a", i) for i in range(n)]  # receipts match
    assert [by_seq[s] for s in seqs_b] == [("b", i) for i in range(n)]
    assert [by_seq[s] for s, _, _ in server_receipts] == [("server", i) for i in range(n)]


async def test_binary_publish_and_unsubscribe(live_server: Any) -> None:
    server = live_server(APPS / "broadcast")
    key = f"bin-{uuid.uuid4()}"
    async with Client(server.origin) as c:
        ch = await c.call(ROOM, "room", key)
        got: list[tuple[bytes, int]] = []
        arrived = asyncio.Event()

        def on_binary(data: bytes, info: PublishInfo) -> None:
            got.append((data, info["seq"]))
            arrived.set()

        unsubscribe = ch.subscribe_binary(on_binary)
        async with asyncio.timeout(20):
            while not got:  # the subscription becomes live asynchronously: publish until seen
                arrived.clear()
                await ch.publish_binary(b"probe")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 0.2)
        got.clear()
        receipt = await ch.publish_binary(b"\x00\x01\x02")
        async with asyncio.timeout(10):
            while not any(data == b"\x00\x01\x02" for data, _ in got):
                arrived.clear()
                await arrived.wait()
        assert (b"\x00\x01\x02", receipt["seq"]) in got
        unsubscribe()
        with pytest.raises(UsageError):
            ch.send("no")
        with pytest.raises(UsageError):
            ch.listen(print)
