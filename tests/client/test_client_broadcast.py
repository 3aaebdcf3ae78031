"""Client BroadcastChannels against our server (tests/apps/broadcast): two clients and the server
publish to one key at once; everyone sees one order."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from client_scenarios import (  # tests/client/client_scenarios.py
    TRANSPORT_IDS,
    TRANSPORTS,
    two_clients_and_the_server_publish,
)

from telefunc.client import Client, PublishInfoDict
from telefunc.errors import UsageError

APPS = Path(__file__).resolve().parents[1] / "apps"
ROOM = "/room.telefunc.py"


@pytest.mark.parametrize("transports", TRANSPORTS, ids=TRANSPORT_IDS)
async def test_two_clients_and_the_server_publish_in_one_order(
    live_server: Any, transports: tuple[str, ...]
) -> None:
    server = live_server(APPS / "broadcast")
    await two_clients_and_the_server_publish(server.origin, ROOM, transports=transports)


async def test_binary_publish_and_unsubscribe(live_server: Any) -> None:
    server = live_server(APPS / "broadcast")
    key = f"bin-{uuid.uuid4()}"
    async with Client(server.origin) as c:
        ch = await c.call(ROOM, "room", key)
        got: list[tuple[bytes, int]] = []
        arrived = asyncio.Event()

        def on_binary(data: bytes, info: PublishInfoDict) -> None:
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
