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

Results may hold streaming values and functions, revived as:

* async generators → :class:`RemoteGenerator` (``async for item in await c.call(...)``;
  ``aclose()`` stops the server's generator early, its ``finally`` runs);
* byte streams (``ByteStream`` / ``ReadableStream``) → :class:`RemoteStream` (``async for``
  over ``bytes``, ``read()``);
* promises → :class:`RemotePromise` (``await``);
* ``download(...)`` results and files → :class:`RemoteFile` (``name``, ``type``, ``size``,
  ``last_modified``, ``await read()``, ``chunks()``);
* functions → :class:`RemoteFunction` (``await fn(*args)``; state on the server survives
  across calls).

They travel with the stream transport the call asks for — ``Client(url,
stream_transport=...)`` or ``c.call(..., stream_transport=...)``: ``"binary-inline"``,
``"sse-inline"`` (multiplexed in the response body) or ``"channel"`` (one channel each) —
or the server's default. An in-band abort raises :class:`Abort` (with ``.value``) from the
iterator or awaitable; a crash of the server's value raises :class:`RemoteCallError`.

With :class:`SyncClient`, iterate generators and streams with ``c.iterate(...)`` and await
promises and functions with ``c.run(...)``.

Arguments may be json-serializer values and, as with the official client, functions (the
server calls them back: ``await fn(x)`` there runs the Python callable here), byte streams (any
async iterable of ``bytes``, an async generator for instance) and files (:class:`File`: a path,
``bytes`` or a binary file object, with a name and a MIME type; a ``pathlib.Path`` counts as a
file). ``c.call(..., headers={...})`` adds headers to one call.
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
