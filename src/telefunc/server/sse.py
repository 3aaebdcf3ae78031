"""The "SSE duplex" channel transport (docs/protocol.md §7.8), independent of any HTTP server.

An adapter (ASGI, the Cloudflare Durable Object) hands each SSE POST to :func:`handle_sse` with
its method and body (a :class:`~telefunc.server.request_body.BodyReader`) and writes back the
:class:`~telefunc.server.rpc.RpcResponse` as it writes a call's: a streamed body chunk by chunk,
then ``stream.aclose()``, at once when the client disconnects. The ``connId`` of the three kinds
of POST (stream-response, stream-request, batch) ties them to one
:class:`~telefunc.wire.mux.ServerConnection`, whose frames are fed in the order the POSTs
arrived. Every buffer is bounded by the hub's settings (:attr:`ChannelHub.settings`): read-ahead
per wire, waiting POSTs, record sizes; a breach is a 400 or a protocol violation, never growth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from telefunc.config import LimitsSettings
from telefunc.endpoint.client_errors import log_client_error
from telefunc.errors import ProtocolError, RecordTooLarge
from telefunc.server import observe
from telefunc.server.hub import ChannelHub
from telefunc.server.memory import release_freed_memory_soon
from telefunc.server.request_body import BodyReader
from telefunc.server.rpc import RpcResponse
from telefunc.server.streaming import STREAMING_HEADERS
from telefunc.wire.frames import Tag, encode_frame
from telefunc.wire.framing import (
    SSE_CONTENT_TYPE,
    SSE_OPEN,
    LengthPrefixedReader,
    parse_sse_metadata,
    sse_event,
)
from telefunc.wire.mux import ServerConnection

__all__ = ["WRITE_BATCH", "handle_sse"]

logger = logging.getLogger("telefunc")

#: Bytes of frames the event stream takes from the connection's queue at a time.
WRITE_BATCH = 64 * 1024

_OPEN_ACK = encode_frame(Tag.STREAM_REQUEST_OPEN_ACK)
_READ_CHUNK = 256 * 1024
_MAX_METADATA = 64 * 1024


async def handle_sse(hub: ChannelHub, *, method: str, body: BodyReader) -> RpcResponse:
    """Answer one SSE channel POST (stream-response, stream-request or batch).

    With ``hub.settings.refuse_stream_requests`` stream-requests are answered 400 so that
    clients use batch POSTs at once (behind proxies that buffer request bodies).
    """
    if "sse" not in hub.mux.settings.transports or method != "POST":
        return _empty(400)
    records = _Records(body, hub.mux.limits.max_message_size)
    try:
        raw = await records.next()
        if raw is None or len(raw) > _MAX_METADATA:
            raise ProtocolError("SSE request without metadata")
        meta = parse_sse_metadata(raw)
    except ProtocolError:
        return _empty(400)
    if meta.stream_response:
        stream = _EventStream(hub, meta.conn_id, records)
        return RpcResponse(200, b"", SSE_CONTENT_TYPE, STREAMING_HEADERS, stream=stream)
    if meta.stream_request:
        if hub.settings.refuse_stream_requests:
            # At once, so the client falls back to batch POSTs now; what it already pushed
            # into this upload is still read, in order, before its batches.
            return RpcResponse(400, b"", stream=_refused_upload(hub, meta.conn_id, records))
        return _empty(await _stream_request(hub, meta.conn_id, records))
    return _empty(await _batch(hub, meta.conn_id, records))


def _empty(status: int) -> RpcResponse:
    return RpcResponse(status, b"")


class _Records:
    """Length-prefixed records of a request body, read incrementally.

    A record's length is checked when its prefix arrives, before any of it is buffered: the
    metadata record may have ``_MAX_METADATA`` bytes, every frame ``max_message_size`` (the
    app's ``limits``). A longer one raises :class:`RecordTooLarge` (the POST's 400, or a
    protocol violation once the event stream has started).
    """

    __slots__ = ("_body", "_reader", "_ready", "ended")

    def __init__(self, body: BodyReader, max_message_size: int) -> None:
        self._body = body
        self._reader = LengthPrefixedReader(max_message_size, max_first_body=_MAX_METADATA)
        self._ready: deque[bytes] = deque()
        #: The body ended (completely, or cut short).
        self.ended = False

    @property
    def ready_count(self) -> int:
        """How many complete records are waiting to be taken."""
        return len(self._ready)

    def take_ready(self) -> list[bytes]:
        """Every complete record received so far."""
        out = list(self._ready)
        self._ready.clear()
        return out

    @property
    def oversized(self) -> bool:
        """A record over the size limit was announced: nothing more is read from this body."""
        return self._reader.error is not None

    async def fill(self) -> int:
        """Read one more chunk and return its size; sets :attr:`ended` at the end. Raises on a
        truncated record, and on an oversized one once the records before it were taken."""
        if self._reader.error is not None:
            raise self._reader.error
        chunk = await self._body.read(_READ_CHUNK)
        if not chunk:
            self.ended = True
            if self._reader.pending:
                raise ProtocolError("SSE request body ended inside a record")
            return 0
        self._ready.extend(self._reader.feed(chunk))
        return len(chunk)

    async def next(self) -> bytes | None:
        """The next record, or ``None`` at the end of the body."""
        while not self._ready:
            if self.ended:
                return None
            await self.fill()
        return self._ready.popleft()


class _SseWire:
    """Per-wire I/O state, kept in :attr:`ServerConnection.io`."""

    __slots__ = (
        "conn",
        "gone",
        "last_upload",
        "read_ahead_bytes",
        "read_ahead_frames",
        "ready",
        "waiting",
        "wake",
    )

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        #: Output is queued, or the wire is closing.
        self.wake = asyncio.Event()
        #: The stream-response body (initial RECONCILE) was consumed: data POSTs may proceed.
        self.ready = asyncio.Event()
        #: The wire is closed or closing.
        self.gone = asyncio.Event()
        #: Done once the latest data POST to arrive, and every one before it, was fed.
        self.last_upload: asyncio.Future[None] | None = None
        #: Data POSTs waiting for their turn.
        self.waiting = 0
        #: Body bytes and records those POSTs have read ahead.
        self.read_ahead_bytes = 0
        self.read_ahead_frames = 0

    def notify(self) -> None:
        self.wake.set()
        if self.conn.closed or self.conn.close_request is not None:
            self.gone.set()

    def end_if_cut(self, hub: ChannelHub) -> None:
        """A slow consumer was cut: end the wire soon (transient), not when its reader wakes."""
        conn = self.conn

        def end() -> None:
            if not conn.closed:
                conn.connection_lost(hub.now(), permanent=False)

        if conn.cut and not conn.closed:
            asyncio.get_running_loop().call_soon(end)


class _EventStream:
    """The stream-response: opens the wire, feeds its body, and is the event stream's body.

    The body (initial RECONCILE) is read by a task of its own from the start. Iterating gives
    ``: open``, then the queued frames as events in batches of :data:`WRITE_BATCH` bytes (so
    what waits for a slow reader stays counted against ``max_connection_buffer``), and ends once
    the wire is closed. :meth:`aclose` (the client went away) loses the wire transiently.
    """

    __slots__ = ("_closed", "_draining", "_hub", "_opened", "_reader", "_records", "conn", "wire")

    def __init__(self, hub: ChannelHub, conn_id: str, records: _Records) -> None:
        self._hub = hub
        self._records = records
        self.conn = conn = hub.open_connection(conn_id, transport="sse")
        self.wire = wire = _SseWire(conn)
        conn.io = wire

        def on_output() -> None:
            wire.notify()
            wire.end_if_cut(hub)

        conn.on_output = on_output
        conn.hold_reconciled()
        self._opened = False
        self._draining = False  # taking batches until the queue is empty
        self._closed = False
        self._reader = asyncio.ensure_future(self._read_body())

    async def _read_body(self) -> None:
        hub, conn, wire = self._hub, self.conn, self.wire
        try:
            while (frame := await self._records.next()) is not None:
                if not conn.closed:
                    hub.receive(conn, frame)
        except RecordTooLarge as exc:  # the answer is a 200: end the wire as a violation
            _oversized(exc)
            conn.protocol_violation("record too large", hub.now())
            wire.notify()
        except ProtocolError:  # cut inside a record: transient, the client will retry
            conn.connection_lost(hub.now(), permanent=False)
            wire.notify()
        except Exception as exc:  # the platform's body stream failed: the client went away
            logger.debug("telefunc: an SSE stream-response body failed: %r", exc)
            if not conn.closed:
                conn.connection_lost(hub.now(), permanent=False)
            wire.notify()
        wire.ready.set()
        conn.release_reconciled(hub.now())

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> bytes:
        conn, wire, hub = self.conn, self.wire, self._hub
        if not self._opened and not self._closed:
            self._opened = True
            return SSE_OPEN
        while not self._closed:
            if self._draining:
                if not conn.cut:
                    conn.drained(hub.now())
                    frames = conn.data_to_send(WRITE_BATCH)
                    if frames:
                        observe.sink.messages_out("sse", frames)
                        return b"".join(sse_event(frame) for frame in frames)
                self._draining = False
                if conn.closed or conn.close_request is not None:
                    break
            await wire.wake.wait()
            wire.wake.clear()
            self._draining = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """The response is over (the wire closed, or the client went away): lose the wire."""
        if self._closed:
            return
        self._closed = True
        conn, wire = self.conn, self.wire
        if not self._reader.done():
            self._reader.cancel()
            await asyncio.wait({self._reader})
        observe.sink.connection_closed(conn, None)
        wire.ready.set()
        if not conn.closed:
            conn.connection_lost(self._hub.now(), permanent=False)
        wire.notify()
        if conn.cut:
            release_freed_memory_soon(1.0)  # what the slow consumer held is freed by now


async def _resolve(hub: ChannelHub, conn_id: str) -> ServerConnection | None:
    """The live wire of ``conn_id``, waiting up to ``connect_ttl`` for it to open."""
    conn = hub.mux.connection_for(conn_id)
    if conn is not None:
        return conn
    found: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

    def opened(new: ServerConnection) -> None:
        if not found.done():
            found.set_result(new)

    cancel = hub.mux.wait_for_conn_id(conn_id, opened)
    try:
        return await asyncio.wait_for(found, hub.mux.settings.connect_ttl)
    except TimeoutError:
        return None
    finally:
        cancel()


async def _ready(hub: ChannelHub, conn: ServerConnection) -> bool:
    """Wait (≤ ``connect_ttl``) until the wire's initial body was consumed; ``False`` if not or if
    the wire is gone."""
    wire = conn.io
    if not isinstance(wire, _SseWire):
        return False
    if not wire.ready.is_set():
        try:
            await asyncio.wait_for(wire.ready.wait(), hub.mux.settings.connect_ttl)
        except TimeoutError:
            return False
    return not conn.closed


def _can_read_ahead(wire: _SseWire, records: _Records, limits: LimitsSettings) -> bool:
    return (
        not records.ended
        and not records.oversized
        and wire.read_ahead_bytes < limits.max_pending_bytes
        and wire.read_ahead_frames < limits.max_pending_frames
    )


async def _await_turn(
    wire: _SseWire, earlier: asyncio.Future[None], records: _Records, limits: LimitsSettings
) -> bool:
    """Wait until ``earlier`` (every earlier upload of the wire) was fed, reading ``records``
    ahead within the wire's read-ahead budget. ``False`` if the wire went away first."""
    gone = asyncio.ensure_future(wire.gone.wait())
    held_bytes = held_frames = 0
    try:
        while not earlier.done() and not gone.done():
            waits: set[asyncio.Future[Any]] = {earlier, gone}
            filling: asyncio.Future[int] | None = None
            if _can_read_ahead(wire, records, limits):
                before = records.ready_count
                filling = asyncio.ensure_future(records.fill())
                waits.add(filling)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if filling is None:
                continue
            if not filling.done():  # our turn (or the end) came while the body idles
                filling.cancel()
                with contextlib.suppress(asyncio.CancelledError, ProtocolError):
                    await filling
            if filling.cancelled() or filling.exception() is not None:
                continue  # a truncated body has `ended` set: the feeding loop stops there
            size, frames = filling.result(), records.ready_count - before
            held_bytes += size
            held_frames += frames
            wire.read_ahead_bytes += size
            wire.read_ahead_frames += frames
        return earlier.done()
    finally:
        gone.cancel()
        wire.read_ahead_bytes -= held_bytes
        wire.read_ahead_frames -= held_frames


