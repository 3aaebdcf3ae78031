"""The "SSE duplex" channel transport (docs/protocol.md §7.8): a thin I/O layer over the mux.

:func:`serve_sse` handles the three kinds of POST (stream-response, stream-request, batch) and
ties them to one :class:`~telefunc.wire.mux.ServerConnection` by ``connId``. Frames of one wire
are fed in the order its POSTs arrived; a POST waiting for its turn reads ahead only
``max_pending_bytes`` / ``max_pending_frames``, and more than ``max_waiting_posts`` waiting
POSTs end the wire. With ``"sse"`` missing from ``config.channel.transports`` every SSE POST is
answered 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from telefunc.asgi.http import AsgiBody, HttpRequest, Send, send_response
from telefunc.config import LimitsSettings, config
from telefunc.endpoint.client_errors import log_client_error
from telefunc.errors import ProtocolError, RecordTooLarge
from telefunc.server import observe
from telefunc.server.hub import ChannelHub
from telefunc.server.memory import release_freed_memory_soon
from telefunc.wire.frames import Tag, encode_frame
from telefunc.wire.framing import LengthPrefixedReader, b64url_encode
from telefunc.wire.mux import ServerConnection

#: Bytes of frames the event writer takes from the connection's queue at a time.
WRITE_BATCH = 64 * 1024

__all__ = [
    "SSE_HEADERS",
    "SseMetadata",
    "parse_metadata",
    "serve_sse",
    "sse_event",
]

logger = logging.getLogger("telefunc")

#: Headers of the event stream: no caching, no proxy buffering (nginx honours X-Accel-Buffering).
SSE_HEADERS: tuple[tuple[str, str], ...] = (
    ("cache-control", "no-cache, no-transform"),
    ("x-accel-buffering", "no"),
)
#: When true, stream-request POSTs are refused (400) so clients use batch POSTs at once; useful
#: behind proxies that buffer request bodies (the client would otherwise wait 3 s per connection),
#: and in tests. The 400 is sent at once, but the upload is still read and fed until the client
#: ends it: the official client may have pushed frames into it before it saw the answer.
refuse_stream_requests = False

_OPEN_COMMENT = b": open\n\n"
_OPEN_ACK = encode_frame(Tag.STREAM_REQUEST_OPEN_ACK)
_READ_CHUNK = 256 * 1024
_MAX_METADATA = 64 * 1024
#: How long the end of an event stream may take once the wire is closed (a client that stopped
#: reading must not keep the handler alive).
_END_GRACE = 5.0


class SseMetadata(NamedTuple):
    """The metadata record that starts every SSE POST body."""

    conn_id: str
    stream_response: bool
    stream_request: bool


def parse_metadata(raw: bytes) -> SseMetadata:
    """Parse the metadata JSON; :class:`ProtocolError` unless it has a non-empty ``connId``."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("SSE request metadata is not JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError("SSE request metadata is not an object")
    conn_id = data.get("connId")
    if not isinstance(conn_id, str) or not conn_id:
        raise ProtocolError("SSE request metadata has no connId")
    return SseMetadata(
        conn_id, data.get("streamResponse") is True, data.get("streamRequest") is True
    )


def sse_event(frame: bytes) -> bytes:
    """One frame as an SSE event: ``data: <base64url, no padding>`` and a blank line."""
    return b"data: " + b64url_encode(frame).encode("ascii") + b"\n\n"


class _Records:
    """Length-prefixed records of a request body, read incrementally.

    A record's length is checked when its prefix arrives, before any of it is buffered: the
    metadata record may have ``_MAX_METADATA`` bytes, every frame ``config.limits``'
    ``max_message_size``. A longer one raises :class:`RecordTooLarge` (the POST's 400, or a
    protocol violation once the event stream has started).
    """

    __slots__ = ("_body", "_reader", "_ready", "ended")

    def __init__(self, body: AsgiBody) -> None:
        self._body = body
        self._reader = LengthPrefixedReader(
            config.limits.max_message_size, max_first_body=_MAX_METADATA
        )
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


async def serve_sse(hub: ChannelHub, request: HttpRequest, body: AsgiBody, send: Send) -> None:
    """Answer one SSE channel POST (stream-response, stream-request or batch)."""
    if "sse" not in hub.mux.settings.transports or request.method != "POST":
        await _reply(send, 400)
        return
    records = _Records(body)
    try:
        raw = await records.next()
        if raw is None or len(raw) > _MAX_METADATA:
            raise ProtocolError("SSE request without metadata")
        meta = parse_metadata(raw)
    except ProtocolError:
        await _reply(send, 400)
        return
    if meta.stream_response:
        await _stream_response(hub, meta.conn_id, records, body, send)
    elif meta.stream_request:
        await _stream_request(hub, meta.conn_id, records, send)
    else:
        await _batch(hub, meta.conn_id, records, send)


def _receive(hub: ChannelHub, conn: ServerConnection, frame: bytes) -> None:
    observe.sink.message_in("sse", len(frame))
    try:
        conn.receive(frame, hub.now())
    except Exception:  # a bug in the core must not leave the wire half-alive
        logger.exception("telefunc: error while handling a channel frame")
        conn.protocol_violation("internal error", hub.now())


