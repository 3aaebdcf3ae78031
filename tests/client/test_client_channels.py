"""Client channels against our server's channels (tests/apps/channels), over each channel
transport: WebSocket, SSE duplex, and SSE upgraded to WebSocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from client_scenarios import (  # tests/client/client_scenarios.py
    TRANSPORT_IDS,
    TRANSPORTS,
    Inbox,
    acks_both_ways,
    binary_echo,
    check_transport,
    server_abort,
    server_close_then_client_close,
    thousand_sends_echoed,
)

from telefunc.client import Abort, Client

APPS = Path(__file__).resolve().parents[1] / "apps"
CHAT = "/chat.telefunc.py"


@pytest.fixture(params=TRANSPORTS, ids=TRANSPORT_IDS)
def transports(request: pytest.FixtureRequest) -> tuple[str, ...]:
    value: tuple[str, ...] = request.param
    return value


@pytest.fixture
def server(live_server: Any) -> Any:
    return live_server(APPS / "channels")


@pytest.fixture
def origin(server: Any) -> str:
    return str(server.origin)


@pytest.fixture
async def client(server: Any, transports: tuple[str, ...]) -> AsyncIterator[Client]:
    """A client on the parametrized transports; afterwards, checks the transport it ended on
    and the server's view of the same (wires opened by transport, upgrades)."""
    async with Client(server.origin, transports=transports) as c:
        yield c
        if c.connection is not None:
            await check_transport(c, transports)
            mux = server.app.hub.mux
            if transports == ("sse", "ws"):
                assert mux.upgrades >= 1 and mux.opened.get("sse", 0) >= 1
                assert mux.opened.get("ws", 0) >= 1
            else:
                assert mux.upgrades == 0 and set(mux.opened) == {transports[0]}
            assert c.connection.connects == 1  # no reconnect was needed


async def test_a_thousand_awaited_sends_are_echoed_in_order(client: Client) -> None:
    await thousand_sends_echoed(client, CHAT)


async def test_acks_both_ways(client: Client) -> None:
    await acks_both_ways(client, CHAT)


async def test_one_mebibyte_binary_echo_is_byte_exact(client: Client) -> None:
    await binary_echo(client, CHAT)


async def test_server_abort_reaches_on_close_with_the_value(client: Client) -> None:
    await server_abort(client, CHAT)


async def test_server_close_and_client_close(client: Client) -> None:
    await server_close_then_client_close(client, CHAT)


async def test_listener_abort_rejects_the_acked_send(client: Client) -> None:
    ch = await client.call(CHAT, "listener_abort")
    with pytest.raises(Abort) as info:
        await ch.send("x")
    assert info.value.value == {"refused": "x"}
    assert isinstance(await asyncio.wait_for(ch.wait_closed(), 10), Abort)


async def test_server_stream_beyond_the_initial_window_and_client_stream(client: Client) -> None:
    n = 600  # well past the 100-message initial credit: the client must advertise windows
    ch = await client.call(CHAT, "both_ways", n)
    ticks = Inbox()
    ch.listen(ticks)
    for i in range(n):
        await ch.send(i)
    assert await ticks.wait(n) == list(range(n))
    assert await ch.send("report", ack=True) == list(range(n))


async def test_client_abort_ends_the_channel_locally(client: Client) -> None:
    ch = await client.call(CHAT, "welcome")
    inbox = Inbox()
    ch.listen(inbox)
    await inbox.wait(1)
    ch.abort({"client": "gone"})
    error = await asyncio.wait_for(ch.wait_closed(), 5)
    assert isinstance(error, Abort) and error.value == {"client": "gone"}
    # The connection stays usable for other channels.
    other = await client.call(CHAT, "welcome")
    inbox2 = Inbox()
    other.listen(inbox2)
    assert await inbox2.wait(1) == [{"welcome": True}]


async def test_many_channels_share_one_connection(client: Client) -> None:
    channels = await asyncio.gather(*(client.call(CHAT, "welcome") for _ in range(5)))
    inboxes = [Inbox() for _ in channels]
    for ch, inbox in zip(channels, inboxes, strict=True):
        ch.listen(inbox)
    for i, ch in enumerate(channels):
        await ch.send(i)
    for i, inbox in enumerate(inboxes):
        assert await inbox.wait(2) == [{"welcome": True}, i]
