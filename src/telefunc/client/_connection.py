"""One multiplexed channel connection per server: the asyncio face of :class:`ClientMux`.

Its wires are WebSockets or "SSE duplex" wires; by default it starts on SSE and upgrades to a
WebSocket once the server advertises one (a failed upgrade stays on SSE). A supervisor, a writer
and a timer task drive the sans-I/O mux on the client's event loop; writes never block, and
each wire is read at all times (back-pressure is the protocol's credit windows, not TCP's).
The upgrade steps and the three tasks: docs/architecture.md §5.4.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from telefunc.client._sse import SseWireIO, StreamRequestState
from telefunc.endpoint.timers import sleep_or_wake
from telefunc.errors import UsageError
from telefunc.wire.client_mux import CLOSE_NORMAL, ClientMux, Wire
from telefunc.wire.frames import Tag, encode_frame

if TYPE_CHECKING:
    from telefunc.client._channel import Channel
    from telefunc.wire.client_mux import ClientChannelCore

__all__ = ["TRANSPORTS", "Connection"]

logger = logging.getLogger("telefunc.client")

#: Seconds a WebSocket handshake may take.
OPEN_TIMEOUT = 10.0
#: Seconds the upgrade probe waits for its PONG.
PROBE_TIMEOUT = 3.0
#: Seconds the SSE upload may take to drain before an upgrade.
DRAIN_TIMEOUT = 5.0
#: Transport names a client may be configured with.
TRANSPORTS = ("sse", "ws")

_PING = encode_frame(Tag.PING)


def _websockets_connect() -> Any:
    try:
        from websockets.asyncio.client import connect
    except ImportError as exc:  # pragma: no cover - websockets is a core dependency
        raise UsageError(
            "telefunc.client needs the 'websockets' package for channels: pip install websockets"
        ) from exc
    return connect


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "telefunc: the client's %s task failed", task.get_name(), exc_info=task.exception()
        )


class _WsWireIO:
    """The I/O of one WebSocket wire (or of an upgrade probe, until it gets its wire)."""

    kind = "ws"

    def __init__(self, conn: Connection, ws: Any, wire: Wire | None) -> None:
        self._conn = conn
        self.ws = ws
        self.wire = wire
        self.closed = False
        #: Set when frames may go out (an upgrade holds the new wire until the old one drained).
        self.ready = asyncio.Event()
        self.pong = asyncio.Event()
        self._queue: list[bytes] = []
        self._queued = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read(), name="telefunc-client-ws-reader"),
            loop.create_task(self._send(), name="telefunc-client-ws-sender"),
        ]

    def enqueue(self, frames: list[bytes]) -> None:
        if not self.closed:
            self._queue.extend(frames)
            self._queued.set()

    async def _send(self) -> None:
        while not self.closed:
            await self.ready.wait()
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                continue
            frames, self._queue = self._queue, []
            try:
                for frame in frames:
                    await self.ws.send(frame)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the reader sees the end of the socket too
                logger.debug("telefunc: channel WebSocket send failed: %r", exc)
                return

    async def _read(self) -> None:
        mux = self._conn.mux
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    logger.warning("telefunc: text message on the channel socket, dropping")
                    break
                if self.wire is None:  # still a probe
                    if message[:1] == bytes([Tag.PONG]):
                        self.pong.set()
                    continue
                mux.receive_from(self.wire, message, self._conn.now())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.debug("telefunc: channel WebSocket lost: %r", exc)
        self._finish()
        if self.wire is not None:
            mux.connection_lost(self.wire, self._conn.now())

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.ready.set()
        self._queued.set()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            self.ws.transport.abort()
        self._conn._forget(self)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the socket: normally for code 1000 (the server ends the channels at once),
        else abort it (a dead wire)."""
        if self.closed:
            return
        if code == CLOSE_NORMAL:
            self._conn._background(self._close_normally(code, reason))
        else:
            self._finish()

    async def _close_normally(self, code: int, reason: str) -> None:
        # Let queued frames out first: the reader stops on the close handshake.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason), 2.0)
        self._finish()


