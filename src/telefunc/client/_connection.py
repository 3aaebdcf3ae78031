"""One multiplexed WebSocket connection per server: the asyncio face of :class:`ClientMux`.

Three small tasks drive the sans-I/O mux, all on the client's event loop:

* the *supervisor* opens a socket whenever the mux wants one (``websockets``' asyncio client),
  feeds every received message to the mux, and reports the end of the socket;
* the *writer* sends what the mux queued, in order, and closes sockets the mux is done with
  (code 1000 for a deliberate end, an abort for a wire the heartbeat declared dead);
* the *timer* sleeps until the mux's next deadline (heartbeat, reconnect backoff, close
  timeouts, replay expiry) and hands it the time.

The socket is read at all times: pushing back on a fast server is the protocol's job (credit
windows), never TCP's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from telefunc.errors import UsageError
from telefunc.wire.client_mux import CLOSE_NORMAL, ClientMux, Wire

if TYPE_CHECKING:
    from telefunc.client._channel import Channel
    from telefunc.wire.client_mux import ClientChannelCore

__all__ = ["Connection"]

logger = logging.getLogger("telefunc.client")

#: Seconds a WebSocket handshake may take.
OPEN_TIMEOUT = 10.0


def _websockets_connect() -> Any:
    try:
        from websockets.asyncio.client import connect
    except ImportError as exc:  # pragma: no cover - websockets is a core dependency
        raise UsageError(
            "telefunc.client needs the 'websockets' package for channels: pip install websockets"
        ) from exc
    return connect


class Connection:
    """The client's one channel connection to one server (created on the first channel)."""

    def __init__(self, ws_url: Callable[[], str], headers: Mapping[str, str]) -> None:
        self._ws_url = ws_url
        self._headers = dict(headers)
        # Imported here, so a missing package is reported by the call that returned the channel.
        self._connect = _websockets_connect()
        self.mux = ClientMux()
        self._loop = asyncio.get_running_loop()
        self._wake_supervisor = asyncio.Event()
        self._wake_writer = asyncio.Event()
        self._wake_timer = asyncio.Event()
        self._current: tuple[Wire, Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.mux.on_wake = self._wake
        self.mux.on_output = self._wake_writer.set
        self.mux.timers.on_earlier = self._wake_timer.set
        #: How many sockets were opened (tests use it to see reconnects).
        self.connects = 0

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
            loop.create_task(self._supervise(), name="telefunc-client-ws"),
            loop.create_task(self._write_loop(), name="telefunc-client-writer"),
            loop.create_task(self._timer_loop(), name="telefunc-client-timers"),
        ]

    def _wake(self) -> None:
        self._wake_supervisor.set()
        self._wake_writer.set()
        self._wake_timer.set()

    async def aclose(self) -> None:
        """Close the connection: channels end, the socket closes with code 1000."""
        self.mux.close(self.now())
        current = self._current
        # Let the writer close the socket normally (the server then ends the channels at once).
        if self._tasks and current is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._close_socket(current[1], CLOSE_NORMAL, "bye"), 5.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # ── tasks ───────────────────────────────────────────────────────────

    async def _supervise(self) -> None:
        connect = self._connect
        mux = self.mux
        while not mux.closed:
            self._wake_supervisor.clear()
            if not mux.want_connect:
                await self._wake_supervisor.wait()
                continue
            mux.connecting(self.now())
            try:
                ws = await connect(
                    self._ws_url(),
                    additional_headers=self._headers or None,
                    compression=None,
                    max_size=None,
                    ping_interval=None,
                    proxy=None,
                    open_timeout=OPEN_TIMEOUT,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("telefunc: channel WebSocket connect failed: %r", exc)
                mux.connection_failed(self.now())
                continue
            if mux.closed:
                await self._close_socket(ws, CLOSE_NORMAL, "client closed")
                return
            self.connects += 1
            wire = mux.connection_made(self.now())
            self._current = (wire, ws)
            self._wake_writer.set()
            try:
                async for message in ws:
                    if isinstance(message, str):
                        logger.warning("telefunc: text message on the channel socket, dropping")
                        break
                    mux.receive(message, self.now())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("telefunc: channel WebSocket lost: %r", exc)
            finally:
                if self._current is not None and self._current[1] is ws:
                    self._current = None
            mux.connection_lost(wire, self.now())
            with contextlib.suppress(Exception):
                ws.transport.abort()

    async def _write_loop(self) -> None:
        mux = self.mux
        while True:
            self._wake_writer.clear()
            request = mux.take_close_request()
            if request is not None:
                wire, code, reason = request
                current = self._current
                if current is not None and current[0] is wire:
                    await self._close_socket(current[1], code, reason)
                continue
            frames = mux.data_to_send()
            current = self._current
            if frames and current is not None and current[0] is mux.wire:
                ws = current[1]
                try:
                    for frame in frames:
                        await ws.send(frame)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the reader sees the end of the socket too
                    logger.debug("telefunc: channel WebSocket send failed: %r", exc)
                continue
            if mux.closed and self._current is None:
                return
            await self._wake_writer.wait()

    async def _close_socket(self, ws: Any, code: int, reason: str) -> None:
        if code == CLOSE_NORMAL:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code, reason), 2.0)
        with contextlib.suppress(Exception):
            ws.transport.abort()

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
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake_timer.wait(), delay)
            mux.handle_timeout(self.now())
