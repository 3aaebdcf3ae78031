"""The uvicorn WebSocket protocol ``telefunc serve`` runs: uvicorn's own, with a bounded output.

:class:`TelefuncWebSocketProtocol` answers pings only while the transport holds less than
``config.limits.max_connection_buffer`` unflushed, and closes a slow consumer past it with
``CLOSE_SLOW_CONSUMER``, dropping the socket :data:`CLOSE_GRACE` seconds later in any case. It
offers the ``telefunc.transport`` scope extension (unflushed bytes, ``close_now``), and after its
own close frame accepts at most ``config.limits.max_after_close`` bytes. It parses a client's
binary frames itself and can hand them to the app without an ASGI event (``set_receiver``), and
lets the app return without ending the connection once it handed its events to a callback
(``detach``). Otherwise it behaves as uvicorn's protocol, with lighter per-connection parts.
Details: docs/architecture.md §5.3.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.streams import StreamReader

from telefunc.asgi.websocket import TRANSPORT_EXTENSION
from telefunc.config import config
from telefunc.endpoint.client_errors import log_client_error
from telefunc.wire.mux import CLOSE_SLOW_CONSUMER, SLOW_CONSUMER_REASON

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

BytesLike = bytes | bytearray | memoryview

__all__ = ["CLOSE_GRACE", "TelefuncWebSocketProtocol"]

logger = logging.getLogger("telefunc")

#: A read of at least this many bytes gives other connections a loop turn before the next one.
YIELD_AFTER_READ = 64 * 1024
#: Seconds a closed slow consumer's socket may take to flush before it is dropped.
CLOSE_GRACE = 5.0


#: First header byte of a final binary / ping / pong frame (FIN bit, no reserved bits, opcode).
_FIN_BINARY = 0x80 | Opcode.BINARY
_FIN_PING = 0x80 | Opcode.PING
_FIN_PING_PONG = frozenset({_FIN_PING, 0x80 | Opcode.PONG})
#: ``State.OPEN``, looked up once: an enum member lookup costs more than the rest of a check.
_OPEN = State.OPEN
#: Stands for "no ``max_size``" (uvicorn's ``ws_max_size=None``) in a size comparison.
_UNBOUNDED = 1 << 64
#: Where websockets' frame parser waits between frames (see ``_at_frame_boundary``).
_AT_EOF_CODE = StreamReader.at_eof.__code__
#: The headers of messages under 126 bytes, by size (one fan-out writes the same one N times).
_SHORT_HEADERS = tuple(bytes((0x82, size)) for size in range(126))
_MEDIUM_HEADER = struct.Struct(">BBH")
_LONG_HEADER = struct.Struct(">BBQ")
#: The scope a detached connection keeps (uvicorn reads its scope only before the handshake).
_DETACHED_SCOPE: Any = MappingProxyType({"type": "websocket"})


def _binary_header(size: int) -> bytes:
    """RFC 6455 header of a final binary frame from a server (FIN, opcode 2, no mask)."""
    if size < 126:
        return _SHORT_HEADERS[size]
    if size < 65536:
        return _MEDIUM_HEADER.pack(0x82, 126, size)
    return _LONG_HEADER.pack(0x82, 127, size)


def _discard(event: Any) -> None:
    """What a detached app's events go to once it has seen its disconnect."""


