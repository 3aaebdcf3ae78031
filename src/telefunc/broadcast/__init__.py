"""Broadcast transports: how ``BroadcastChannel`` publishes reach other processes and machines.

The interface and the in-memory default live in :mod:`telefunc.broadcast.transport`
(re-exported here; standard library only, below :mod:`telefunc.server`, which uses it). Adapters
to brokers live in submodules and import their client library only when used::

    from telefunc import config
    from telefunc.broadcast.redis import RedisBroadcast

    config.broadcast.transport = RedisBroadcast("redis://127.0.0.1:6379")

``telefunc.broadcast.RedisBroadcast`` also works; it imports redis-py on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telefunc.broadcast.transport import (
    BroadcastFanout,
    BroadcastGap,
    BroadcastTransport,
    InMemoryBroadcast,
    PublishInfo,
    PublishReceipt,
    SeqTracker,
    get_broadcast_transport,
    wait_subscribed,
)
from telefunc.errors import BroadcastTransportError

if TYPE_CHECKING:
    from telefunc.broadcast.redis import RedisBroadcast

__all__ = [
    "BroadcastFanout",
    "BroadcastGap",
    "BroadcastTransport",
    "BroadcastTransportError",
    "InMemoryBroadcast",
    "PublishInfo",
    "PublishReceipt",
    "RedisBroadcast",
    "SeqTracker",
    "get_broadcast_transport",
    "wait_subscribed",
]


def __getattr__(name: str) -> Any:
    # Lazy: importing telefunc.broadcast must not require redis-py.
    if name == "RedisBroadcast":
        from telefunc.broadcast.redis import RedisBroadcast

        return RedisBroadcast
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