@contextlib.asynccontextmanager
async def _upload_turn(
    hub: ChannelHub, conn: ServerConnection, records: _Records
) -> AsyncIterator[bool]:
    """Hold this data POST's turn in its wire's upload order (see the module docstring): yields
    ``True`` once the wire is ready and every earlier data POST of it was fed, ``False`` if the
    wire went away or was never ready. The next POST's turn comes when this block is left."""
    wire = conn.io
    if not isinstance(wire, _SseWire):
        yield False
        return
    limits = hub.mux.limits
    max_waiting = max(1, limits.max_waiting_posts)
    if wire.waiting >= max_waiting:
        reason = f"more than {max_waiting} SSE POSTs waiting for their turn"
        conn.protocol_violation(reason, hub.now())
        wire.notify()
        yield False
        return
    earlier = wire.last_upload
    mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    wire.last_upload = mine

    def finished(_: object = None) -> None:
        if not mine.done():
            mine.set_result(None)
        if wire.last_upload is mine:
            wire.last_upload = None

    wire.waiting += 1
    try:
        try:
            turn = await _ready(hub, conn)
            if turn and earlier is not None and not earlier.done():
                turn = await _await_turn(wire, earlier, records, limits)
        finally:
            wire.waiting -= 1
        yield turn
    finally:
        # Never before the earlier ones: a POST that gave up waiting must not let later ones on.
        if earlier is None or earlier.done():
            finished()
        else:
            earlier.add_done_callback(finished)