class _ReceiveQueue:
    """The part of ``asyncio.Queue`` uvicorn's protocol uses (``put_nowait``, ``get``,
    ``empty``), unbounded like the queue it replaces, for one getter at a time (the app's
    ``receive``); an idle one holds one empty list. After :meth:`hand_over` it queues nothing:
    each event goes to the app's handler as it is put."""

    __slots__ = ("_head", "_items", "_waiter", "handler", "handler_failed", "on_handler_error")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._head = 0
        self._waiter: asyncio.Future[None] | None = None
        #: Takes each event instead of the queue (see :meth:`hand_over`).
        self.handler: Callable[[Any], None] | None = None
        #: Called after the handler raised (the protocol closes the connection).
        self.on_handler_error: Callable[[], None] | None = None
        #: The handler raised: only the disconnect still reaches it.
        self.handler_failed = False

    def empty(self) -> bool:
        return self._head == len(self._items)

    def hand_over(
        self, handler: Callable[[Any], None], on_error: Callable[[], None] | None = None
    ) -> None:
        """Pass every event to ``handler`` from now on, those queued first; after the first
        ``websocket.disconnect`` the rest are dropped (an app sees one disconnect). A handler
        that raises is logged and ``on_error`` is called."""
        items = self._items[self._head :]
        self._items.clear()
        self._head = 0
        self.handler = handler
        self.on_handler_error = on_error
        for item in items:
            self._deliver(item)

    def _deliver(self, event: Any) -> None:
        handler, on_error = self.handler, self.on_handler_error
        assert handler is not None
        if event["type"] == "websocket.disconnect":
            # The last event: let go of both (on_error is a method of the protocol holding
            # this queue, a cycle only a full garbage collection would free).
            self.handler, self.on_handler_error = _discard, None
        elif self.handler_failed:
            return
        try:
            handler(event)
        except Exception:  # it runs inside the server's callbacks, which must not fail
            # As uvicorn treats an app that raised: logged, and the connection is closed; only
            # its disconnect still reaches the handler, so at most two lines per connection.
            logger.exception("telefunc: error while handling a WebSocket event")
            self.handler_failed = True
            if on_error is not None:
                on_error()

    def put_nowait(self, item: Any) -> None:
        if self.handler is not None:
            self._deliver(item)
            return
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while self._head == len(self._items):
            if self._waiter is not None:
                raise RuntimeError("receive() is already being awaited")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items, head = self._items, self._head
        item = items[head]
        if head + 1 == len(items):
            items.clear()
            self._head = 0
        else:
            items[head] = None
            self._head = head + 1
        return item