async def _stream_response(
    hub: ChannelHub, conn_id: str, records: _Records, body: AsgiBody, send: Send
) -> None:
    conn = hub.open_connection(conn_id, transport="sse")
    wire = _SseWire(conn)
    conn.io = wire

    def on_output() -> None:
        wire.notify()
        wire.end_if_cut(hub)

    conn.on_output = on_output
    conn.hold_reconciled()
    headers = [(b"content-type", b"text/event-stream")]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in SSE_HEADERS]
    writer: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _OPEN_COMMENT, "more_body": True})
        writer = asyncio.ensure_future(_write_events(hub, conn, wire, send))
        try:
            while (frame := await records.next()) is not None:
                if not conn.closed:
                    _receive(hub, conn, frame)
        except RecordTooLarge as exc:  # the 200 is sent: end the wire as a violation
            _oversized(exc)
            conn.protocol_violation("record too large", hub.now())
            wire.notify()
        except ProtocolError:  # cut inside a record: transient, the client will retry
            conn.connection_lost(hub.now(), permanent=False)
            wire.notify()
        wire.ready.set()
        conn.release_reconciled(hub.now())
        # The body is over: from now on `receive` only reports the client's disconnect.
        watcher = asyncio.ensure_future(body.wait_disconnect())
        await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        observe.sink.connection_closed(conn, None)
        wire.ready.set()
        if not conn.closed:
            conn.connection_lost(hub.now(), permanent=False)
        wire.notify()
        if watcher is not None:
            watcher.cancel()
        if writer is not None:
            try:
                await asyncio.wait_for(writer, _END_GRACE)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()
            except Exception:  # the writer already logged nothing useful: the client is gone
                pass
        if conn.cut:
            release_freed_memory_soon(1.0)  # what the slow consumer held is freed by now


async def _write_events(
    hub: ChannelHub, conn: ServerConnection, wire: _SseWire, send: Send
) -> None:
    """Send queued frames as events until the wire closes, then end the response.

    Frames are taken in batches of ``WRITE_BATCH`` bytes, so what waits for a slow reader stays
    counted against ``config.limits.max_connection_buffer``; channels that held sends meanwhile
    go on as each batch is handed over.
    """
    try:
        while True:
            await wire.wake.wait()
            wire.wake.clear()
            while not conn.cut:
                conn.drained(hub.now())
                frames = conn.data_to_send(WRITE_BATCH)
                if not frames:
                    break
                observe.sink.messages_out("sse", frames)
                chunk = b"".join(sse_event(frame) for frame in frames)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if conn.closed or conn.close_request is not None:
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        logger.info("telefunc: an SSE client went away while events were sent")


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


async def _stream_request(hub: ChannelHub, conn_id: str, records: _Records, send: Send) -> None:
    if refuse_stream_requests:
        # At once, so the client falls back to batch POSTs now; what it already pushed into this
        # upload is still read, in order, before its batches.
        await _start_reply(send, 400)
        conn = await _resolve(hub, conn_id)
        if conn is not None:
            async with _upload_turn(hub, conn, records) as turn:
                if turn:
                    await _feed_upload(hub, conn, records)
        await _end_reply(send)
        return
    conn = await _resolve(hub, conn_id)
    if conn is None:
        await _reply(send, 400)
        return
    # At once: the client races this ack against its 3 s handshake timeout.
    conn.write(_OPEN_ACK)
    status = 400
    async with _upload_turn(hub, conn, records) as turn:
        if turn:
            status = await _feed_upload(hub, conn, records)
    await _reply(send, status)


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
                _receive(hub, conn, frame)
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


async def _batch(hub: ChannelHub, conn_id: str, records: _Records, send: Send) -> None:
    conn = await _resolve(hub, conn_id)
    if conn is None:
        await _reply(send, 400)
        return
    status = 200
    async with _upload_turn(hub, conn, records) as turn:
        if not turn:
            await _reply(send, 400)
            return
        conn.hold_reconciled()
        try:
            while (frame := await records.next()) is not None:
                if not conn.closed:  # keep reading: the body is drained either way
                    _receive(hub, conn, frame)
        except RecordTooLarge as exc:
            _oversized(exc)
            status = 400
        except ProtocolError:
            pass
        finally:
            conn.release_reconciled(hub.now())
    await _reply(send, status)


def _oversized(error: RecordTooLarge) -> None:
    log_client_error("sse-record-too-large", "telefunc: SSE POST refused: %s", error)


async def _start_reply(send: Send, status: int) -> None:
    """Send the status line and headers of an empty answer whose end comes later."""
    with contextlib.suppress(OSError):
        start = {"type": "http.response.start", "status": status}
        await send({**start, "headers": [(b"content-type", b"text/plain")]})


async def _end_reply(send: Send) -> None:
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _reply(send: Send, status: int) -> None:
    with contextlib.suppress(OSError):
        await send_response(send, status, b"", "text/plain")
