"""Client scenarios shared by the tests against our server and against the official Node server
(imported by module name, like tcp_proxy; a helper module, not a test module)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tcp_proxy import FaultyProxy
from telefunc.client import (
    Abort,
    BroadcastChannel,
    Channel,
    ChannelClosedError,
    Client,
    PublishInfoDict,
)

#: The channel transports every channel scenario runs over.
TRANSPORTS: list[tuple[str, ...]] = [("ws",), ("sse",), ("sse", "ws")]
TRANSPORT_IDS = ["ws", "sse", "sse+ws"]


class Inbox:
    """Collects messages; ``wait(n)`` waits (bounded) until ``n`` arrived."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, n: int, timeout: float = 20.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.items) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.items


async def until(condition: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition()`` (bounded) for state that has no event of its own (server counters)."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def check_transport(c: Client, transports: tuple[str, ...]) -> None:
    """The client's connection ended up on the expected transport (after upgrading, for
    ``("sse", "ws")``)."""
    conn = c.connection
    assert conn is not None
    if transports == ("sse", "ws"):
        await until(lambda: conn.upgrades >= 1 and conn.transport == "ws", what="the upgrade")
        assert conn.opened.get("sse", 0) >= 1 and conn.opened.get("ws", 0) >= 1
    else:
        assert conn.upgrades == 0
        assert conn.transport == transports[0]
        assert set(conn.opened) == {transports[0]}


async def thousand_sends_echoed(c: Client, file: str) -> Channel[Any, Any]:
    """1,000 awaited sends, echoed in order after the welcome; then a close the server acks."""
    ch = await c.call(file, "welcome")
    assert isinstance(ch, Channel)
    inbox = Inbox()
    ch.listen(inbox)
    opened = asyncio.Event()
    ch.on_open(opened.set)
    for i in range(1000):
        await ch.send({"n": i})
    items = await inbox.wait(1001)
    assert opened.is_set()
    assert items == [{"welcome": True}, *({"n": i} for i in range(1000))]
    assert await ch.close() == 0
    assert ch.is_closed and ch.close_error is None
    with pytest.raises(ChannelClosedError):
        ch.send("after close")
    return ch


async def acks_both_ways(c: Client, file: str) -> None:
    """The server acks our sends with its listener's value; we ack its sends with ours."""
    ch = await c.call(file, "acked")
    assert ch.ack is True
    inbox = Inbox()

    def on_message(msg: Any) -> str | None:
        inbox(msg)
        return "client-answer" if msg == "question" else None

    ch.listen(on_message)
    assert await ch.send(21) == 42  # the server listener's return value
    assert await ch.send(5, ack=False) is None
    assert await inbox.wait(2) == ["question", {"client_answered": "client-answer"}]


async def binary_echo(c: Client, file: str) -> None:
    """1 MiB of binary comes back byte for byte (and a small one after it)."""
    payload = bytes((i * 7 + i // 256) % 256 for i in range(1024 * 1024))
    ch = await c.call(file, "binary_echo")
    inbox = Inbox()
    ch.listen_binary(inbox)
    await ch.send_binary(payload)
    await ch.send_binary(b"\x00small")
    [big, small] = await inbox.wait(2)
    assert big == payload and small == b"\x00small"


async def server_abort(c: Client, file: str) -> None:
    """The server's abort value reaches on_close and wait_closed."""
    value = {"reason": "bye", "n": 7}
    ch = await c.call(file, "aborter", value)
    errors: list[Exception | None] = []
    ch.on_close(errors.append)
    error = await asyncio.wait_for(ch.wait_closed(), 10)
    assert isinstance(error, Abort) and error.value == value
    assert errors == [error] and ch.is_closed


async def server_close_then_client_close(c: Client, file: str) -> None:
    """The server closes (we ack: its close() gives 0); then we close one (the server acks)."""
    ch = await c.call(file, "closer")
    closed: list[Exception | None] = []
    ch.on_close(closed.append)
    assert await c.call(file, "server_report", ch.id) == {}  # nothing recorded for it yet
    await ch.send("close-now")
    assert await asyncio.wait_for(ch.wait_closed(), 10) is None
    assert closed == [None]
    # The server's close() resolves when our CLOSE_ACK arrives, which may be after our side
    # finished: poll *this channel's* report (bounded).
    async with asyncio.timeout(10):
        while "server_close_result" not in (report := await c.call(file, "server_report", ch.id)):
            await asyncio.sleep(0.02)
    assert report["server_close_result"] == 0  # we acknowledged the server's CLOSE
    other = await c.call(file, "welcome")
    assert await other.close(timeout=5.0) == 0  # the server acknowledged ours


async def cut_mid_stream(
    proxy: FaultyProxy, file: str, transports: tuple[str, ...], n: int = 600
) -> int:
    """Both sides stream ``n`` messages while the proxy cuts every connection once a third of the
    server's arrived: nothing lost, nothing twice, in order, both ways. Returns the connects."""
    async with Client(proxy.origin, transports=transports) as c:
        ch = await c.call(file, "both_ways", n)
        ticks = Inbox()
        ch.listen(ticks)
        errors: list[Exception | None] = []
        ch.on_close(errors.append)

        async def cutter() -> int:
            await ticks.wait(n // 3, timeout=30)
            return proxy.cut()

        cut_task = asyncio.create_task(cutter())
        for i in range(n):
            if ch.is_closed:
                raise AssertionError(f"closed after {i} sends: {ch.close_error!r}")
            await ch.send(i)
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the cutter run while both sides stream
        cuts = await asyncio.wait_for(cut_task, 30)
        assert ch.close_error is None, repr(ch.close_error)
        assert await ticks.wait(n, timeout=30) == list(range(n))  # nothing lost or twice
        report = await asyncio.wait_for(ch.send("report", ack=True), 30)
        assert c.connection is not None
        connects = c.connection.connects
        assert errors == []
    assert cuts >= 1 and connects >= 2  # the connections really were cut; the client came back
    assert report == list(range(n))  # client -> server: the same
    assert len(errors) == 1  # closing the client ends its channels
    return connects


class Subscriber:
    """Records ``(seq, who, i)`` of every non-marker delivery; knows which markers came back."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.received: list[tuple[int, str, int]] = []
        self.markers: set[str] = set()
        self.changed = asyncio.Event()

    def __call__(self, data: Any, info: PublishInfoDict) -> None:
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


async def two_clients_and_the_server_publish(
    origin: str, file: str, n: int = 40, transports: tuple[str, ...] = ("sse", "ws")
) -> None:
    """The broadcast ordering scenario, against any server serving ``room`` and
    ``server_publish``: two clients and the server publish to one key at once; everyone sees
    one order."""
    key = f"room-{uuid.uuid4()}"
    async with (
        Client(origin, transports=transports) as a,
        Client(origin, transports=transports) as b,
    ):
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