class _Writable:
    """The part of ``asyncio.Event`` uvicorn's protocol uses for ``writable``; holds no waiter
    list while nothing waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class TelefuncWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with a cap on unflushed output (pongs)."""

    _received_after_close = 0
    #: Pongs websockets queued while parsing the current read, written once it is parsed.
    _pongs_due = False
    #: Reading is paused for one loop turn after a large read (see :meth:`data_received`).
    _yielding = False
    #: Called with each complete binary message instead of queueing it for the app's
    #: ``receive`` (see :meth:`_set_receiver`); ``None`` until the app asks for it.
    _receiver: Callable[[BytesLike], None] | None = None
    #: Frames are parsed by :meth:`_receive_fast` (websockets' parser waits at a frame boundary).
    _fast = False
    #: The start of a frame :meth:`_receive_fast` has not received in full.
    _partial: bytearray | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: Any = _ReceiveQueue()
        self.writable: Any = _Writable()
        # Set here, in one order for every connection, so instances keep sharing their
        # attribute dict's keys (one set later, in varying order, costs each a dict of its own).
        self._receiver = None
        self._fast = False
        self._partial = None

    async def send(self, message: Any) -> None:
        """uvicorn's ``send``; the handshake's request and response are let go once answered."""
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            # websockets' parser generator keeps the request for the connection's lifetime:
            # its headers (copied into the scope already) are emptied.
            self.request.headers.clear()
            self.response.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Parse what arrives, but only a little once the server has sent its close frame: a
        client that keeps flooding a closing connection would otherwise hold the loop busy
        until the close timeout."""
        if self.close_sent:
            self._received_after_close += len(data)
            if self._received_after_close > config.limits.max_after_close:
                self.transport.abort()
                return
        if self._fast:
            self._receive_fast(data)
        elif self._at_frame_boundary():
            self._fast = True
            self._receive_fast(data)
        else:
            super().data_received(data)
        if self._pongs_due:
            # One write for every pong of this read (a flood of pings is hundreds per read):
            # one small buffer per pong is what a write-queue backlog costs per entry.
            self._pongs_due = False
            output = self.conn.data_to_send()
            if output and not self.transport.is_closing():
                self.transport.write(b"".join(output))
        if len(data) >= YIELD_AFTER_READ and not self.read_paused and not self._yielding:
            # libuv (uvloop) reads a busy socket up to 32 times before it serves any other
            # handle: a flood on one connection would hold every other call for a second or
            # more. One loop turn without reading this socket lets the others in.
            transport = self.transport
            if not transport.is_closing():
                self._yielding = True
                transport.pause_reading()
                asyncio.get_running_loop().call_soon(self._end_yield)

    def _at_frame_boundary(self) -> bool:
        """Whether websockets' parser waits for the first byte of a frame, with nothing
        buffered, on an open connection without extensions: frames may then be parsed here.

        Its parser is a generator; at a frame boundary the innermost one it delegates to is
        ``StreamReader.at_eof`` (inside a frame it is ``read_exact``, which can also wait with
        an empty buffer). A websockets release that parses differently just keeps every frame
        on its own parser.
        """
        conn = self.conn
        if (
            conn.state is not _OPEN
            or conn.extensions
            or conn.current_size is not None
            or conn.parser_exc is not None
            or conn.reader.buffer
            or self.close_sent
        ):
            return False
        parser: Any = conn.parser
        while getattr(parser, "gi_yieldfrom", None) is not None:
            parser = parser.gi_yieldfrom
        return getattr(parser, "gi_code", None) is _AT_EOF_CODE

    def _receive_fast(self, data: bytes) -> None:
        """Parse complete binary, ping and pong frames here; hand anything else to websockets.

        What websockets' parser does for a client's final, masked, uncompressed binary frame
        within ``max_size`` (and a control frame), without a generator step, ``Frame`` object
        or event per frame. Any other frame (text, fragments, close, reserved bits, unmasked,
        too large), or a connection no longer open, goes to websockets from that frame on: it
        was at a frame boundary, so its parser takes over where this one stopped and answers
        with the exact close code (see :meth:`_at_frame_boundary`).
        """
        buffered = self._partial
        if buffered:
            buffered += data
            buffer: bytes | bytearray = buffered
        else:
            buffer = data
        conn = self.conn
        max_size = conn.max_message_size
        if max_size is None:
            max_size = _UNBOUNDED
        queued = self.queue._items  # empty when nothing waits for the app's receive
        end, pos = len(buffer), 0
        # websockets owns the close: once a close frame was sent (by any of the calls below, or
        # before), the rest goes to it.
        open_ = not self.close_sent and conn.state is _OPEN and not self.transport.is_closing()
        while open_ and end - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            size = second & 0x7F
            head = pos + 6  # 2 bytes, then the 4-byte mask
            if size == 126:
                if end - pos < 4:
                    return self._keep(buffer, pos)
                size = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                head += 2
            elif size == 127:
                if end - pos < 10:
                    return self._keep(buffer, pos)
                size = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                head += 8
            if (
                not second & 0x80  # a client must mask
                or (first != _FIN_BINARY and (first not in _FIN_PING_PONG or size > 125))
                or size > max_size
            ):
                open_ = False  # not a frame parsed here: websockets takes it from here
                break
            stop = head + size
            if stop > end:
                return self._keep(buffer, pos)
            payload = apply_mask(buffer[head:stop], buffer[head - 4 : head])
            pos = stop
            if first == _FIN_BINARY:
                receiver = self._receiver
                if receiver is not None and not queued:
                    receiver(payload)
                else:  # uvicorn's way: queued for the app's receive
                    self.curr_msg_data_type = "bytes"
                    self.frames = [payload]
                    self.send_receive_event_to_app()
            elif first == _FIN_PING:
                conn.send_pong(payload)  # what websockets answers, queued in its output
                self.handle_ping()
            else:
                self.handle_pong(Frame(Opcode.PONG, payload))
            open_ = not self.close_sent
        if open_:
            return self._keep(buffer, pos)
        # From ``pos`` on, websockets parses (its parser is at this frame boundary).
        self._fast = False
        self._partial = None
        rest = bytes(buffer[pos:])
        if rest:
            super().data_received(rest)
        return None

    def _keep(self, buffer: bytes | bytearray, pos: int) -> None:
        """Hold the incomplete frame from ``pos`` until more bytes arrive."""
        if pos == len(buffer):
            if self._partial is not None:
                self._partial = None
        elif isinstance(buffer, bytearray):
            del buffer[:pos]
            self._partial = buffer
        else:
            self._partial = bytearray(buffer[pos:])

    def _end_yield(self) -> None:
        self._yielding = False
        # uvicorn may have paused reading meanwhile (the app is behind): it resumes it then.
        if not self.read_paused and not self.transport.is_closing():
            self.transport.resume_reading()

    def handle_connect(self, event: Request) -> None:
        """Offer the transport extension to the app on an accepted handshake."""
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][TRANSPORT_EXTENSION] = {
                "write_buffer_size": self._write_buffer_size,
                "close_now": self.close_now,
                "writable": self.writable.is_set,
                "write_frames": self.write_frames,
                "set_receiver": self._set_receiver,
                "detach": self._detach,
            }

    async def run_asgi(self) -> None:
        """uvicorn's, except that an app that detached (``detach`` in the transport extension)
        and returned leaves the connection open, served by the handler it gave.

        Once the app returned, the extension (bound methods of this protocol, in the scope this
        protocol holds) is dropped, so the protocol is freed by reference counting instead of
        waiting for a full garbage collection; a detached connection lets go of the whole scope
        (its headers were read during the handshake).
        """
        returned = False
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            returned = True
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        scope: Any = getattr(self, "scope", None)
        if scope is not None:
            scope.get("extensions", {}).pop(TRANSPORT_EXTENSION, None)
        if returned and self.queue.handler is not None and self.handshake_complete:
            self.scope = _DETACHED_SCOPE
            return
        if self.close_timer is None:
            self.transport.close()

    def _detach(self, handler: Callable[[Any], None]) -> None:
        """``detach``: every later ASGI event goes to ``handler`` (see :meth:`run_asgi`)."""
        self.queue.hand_over(handler, self._handler_failed)

    def _handler_failed(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _set_receiver(self, receiver: Callable[[BytesLike], None] | None) -> None:
        """Hand binary messages to ``receiver`` as they are parsed (``None``: to ``receive``).

        No ASGI event, queue entry, task wake-up or read pause per message: the app's frame
        handling runs inside :meth:`data_received`. A message still goes through the queue while
        the queue holds anything (what arrived before the receiver was set), so the app sees
        every message in order.
        """
        self._receiver = receiver

    def handle_bytes(self, event: Frame) -> None:
        """uvicorn's, but straight to the receiver when one is set (see :meth:`_set_receiver`)."""
        receiver = self._receiver
        if receiver is not None and event.fin and not self.close_sent and self.queue.empty():
            receiver(event.data)
            return
        super().handle_bytes(event)

    def _write_buffer_size(self) -> int:
        transport = self.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def handle_ping(self) -> None:
        """Send the pong websockets queued, unless the client lets output pile up."""
        if self.close_sent or self.transport.is_closing():
            self.conn.data_to_send()  # the queued pong goes nowhere
            return
        if self.transport.get_write_buffer_size() >= config.limits.max_connection_buffer:
            self.conn.data_to_send()
            log_client_error(
                "slow-consumer",
                "closed a WebSocket whose client pings but does not read (over %d bytes unflushed)",
                config.limits.max_connection_buffer,
            )
            self.close_now(CLOSE_SLOW_CONSUMER, SLOW_CONSUMER_REASON)
            return
        self._pongs_due = True  # written after the whole read is parsed (data_received)

    def write_frames(self, frames: Sequence[bytes]) -> None:
        """Send each of ``frames`` as one binary message, in one transport write.

        What ``websocket.send`` does per message, without a coroutine per message; the caller
        checks ``writable`` first (uvicorn's ``send`` would wait for it). Raises
        ``ConnectionError`` once the client is gone; after a close was sent, drops the frames
        as ``websocket.send`` does.
        """
        transport = self.transport
        if self.disconnected or transport.is_closing():
            raise ConnectionError("the WebSocket is closed")
        if self.close_sent:
            return
        conn = self.conn
        parts = conn.data_to_send()  # anything websockets queued goes first (none, normally)
        if (
            conn.state is _OPEN
            and not conn.extensions
            and not conn.expect_continuation_frame
            and not conn.debug
        ):
            # What Protocol.send_binary writes for a final, unmasked, uncompressed server
            # frame, without building a Frame object per message.
            if not parts and len(frames) == 1:  # the usual direct write: one message
                frame = frames[0]
                size = len(frame)
                transport.write(
                    (_SHORT_HEADERS[size] if size < 126 else _binary_header(size)) + frame
                )
                return
            for frame in frames:
                parts.append(_binary_header(len(frame)))
                parts.append(frame)
        else:  # compression negotiated, or closing: websockets frames (or refuses) them
            for frame in frames:
                conn.send_binary(frame)
            parts += conn.data_to_send()
        transport.write(b"".join(parts))

    def close_now(self, code: int, reason: str) -> None:
        """Close without waiting for the app: close frame after the queued output, then drop.

        The app's next ``receive`` reports ``websocket.disconnect`` with ``code``.
        """
        if self.close_sent or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.close_sent = True
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        # close() stops reading and flushes; abort() below frees the buffer if it never does.
        self.transport.close()
        self.close_timer = self.loop.call_later(CLOSE_GRACE, self.transport.abort)
