"""'N people online': a read-only BroadcastChannel that carries the number of open pages.

Each page holds one channel from ``presence()``; the count goes up when the channel opens and
down when it closes (the page closes it on ``pagehide``; otherwise the server does after the
reconnect timeout). Every change is published with a version number, and ``online()`` answers
the current one, so a page that subscribed after a publish still starts from the right count.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypedDict

from telefunc import Broadcast, BroadcastChannel

KEY = "presence"


class Online(TypedDict):
    count: int
    version: int


_state: Online = {"count": 0, "version": 0}


async def _change(delta: int) -> None:
    _state["count"] += delta
    _state["version"] += 1
    await Broadcast.publish(KEY, dict(_state))


async def presence() -> BroadcastChannel[Online]:
    """This page's presence: counted while it is open; subscribe to hear every change."""
    channel: BroadcastChannel[Online] = BroadcastChannel(key=KEY, read_only=True)
    opened = False

    def on_open() -> Awaitable[None]:
        nonlocal opened
        opened = True
        return _change(+1)

    async def on_close(error: Exception | None) -> None:
        if opened:  # a channel no page ever attached to was never counted
            await _change(-1)

    channel.on_open(on_open)
    channel.on_close(on_close)
    return channel


async def online() -> Online:
    """How many pages are open now, with the version of that count."""
    return dict(_state)  # type: ignore[return-value]
