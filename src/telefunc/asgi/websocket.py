"""The WebSocket channel transport: a raw ASGI handler around one :class:`ServerConnection`.

Every binary message is one frame, fed to the sans-I/O connection as it arrives (straight from
the server's parser when it offers ``set_receiver``); the socket is read at all times
(back-pressure is the protocol's credit, never unread TCP). The writer sends what the connection
queues, in batches of :data:`WRITE_BATCH` bytes, so queued output stays counted against
``config.limits.max_connection_buffer``. A client close code of 1000 or 1001 is
permanent, anything else transient (channels wait ``reconnect_timeout``). The handshake is
refused (403) when ``config.channel.transports`` lacks ``"ws"`` or the ``Origin`` is foreign.
With :data:`TRANSPORT_EXTENSION` (docs/architecture.md §5.3) unflushed transport bytes count too,
a slow consumer is cut at once, and the handler returns after the handshake (``detach``): the
connection's events then reach its writer from the server's callbacks, with no task waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from telefunc.asgi.http import origin_refusal
from telefunc.server import observe
from telefunc.server.hub import ChannelHub
from telefunc.server.memory import release_freed_memory_soon
from telefunc.server.origin import log_refusal
from telefunc.wire.mux import CLOSE_SLOW_CONSUMER, ServerConnection

__all__ = ["TRANSPORT_EXTENSION", "WRITE_BATCH", "serve_websocket"]

logger = logging.getLogger("telefunc")

Scope = MutableMapping[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Close codes with which a client ends its channels for good.
PERMANENT_CLOSE_CODES = frozenset({1000, 1001})
#: Bytes the writer takes from the connection's queue at a time.
WRITE_BATCH = 64 * 1024
#: ASGI scope extension a server may offer: ``{"write_buffer_size": () -> int,
#: "close_now": (code, reason) -> None}`` (bytes its transport holds unflushed; close the socket
#: without waiting for the writes queued before, and report the disconnect with ``code``), and
#: optionally ``"writable": () -> bool, "write_frames": (list[bytes]) -> None`` (whether a
#: ``websocket.send`` would go out without waiting; send binary messages now, in one write) and
#: ``"set_receiver": ((bytes) -> None | None) -> None`` (hand each binary message to a callback
#: as it is parsed, in order with those already queued for ``receive``, instead of queueing it)
#: and ``"detach": ((event) -> None) -> None`` (hand every later ASGI event to a callback, those
#: queued first, instead of ``receive``; the app may then return without ending the connection).
TRANSPORT_EXTENSION = "telefunc.transport"
#: Seconds after a slow consumer's handler ended until the heap is trimmed (past the close grace
#: of :mod:`telefunc.asgi.ws_protocol`, when its socket buffers are gone too).
SLOW_CONSUMER_TRIM_DELAY = 6.0


async def serve_websocket(hub: ChannelHub, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one channel WebSocket connection until either side closes it."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "ws" not in hub.mux.settings.transports:
        # Closing before accepting answers the handshake with 403.
        await send({"type": "websocket.close", "code": 1008})
        return
    refusal = origin_refusal(scope, hub.settings.allowed_origins)
    if refusal is not None:
        log_refusal(refusal)
        await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
        return
    await send({"type": "websocket.accept"})
    conn = hub.open_connection(transport="ws")
    transport = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
    writer = _Writer(conn, send, hub, transport)
    if transport is not None:
        conn.io_buffered = transport["write_buffer_size"]
    conn.on_output = writer.wake
    set_receiver = transport.get("set_receiver") if transport is not None else None
    if set_receiver is not None:
        # Frames go to the hub as the server parses them, in this task's context (the app's
        # scoped settings); only other events (the disconnect) still come through ``receive``,
        # or the writer's handle_event once detached. An empty context is what the server's
        # callbacks run in already.
        context = contextvars.copy_context()
        writer.set_receiver = set_receiver
        if len(context):
            writer.context = context
            set_receiver(writer.receive)
        else:  # the hub at once: no Python frame of ours in between, per message
            set_receiver(functools.partial(hub.receive, conn))
        detach = transport.get("detach") if transport is not None else None
        if detach is not None:
            # The server hands every later event to the writer (in that same context): no task
            # or coroutine frames wait in ``receive`` for the connection's lifetime.
            writer.detached = True
            detach(writer.handle_event)
            return
    code: int | None = None
    try:
        while code is None:
            code = writer.handle_event(await receive())
    finally:
        writer.finish(code)
        await writer.stop()


class _FlushQueue:
    """The writers of one hub woken since its last run, flushed by one loop callback.

    A publish to N subscribers wakes N writers: one scheduled callback for all of them instead
    of N (each a loop handle, and garbage the collector would see). Each writer still writes
    only its own connection's queue, so every connection's frames keep their order.

    It also counts loop turns in which a writer wrote directly (:meth:`_Writer.wake`): a writer
    writes at once only the first time in a turn, so a burst still goes out in batches.
    """

    __slots__ = ("loop", "turn", "turn_ending", "writers")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: Writers to flush; ``None`` while no run is scheduled.
        self.writers: list[_Writer] | None = None
        #: The current turn's number (advanced after a turn with direct writes).
        self.turn = 1
        #: The callback advancing :attr:`turn` is scheduled.
        self.turn_ending = False

    def add(self, writer: _Writer) -> None:
        writers = self.writers
        if writers is None:
            self.writers = [writer]
            self.loop.call_soon(self._run)
        else:
            writers.append(writer)

    def end_turn(self) -> None:
        self.turn += 1
        self.turn_ending = False

    def _run(self) -> None:
        writers, self.writers = self.writers, None  # woken from here on: the next run
        for writer in writers or ():
            try:
                writer._flush()
            except Exception:  # one broken connection must not leave the others unflushed
                logger.exception("telefunc: error while flushing a WebSocket")


#: One flush queue per hub (an app's hub lives on one event loop).
_flush_queues: weakref.WeakKeyDictionary[ChannelHub, _FlushQueue] = weakref.WeakKeyDictionary()


def _flush_queue(hub: ChannelHub) -> _FlushQueue:
    loop = asyncio.get_running_loop()
    queue = _flush_queues.get(hub)
    if queue is None or queue.loop is not loop:
        queue = _flush_queues[hub] = _FlushQueue(loop)
    return queue


class _Writer:
    """Sends what the connection queues; holds no task or coroutine while there is no output.

    An idle connection (the common case: a subscriber between publishes) then holds no task,
    coroutine frame or ``asyncio.Event`` for its writer, only this small object.

    With a server offering ``write_frames`` in the transport extension (``telefunc serve``), the
    first frame of a loop turn goes to the transport at once (:meth:`write_through`: a publish
    reaches each subscriber with one write and no callback). Output later in the same turn wakes
    the writer, which queues a :meth:`_flush` on the hub's :class:`_FlushQueue` (one loop
    callback for every writer woken meanwhile, not a task) that hands the queued frames to the
    transport in batches, one socket write per batch. It falls back to a task awaiting the ASGI
    ``send`` whenever the server's writes are paused (its buffer is full), and for the close.
    Without the extension, a task runs while there is output and exits once the queue is empty.
    At most one of them runs at a time (the callback only while no task exists, a direct write
    only while neither is pending and nothing is queued), so frames keep their order. It also
    takes the connection's events from the server once the handler detached
    (:meth:`handle_event`), and its messages when the app's context must be entered for them
    (:meth:`receive`).
    """

    __slots__ = (
        "conn",
        "context",
        "detached",
        "done",
        "flushes",
        "hub",
        "scheduled",
        "send",
        "set_receiver",
        "task",
        "transport",
        "turn",
        "writable",
        "write_frames",
    )

    def __init__(
        self,
        conn: ServerConnection,
        send: Send,
        hub: ChannelHub,
        transport: dict[str, Any] | None = None,
    ) -> None:
        self.conn = conn
        self.send = send
        self.hub = hub
        self.transport = transport
        #: Where :meth:`wake` queues :meth:`_flush` (with ``write_frames`` only).
        self.flushes: _FlushQueue | None = None
        #: The transport's ``writable`` and ``write_frames`` (with ``write_frames`` only).
        self.writable: Callable[[], bool] | None = None
        self.write_frames: Callable[[Sequence[bytes]], None] | None = None
        if transport is not None and "write_frames" in transport:
            self.flushes = _flush_queue(hub)
            self.writable = transport["writable"]
            self.write_frames = transport["write_frames"]
            conn.direct = self
        #: The :attr:`_FlushQueue.turn` of this writer's last direct write.
        self.turn = 0
        #: What :meth:`receive` runs the hub in (``None``: the caller's own context).
        self.context: contextvars.Context | None = None
        #: The server's ``set_receiver``, once :meth:`receive` is the receiver.
        self.set_receiver: Callable[[Any], None] | None = None
        #: The server hands events to :meth:`handle_event` (``detach``); no task awaits them.
        self.detached = False
        self.task: asyncio.Task[None] | None = None
        #: A :meth:`_flush` callback is scheduled.
        self.scheduled = False
        #: Set once the close frame went out, sending failed, or the handler ended.
        self.done = False

    def receive(self, data: bytes | bytearray | memoryview) -> None:
        """The server's receiver (``set_receiver``) when the app's context holds anything: one
        binary message, to the hub, in that context."""
        assert self.context is not None
        self.context.run(self.hub.receive, self.conn, data)

    def handle_event(self, message: Message) -> int | None:
        """One ASGI event from the server; the close code once it is the disconnect.

        Detached, the server calls it from its own callbacks: it runs the hub in the app's
        context then, as :meth:`receive` does, and ends the connection at the disconnect.
        """
        context = self.context
        if self.detached and context is not None:
            return context.run(self._handle_event, message)
        return self._handle_event(message)

    def _handle_event(self, message: Message) -> int | None:
        conn, hub = self.conn, self.hub
        kind = message["type"]
        if kind == "websocket.receive":
            data = message.get("bytes")
            if data is None:
                conn.protocol_violation("text message on a binary channel socket", hub.now())
            else:
                hub.receive(conn, data)
            return None
        if kind != "websocket.disconnect":
            return None
        code: int = message.get("code", 1005)
        if code == CLOSE_SLOW_CONSUMER:  # the server's transport cut it (pong flood)
            conn.cut_slow_consumer()
        conn.connection_lost(hub.now(), permanent=code in PERMANENT_CLOSE_CODES)
        if self.detached:
            self.finish(code)
        return code

    def finish(self, code: int | None) -> None:
        """The connection is over (``code``: the client's close code; ``None``: the handler
        ended without a disconnect): end the wire and let go of everything that ties the
        connection, this writer and the server's protocol together."""
        conn = self.conn
        observe.sink.connection_closed(conn, code)
        if not conn.closed:
            conn.connection_lost(self.hub.now(), permanent=False)
        if self.set_receiver is not None:
            self.set_receiver(None)
            self.set_receiver = None
        self.done = True
        conn.direct = None  # conn -> writer -> conn: a cycle only a full GC frees
        if self.detached and self.task is not None:
            self.task.cancel()  # nothing awaits it: it only awaits the server's send
            self.task = None
        # conn -> writer.wake -> writer -> conn: a cycle only a full GC would free.
        conn.on_output = None
        conn.io_buffered = None
        if conn.cut:
            # What it held is freed now, its socket buffers within the close grace.
            release_freed_memory_soon(SLOW_CONSUMER_TRIM_DELAY)

    def wake(self) -> None:
        """Output is available (or a close was requested): start the writer unless it runs."""
        conn = self.conn
        if conn.cut and not self.done:
            self._close_slow_consumer()
            return
        if self.task is None and not self.done and not self.scheduled:
            if self.flushes is not None:
                self.scheduled = True
                self.flushes.add(self)
            else:
                self.task = asyncio.get_running_loop().create_task(self._run())

    def write_through(self, frame: bytes) -> bool:
        """For :attr:`ServerConnection.direct`: the first frame of a loop turn goes to the
        transport at once, unless writes are paused or a flush is pending."""
        flushes = self.flushes
        assert flushes is not None and self.writable is not None and self.write_frames is not None
        if (
            self.turn == flushes.turn
            or self.task is not None
            or self.scheduled
            or self.done
            or not self.writable()
        ):
            return False
        self.turn = flushes.turn
        if not flushes.turn_ending:
            flushes.turn_ending = True
            flushes.loop.call_soon(flushes.end_turn)
        if observe.observing:
            observe.sink.messages_out("ws", [frame])
        try:
            self.write_frames((frame,))
        except Exception:
            self.done = True  # the socket is gone (the receive loop ends the connection)
        return True

    def _flush(self) -> None:
        """Write what is queued straight to the transport; a task takes over what must wait."""
        self.scheduled = False
        if self.done or self.task is not None:
            return
        conn, writable, write_frames = self.conn, self.writable, self.write_frames
        assert writable is not None and write_frames is not None
        try:
            while not conn.cut:
                conn.drained(self.hub.now())
                if not writable() or conn.close_request is not None or conn.closed:
                    break
                frames = conn.data_to_send(WRITE_BATCH)
                if not frames:
                    return
                observe.sink.messages_out("ws", frames)
                write_frames(frames)
                if conn.output_idle and conn.close_request is None and not conn.closed:
                    return  # all written, no channel waiting for room: no second round
        except Exception:
            self.done = True  # the socket is gone (the receive loop ends the connection)
            return
        if conn.cut:
            self._close_slow_consumer()
        else:  # paused, or closing: the task awaits the ASGI send for what remains
            self.task = asyncio.get_running_loop().create_task(self._run())

    def _close_slow_consumer(self) -> None:
        """Cut: close now, without waiting behind writes the client is not reading."""
        self.done = True
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
        code, reason = self.conn.close_request or (CLOSE_SLOW_CONSUMER, "")
        loop = asyncio.get_running_loop()
        if self.transport is not None:
            self.transport["close_now"](code, reason)
        else:
            # Best effort: the close frame waits behind unread writes; the connection itself
            # holds nothing meanwhile (its queue was dropped). ``stop`` cancels it.
            self.task = loop.create_task(self._send_close(code, reason))
        loop.call_soon(self._end_cut)

    async def _send_close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})

    def _end_cut(self) -> None:
        if not self.conn.closed:
            self.conn.connection_lost(self.hub.now(), permanent=False)

    async def _run(self) -> None:
        conn = self.conn
        try:
            while True:
                conn.drained(self.hub.now())
                frames = conn.data_to_send(WRITE_BATCH)
                if not frames and conn.close_request is None and not conn.closed:
                    return  # idle again; no await between this check and clearing ``task``
                observe.sink.messages_out("ws", frames)
                for frame in frames:
                    await self.send({"type": "websocket.send", "bytes": frame})
                if conn.close_request is not None:
                    self.done = True
                    code, reason = conn.close_request
                    with contextlib.suppress(Exception):
                        await self.send({"type": "websocket.close", "code": code, "reason": reason})
                    return
                if conn.closed:
                    self.done = True
                    return
        except Exception:
            # The socket is gone (the receive loop sees the disconnect and ends the connection).
            self.done = True
        finally:
            if self.task is asyncio.current_task():
                self.task = None

    async def stop(self) -> None:
        """The handler is ending (after :meth:`finish`): cancel a running writer, wait for it."""
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
