"""Telefunctions for the outgoing-memory attack tests (tests/channels/test_outbound_attacks.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from telefunc import Channel
from telefunc.errors import ChannelOverflowError
from telefunc.server.broadcast import Broadcast, BroadcastChannel

#: What the flooding senders did: messages sent, and sends that failed with overflow.
PROGRESS: dict[str, Any] = {"sent": 0, "overflow": 0, "other_errors": 0}


def _count(fut: asyncio.Future[Any]) -> None:
    if fut.cancelled():
        return
    error = fut.exception()
    if error is None:
        PROGRESS["sent"] += 1
    elif isinstance(error, ChannelOverflowError):
        PROGRESS["overflow"] += 1
    else:
        PROGRESS["other_errors"] += 1


async def flood(n: int, size: int, wait: bool) -> Channel[Any, str]:
    """A channel that sends ``n`` messages of ``size`` bytes once open (awaiting each, or not)."""
    ch: Channel[Any, str] = Channel()
    message = "x" * size

    async def run() -> None:
        for i in range(n):
            if ch.is_closed:
                return
            fut = ch.send(message)
            fut.add_done_callback(_count)
            if wait:
                try:
                    await fut
                except Exception:
                    return
            elif i % 64 == 0:
                await asyncio.sleep(0)

    ch.on_open(run)
    return ch


async def progress() -> dict[str, Any]:
    """The flooders' counters."""
    return dict(PROGRESS)


async def room(key: str) -> BroadcastChannel[Any]:
    """A broadcast channel on ``key``."""
    return BroadcastChannel(key=key)


async def publish(key: str, n: int, size: int) -> int:
    """Publish ``n`` messages of ``size`` bytes to ``key``."""
    body = "p" * size
    for _ in range(n):
        await Broadcast.publish(key, body)
    return n


async def hello() -> str:
    """A normal call, answered while the attacks run."""
    return "hello"


async def echo() -> Channel[str, str]:
    """A plain channel whose listener answers acks with the upper-cased text."""
    ch: Channel[str, str] = Channel()
    ch.listen(lambda text: text.upper())
    return ch