async def _stream_request(hub: ChannelHub, conn_id: str, records: _Records) -> int:
    conn = await _resolve(hub, conn_id)
    if conn is None:
        return 400
    # At once: the client races this ack against its 3 s handshake timeout.
    conn.write(_OPEN_ACK)
    status = 400
    async with _upload_turn(hub, conn, records) as turn:
        if turn:
            status = await _feed_upload(hub, conn, records)
    return status


async def _refused_upload(
    hub: ChannelHub, conn_id: str, records: _Records
) -> AsyncGenerator[bytes, None]:
    """The body of a refused stream-request's 400: none, ending once the upload was fed."""
    conn = await _resolve(hub, conn_id)
    if conn is not None:
        async with _upload_turn(hub, conn, records) as turn:
            if turn:
                await _feed_upload(hub, conn, records)
    return
    yield b""  # an async generator


async def _feed_upload(hub: ChannelHub, conn: ServerConnection, records: _Records) -> int:
    """Feed the records of an endless upload as they come, until it ends or the wire goes;
    returns the status to answer (400 when a record was over the size limit)."""
    wire: _SseWire = conn.io
    gone = asyncio.ensure_future(wire.gone.wait())
    status = 200
    try:
        while True:
            for frame in records.take_ready():
                if conn.closed:
                    break
                hub.receive(conn, frame)
            if records.ended or conn.closed or conn.close_request is not None:
                break
            filling = asyncio.ensure_future(records.fill())
            await asyncio.wait({filling, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not filling.done():  # the wire went away while the upload idles
                filling.cancel()
                with contextlib.suppress(asyncio.CancelledError, ProtocolError):
                    await filling
                break
            error = filling.exception()
            if isinstance(error, RecordTooLarge):
                _oversized(error)
                status = 400
                break
            if error is not None:
                break  # cut inside a record: the client's upload died
    finally:
        gone.cancel()
    return status


async def _batch(hub: ChannelHub, conn_id: str, records: _Records) -> int:
    conn = await _resolve(hub, conn_id)
    if conn is None:
        return 400
    status = 200
    async with _upload_turn(hub, conn, records) as turn:
        if not turn:
            return 400
        conn.hold_reconciled()
        try:
            while (frame := await records.next()) is not None:
                if not conn.closed:  # keep reading: the body is drained either way
                    hub.receive(conn, frame)
        except RecordTooLarge as exc:
            _oversized(exc)
            status = 400
        except ProtocolError:
            pass
        finally:
            conn.release_reconciled(hub.now())
    return status


def _oversized(error: RecordTooLarge) -> None:
    log_client_error("sse-record-too-large", "telefunc: SSE POST refused: %s", error)
