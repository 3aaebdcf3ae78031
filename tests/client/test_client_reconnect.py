"""Fault injection between the Python client and our server: a TCP proxy that cuts, freezes or
refuses connections mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from client_scenarios import TRANSPORT_IDS, TRANSPORTS, Inbox, cut_mid_stream

from tcp_proxy import FaultyProxy
from telefunc import config
from telefunc.client import Client, NetworkError

APPS = Path(__file__).resolve().parents[1] / "apps"
CHAT = "/chat.telefunc.py"


@pytest.fixture
def restore_config() -> Iterator[None]:
    yield
    config.channel.reset()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=TRANSPORT_IDS)
async def test_cut_mid_stream_loses_and_duplicates_nothing(
    live_server: Any, transports: tuple[str, ...]
) -> None:
    server = live_server(APPS / "channels")
    proxy = FaultyProxy(server.port)
    await proxy.start()
    try:
        await cut_mid_stream(proxy, CHAT, transports)
    finally:
        await proxy.close()
    mux = server.app.hub.mux
    # The server saw the client come back on the transport it was using.
    if transports == ("sse",):
        assert mux.opened.get("sse", 0) >= 2 and "ws" not in mux.opened
    elif transports == ("ws",):
        assert mux.opened.get("ws", 0) >= 2 and "sse" not in mux.opened


async def test_sse_batch_posts_when_stream_requests_are_refused(live_server: Any) -> None:
    """A server (or proxy) that will not stream request bodies: after the 3 s handshake the
    client sends batch POSTs, and a cut there loses and duplicates nothing either."""
    settings = config.copy()
    settings.refuse_stream_requests = True
    server = live_server(APPS / "channels", settings=settings)
    proxy = FaultyProxy(server.port)
    await proxy.start()
    try:
        async with Client(proxy.origin, transports=("sse",)) as c:
            ch = await c.call(CHAT, "welcome")
            inbox = Inbox()
            ch.listen(inbox)
            for i in range(300):
                await ch.send(i)
            assert await inbox.wait(301) == [{"welcome": True}, *range(300)]
            assert c.connection is not None and c.connection.stream_request_failed
        await cut_mid_stream(proxy, CHAT, ("sse",), n=300)
    finally:
        await proxy.close()


async def test_frozen_network_is_detected_by_the_heartbeat(
    live_server: Any, restore_config: None
) -> None:
    config.channel.ping_interval = 1.0  # the client drops a wire without PONG for 2 s
    server = live_server(APPS / "channels")
    proxy = FaultyProxy(server.port)
    await proxy.start()
    try:
        async with Client(proxy.origin) as c:
            ch = await c.call(CHAT, "welcome")
            inbox: list[Any] = []
            got = asyncio.Event()

            def on_message(msg: Any) -> None:
                inbox.append(msg)
                got.set()

            ch.listen(on_message)
            opened = asyncio.Event()
            ch.on_open(opened.set)
            await asyncio.wait_for(got.wait(), 10)
            await asyncio.wait_for(opened.wait(), 10)  # reconciled: the heartbeat runs
            proxy.freeze()
            got.clear()
            ch.send("during the freeze")  # lost with the frozen wire, replayed after reconnect
            loop = asyncio.get_running_loop()
            frozen_at = loop.time()
            await asyncio.wait_for(got.wait(), 15)
            assert loop.time() - frozen_at < 6.0  # 2 x ping_interval, plus the backoff
            assert c.connection is not None and c.connection.connects == 2
            assert inbox == [{"welcome": True}, "during the freeze"]
    finally:
        await proxy.close()


async def test_gives_up_with_network_error_after_reconnect_timeout(
    live_server: Any, restore_config: None
) -> None:
    config.channel.reconnect_timeout = 1.5  # advertised to the client in RECONCILED
    server = live_server(APPS / "channels")
    proxy = FaultyProxy(server.port)
    await proxy.start()
    try:
        async with Client(proxy.origin) as c:
            ch = await c.call(CHAT, "welcome")
            opened = asyncio.Event()
            ch.on_open(opened.set)
            await asyncio.wait_for(opened.wait(), 10)
            await proxy.refuse()
            proxy.cut()
            loop = asyncio.get_running_loop()
            started = loop.time()
            error = await asyncio.wait_for(ch.wait_closed(), 15)
            elapsed = loop.time() - started
    finally:
        await proxy.close()
    assert isinstance(error, NetworkError)
    assert 1.4 <= elapsed < 6.0
