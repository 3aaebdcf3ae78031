"""Inside the Durable Object: calls, SSE and WebSocket channels on the same core as the ASGI app.

Every object runs one :class:`DurableHub` (a ChannelHub on ``Date.now()`` and ``setTimeout``) and
serves calls through :func:`~telefunc.server.rpc.handle_call`, hibernatable WebSockets and SSE
wires on the sans-I/O :class:`~telefunc.wire.mux.ServerConnection`, and the broadcast RPCs of
:class:`~telefunc.cloudflare.broadcast.DurableBroadcast`. Every request passes the cross-site
check first. Sockets a fresh instance does not know are closed with 1012; a pending timer keeps
the object alive while channels exist (docs/cloudflare.md §4.2).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from telefunc.broadcast.transport import (
    BroadcastTransport,
    reset_scoped_broadcast_transport,
    set_scoped_broadcast_transport,
)
from telefunc.cloudflare import _ffi
from telefunc.cloudflare.broadcast import BroadcastSettings, DurableBroadcast
from telefunc.cloudflare.routing import BUCKET_HEADER, SHARD_HEADER
from telefunc.config import Config
from telefunc.errors import UsageError
from telefunc.server.hub import ChannelHub
from telefunc.server.origin import FORBIDDEN_BODY, check_origin, log_refusal
from telefunc.server.registry import Registry
from telefunc.server.rpc import (
    INTERNAL_ERROR,
    MALFORMED,
    MISMATCH,
    RpcResponse,
    handle_call,
    request_kind,
)
from telefunc.server.sse import handle_sse
from telefunc.wire.ids import random_id
from telefunc.wire.mux import ServerConnection

if TYPE_CHECKING:
    from telefunc.server.channel import Channel

__all__ = [
    "MAX_TIMER",
    "PERMANENT_CLOSE_CODES",
    "STATE_LOST_CLOSE_CODE",
    "DurableHub",
    "DurableServer",
    "NoChannelHub",
    "build_durable_object_class",
    "refuse_cross_site",
    "serve_call",
]

logger = logging.getLogger("telefunc")

#: Longest single ``setTimeout`` of the hub: the object gets an event at least this often while
#: it has deadlines, so an idle-eviction timer never sees it idle.
MAX_TIMER = 30.0
#: Client close codes that end the client's channels for good.
PERMANENT_CLOSE_CODES = frozenset({1000, 1001})
#: Close code for a socket a fresh instance does not know (its state was lost with an eviction).
STATE_LOST_CLOSE_CODE = 1012

ContextFactory = Callable[[Any, Any], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


class DurableHub(ChannelHub):
    """A channel hub on the Workers clock: deadlines are ``setTimeout`` timers of the object."""

    __slots__ = ("_armed_at", "_handle", "transport")

    def __init__(
        self, transport: BroadcastTransport | None = None, settings: Config | None = None
    ) -> None:
        super().__init__(settings)
        self._handle: Any = None
        self._armed_at: float | None = None
        #: The object's broadcast transport, scoped around timer-driven work.
        self.transport = transport

    @staticmethod
    def now() -> float:
        """``Date.now()`` in seconds (the emulator's clock in tests)."""
        return _ffi.now()

    def _ensure_timer_task(self) -> None:
        self.refresh()

    def _on_earlier(self) -> None:
        self.refresh()

    @property
    def has_timer(self) -> bool:
        """Whether a ``setTimeout`` of the hub is pending (it keeps the object awake)."""
        return self._handle is not None

    def refresh(self) -> None:
        """(Re)arm the timer for the earliest deadline; drop it when there is none."""
        deadline = self.mux.next_deadline()
        if deadline is None:
            self._cancel()
            return
        now = self.now()
        fire_at = min(deadline, now + MAX_TIMER)
        if self._handle is not None and self._armed_at is not None and self._armed_at <= fire_at:
            return  # the pending timer fires first; it re-arms then
        self._cancel()
        self._armed_at = fire_at
        self._handle = _ffi.set_timeout(self._fire, max(0.0, fire_at - now))

    def _cancel(self) -> None:
        handle, self._handle, self._armed_at = self._handle, None, None
        if handle is not None:
            _ffi.clear_timeout(handle)

    def _fire(self) -> None:
        self._handle, self._armed_at = None, None
        token = set_scoped_broadcast_transport(self.transport) if self.transport else None
        try:
            self.mux.handle_timeout(self.now())
        finally:
            if token is not None:
                reset_scoped_broadcast_transport(token)
            self.refresh()

    async def aclose(self) -> None:
        """Cancel the pending timer."""
        self._cancel()


class NoChannelHub:
    """The hub of a worker without bindings: plain calls work, channels are a usage error."""

    __slots__ = ("error", "missing", "settings")

    def __init__(self, missing: list[str], settings: Config) -> None:
        self.missing = missing
        #: The app's settings (what a call reads through its hub).
        self.settings = settings
        #: The usage error raised when a telefunction returned a channel (re-raised by serve()).
        self.error: UsageError | None = None

    @staticmethod
    def now() -> float:
        """Wall-clock seconds."""
        return _ffi.now()

    def usage_error(self) -> UsageError:
        """The error naming the missing bindings."""
        names = " and ".join(self.missing)
        return UsageError(
            f"Missing Cloudflare {names}: Channel and BroadcastChannel need the Durable Object "
            "and KV bindings of telefunc.cloudflare.Telefunc (add them to wrangler.jsonc, see "
            "examples/cloudflare/wrangler.jsonc)"
        )

    def register(self, channel: Channel[Any, Any]) -> None:
        """Refuse: channels need a Durable Object to live on."""
        self.error = self.usage_error()
        raise self.error


class _StreamedBody:
    """A request body read as it streams in (a :class:`~telefunc.server.files.BodyReader`).

    It holds at most one chunk of the platform's stream, so the call endpoint's byte limit
    (the app's ``limits``) stops a large body before it is all in memory.
    """

    __slots__ = ("_chunks", "_done", "_offset", "_pending")

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self._offset = 0  # bytes of _pending already handed out
        self._done = False

    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes < 0:
            parts = [self._pending[self._offset :]]
            self._pending, self._offset = b"", 0
            parts += [chunk async for chunk in self._chunks]
            self._done = True
            return b"".join(parts)
        while self._offset >= len(self._pending) and not self._done:
            try:
                self._pending, self._offset = await anext(self._chunks), 0
            except StopAsyncIteration:
                self._done = True
        data = self._pending[self._offset : self._offset + max_bytes]
        self._offset += len(data)
        return data


async def build_context(
    factory: ContextFactory | None, request: Any, env: Any
) -> Mapping[str, Any]:
    """Run the app's ``context(request, env)`` (sync or async)."""
    if factory is None:
        return {}
    values = factory(request, env)
    if inspect.isawaitable(values):
        values = await values
    if not isinstance(values, Mapping):
        raise UsageError(f"the context factory must return a mapping, got {type(values).__name__}")
    return values


def to_response(response: RpcResponse) -> Any:
    """An :class:`RpcResponse` as a Workers ``Response`` (streamed when it streams)."""
    headers = [("content-type", response.content_type), *response.headers]
    stream = response.stream
    if stream is None:
        return _ffi.new_response(response.body, status=response.status, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    return _ffi.new_response(chunks(), status=response.status, headers=headers)


def refuse_cross_site(request: Any, allowed: tuple[str, ...]) -> Any:
    """A 403 ``Response`` when ``request`` comes from a foreign browser origin, else ``None``.

    The request's own origin is its URL's scheme and host (what the client connected to);
    ``allowed`` is the app's ``allowed_origins``.
    """
    url = urlsplit(_ffi.request_url(request))
    refusal = check_origin(
        scheme=url.scheme,
        host=url.netloc,
        origins=[v for k, v in _ffi.request_headers(request) if k == "origin"],
        sec_fetch_site=_ffi.request_header(request, "sec-fetch-site"),
        allowed=allowed,
    )
    if refusal is None:
        return None
    log_refusal(refusal)
    return _ffi.new_response(FORBIDDEN_BODY, status=403, headers={"content-type": "text/plain"})


async def serve_call(
    registry: Registry,
    request: Any,
    env: Any,
    hub: Any,
    context: ContextFactory | None,
) -> Any:
    """Answer one telefunction call (kinds ``txt``/``bin``) with a Workers ``Response``."""
    query = _ffi.request_query(request)
    kind = request_kind(query.get("_telefunc"), _ffi.request_header(request, "x-telefunc-request"))
    if kind == MISMATCH:
        return _ffi.new_response(MALFORMED, status=400, headers={"content-type": "text/plain"})
    try:
        values = await build_context(context, request, env)
    except Exception:
        logger.exception("telefunc: the context factory raised")
        return _ffi.new_response(INTERNAL_ERROR, status=500, headers={"content-type": "text/plain"})
    response = await handle_call(
        registry,
        method=_ffi.request_method(request),
        kind=kind,
        body=_StreamedBody(_ffi.body_chunks(request)),
        hub=hub,
        context=values,
        content_length=_ffi.request_header(request, "content-length"),
    )
    return to_response(response)


class _WsWire:
    """One accepted channel WebSocket and its connection."""

    __slots__ = ("broken", "conn", "key", "server", "ws")

    def __init__(self, server: DurableServer, key: str, ws: Any, conn: ServerConnection) -> None:
        self.server = server
        self.key = key
        self.ws = ws
        self.conn = conn
        #: The socket closed under us (a send failed): nothing more is sent on it.
        self.broken = False

    def flush(self) -> None:
        """Send what the connection queued; close the socket when the core asks to.

        A socket the network closed before ``webSocketClose`` arrived makes ``send()`` throw
        (workerd: "Can't call WebSocket send() after close()"). That is a transient loss: the
        frames are dropped (the channel's replay resends them after the client reconnects) and
        the connection is detached on the next turn, outside the write that failed.
        """
        frames = self.conn.data_to_send()
        if self.broken:
            return
        for frame in frames:
            try:
                _ffi.websocket_send(self.ws, frame)
            except Exception:
                self.broken = True
                _ffi.set_timeout(lambda: self.server.wire_broken(self), 0)
                return
        request = self.conn.close_request
        if request is not None and self.server.wires.get(self.key) is self:
            del self.server.wires[self.key]
            _ffi.websocket_close(self.ws, request[0], request[1])


class DurableServer:
    """The per-instance state of a telefunc Durable Object (everything lost on eviction)."""

    def __init__(
        self,
        state: Any,
        env: Any,
        registry: Registry,
        context: ContextFactory | None,
        telefunc_url: str,
        broadcast: BroadcastSettings | None = None,
        settings: Config | None = None,
    ) -> None:
        self.state = state
        self.env = env
        self.registry = registry
        self.context = context
        self.telefunc_url = telefunc_url
        #: This object's name and region (from the forwarding worker's headers).
        self.shard: str | None = None
        self.region: str | None = None
        #: The object's broadcast transport (``None`` without broadcast settings).
        self.broadcast = (
            DurableBroadcast(state, env, broadcast, lambda: (self.shard, self.region))
            if broadcast is not None
            else None
        )
        self.hub = DurableHub(self.broadcast, settings)
        self.wires: dict[str, _WsWire] = {}
        #: Requests served by this instance (observability).
        self.requests = 0

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Make this object's broadcast transport the current one (for one event)."""
        if self.broadcast is None:
            yield
            return
        token = set_scoped_broadcast_transport(self.broadcast)
        try:
            yield
        finally:
            reset_scoped_broadcast_transport(token)

    # ── broadcast RPC ───────────────────────────────────────────────────

    async def broadcast_publish(self, request: Any) -> dict[str, Any]:
        """``telefuncBroadcastPublish``: as the key's authority, or a region's coordinator."""
        if self.broadcast is None:
            raise UsageError("this Durable Object was built without broadcast settings")
        with self.scope():
            return await self.broadcast.handle_publish(_ffi.rpc_value(request))

    async def broadcast_presence(self, request: Any) -> dict[str, Any]:
        """``telefuncBroadcastPresence``: as a key's authority, note an object's (un)subscribe."""
        if self.broadcast is None:
            raise UsageError("this Durable Object was built without broadcast settings")
        with self.scope():
            return await self.broadcast.handle_presence(_ffi.rpc_value(request))

    def broadcast_deliver(self, request: Any) -> int:
        """``telefuncBroadcastDeliver``: hand a message to this object's listeners."""
        if self.broadcast is None:
            return 0
        with self.scope():
            try:
                return self.broadcast.deliver_local(_ffi.rpc_value(request))
            finally:
                self.hub.refresh()

    # ── HTTP ────────────────────────────────────────────────────────────

    async def fetch(self, request: Any) -> Any:
        """A request forwarded by the worker: WebSocket upgrade, SSE, or a call."""
        self.requests += 1
        shard = _ffi.request_header(request, SHARD_HEADER)
        region = _ffi.request_header(request, BUCKET_HEADER)
        if shard and region:
            self.shard, self.region = shard, region
        with self.scope():
            return await self._fetch(request)

    async def _fetch(self, request: Any) -> Any:
        refused = refuse_cross_site(request, self.hub.settings.allowed_origins)
        if refused is not None:
            return refused
        try:
            if (_ffi.request_header(request, "upgrade") or "").lower() == "websocket":
                return self._accept_websocket()
            query = _ffi.request_query(request)
            kind = request_kind(
                query.get("_telefunc"), _ffi.request_header(request, "x-telefunc-request")
            )
            if kind == "sse":
                return await self._sse(request)
            return await serve_call(self.registry, request, self.env, self.hub, self.context)
        finally:
            self.hub.refresh()

    def _accept_websocket(self) -> Any:
        if "ws" not in self.hub.mux.settings.transports:
            return _ffi.new_response(None, status=400)
        client, server = _ffi.new_websocket_pair()
        key = random_id()
        _ffi.accept_websocket(self.state, server, key)
        conn = self.hub.open_connection(transport="ws")
        wire = _WsWire(self, key, server, conn)
        conn.on_output = wire.flush
        self.wires[key] = wire
        return _ffi.new_response(None, status=101, web_socket=client)

    async def _sse(self, request: Any) -> Any:
        body = _StreamedBody(_ffi.body_chunks(request))
        response = await handle_sse(self.hub, method=_ffi.request_method(request), body=body)
        return to_response(response)

    # ── WebSocket events (hibernation API) ──────────────────────────────

    def websocket_message(self, ws: Any, message: Any) -> None:
        """``webSocketMessage``: one frame for the socket's connection."""
        with self.scope():
            self._websocket_message(ws, message)

    def _websocket_message(self, ws: Any, message: Any) -> None:
        key = _ffi.websocket_attachment(ws)
        wire = self.wires.get(key) if key is not None else None
        if wire is None:
            # Accepted by an earlier instance of this object: its channel state is gone.
            _ffi.websocket_close(ws, STATE_LOST_CLOSE_CODE, "telefunc: connection state lost")
            return
        wire.ws = ws
        data = _ffi.websocket_message(message)
        now = self.hub.now()
        try:
            if isinstance(data, str):
                wire.conn.protocol_violation("text message on a binary channel socket", now)
            else:
                wire.conn.receive(data, now)
        except Exception:  # a bug in the core must not leave the socket half-alive
            logger.exception("telefunc: error while handling a channel frame")
            wire.conn.protocol_violation("internal error", now)
        finally:
            self.hub.refresh()

    def websocket_close(self, ws: Any, code: int, permanent: bool | None = None) -> None:
        """``webSocketClose`` / ``webSocketError``: the client's wire is gone."""
        with self.scope():
            self._websocket_close(ws, code, permanent)

    def wire_broken(self, wire: _WsWire) -> None:
        """A channel socket that failed a send: its connection is lost (the client may resume)."""
        if self.wires.get(wire.key) is wire:
            del self.wires[wire.key]
            if not wire.conn.closed:
                with self.scope():
                    wire.conn.connection_lost(self.hub.now(), permanent=False)
        _ffi.websocket_close(wire.ws, 1011, "telefunc: send failed")
        self.hub.refresh()

    def _websocket_close(self, ws: Any, code: int, permanent: bool | None) -> None:
        key = _ffi.websocket_attachment(ws)
        wire = self.wires.pop(key, None) if key is not None else None
        if wire is not None and not wire.conn.closed:
            lost = code in PERMANENT_CLOSE_CODES if permanent is None else permanent
            wire.conn.connection_lost(self.hub.now(), permanent=lost)
        _ffi.websocket_close(ws, 1000 if code in (1005, 1006) else code)
        self.hub.refresh()

    @property
    def channel_count(self) -> int:
        """Channels registered and not finished."""
        return self.hub.channel_count

    @property
    def connection_count(self) -> int:
        """Open channel WebSockets."""
        return len(self.wires)


def build_durable_object_class(
    registry: Callable[[], Registry],
    context: ContextFactory | None,
    telefunc_url: Callable[[], str],
    broadcast: BroadcastSettings | None = None,
    settings: Config | None = None,
) -> type[Any]:
    """The ``TelefuncDurableObject`` class (a ``workers.DurableObject``) of one app.

    ``broadcast`` (the app's names, scale and bindings) enables the distributed broadcast;
    ``settings`` are the app's (the global ``config`` by default).
    """
    base = _ffi.durable_object_base()

    class TelefuncDurableObject(base):  # type: ignore[misc,valid-type]
        """telefunc's Durable Object: export it from the worker's entry module."""

        def __init__(self, ctx: Any, env: Any) -> None:
            super().__init__(ctx, env)
            self.telefunc = DurableServer(
                ctx, env, registry(), context, telefunc_url(), broadcast, settings
            )

        async def fetch(self, request: Any) -> Any:
            """Calls, SSE and WebSocket upgrades forwarded by ``Telefunc.serve``."""
            return await self.telefunc.fetch(request)

        async def webSocketMessage(self, ws: Any, message: Any) -> None:
            """A frame from a channel WebSocket."""
            self.telefunc.websocket_message(ws, message)

        async def webSocketClose(self, ws: Any, code: int, reason: str, wasClean: bool) -> None:
            """A channel WebSocket closed (1000/1001: for good)."""
            self.telefunc.websocket_close(ws, int(code))

        async def webSocketError(self, ws: Any, error: Any) -> None:
            """A channel WebSocket failed: a transient loss."""
            self.telefunc.websocket_close(ws, 1006, permanent=False)

        async def telefuncBroadcastPublish(self, request: Any) -> Any:
            """RPC: a publish for this key's authority, or a region coordinator's fan-out."""
            return await self.telefunc.broadcast_publish(request)

        async def telefuncBroadcastPresence(self, request: Any) -> Any:
            """RPC: as a key's authority, an object reports it has (no more) subscribers."""
            return await self.telefunc.broadcast_presence(request)

        async def telefuncBroadcastDeliver(self, request: Any) -> None:
            """RPC: deliver one broadcast message to this object's listeners."""
            self.telefunc.broadcast_deliver(request)

    return TelefuncDurableObject