class Connection:
    """The client's one channel connection to one server (created on the first channel).

    ``ws_url`` gives the WebSocket URL; ``transports`` is ``("ws",)``, ``("sse",)`` or
    ``("sse", "ws")`` (start on SSE, upgrade to WebSocket when the server offers it), SSE needing
    ``http`` (an ``httpx.AsyncClient``), ``sse_url`` and ``sse_headers``.
    """

    def __init__(
        self,
        ws_url: Callable[[], str],
        headers: Mapping[str, str],
        *,
        transports: tuple[str, ...] = ("ws",),
        http: Any = None,
        sse_url: Callable[[], str] | None = None,
        sse_headers: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        if not transports or any(t not in TRANSPORTS for t in transports):
            raise UsageError(f"transports must be taken from {TRANSPORTS}, got {transports!r}")
        if "sse" in transports and (http is None or sse_url is None):
            raise UsageError("the SSE transport needs an HTTP client and the endpoint URL")
        self.transports = tuple(transports)
        self._ws_url = ws_url
        self._headers = dict(headers)
        self._http = http
        self._sse_url = sse_url
        self._sse_headers = sse_headers or (lambda: self._headers)
        # Imported here, so a missing package is reported by the call that returned the channel.
        self._connect = _websockets_connect() if "ws" in transports else None
        self.mux = ClientMux()
        self._loop = asyncio.get_running_loop()
        self._wake_supervisor = asyncio.Event()
        self._wake_writer = asyncio.Event()
        self._wake_timer = asyncio.Event()
        self._ios: dict[Wire, _WsWireIO | SseWireIO] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background_tasks: set[asyncio.Task[None]] = set()
        # An upgrade is tried at most once per settled RECONCILED (counted here).
        self._reconciled = 0
        self._upgrade_tried = -1
        self.mux.on_wake = self._wake
        self.mux.on_output = self._wake_writer.set
        self.mux.on_reconciled = self._on_reconciled
        self.mux.timers.on_earlier = self._wake_timer.set
        #: The SSE ``connId``, stable for this connection.
        self.conn_id = str(uuid.uuid4())
        self._stream_request = StreamRequestState()
        #: How many wires were opened by (re)connecting; upgrades are not counted (tests use it
        #: to see reconnects).
        self.connects = 0
        #: Wires opened, by transport name (upgrades included).
        self.opened: dict[str, int] = {}

    @property
    def upgrades(self) -> int:
        """Completed SSE→WebSocket upgrades."""
        return self.mux.upgrades

    @property
    def transport(self) -> str | None:
        """The transport of the current wire (``"sse"``, ``"ws"``), ``None`` without a wire."""
        wire = self.mux.wire
        io = self._ios.get(wire) if wire is not None else None
        return io.kind if io is not None else None

    @property
    def stream_request_failed(self) -> bool:
        """Whether this connection fell back to SSE batch POSTs."""
        return self._stream_request.failed

    @staticmethod
    def now() -> float:
        """The clock handed to the mux (monotonic seconds)."""
        return time.monotonic()

    def attach_channel(self, channel: Channel[Any, Any]) -> ClientChannelCore:
        """Register ``channel`` on the mux (starting the tasks on first use)."""
        if not self._tasks:
            self._start()
        return self.mux.open_channel(channel.id, channel, self.now())

    def _start(self) -> None:
        loop = self._loop
        self._tasks = [
            loop.create_task(self._supervise(), name="telefunc-client-connection"),
            loop.create_task(self._write_loop(), name="telefunc-client-writer"),
            loop.create_task(self._timer_loop(), name="telefunc-client-timers"),
        ]
        for task in self._tasks:
            task.add_done_callback(_log_crash)

    def _on_reconciled(self) -> None:
        self._reconciled += 1
        self._wake_supervisor.set()

    def _wake(self) -> None:
        self._wake_supervisor.set()
        self._wake_writer.set()
        self._wake_timer.set()

    def _background(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    def _forget(self, io: _WsWireIO | SseWireIO) -> None:
        if io.wire is not None and self._ios.get(io.wire) is io:
            del self._ios[io.wire]
        self._wake_writer.set()

    async def aclose(self) -> None:
        """Close the connection: channels end, a WebSocket closes with code 1000 (an SSE wire's
        requests just stop: the server then keeps the channels for its ``reconnect_timeout``)."""
        self.mux.close(self.now())
        self._wake_writer.set()
        if self._tasks:
            # Let the writer close the wires (a WebSocket normally); it ends once none is left.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await asyncio.wait({self._tasks[1]})
                    if self._background_tasks:
                        await asyncio.wait(set(self._background_tasks))
        for io in list(self._ios.values()):
            io.close(0, "client closed")
        for task in [*self._tasks, *self._background_tasks]:
            task.cancel()
        for task in [*self._tasks, *self._background_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # ── supervisor ──────────────────────────────────────────────────────

    async def _supervise(self) -> None:
        mux = self.mux
        while not mux.closed:
            self._wake_supervisor.clear()
            if mux.want_connect:
                if self._next_transport() == "ws":
                    await self._connect_ws()
                else:
                    await self._connect_sse()
                continue
            if self._upgrade_due():
                try:
                    await self._upgrade()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failed upgrade must not end the connection
                    logger.exception("telefunc: the WebSocket upgrade failed")
                continue
            await self._wake_supervisor.wait()

    def _next_transport(self) -> str:
        if "ws" not in self.transports:
            return "sse"
        if "sse" not in self.transports:
            return "ws"
        # Started on SSE: stay there after a failed upgrade, reconnect on WS after a good one.
        if self.mux.upgrade_disabled or not self.mux.upgrades:
            return "sse"
        return "ws"

    async def _open_ws(self) -> Any:
        assert self._connect is not None
        return await self._connect(
            self._ws_url(),
            additional_headers=self._headers or None,
            compression=None,
            max_size=None,
            ping_interval=None,
            proxy=None,
            open_timeout=OPEN_TIMEOUT,
        )

    def _count(self, kind: str) -> None:
        self.opened[kind] = self.opened.get(kind, 0) + 1

    async def _connect_ws(self) -> None:
        mux = self.mux
        mux.connecting(self.now())
        try:
            ws = await self._open_ws()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.debug("telefunc: channel WebSocket connect failed: %r", exc)
            mux.connection_failed(self.now())
            return
        if mux.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(CLOSE_NORMAL, "client closed"), 2.0)
            return
        self.connects += 1
        self._count("ws")
        wire = mux.connection_made(self.now())
        io = _WsWireIO(self, ws, wire)
        self._ios[wire] = io
        io.ready.set()
        self._wake_writer.set()

    def _new_sse(self) -> SseWireIO:
        assert self._sse_url is not None
        io = SseWireIO(
            self.mux,
            self._http,
            self._sse_url,
            self._sse_headers,
            self.conn_id,
            self._stream_request,
            self.now,
        )
        io.on_finished = self._forget
        return io

    async def _connect_sse(self) -> None:
        mux = self.mux
        mux.connecting(self.now())
        wire = mux.connection_made(self.now())
        # The RECONCILE travels in the stream-response's body.
        initial = mux.data_to_send()
        io = self._new_sse()
        self._ios[wire] = io
        opened = await io.open(wire, initial)
        if not opened:
            io.close()
            mux.connection_rejected(wire, self.now())
            return
        self.connects += 1
        self._count("sse")
        if mux.closed or not wire.alive:
            io.close()
            return
        self._wake_writer.set()

    # ── upgrade ─────────────────────────────────────────────────────────

    def _upgrade_due(self) -> bool:
        mux = self.mux
        wire = mux.wire
        if wire is None or self.transport != "sse" or "ws" not in self.transports:
            return False
        return (
            not mux.upgrade_disabled
            and "ws" in mux.server_transports
            and mux.settled
            and self._upgrade_tried != self._reconciled
        )

    async def _upgrade(self) -> None:
        mux = self.mux
        old_wire = mux.wire
        assert old_wire is not None
        self._upgrade_tried = self._reconciled
        old_io = self._ios.get(old_wire)
        try:
            ws = await self._open_ws()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.debug("telefunc: WebSocket upgrade probe failed: %r", exc)
            return
        probe = _WsWireIO(self, ws, None)
        # The probe's PING goes out directly: the sender stays held until the old wire drained.
        with contextlib.suppress(Exception):
            await ws.send(_PING)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probe.pong.wait(), PROBE_TIMEOUT)
        if (
            not probe.pong.is_set()
            or probe.closed
            or mux.wire is not old_wire
            or not mux.settled
            or not isinstance(old_io, SseWireIO)
            or old_io.closed
        ):
            logger.debug("telefunc: WebSocket upgrade probe got no PONG; staying on SSE")
            probe.close(CLOSE_NORMAL, "probe")
            return
        new_wire, leftover = mux.begin_upgrade(self.now())
        probe.wire = new_wire
        self._ios[new_wire] = probe
        self._count("ws")
        old_io.enqueue(leftover)
        started = self.now()
        drained = await old_io.drain(DRAIN_TIMEOUT)
        logger.debug("telefunc: SSE upload drained in %.3f s: %s", self.now() - started, drained)
        if not drained:
            logger.debug("telefunc: the SSE upload did not drain; upgrade aborted")
            mux.connection_lost(old_wire, self.now())
            return
        probe.ready.set()
        self._wake_writer.set()

    # ── writer and timers ───────────────────────────────────────────────

    async def _write_loop(self) -> None:
        mux = self.mux
        while True:
            self._wake_writer.clear()
            request = mux.take_close_request()
            if request is not None:
                wire, code, reason = request
                closing = self._ios.pop(wire, None)
                if closing is not None:
                    closing.close(code, reason)
                continue
            frames = mux.data_to_send()
            if frames:
                current = mux.wire
                io = self._ios.get(current) if current is not None else None
                if io is not None:
                    io.enqueue(frames)
                continue
            if mux.closed and not self._ios:
                return
            await self._wake_writer.wait()

    async def _timer_loop(self) -> None:
        mux = self.mux
        while not mux.closed:
            self._wake_timer.clear()
            deadline = mux.next_deadline()
            if deadline is None:
                await self._wake_timer.wait()
            else:
                delay = deadline - self.now()
                if delay > 0:
                    await sleep_or_wake(self._wake_timer, delay)
            mux.handle_timeout(self.now())
