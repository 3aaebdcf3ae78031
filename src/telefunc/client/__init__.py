"""The Python client of telefunc: call telefunctions and use their channels from Python.

::

    from telefunc.client import Client

    async with Client("http://127.0.0.1:3000") as c:
        print(await c.call("/calc.telefunc.py", "add", 1, 2))
        ch = await c.module("/chat.telefunc.py").welcome()
        ch.listen(print)
        await ch.send("hello")

It speaks the wire protocol of telefunc@0.2.23: calls are HTTP POSTs (httpx, the ``client``
extra); channels share one multiplexed connection per client that reconnects with backoff, replays
unacknowledged frames and drops duplicates. Like the reference client it starts on the "SSE
duplex" transport (HTTP POSTs and an event stream, which every server serves) and upgrades to a
WebSocket (``websockets``) when the server offers one; ``Client(url, transports=("ws",))`` or
``("sse",)`` pins one. :func:`connect_sync` is a blocking face for scripts.

Not supported yet: streaming return values (generators, streams, promises, files, downloads),
and functions and streams as arguments or results.
"""

from __future__ import annotations

from telefunc.client._channel import BroadcastChannel, Channel, PublishInfo
from telefunc.client._client import Client, ModuleProxy
from telefunc.client._sync import SyncClient, SyncModuleProxy, connect_sync
from telefunc.errors import (
    Abort,
    ChannelClosedError,
    ChannelOverflowError,
    ChannelRemoteError,
    NetworkError,
    RemoteCallError,
    ShieldValidationError,
    TelefuncConnectionError,
    TelefuncError,
)

__all__ = [
    "Abort",
    "BroadcastChannel",
    "Channel",
    "ChannelClosedError",
    "ChannelOverflowError",
    "ChannelRemoteError",
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
