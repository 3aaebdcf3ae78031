"""Telefunctions the benchmarks call."""

import asyncio

from telefunc import Broadcast, BroadcastChannel, Channel


async def add(a: int, b: int) -> int:
    return a + b


async def join(key: str) -> BroadcastChannel[str]:
    """A subscriber's broadcast channel on ``key``."""
    return BroadcastChannel(key=key)


async def blast(key: str, count: int, size: int) -> int:
    """Publish ``count`` messages of ``size`` characters to ``key``; returns the last seq."""
    payload = "x" * size
    seq = 0
    for i in range(count):
        seq = (await Broadcast.publish(key, f"{i}:{payload}"))["seq"]
        if i % 64 == 63:
            # Like the raw websockets baseline: let the loop write and read pings. A loop that
            # never yields holds the event loop for the whole burst (over 10 s on a busy
            # machine), and the server then drops subscribers whose PINGs it could not read.
            await asyncio.sleep(0)
    return seq


async def echo(value: object) -> object:
    return value


async def pingpong() -> Channel[object, object]:
    """Sends every message back (the Node mirror is chat.telefunc.mjs ``welcome``)."""
    ch: Channel[object, object] = Channel()
    ch.listen(lambda msg: ch.send(msg))
    return ch


async def sink() -> Channel[object, object]:
    """Counts what the client sends and answers nothing (the Node mirror is ``both_ways(0)``)."""
    ch: Channel[object, object] = Channel()
    received = [0]

    def on_message(msg: object) -> None:
        received[0] += 1

    ch.listen(on_message)
    return ch


async def publish_one(key: str, who: str) -> int:
    """One publish shaped like the Node mirror's ``server_publish(key, 1, who)``."""
    return (await Broadcast.publish(key, {"kind": "msg", "who": who, "i": 0}))["seq"]
