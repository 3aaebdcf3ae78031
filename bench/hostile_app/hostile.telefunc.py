"""Telefunctions the attack benchmark (bench/hostile.py) aims at.

Each one is what an ordinary app would write; the bench attacks them through the wire. Every
loop here is bounded in time, so a telefunction can never be what keeps the server busy.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from telefunc import Channel, UploadedFile, get_context
from telefunc.server.broadcast import Broadcast, BroadcastChannel
from telefunc.server.context import current_scope

#: How long a sending loop may run at most, in seconds.
SEND_FOR = 60.0
#: Calls of ``transfer`` that ran (the cross-site rows count them).
TRANSFERS: list[Any] = []


async def ping() -> str:
    """The probe: a plain call."""
    return "pong"


async def flood(size: int = 1024) -> Channel[Any, Any]:
    """Once open, sends ``size``-character messages in a loop (for at most SEND_FOR seconds)."""
    ch: Channel[Any, Any] = Channel()
    payload = "x" * size

    async def loop() -> None:
        deadline = time.monotonic() + SEND_FOR
        while not ch.is_closed and time.monotonic() < deadline:
            await ch.send(payload)

    ch.on_open(lambda: asyncio.ensure_future(loop()))
    return ch


async def slow() -> Channel[Any, Any]:
    """A channel whose listener takes a second per message."""
    ch: Channel[Any, Any] = Channel()

    async def listener(_msg: Any) -> None:
        await asyncio.sleep(1.0)

    ch.listen(listener)
    return ch


async def idle() -> Channel[Any, Any]:
    """A channel that does nothing (connect/disconnect cycles, ownership rows)."""
    return Channel()


async def echo(n: int) -> Channel[Any, Any]:
    """Streams the ticks ``0..n-1`` while recording what the client sends.

    The listener returns every message, so an acked send gets the message back as its ack;
    ``"report"`` (acked) returns everything received so far, in order.
    """
    ch: Channel[Any, Any] = Channel()
    received: list[Any] = []

    def on_message(msg: Any) -> Any:
        if msg == "report":
            return received
        received.append(msg)
        return msg

    ch.listen(on_message)

    async def ticks() -> None:
        for i in range(n):
            if ch.is_closed:
                return
            await ch.send(i)
            if i % 50 == 0:
                await asyncio.sleep(0.2)  # spread the stream over the cutting period

    ch.on_open(lambda: asyncio.ensure_future(ticks()))
    return ch


async def room(key: str) -> BroadcastChannel[Any]:
    """A broadcast room."""
    return BroadcastChannel(key=key)


async def blast(key: str, count: int, size: int) -> int:
    """Publish ``count`` messages of ``size`` characters to ``key``; returns the last seq."""
    payload = "x" * size
    seq = 0
    for i in range(count):
        seq = (await Broadcast.publish(key, f"{i}:{payload}"))["seq"]
    return seq


async def transfer(to: str, amount: int) -> str:
    """What a cross-site page must not be able to call with a visitor's cookies."""
    TRANSFERS.append((to, amount, get_context().get("cookie")))
    return "sent"


async def upload(file: UploadedFile) -> int:
    """Reads an uploaded file; returns its size."""
    return len(await file.read())


async def channel_alive(channel_id: str) -> bool:
    """Whether a channel with this id is registered (the ownership rows)."""
    scope = current_scope()
    assert scope is not None
    return channel_id in scope.hub.mux.channels


async def stats() -> dict[str, int]:
    """Live tasks, channels and sessions of this server, and how many transfers ran."""
    scope = current_scope()
    assert scope is not None
    hub = scope.hub
    return {
        "tasks": len(asyncio.all_tasks()),
        "channels": hub.channel_count,
        "sessions": len(hub.mux.sessions),
        "transfers": len(TRANSFERS),
        # Every other map of the mux that grows with clients: all must shrink back.
        "mux_entries": sum(
            len(getattr(hub.mux, name))
            for name in (
                "session_lineages",
                "session_aliases",
                "session_owners",
                "channel_owners",
                "connections_by_conn_id",
                "_alias_of",
                "_session_of",
                "_waiters",
                "_conn_waiters",
            )
            if hasattr(hub.mux, name)
        ),
    }


async def trim_heap() -> None:
    """glibc's malloc_trim(0): tells freed-but-mapped heap (allocator high water) from live data."""
    from telefunc.server.memory import _malloc_trim

    _malloc_trim()
