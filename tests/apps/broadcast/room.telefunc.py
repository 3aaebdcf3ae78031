"""Broadcast telefunctions used by the broadcast interop tests (official client over WebSocket)."""

from __future__ import annotations

import asyncio
from typing import Any

from telefunc.broadcast.transport import get_broadcast_transport
from telefunc.server.broadcast import Broadcast, BroadcastChannel

#: Every BroadcastChannel handed out, by channel id (the tests inspect them through telefunctions).
CHANNELS: dict[str, BroadcastChannel[Any]] = {}
#: Rendezvous points: name -> (arrived, event set when everyone arrived).
_BARRIERS: dict[str, tuple[list[int], asyncio.Event]] = {}
#: What each ticker observed, by key.
_TICKERS: dict[str, dict[str, Any]] = {}
_TASKS: set[asyncio.Task[None]] = set()


async def room(key: str) -> BroadcastChannel[Any]:
    """A broadcast channel on ``key``."""
    ch: BroadcastChannel[Any] = BroadcastChannel(key=key)
    CHANNELS[ch.id] = ch
    ch.on_close(lambda err: CHANNELS.pop(ch.id, None))
    return ch


async def barrier(name: str, parties: int) -> int:
    """Return once ``parties`` callers reached the barrier ``name`` (at most 60 s)."""
    arrived, event = _BARRIERS.setdefault(name, ([], asyncio.Event()))
    arrived.append(1)
    if len(arrived) >= parties:
        event.set()
    await asyncio.wait_for(event.wait(), 60)
    return len(arrived)


async def server_publish(key: str, n: int, who: str) -> list[list[Any]]:
    """Publish ``n`` messages with ``Broadcast.publish``; returns ``[seq, i, timestamp]`` each."""
    receipts = []
    for i in range(n):
        receipt = await Broadcast.publish(key, {"kind": "msg", "who": who, "i": i})
        receipts.append([receipt["seq"], i, receipt["timestamp"]])
        await asyncio.sleep(0)  # interleave with the client publishers
    return receipts


async def server_publish_binary(key: str, n: int) -> list[int]:
    """Publish ``n`` binary messages ``bytes([i] * (i + 1))``; returns their seqs."""
    return [(await Broadcast.publish_binary(key, bytes([i] * (i + 1))))["seq"] for i in range(n)]


async def listener_count(key: str) -> int:
    """How many transport listeners ``key`` has in this process (in-memory transport)."""
    transport: Any = get_broadcast_transport()
    return int(transport.fanout.count(key))


async def channel_out_seq(channel_id: str) -> int:
    """The last outgoing seq of a channel: it grows with every frame delivered to its client."""
    return CHANNELS[channel_id]._core.out_seq


async def start_ticker(key: str, n: int) -> None:
    """Publish ``n`` ticks to ``key`` in the background, a few milliseconds apart, counting how
    many were published while the key's channels had no client attached."""
    state: dict[str, Any] = {"published": 0, "while_detached": 0, "done": False}
    _TICKERS[key] = state

    async def tick() -> None:
        for i in range(n):
            channels = [ch for ch in CHANNELS.values() if ch.key == key]
            if any(not ch._core.attached for ch in channels):
                state["while_detached"] += 1
            await Broadcast.publish(key, {"kind": "tick", "i": i})
            state["published"] += 1
            await asyncio.sleep(0.004)  # pacing, so the stream spans the client's reconnect
        state["done"] = True

    task = asyncio.create_task(tick())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def ticker_report(key: str) -> dict[str, Any]:
    """What the ticker of ``key`` observed."""
    return _TICKERS[key]
