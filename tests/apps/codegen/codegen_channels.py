"""The channel classes the fixture annotates with: the real ones when they exist."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from telefunc.server.channel import Channel

T = TypeVar("T")

try:
    from telefunc.server.broadcast import (  # type: ignore[import-not-found,unused-ignore]
        BroadcastChannel as _Real,
    )

    _Real[int]  # the real class must be generic to stand in annotations
    BroadcastChannel: Any = _Real
except (ImportError, TypeError):

    class _StandIn(Generic[T]):
        """Stands in for telefunc.server.broadcast.BroadcastChannel until it exists."""

    _StandIn.__module__ = "telefunc.server.broadcast"
    _StandIn.__qualname__ = _StandIn.__name__ = "BroadcastChannel"
    BroadcastChannel = _StandIn

__all__ = ["BroadcastChannel", "Channel"]
