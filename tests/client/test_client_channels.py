"""Client channels against our server's channels (tests/apps/channels) over one WebSocket."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from telefunc.client import Abort, Channel, ChannelClosedError, Client

APPS = Path(__file__).resolve().parents[1] / "apps"
CHAT = "/chat.telefunc.py"


@pytest.fixture
def origin(live_server: Any) -> str:
    return str(live_server(APPS / "channels").origin)


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


async def test_a_thousand_awaited_sends_are_echoed_in_order(origin: str) -> None:
    async with Client(origin) as c:
        ch = await c.module(CHAT).welcome()
        assert isinstance(ch, Channel)
        inbox = Inbox()
        ch.listen(inbox)
        opened = asyncio.Event()
        ch.on_open(opened.set)
        for i in range(1000):
            await ch.send({"n": i})
        items = await inbox.wait(1001)
        assert opened.is_set()
        assert items[0] == {"welcome": True}
        assert items[1:] == [{"n": i} for i in range(1000)]
        assert c.connection is not None and c.connection.connects == 1
        assert await ch.close() == 0
        assert ch.is_closed and ch.close_error is None
        with pytest.raises(ChannelClosedError):
            ch.send("after close")


async def test_acks_both_ways(origin: str) -> None:
    async with Client(origin) as c:
        ch = await c.call(CHAT, "acked")
        assert ch.ack is True
        inbox = Inbox()

        def on_message(msg: Any) -> str | None:
            inbox(msg)
            return "client-answer" if msg == "question" else None

        ch.listen(on_message)
        assert await ch.send(21) == 42  # the server listener's return value
        assert await ch.send(5, ack=False) is None
        items = await inbox.wait(2)
        assert items == ["question", {"client_answered": "client-answer"}]


async def test_one_mebibyte_binary_echo_is_byte_exact(origin: str) -> None:
    payload = bytes((i * 7 + i // 256) % 256 for i in range(1024 * 1024))
    async with Client(origin) as c:
        ch = await c.call(CHAT, "binary_echo")
        inbox = Inbox()
        ch.listen_binary(inbox)
        await ch.send_binary(payload)
        await ch.send_binary(b"\x00small")
        [big, small] = await inbox.wait(2)
    assert big == payload and small == b"\x00small"


async def test_server_abort_reaches_on_close_with_the_value(origin: str) -> None:
    async with Client(origin) as c:
        ch = await c.call(CHAT, "aborter", {"reason": "bye", "n": 7})
        errors: list[Exception | None] = []
        ch.on_close(errors.append)
        error = await asyncio.wait_for(ch.wait_closed(), 10)
    assert isinstance(error, Abort) and error.value == {"reason": "bye", "n": 7}
    assert errors == [error] and ch.is_closed


async def test_server_close_and_client_close(origin: str) -> None:
    async with Client(origin) as c:
        ch = await c.call(CHAT, "closer")
        closed: list[Exception | None] = []
        ch.on_close(closed.append)
        await ch.send("close-now")
        assert await asyncio.wait_for(ch.wait_closed(), 10) is None
        assert closed == [None]
        # The server's close() resolves when our CLOSE_ACK arrives, which may be after our
        # side finished: poll its report (bounded).
        async with asyncio.timeout(10):
            while "server_close_result" not in (report := await c.call(CHAT, "server_report")):
                await asyncio.sleep(0.02)
        assert report["server_close_result"] == 0  # we acknowledged the server's CLOSE
        other = await c.call(CHAT, "welcome")
        assert await other.close(timeout=5.0) == 0  # the server acknowledged ours


async def test_listener_abort_rejects_the_acked_send(origin: str) -> None:
    async with Client(origin) as c:
        ch = await c.call(CHAT, "listener_abort")
        with pytest.raises(Abort) as info:
            await ch.send("x")
        assert info.value.value == {"refused": "x"}
        assert isinstance(await asyncio.wait_for(ch.wait_closed(), 10), Abort)


async def test_server_stream_beyond_the_initial_window_and_client_stream(origin: str) -> None:
    n = 600  # well past the 100-message initial credit: the client must advertise windows
    async with Client(origin) as c:
        ch = await c.call(CHAT, "both_ways", n)
        ticks = Inbox()
        ch.listen(ticks)
        for i in range(n):
            await ch.send(i)
        assert await ticks.wait(n) == list(range(n))
        assert await ch.send("report", ack=True) == list(range(n))


async def test_client_abort_ends_the_channel_locally(origin: str) -> None:
    async with Client(origin) as c:
        ch = await c.call(CHAT, "welcome")
        inbox = Inbox()
        ch.listen(inbox)
        await inbox.wait(1)
        ch.abort({"client": "gone"})
        error = await asyncio.wait_for(ch.wait_closed(), 5)
        assert isinstance(error, Abort) and error.value == {"client": "gone"}
        # The connection stays usable for other channels.
        other = await c.call(CHAT, "welcome")
        inbox2 = Inbox()
        other.listen(inbox2)
        assert await inbox2.wait(1) == [{"welcome": True}]


async def test_many_channels_share_one_connection(origin: str) -> None:
    async with Client(origin) as c:
        channels = await asyncio.gather(*(c.call(CHAT, "welcome") for _ in range(5)))
        inboxes = [Inbox() for _ in channels]
        for ch, inbox in zip(channels, inboxes, strict=True):
            ch.listen(inbox)
        for i, ch in enumerate(channels):
            await ch.send(i)
        for i, inbox in enumerate(inboxes):
            assert await inbox.wait(2) == [{"welcome": True}, i]
        assert c.connection is not None and c.connection.connects == 1
