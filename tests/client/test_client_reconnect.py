"""Fault injection between the Python client and our server: a TCP proxy that cuts, freezes or
refuses connections mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faulty_proxy import FaultyProxy  # tests/client/faulty_proxy.py

from telefunc import config
from telefunc.client import Client, NetworkError

APPS = Path(__file__).resolve().parents[1] / "apps"
CHAT = "/chat.telefunc.py"


@pytest.fixture
def restore_config() -> Iterator[None]:
    yield
    config.channel.reset()


async def test_cut_mid_stream_loses_and_duplicates_nothing(live_server: Any) -> None:
    n = 600
    server = live_server(APPS / "channels")
    proxy = FaultyProxy(server.port)
    await proxy.start()
    try:
        async with Client(proxy.origin) as c:
            ch = await c.call(CHAT, "both_ways", n)
            ticks: list[Any] = []
            midway = asyncio.Event()
            all_ticks = asyncio.Event()

            def on_tick(msg: Any) -> None:
                ticks.append(msg)
                if len(ticks) >= n // 3:
                    midway.set()
                if len(ticks) >= n:
                    all_ticks.set()

            ch.listen(on_tick)
            errors: list[Exception | None] = []
            ch.on_close(errors.append)

            async def cutter() -> int:
                await midway.wait()
                return proxy.cut()

            cut_task = asyncio.create_task(cutter())
            for i in range(n):
                await ch.send(i)
                if i % 50 == 0:
                    await asyncio.sleep(0)  # let the cutter run while both sides stream
            cuts = await asyncio.wait_for(cut_task, 30)
            await asyncio.wait_for(all_ticks.wait(), 30)
            report = await asyncio.wait_for(ch.send("report", ack=True), 30)
            assert c.connection is not None
            connects = c.connection.connects
            errors_while_open = list(errors)
    finally:
        await proxy.close()
    assert cuts >= 1 and connects >= 2  # the socket really was cut, and the client came back
    assert ticks == list(range(n))  # server -> client: nothing lost, nothing twice, in order
    assert report == list(range(n))  # client -> server: the same
    assert errors_while_open == []
    assert len(errors) == 1  # closing the client ends its channels


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
