"""The Python client of telefunc: call telefunctions and use their channels from Python.

::

    async with Client("http://127.0.0.1:3000") as c:
        print(await c.call("/calc.telefunc.py", "add", 1, 2))

It speaks the protocol of telefunc@0.2.23 (docs/protocol.md) like the official client: calls over
HTTP, channels on one multiplexed connection per server, streaming values, functions and files
both ways. :class:`SyncClient` and :func:`connect_sync` are a blocking face for scripts. The
README's "The Python client" shows the whole API.
"""

from __future__ import annotations

from telefunc.client._arguments import File
from telefunc.client._channel import BroadcastChannel, Channel, PublishInfoDict
from telefunc.client._client import Client, ModuleProxy
from telefunc.client._streaming import (
    RemoteFile,
    RemoteFunction,
    RemoteGenerator,
    RemotePromise,
    RemoteStream,
)
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
    "File",
    "ModuleProxy",
    "NetworkError",
    "PublishInfoDict",
    "RemoteCallError",
    "RemoteFile",
    "RemoteFunction",
    "RemoteGenerator",
    "RemotePromise",
    "RemoteStream",
    "ShieldValidationError",
    "SyncClient",
    "SyncModuleProxy",
    "TelefuncConnectionError",
    "TelefuncError",
    "connect_sync",
]
