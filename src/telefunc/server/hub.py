"""The channel hub: one per ASGI app, the asyncio owner of the sans-I/O :class:`ServerMux`.

It holds every registered channel and every session (for reconnects), and drives all their
deadlines (``connect_ttl``, ``reconnect_timeout``, close timeouts, ping deadlines) from **one**
timer task sleeping until the earliest deadline of the mux's heap — not one ``call_later`` per
channel or frame. It can be built without a running event loop; the timer task starts lazily, on
the loop that first uses the hub. It also carries the app's settings (:attr:`ChannelHub.settings`),
which the code serving a request or a channel reads through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from telefunc.config import Config, config
from telefunc.endpoint.client_errors import log_client_error
from telefunc.endpoint.timers import sleep_or_wake
from telefunc.server import observe
from telefunc.wire.mux import MuxStats, ServerConnection, ServerMux

if TYPE_CHECKING:
    from telefunc.server.channel import Channel

__all__ = ["ChannelHub"]

logger = logging.getLogger("telefunc")


def _log_client_error(kind: str, message: str) -> None:
    log_client_error(kind, "%s", message)
    if kind == "protocol-violation":
        observe.sink.protocol_violation(message)


class ChannelHub:
    """Registry of channels and sessions of one server, plus their shared timer task."""

    __slots__ = ("__weakref__", "_loop", "_task", "_wake", "mux", "settings")

    def __init__(self, settings: Config | None = None) -> None:
        #: The app's settings (the global ``config`` unless the app has its own), read live.
        self.settings = settings if settings is not None else config
        #: The sans-I/O multiplexer; it reads ``settings.channel``/``.limits`` when needed.
        self.mux = ServerMux(self.settings.channel.snapshot, self.settings.limits.snapshot)
        self.mux.on_client_error = _log_client_error
        self.mux.timers.on_earlier = self._on_earlier
        self.mux.on_slow_consumer = _log_slow_consumer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        observe.track_hub(self)

    #: The hub's clock (monotonic seconds); every ``now`` handed to the core comes from here.
    #: (The builtin itself: it is read for every frame.)
    now = staticmethod(time.monotonic)

    def register(self, channel: Channel[Any, Any]) -> None:
        """Make ``channel`` reachable by its id; its ``connect_ttl`` starts now. Its input is
        held to this hub's limits from now on."""
        channel._limits = self.settings.limits
        self._ensure_timer_task()
        self.mux.register(channel._core, self.now())
        observe.sink.channel_opened(channel)

    def open_connection(
        self, conn_id: str | None = None, *, transport: str = "ws"
    ) -> ServerConnection:
        """A new client wire, with its ping deadline running.

        ``conn_id`` (SSE) replaces an older live wire with the same id; ``transport`` names the
        transport for :attr:`ServerMux.opened` and :attr:`ServerConnection.transport`.
        """
        self._ensure_timer_task()
        now = self.now()
        conn = self.mux.open_connection(conn_id, transport=transport, now=now)
        conn.start(now)
        observe.sink.connection_opened(conn)
        return conn

    def receive(self, conn: ServerConnection, frame: bytes | bytearray | memoryview) -> None:
        """Hand one frame a client sent on ``conn`` to its core."""
        if observe.observing:
            observe.sink.message_in(conn.transport, len(frame))
        try:
            conn.receive(frame, self.now())
        except Exception:  # a bug in the core must not leave the wire half-alive
            logger.exception("telefunc: error while handling a channel frame")
            conn.protocol_violation("internal error", self.now())

    @property
    def stats(self) -> MuxStats:
        """Counters: ``slow_consumer_drops`` (connections closed for not reading)."""
        return self.mux.stats

    @property
    def channel_count(self) -> int:
        """How many channels are registered and not finished."""
        return len(self.mux.channels)

    def _on_earlier(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _ensure_timer_task(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run_timers(self._wake), name="telefunc-channel-timers")

    async def _run_timers(self, wake: asyncio.Event) -> None:
        mux = self.mux
        while True:
            deadline = mux.next_deadline()
            wake.clear()
            if deadline is None:
                await wake.wait()
                continue
            delay = deadline - self.now()
            if delay > 0:
                await sleep_or_wake(wake, delay)
                continue
            try:
                mux.handle_timeout(self.now())
            except Exception:
                # One failing deadline must not stop the wheel every channel's timeouts ride on.
                logger.exception("telefunc: a channel timer failed")

    async def aclose(self) -> None:
        """Stop the timer task (channels are left as they are)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_slow_consumer(conn: ServerConnection) -> None:
    log_client_error(
        "slow-consumer",
        "closed a %s connection whose client does not read (over %d bytes queued); "
        "raise config.limits.max_connection_buffer if its clients are legitimately slow",
        conn.transport,
        conn.max_buffer,
    )
