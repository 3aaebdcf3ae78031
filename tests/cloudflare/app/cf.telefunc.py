"""Telefunctions of the Cloudflare adapter tests: where a call ran, plain math, channels."""

from __future__ import annotations

from typing import Any

from telefunc import Broadcast, BroadcastChannel, Channel, get_context


async def whoami() -> dict[str, Any]:
    """The object (shard) and region that ran this call, from the forwarded headers."""
    ctx = get_context()
    return {"shard": ctx.get("shard"), "region": ctx.get("region")}


async def add(a: int, b: int) -> int:
    """Plain RPC: no channel involved."""
    return a + b


async def echo() -> Channel[Any, Any]:
    """A channel that greets on open and echoes every message."""
    ch: Channel[Any, Any] = Channel()
    shard = get_context().get("shard")
    ch.on_open(lambda: ch.send({"hello": shard}))
    ch.listen(lambda msg: ch.send(msg))
    return ch


async def room(key: str) -> BroadcastChannel[Any]:
    """A broadcast channel on ``key`` (the client subscribes and publishes over its socket)."""
    return BroadcastChannel(key=key)


async def announce(key: str, value: Any) -> Any:
    """Server-side publish from the caller's object; returns the receipt."""
    return await Broadcast.publish(key, value)
