"""The asyncio :class:`Client`: telefunction calls over HTTP, channels over one multiplexed
connection (SSE duplex and/or WebSocket)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from telefunc.client._arguments import RequestArguments
from telefunc.client._channel import BroadcastChannel, Channel
from telefunc.client._connection import TRANSPORTS, Connection
from telefunc.client._http import HttpTransport, StreamedResponse, append_query
from telefunc.client._streaming import (
    CallInfo,
    ChannelSource,
    ChunkSource,
    InlineDemux,
    RemoteFile,
    RemoteFunction,
    RemoteGenerator,
    RemotePromise,
    RemoteStream,
    read_meta,
)
from telefunc.errors import UsageError
from telefunc.wire import placeholders
from telefunc.wire.placeholders import STREAM_TRANSPORTS
from telefunc.wire.serializer import parse, stringify

__all__ = ["Client", "ModuleProxy"]


class Client:
    """A telefunc client for one server.

    ::

        async with Client("http://127.0.0.1:3000") as c:
            total = await c.call("/calc.telefunc.py", "add", 1, 2)
            chat = c.module("/chat.telefunc.py")
            ch = await chat.welcome()          # a Channel, attached on the client's connection
            ch.listen(print)
            room = await chat.join("lobby")    # a BroadcastChannel
            room.subscribe(lambda data, info: print(info["seq"], data))

    ``url`` is the server origin (or any URL on it); ``telefunc_url`` the endpoint path (or an
    absolute URL), ``/_telefunc`` by default. ``headers`` are added to every request (and to the
    channel WebSocket handshake). ``timeout`` bounds each HTTP request (seconds, ``None``: no
    limit). ``http_client`` is an ``httpx.AsyncClient`` to use instead of a private one.
    ``transports`` are the channel transports, in order of use: ``("sse", "ws")`` (the default,
    like the reference client: start on SSE, upgrade to a WebSocket when the server offers one),
    ``("ws",)`` or ``("sse",)``. ``stream_transport`` is how results holding streaming values
    travel unless a call says otherwise: ``"binary-inline"``, ``"sse-inline"``, ``"channel"``,
    or ``None`` (the server's default).

    Results may hold async generators (:class:`~telefunc.client.RemoteGenerator`: ``async
    for``), byte streams (:class:`~telefunc.client.RemoteStream`), promises
    (:class:`~telefunc.client.RemotePromise`: ``await``), files and downloads
    (:class:`~telefunc.client.RemoteFile`) and functions
    (:class:`~telefunc.client.RemoteFunction`: ``await fn(*args)``).

    Exceptions: :class:`~telefunc.errors.Abort` (the telefunction aborted; ``.value``),
    :class:`~telefunc.errors.ShieldValidationError` (arguments rejected),
    :class:`~telefunc.errors.RemoteCallError` (``.status``, ``.body``: 500, unknown telefunction,
    ...), :class:`~telefunc.errors.TelefuncConnectionError` (the server could not be reached).
    """

    def __init__(
        self,
        url: str,
        *,
        telefunc_url: str = "/_telefunc",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 30.0,
        http_client: Any = None,
        transports: tuple[str, ...] = ("sse", "ws"),
        stream_transport: str | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"Client url must start with http:// or https://, got {url!r}")
        transports = tuple(transports)
        if not transports or len(set(transports)) != len(transports):
            raise UsageError(f"transports must name each transport once, got {transports!r}")
        if any(t not in TRANSPORTS for t in transports):
            raise UsageError(f"transports must be taken from {TRANSPORTS}, got {transports!r}")
        if transports == ("ws", "sse"):
            raise UsageError("transports ('ws', 'sse'): there is no downgrade; use ('sse', 'ws')")
        _check_stream_transport(stream_transport)
        #: The channel transports (see the class docstring).
        self.transports = transports
        #: The default stream transport of calls (``None``: the server's default).
        self.stream_transport = stream_transport
        self.endpoint = urljoin(url, telefunc_url)
        self.headers = dict(headers or {})
        self._http = HttpTransport(self.endpoint, self.headers, timeout, http_client)
        self._connection: Connection | None = None
        self._closed = False
        # Streaming responses still open: closed with the client.
        self._bodies: weakref.WeakSet[InlineDemux] = weakref.WeakSet()
        # Byte stream arguments still being pumped: cancelled with the client.
        self._tasks: set[asyncio.Task[None]] = set()

    # ── lifecycle ───────────────────────────────────────────────────────

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the channel connection (its channels end) and the HTTP client."""
        if self._closed:
            return
        self._closed = True
        for demux in list(self._bodies):
            await demux.aclose()
        for task in list(self._tasks):
            task.cancel()
        if self._connection is not None:
            await self._connection.aclose()
        await self._http.aclose()

    @property
    def session_token(self) -> str | None:
        """The server's latest ``x-telefunc-session`` token (``None`` unless it sent one)."""
        return self._http.session_token

    @property
    def connection(self) -> Connection | None:
        """The channel connection, once a call returned a channel."""
        return self._connection

    # ── calls ───────────────────────────────────────────────────────────

    async def call(
        self,
        file: str,
        name: str,
        *args: Any,
        stream_transport: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call telefunction ``name`` of ``file`` (e.g. ``"/chat.telefunc.py"``) with ``args``.

        Arguments and the result travel with the json-serializer codec; channels in the result
        come back as :class:`~telefunc.client.Channel` objects, streaming values and functions
        as the objects listed in the class docstring. Arguments may also be functions (the
        server calls them back), byte streams (async iterables of ``bytes``) and files
        (:class:`~telefunc.client.File` or a ``pathlib.Path``). ``stream_transport`` overrides
        the client's default for this call; ``headers`` are added to this call's request.
        """
        if self._closed:
            raise UsageError("this Client is closed")
        _check_stream_transport(stream_transport)
        transport = stream_transport or self.stream_transport
        envelope: dict[str, Any] = {"file": file, "name": name, "args": list(args)}
        if transport is not None:
            envelope["stream"] = {"transport": transport}
        request_args = RequestArguments(
            lambda channel_id, ack: Channel(self._get_connection(), channel_id, ack)
        )
        try:
            text = stringify(envelope, replacer=request_args.replace)
            request_args.start_pumps(self._spawn)
            if request_args.files:
                body, length = request_args.bin_body(text)
                reply = await self._http.call(file, name, body, length=length, headers=headers)
            else:
                reply = await self._http.call(file, name, text, headers=headers)
        except BaseException:
            request_args.abandon()
            raise
        info = CallInfo(file, name)
        if isinstance(reply, StreamedResponse):
            demux, text = await InlineDemux.open(reply.response, sse=reply.sse, info=info)
            self._bodies.add(demux)
            return await self._revive(text, info, demux)
        return await self._revive(reply, info, None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def module(self, file: str) -> ModuleProxy:
        """A proxy whose attributes call the telefunctions of ``file``: ``m.add(1, 2)``."""
        return ModuleProxy(self, file)

    async def _revive(self, text: str, info: CallInfo, demux: InlineDemux | None) -> Any:
        revival = _Revival(self._get_connection, info, demux)
        try:
            try:
                result = parse(text, reviver=revival.revive)
            except ValueError as exc:
                raise UsageError(
                    f"{info.name}() of {info.file}: unreadable response {text[:200]!r}"
                ) from exc
            if not isinstance(result, dict) or "ret" not in result:
                raise UsageError(
                    f"{info.name}() of {info.file}: the response has no 'ret': {text[:200]!r}"
                )
            for wait in revival.waits:
                await wait()
            if demux is not None:
                demux.check_idle()
        except BaseException:
            # Nothing of this result reaches the caller: let go of every stream and channel.
            revival.release()
            if demux is not None:
                await demux.aclose()
            raise
        return result["ret"]

    # ── channels ────────────────────────────────────────────────────────

    def _get_connection(self) -> Connection:
        if self._connection is None:
            self._connection = Connection(
                self._ws_url,
                self.headers,
                transports=self.transports,
                http=self._http.client,
                sse_url=self._sse_url,
                sse_headers=self._http.request_headers,
            )
        return self._connection

    def _sse_url(self) -> str:
        url = self.endpoint
        token = self._http.session_token
        if token:
            url = append_query(url, "session", token)
        return append_query(url, "_telefunc", "sse")

    def _ws_url(self) -> str:
        parts = urlsplit(self.endpoint)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
        token = self._http.session_token
        return append_query(url, "session", token) if token else url


def _check_stream_transport(transport: str | None) -> None:
    if transport is not None and transport not in STREAM_TRANSPORTS:
        raise UsageError(
            f"stream_transport must be one of {STREAM_TRANSPORTS} or None, got {transport!r}"
        )


class _Revival:
    """The placeholders of one call's result, revived by the handler of their prefix.

    Keeps what they opened (chunk sources, channels) so a failed call lets go of all of it, and
    the uploads echoed in the result, which are read completely before the call returns.
    """

    __slots__ = ("channels", "connection", "demux", "info", "revived", "sources", "waits")

    def __init__(
        self, connection: Callable[[], Connection], info: CallInfo, demux: InlineDemux | None
    ) -> None:
        self.connection = connection
        self.info = info
        self.demux = demux
        self.revived: dict[str, Any] = {}
        self.sources: list[ChunkSource] = []
        self.channels: list[Channel[Any, Any]] = []
        self.waits: list[Callable[[], Awaitable[Any]]] = []

    def revive(self, text: str) -> tuple[bool, Any]:
        """The serializer reviver: every ``!Telefunc…:`` string becomes its object."""
        if not text.startswith(placeholders.MARK):
            return False, None
        if text in self.revived:  # the same object referenced twice is one object here too
            return True, self.revived[text]
        found = placeholders.split(text)
        handler = _REVIVERS.get(found[0]) if found is not None else None
        if found is None or handler is None:
            kind = text[1 : text.index(":")] if ":" in text else text[1:]
            raise UsageError(
                f"{self.info.name}() of {self.info.file} returned a {kind} value, which the "
                "Python client does not support"
            )
        value = handler(self, read_meta(found[1]))
        self.revived[text] = value
        return True, value

    def release(self) -> None:
        """Cancel every chunk source and close every channel the result opened."""
        for source in self.sources:
            source.cancel()
        for channel in self.channels:
            if not channel.is_closed:
                channel.close()

    def _source(self, meta: dict[str, Any]) -> ChunkSource:
        source: ChunkSource
        if "channelId" in meta:
            channel: Channel[Any, Any] = Channel(self.connection(), str(meta["channelId"]))
            source = ChannelSource(channel, self.info)
        elif self.demux is not None and isinstance(meta.get("__index"), int):
            self.demux.register(meta["__index"])
            source = self.demux.source(meta["__index"])
        else:
            raise UsageError(
                f"{self.info.name}() of {self.info.file}: a streaming value without a source"
            )
        self.sources.append(source)
        return source

    def _channel(self, meta: dict[str, Any]) -> Channel[Any, Any]:
        channel: Channel[Any, Any] = Channel(
            self.connection(), str(meta["channelId"]), bool(meta.get("ack", False))
        )
        self.channels.append(channel)
        return channel

    def _broadcast(self, meta: dict[str, Any]) -> BroadcastChannel[Any]:
        channel: BroadcastChannel[Any] = BroadcastChannel(
            self.connection(), str(meta["channelId"]), str(meta["key"])
        )
        self.channels.append(channel)
        return channel

    def _function(self, meta: dict[str, Any]) -> RemoteFunction:
        channel: Channel[Any, Any] = Channel(self.connection(), str(meta["channelId"]), True)
        self.channels.append(channel)
        return RemoteFunction(channel)

    def _generator(self, meta: dict[str, Any]) -> RemoteGenerator:
        return RemoteGenerator(self._source(meta))

    def _stream(self, meta: dict[str, Any]) -> RemoteStream:
        return RemoteStream(self._source(meta))

    def _promise(self, meta: dict[str, Any]) -> RemotePromise:
        return RemotePromise(self._source(meta), self.info)

    def _file_download(self, meta: dict[str, Any]) -> RemoteFile:
        return RemoteFile(self._source(meta), meta, file=True)

    def _blob_download(self, meta: dict[str, Any]) -> RemoteFile:
        return RemoteFile(self._source(meta), meta, file=False)

    def _file(self, meta: dict[str, Any]) -> RemoteFile:
        # An echoed upload: the reference client reads it all before resolving.
        value = RemoteFile(self._source(meta), meta, file=True)
        self.waits.append(value.read)
        return value

    def _blob(self, meta: dict[str, Any]) -> RemoteFile:
        value = RemoteFile(self._source(meta), meta, file=False)
        self.waits.append(value.read)
        return value


#: What each placeholder of a result becomes (every prefix of :mod:`telefunc.wire.placeholders`).
_REVIVERS: dict[str, Callable[[_Revival, dict[str, Any]], Any]] = {
    placeholders.FILE_PREFIX: _Revival._file,
    placeholders.BLOB_PREFIX: _Revival._blob,
    placeholders.FILE_DOWNLOAD_PREFIX: _Revival._file_download,
    placeholders.BLOB_DOWNLOAD_PREFIX: _Revival._blob_download,
    placeholders.STREAM_PREFIX: _Revival._stream,
    placeholders.GENERATOR_PREFIX: _Revival._generator,
    placeholders.PROMISE_PREFIX: _Revival._promise,
    placeholders.CHANNEL_PREFIX: _Revival._channel,
    placeholders.FUNCTION_PREFIX: _Revival._function,
    placeholders.BROADCAST_PREFIX: _Revival._broadcast,
}


class ModuleProxy:
    """The telefunctions of one file as awaitable methods (see :meth:`Client.module`)."""

    def __init__(self, client: Client, file: str) -> None:
        self._client = client
        self._file = file

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        client, file = self._client, self._file

        async def call(*args: Any) -> Any:
            return await client.call(file, name, *args)

        call.__name__ = name
        call.__qualname__ = f"{file}:{name}"
        return call

    def __repr__(self) -> str:
        return f"<telefunc module {self._file} at {self._client.endpoint}>"
