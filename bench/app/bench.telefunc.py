"""Telefunctions the benchmarks call."""

from telefunc import Broadcast, BroadcastChannel


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
    return seq
