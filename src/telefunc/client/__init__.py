"""The Python client of telefunc: call telefunctions and use their channels from Python.

::

    from telefunc.client import Client

    async with Client("http://127.0.0.1:3000") as c:
        print(await c.call("/calc.telefunc.py", "add", 1, 2))
        ch = await c.module("/chat.telefunc.py").welcome()
        ch.listen(print)
        await ch.send("hello")

It speaks the wire protocol of telefunc@0.2.23: calls are HTTP POSTs (httpx, the ``client``
extra), channels share one multiplexed WebSocket per client (``websockets``) that reconnects with
backoff, replays unacknowledged frames and drops duplicates. :func:`connect_sync` is a blocking
face for scripts.

Not supported yet: streaming return values (generators, streams, promises, files, downloads),
functions and streams as arguments or results, and the SSE channel transport: channels always
use the WebSocket (ours always serves it; the official Node server does with ``new Telefunc()``
from ``telefunc/node``).
"""

from __future__ import annotations

from telefunc.client._channel import BroadcastChannel, Channel, PublishInfo
from telefunc.client._client import Client, ModuleProxy
from telefunc.client._sync import SyncClient, SyncModuleProxy, connect_sync
from telefunc.errors import (
    Abort,
    ChannelClosedError,
    ChannelOverflowError,
    NetworkError,
    RemoteCallError,
    ShieldValidationError,
    TelefuncConnectionError,
    TelefuncError,
)
from telefunc.wire.client_mux import ChannelServerError

__all__ = [
    "Abort",
    "BroadcastChannel",
    "Channel",
    "ChannelClosedError",
    "ChannelOverflowError",
    "ChannelServerError",
    "Client",
    "ModuleProxy",
    "NetworkError",
    "PublishInfo",
    "RemoteCallError",
    "ShieldValidationError",
    "SyncClient",
    "SyncModuleProxy",
    "TelefuncConnectionError",
    "TelefuncError",
    "connect_sync",
]
