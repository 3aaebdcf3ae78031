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
    BLOB_DOWNLOAD_PREFIX,
    BLOB_PREFIX,
    FILE_DOWNLOAD_PREFIX,
    FILE_PREFIX,
    FUNCTION_PREFIX,
    GENERATOR_PREFIX,
    PROMISE_PREFIX,
    STREAM_PREFIX,
    STREAM_TRANSPORTS,
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
from telefunc.wire.serializer import parse, stringify

__all__ = ["Client", "ModuleProxy"]

CHANNEL_PREFIX = "!TelefuncChannel:"
BROADCAST_PREFIX = "!TelefuncBroadcast:"
TELEFUNC_PREFIX = "!Telefunc"


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
        file, name = info.file, info.name
        revived: dict[str, Any] = {}
        sources: list[ChunkSource] = []
        channels: list[Channel[Any, Any]] = []
        waits: list[Callable[[], Awaitable[Any]]] = []

        def source_for(meta: dict[str, Any]) -> ChunkSource:
            if "channelId" in meta:
                channel: Channel[Any, Any] = Channel(self._get_connection(), str(meta["channelId"]))
                source: ChunkSource = ChannelSource(channel, info)
            elif demux is not None and isinstance(meta.get("__index"), int):
                demux.register(meta["__index"])
                source = demux.source(meta["__index"])
            else:
                raise UsageError(f"{name}() of {file}: a streaming value without a source")
            sources.append(source)
            return source

        def reviver(s: str) -> tuple[bool, Any]:
            if not s.startswith(TELEFUNC_PREFIX):
                return False, None
            if s in revived:  # the same object referenced twice is one object here too
                return True, revived[s]
            value: Any
            if s.startswith(CHANNEL_PREFIX):
                meta = read_meta(s[len(CHANNEL_PREFIX) :])
                value = Channel(
                    self._get_connection(), str(meta["channelId"]), bool(meta.get("ack", False))
                )
                channels.append(value)
            elif s.startswith(BROADCAST_PREFIX):
                meta = read_meta(s[len(BROADCAST_PREFIX) :])
                value = BroadcastChannel(
                    self._get_connection(), str(meta["channelId"]), str(meta["key"])
                )
                channels.append(value)
            elif s.startswith(FUNCTION_PREFIX):
                meta = read_meta(s[len(FUNCTION_PREFIX) :])
                fn_channel: Channel[Any, Any] = Channel(
                    self._get_connection(), str(meta["channelId"]), True
                )
                channels.append(fn_channel)
                value = RemoteFunction(fn_channel)
            elif s.startswith(GENERATOR_PREFIX):
                value = RemoteGenerator(source_for(read_meta(s[len(GENERATOR_PREFIX) :])))
            elif s.startswith(STREAM_PREFIX):
                value = RemoteStream(source_for(read_meta(s[len(STREAM_PREFIX) :])))
            elif s.startswith(PROMISE_PREFIX):
                value = RemotePromise(source_for(read_meta(s[len(PROMISE_PREFIX) :])), info)
            elif s.startswith((FILE_DOWNLOAD_PREFIX, BLOB_DOWNLOAD_PREFIX)):
                is_file = s.startswith(FILE_DOWNLOAD_PREFIX)
                prefix = FILE_DOWNLOAD_PREFIX if is_file else BLOB_DOWNLOAD_PREFIX
                meta = read_meta(s[len(prefix) :])
                value = RemoteFile(source_for(meta), meta, file=is_file)
            elif s.startswith((FILE_PREFIX, BLOB_PREFIX)):
                # An echoed upload: the reference client reads it all before resolving.
                is_file = s.startswith(FILE_PREFIX)
                meta = read_meta(s[len(FILE_PREFIX if is_file else BLOB_PREFIX) :])
                value = RemoteFile(source_for(meta), meta, file=is_file)
                waits.append(value.read)
            else:
                kind = s[1 : s.index(":")] if ":" in s else s[1:]
                raise UsageError(
                    f"{name}() of {file} returned a {kind} value, which the Python client "
                    "does not support"
                )
            revived[s] = value
            return True, value

        try:
            try:
                result = parse(text, reviver=reviver)
            except ValueError as exc:
                raise UsageError(f"{name}() of {file}: unreadable response {text[:200]!r}") from exc
            if not isinstance(result, dict) or "ret" not in result:
                raise UsageError(f"{name}() of {file}: the response has no 'ret': {text[:200]!r}")
            for wait in waits:
                await wait()
            if demux is not None:
                demux.check_idle()
        except BaseException:
            # Nothing of this result reaches the caller: let go of every stream and channel.
            for source in sources:
                source.cancel()
            for channel in channels:
                if not channel.is_closed:
                    channel.close()
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
