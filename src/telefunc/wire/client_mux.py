"""The client side of the channel multiplexer, sans-I/O (time is passed in as float seconds).

One :class:`ClientMux` is one logical connection from a client to one server, carried by a
succession of wires; the I/O layer (:mod:`telefunc.client._connection`) opens sockets and moves
bytes, and every protocol decision is made here: RECONCILE/RECONCILED, heartbeat, reconnect with
backoff, idle close and the SSE-to-WebSocket upgrade (docs/protocol.md §7.3-§7.7). Each channel
is a :class:`ClientChannelCore`, the server's ``ChannelCore`` with the client's differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telefunc.config import ChannelSettings
from telefunc.errors import (
    Abort,
    ChannelClosedError,
    ChannelRemoteError,
    NetworkError,
    ProtocolError,
    abort_message,
)
from telefunc.wire.channel_state import ChannelCore, ChannelEvent, ChannelEvents, PeerLink
from telefunc.wire.frames import Frame, Tag, decode_frame, encode_frame, encode_json
from telefunc.wire.frames import encode_u32_frame as _u32_frame
from telefunc.wire.serializer import parse
from telefunc.wire.timers import Timers

__all__ = [
    "CLOSE_NORMAL",
    "CLOSE_TRANSIENT",
    "RECONCILE_TIMEOUT",
    "RECONNECT_INITIAL_DELAY",
    "RECONNECT_MAX_DELAY",
    "UPGRADE_FIN_TIMEOUT",
    "ClientChannelCore",
    "ClientMux",
    "ClientSettings",
    "Wire",
]

#: Seconds to wait for RECONCILED before declaring the wire dead.
RECONCILE_TIMEOUT = 10.0
#: Reconnect backoff: ``RECONNECT_INITIAL_DELAY * 2**attempt``, at most ``RECONNECT_MAX_DELAY``.
RECONNECT_INITIAL_DELAY = 0.5
RECONNECT_MAX_DELAY = 5.0
#: Seconds RECONCILED may lag behind FIN during an upgrade before the upgrade is aborted.
UPGRADE_FIN_TIMEOUT = 2.0
#: Close code for a deliberate end of the connection: the server ends its channels at once.
CLOSE_NORMAL = 1000
#: Close code for a dropped wire (dead heartbeat): transient, the server keeps the channels.
CLOSE_TRANSIENT = 4000
#: Sizes of the client's send buffer while no wire is attached (sends beyond it overflow).
SEND_BUFFER_LIMIT = 64 * 1024 * 1024

NOT_ACKNOWLEDGED = "Channel not acknowledged by server after reconnect"
GAVE_UP = "Connection dropped: the server did not come back within reconnect_timeout"
REJECTED = "Server rejected the WebSocket connection"

_PING = encode_frame(Tag.PING)


@dataclass
class ClientSettings:
    """What the client knows of the server's channel settings (seconds, bytes).

    Defaults are telefunc@0.2.23's; each RECONCILED replaces them with the server's values.
    """

    reconnect_timeout: float = 60.0
    idle_timeout: float = 60.0
    ping_interval: float = 5.0
    client_replay_buffer: int = 1024 * 1024
    client_replay_buffer_binary: int = 2 * 1024 * 1024

    def channel_settings(self) -> ChannelSettings:
        """The :class:`ChannelSettings` a new :class:`ClientChannelCore` is built with."""
        return ChannelSettings(
            reconnect_timeout=self.reconnect_timeout,
            ping_interval=self.ping_interval,
            # The core's replay buffer is named for the server; on the client it holds the
            # client's own frames, bounded by the budgets the server advertised.
            server_replay_buffer=self.client_replay_buffer,
            server_replay_buffer_binary=self.client_replay_buffer_binary,
            buffer_limit=SEND_BUFFER_LIMIT,
            buffer_limit_binary=SEND_BUFFER_LIMIT,
        )

    def apply(self, reconciled: dict[str, Any]) -> None:
        """Take the settings fields of a RECONCILED payload (milliseconds on the wire)."""

        def seconds(key: str) -> float | None:
            value = reconciled.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                return float(value) / 1000.0
            return None

        def size(key: str) -> int | None:
            value = reconciled.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
            return None

        if (v := seconds("reconnectTimeout")) is not None:
            self.reconnect_timeout = v
        if (v := seconds("idleTimeout")) is not None:
            self.idle_timeout = v
        if (v := seconds("pingInterval")) is not None:
            self.ping_interval = max(1.0, v)
        if (n := size("clientReplayBuffer")) is not None:
            self.client_replay_buffer = n
        if (n := size("clientReplayBufferBinary")) is not None:
            self.client_replay_buffer_binary = n


class ClientChannelCore(ChannelCore):
    """The wire state of one client channel; see the module docstring for the differences."""

    __slots__ = ("_close_ack_owed", "_pending_ctrl")

    def __init__(self, channel_id: str, settings: ChannelSettings, handler: ChannelEvents) -> None:
        super().__init__(channel_id, settings, handler)
        #: Control frames (BROADCAST_SUB...) asked for while detached, sent on the next attach.
        self._pending_ctrl: list[tuple[int, bytes]] = []
        #: A CLOSE was handled while detached: the channel holds its shutdown until the next
        #: attach has sent the CLOSE_ACK.
        self._close_ack_owed = False

    @property
    def ever_attached(self) -> bool:
        """Whether a RECONCILED confirmed this channel (else RECONCILE marks it ``initial``)."""
        return self._opened

    def bind_timers(self, timers: Timers, now: float) -> None:
        """Publish deadlines to ``timers``; the client has no ``connect_ttl``."""
        super().bind_timers(timers, now)
        self._connect_deadline = None
        self._reschedule()

    def detach(self, peer: PeerLink, now: float, *, permanent: bool) -> None:
        """The wire went away; the connection (not the channel) times the reconnect."""
        super().detach(peer, now, permanent=permanent)
        self._reconnect_deadline = None
        self._reschedule()

    def send_ctrl(self, tag: int, payload: bytes = b"") -> None:
        """Send an unsequenced control frame now, or at the next attach when detached."""
        if self.is_shutdown:
            return
        if self._peer is not None:
            self._peer.write(encode_frame(tag, self._ix, 0, payload))
        else:
            self._pending_ctrl.append((tag, payload))

    def attach(self, peer: PeerLink, ix: int, last_seq: int, now: float) -> bool:
        """Attach as channel ``ix`` (see :meth:`ChannelCore.attach`), first sending the control
        frames asked for while detached, so that a ``subscribe`` made before the first
        RECONCILED precedes the publishes made after it."""
        if not self.is_shutdown:
            for tag, payload in self._pending_ctrl:
                peer.write(encode_frame(tag, ix, 0, payload))
            self._pending_ctrl.clear()
        attached = super().attach(peer, ix, last_seq, now)  # sends an owed CLOSE_ACK
        if self._close_ack_owed:
            self._close_ack_owed = False
            self.release_close(now)
        return attached

    def abort_local(self, error: Exception) -> None:
        """The client aborts: ``CLOSE(ix, 0)`` to the server, then shut down with ``error``."""
        if self.is_closed:
            return
        self._write_ctrl(_u32_frame(Tag.CLOSE, self._ix, 0))
        self._peer = None
        self._shutdown(error, ChannelEvent.ABORT)

    def fail(self, error: Exception) -> None:
        """End the channel with ``error`` without telling the server (it is gone or told us)."""
        if self.is_shutdown:
            return
        self._peer = None
        self._shutdown(error, ChannelEvent.TERMINATE)

    def _receive_data(self, frame: Frame, now: float) -> None:
        if frame.tag in (Tag.PUBLISH, Tag.PUBLISH_BINARY):
            self._handler.handle_other_frame(frame)
            return
        super()._receive_data(frame, now)

    def _receive_ctrl(self, frame: Frame, now: float) -> None:
        if frame.tag == Tag.ABORT:
            try:
                value = parse(frame.text) if frame.payload else None
            except ValueError as exc:
                raise ProtocolError("ABORT: payload is not json-serializer text") from exc
            self.fail(Abort(value, abort_message(value)))
        elif frame.tag == Tag.ERROR:
            self.fail(ChannelRemoteError("Internal Server Error — see server logs"))
        else:
            if frame.tag == Tag.CLOSE and self._peer is None and not self._close_ack_owed:
                # A CLOSE from the old wire of an upgrade is handled while the channels are
                # detached: its CLOSE_ACK can only go out when RECONCILED re-attaches this
                # channel, so it must not shut down (and leave the mux) before then, or the
                # server's close() waits for an ack that never comes.
                self._close_ack_owed = True
                self.hold_close()
            super()._receive_ctrl(frame, now)


class Wire:
    """One wire (socket) of a :class:`ClientMux`; channels write their frames to it."""

    __slots__ = ("_mux", "alive", "first")

    def __init__(self, mux: ClientMux, first: bool = False) -> None:
        self._mux = mux
        #: ``False`` once the mux stopped using this wire (lost or dropped).
        self.alive = True
        #: The first wire of its session (a rejection of it fails the channels at once).
        self.first = first

    def write(self, frame: bytes) -> None:
        """Queue one encoded frame (ignored once the wire is gone)."""
        if self.alive:
            self._mux._write(frame)

    #: The client's queue is not capped: its sends are paced by the server's credit.
    congested = False
    #: Nor ever cut as a slow consumer.
    cut = False

    def hold(self, core: ChannelCore) -> None:
        """Never called (a client wire is never congested)."""


class _Handoff:
    """An upgrade in flight: the old wire still delivers until its FIN."""

    __slots__ = ("fin", "fin_deadline", "new_buffer", "old", "old_buffer", "reconciled")

    def __init__(self, old: Wire) -> None:
        self.old = old
        #: Frames received on the old wire before its FIN (all precede the switch).
        self.old_buffer: list[bytes] = []
        #: Frames received on the new wire (replays, then new traffic), held until the end.
        self.new_buffer: list[bytes] = []
        #: The new wire's RECONCILED, held until FIN: the old wire's frames come first.
        self.reconciled: bytes | None = None
        self.fin = False
        self.fin_deadline: float | None = None


class _ConnTimer:
    """The connection's single entry in the shared :class:`Timers` heap."""

    __slots__ = ("_mux", "_timer_at")

    def __init__(self, mux: ClientMux) -> None:
        self._mux = mux
        self._timer_at: float | None = None

    def handle_timeout(self, now: float) -> None:
        self._mux._on_timer(now)


class ClientMux:
    """The client's logical connection to one server; see the module docstring.

    I/O contract: after any call, send :meth:`data_to_send` on the current socket, close it when
    :meth:`take_close_request` returns a request, start connecting when :attr:`want_connect` is
    set, and call :meth:`handle_timeout` at :meth:`next_deadline`. :attr:`on_output`,
    :attr:`on_wake` and ``timers.on_earlier`` say when one of those may have changed.
    """

    def __init__(self) -> None:
        self.settings = ClientSettings()
        self.timers = Timers()
        #: Live channels by their index on this connection.
        self.channels: dict[int, ClientChannelCore] = {}
        #: The session id from the last RECONCILED (sent back in the next RECONCILE).
        self.session_id: str | None = None
        #: The I/O layer should open a new socket now.
        self.want_connect = False
        #: ``close()`` was called: no more wires.
        self.closed = False
        #: Called when a connect is wanted (and, unless set apart, for the two below).
        self.on_wake: Callable[[], None] | None = None
        #: Called when frames or a close request are queued for the I/O layer.
        self.on_output: Callable[[], None] | None = None
        #: Called after every RECONCILED (an upgrade may have become possible or completed).
        self.on_reconciled: Callable[[], None] | None = None
        #: The ``transports`` the server advertised in its last RECONCILED.
        self.server_transports: tuple[str, ...] = ()
        #: An upgrade was aborted: stay on the current transport for good.
        self.upgrade_disabled = False
        #: Completed upgrades.
        self.upgrades = 0
        self._handoff: _Handoff | None = None
        self._next_ix = 0
        self._wire: Wire | None = None
        self._connecting = False
        self._ever_opened = False
        self._out: list[bytes] = []
        self._close_requests: list[tuple[Wire, int, str]] = []
        self._reconciling = False
        self._reconcile_ixes: set[int] = set()
        self._needs_reconcile = False
        self._reconcile_at: float | None = None
        self._reconcile_deadline: float | None = None
        self._heartbeat = False
        self._ping_at: float | None = None
        self._pong_deadline: float | None = None
        self._attempt = 0
        self._failing_since: float | None = None
        self._connect_at: float | None = None
        self._idle_deadline: float | None = None
        self._timer = _ConnTimer(self)
        self.timers.on_earlier = self._wake
        #: The latest time any entry point was handed.
        self._now = 0.0

    # ── channels ────────────────────────────────────────────────────────

    def open_channel(
        self, channel_id: str, handler: ChannelEvents, now: float
    ) -> ClientChannelCore:
        """Register a channel the server returned; it attaches at the next RECONCILED."""
        self._now = now
        if self.closed:
            raise NetworkError("The client connection is closed")
        ix = self._next_ix
        self._next_ix = (self._next_ix + 1) & 0xFFFF
        core = ClientChannelCore(channel_id, self.settings.channel_settings(), handler)
        core.on_shutdown_hook = lambda c, ix=ix: self._unregister(ix, c)
        core.bind_timers(self.timers, now)
        self.channels[ix] = core
        self._idle_deadline = None
        if self._wire is None:
            if not self._connecting and self._connect_at is None:
                self._want_connect()
        else:
            # Coalesce a burst of registrations into one RECONCILE (a zero-delay timer).
            self._needs_reconcile = True
            self._reconcile_at = now
        self._reschedule()
        return core

    def _unregister(self, ix: int, core: ChannelCore) -> None:
        if self.channels.get(ix) is core:
            del self.channels[ix]
        self._reconcile_ixes.discard(ix)
        if not self.channels and self._wire is not None and self._idle_deadline is None:
            # The shutdown hook carries no clock: the last time we were handed one is close.
            self._idle_deadline = self._now + self.settings.idle_timeout
            self._reschedule()

    # ── output ──────────────────────────────────────────────────────────

    @property
    def wire(self) -> Wire | None:
        """The current wire, if a socket is open."""
        return self._wire

    def _write(self, frame: bytes) -> None:
        self._out.append(frame)
        if len(self._out) == 1:
            self._output()

    def _output(self) -> None:
        if self.on_output is not None:
            self.on_output()
        else:
            self._wake()

    def data_to_send(self) -> list[bytes]:
        """Take every queued frame for the current wire, in order (one WebSocket message each)."""
        out, self._out = self._out, []
        return out

    def take_close_request(self) -> tuple[Wire, int, str] | None:
        """``(wire, code, reason)`` of a socket the I/O layer must close now, if any.

        Code 1000 is a deliberate end (close the socket normally); anything else means the wire is
        considered dead (abort the socket). The mux already stopped using that wire.
        """
        return self._close_requests.pop(0) if self._close_requests else None

    def _wake(self) -> None:
        if self.on_wake is not None:
            self.on_wake()

    def _want_connect(self) -> None:
        self.want_connect = True
        self._wake()

    # ── wire lifecycle ──────────────────────────────────────────────────

    def connecting(self, now: float) -> None:
        """The I/O layer started opening a socket."""
        self._now = now
        self.want_connect = False
        self._connecting = True
        self._connect_at = None

    def connection_made(self, now: float) -> Wire:
        """A socket is open: queue the RECONCILE. Returns the wire token for this socket."""
        self._now = now
        self._connecting = False
        if self._wire is not None:
            self._wire.alive = False
        wire = Wire(self, first=not self._ever_opened)
        self._wire = wire
        self._ever_opened = True
        self._out.clear()
        self._heartbeat = False
        self._ping_at = self._pong_deadline = None
        self._send_reconcile(now)
        self._reschedule()
        return wire

    def connection_failed(self, now: float) -> None:
        """Opening the socket failed."""
        self._now = now
        self._connecting = False
        self._transport_lost(now)

    def connection_rejected(self, wire: Wire, now: float) -> None:
        """The socket of ``wire`` turned out to be refused after :meth:`connection_made` (an SSE
        stream-response, whose POST carries the RECONCILE, answered with an error or failed):
        like :meth:`connection_failed`, so a refused first wire fails the channels at once."""
        self._now = now
        if wire is not self._wire:
            return
        if wire.first:
            self._ever_opened = False
        self._transport_lost(now)

    def connection_lost(self, wire: Wire, now: float) -> None:
        """The socket of ``wire`` closed (stale wires are ignored; losing either wire of an
        upgrade in flight aborts the upgrade)."""
        self._now = now
        handoff = self._handoff
        if wire is not self._wire and (handoff is None or wire is not handoff.old):
            return
        self._transport_lost(now)

    def _drop(self, now: float, reason: str) -> None:
        wire = self._wire
        if wire is None:
            return
        self._close_requests.append((wire, CLOSE_TRANSIENT, reason))
        self._transport_lost(now)
        self._output()

    def _transport_lost(self, now: float) -> None:
        handoff, self._handoff = self._handoff, None
        if handoff is not None:
            # Either wire of an upgrade failed: drop both, reconnect on the old transport.
            handoff.old.alive = False
            self._close_requests.append((handoff.old, CLOSE_TRANSIENT, "upgrade aborted"))
            current = self._wire
            if current is not None and all(r[0] is not current for r in self._close_requests):
                self._close_requests.append((current, CLOSE_TRANSIENT, "upgrade aborted"))
            self.upgrade_disabled = True
            self._output()
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.alive = False
            for core in list(self.channels.values()):
                core.detach(wire, now, permanent=False)
        self._out.clear()
        self._reconciling = False
        self._reconcile_ixes.clear()
        self._reconcile_deadline = self._reconcile_at = None
        self._needs_reconcile = False
        self._heartbeat = False
        self._ping_at = self._pong_deadline = None
        self._idle_deadline = None
        if self.closed:
            return
        if not self._ever_opened:
            # The very first socket was refused: the server does not take channels here.
            self._fail_all(NetworkError(REJECTED))
            self._reschedule()
            return
        if not self.channels:
            self._reset_session()
            self._reschedule()
            return
        if self._failing_since is None:
            self._failing_since = now
        delay = min(RECONNECT_INITIAL_DELAY * 2**self._attempt, RECONNECT_MAX_DELAY)
        self._attempt += 1
        self._connect_at = now + delay
        self._reschedule()

    def _reset_session(self) -> None:
        self.session_id = None
        self._attempt = 0
        self._failing_since = None
        self._connect_at = None
        # Later channels start a new session; a refused first socket of it fails them again.
        self._ever_opened = False

    def _fail_all(self, error: Exception) -> None:
        for core in list(self.channels.values()):
            core.fail(error)
        self.channels.clear()
        self._reset_session()

    def close(self, now: float) -> None:
        """End the connection for good: channels fail, the socket closes with code 1000."""
        self._now = now
        if self.closed:
            return
        self.closed = True
        wire, self._wire = self._wire, None
        handoff, self._handoff = self._handoff, None
        if handoff is not None:
            handoff.old.alive = False
            self._close_requests.append((handoff.old, CLOSE_NORMAL, "client closed"))
        for core in list(self.channels.values()):
            core.fail(ChannelClosedError("The client was closed"))
        self.channels.clear()
        self._out.clear()
        self.want_connect = False
        self._connect_at = self._idle_deadline = self._ping_at = self._pong_deadline = None
        self._reconcile_at = self._reconcile_deadline = None
        if wire is not None:
            wire.alive = False
            self._close_requests.append((wire, CLOSE_NORMAL, "client closed"))
        self._reschedule()
        self._output()
        self._wake()

    # ── input ───────────────────────────────────────────────────────────

    def receive_from(self, wire: Wire, data: bytes | bytearray | memoryview, now: float) -> None:
        """Process one frame received on ``wire`` (the current one, or the old wire of an upgrade
        in flight; frames of other wires are ignored)."""
        self._now = now
        handoff = self._handoff
        if handoff is None:
            if wire is self._wire:
                self.receive(data, now)
            return
        try:
            if wire is self._wire:
                tag = data[0] if len(data) else -1
                if tag == Tag.PONG or (tag == Tag.RECONCILED and handoff.fin):
                    self.receive(data, now)
                elif tag == Tag.RECONCILED:
                    handoff.reconciled = bytes(data)
                else:
                    handoff.new_buffer.append(bytes(data))
            elif wire is handoff.old and not handoff.fin:
                frame = decode_frame(data)
                if frame.tag == Tag.FIN:
                    self._on_handoff_fin(handoff, now)
                elif frame.tag not in (Tag.PING, Tag.PONG, Tag.STREAM_REQUEST_OPEN_ACK):
                    handoff.old_buffer.append(bytes(data))
        except ProtocolError as exc:
            self._drop(now, f"protocol violation: {exc}"[:120])

    @property
    def settled(self) -> bool:
        """A wire is reconciled and idle of reconnect/upgrade work: an upgrade may begin."""
        return (
            not self.closed
            and self._wire is not None
            and self._handoff is None
            and self._heartbeat
            and not self._reconciling
            and not self._needs_reconcile
        )

    @property
    def upgrading(self) -> bool:
        """An upgrade is in flight (between :meth:`begin_upgrade` and FIN + RECONCILED)."""
        return self._handoff is not None

    def begin_upgrade(self, now: float) -> tuple[Wire, list[bytes]]:
        """Move the connection to a new (already open) socket; see the module docstring.

        Returns the new wire (its RECONCILE is queued: send it only once the old wire's upload is
        drained) and the frames still queued for the old wire (send those there first).
        """
        self._now = now
        old = self._wire
        if old is None or not self.settled:
            raise ProtocolError("begin_upgrade: the connection is not settled")
        leftover = self.data_to_send()
        for core in list(self.channels.values()):
            core.detach(old, now, permanent=False)
        old.alive = False
        self._handoff = _Handoff(old)
        wire = Wire(self)
        self._wire = wire
        self._heartbeat = False
        self._ping_at = self._pong_deadline = None
        self._idle_deadline = None
        self._send_reconcile(now)
        self._reschedule()
        return wire, leftover

    def _on_handoff_fin(self, handoff: _Handoff, now: float) -> None:
        handoff.fin = True
        wire = self._wire
        # The channels are detached: what they answer goes out when RECONCILED re-attaches them.
        old, handoff.old_buffer = handoff.old_buffer, []
        for data in old:
            if self._wire is not wire:
                return
            self.receive(data, now)
        reconciled, handoff.reconciled = handoff.reconciled, None
        if reconciled is not None:
            self.receive(reconciled, now)
        elif self._reconciling and self._handoff is handoff:
            handoff.fin_deadline = now + UPGRADE_FIN_TIMEOUT
            self._reschedule()
        self._try_complete_handoff(now)

    def _try_complete_handoff(self, now: float) -> None:
        handoff = self._handoff
        if handoff is None or not handoff.fin or self._reconciling:
            return
        self._handoff = None
        self.upgrades += 1
        self._close_requests.append((handoff.old, CLOSE_NORMAL, "upgraded"))
        self._output()
        wire = self._wire
        for data in handoff.new_buffer:
            if self._wire is not wire:
                return  # a handler callback closed the client, or the wire was dropped
            self.receive(data, now)
        self._reschedule()

    def receive(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Process one frame received on the current wire. Protocol violations drop the wire."""
        self._now = now
        if self._wire is None:
            return
        try:
            frame = decode_frame(data)
            tag = frame.tag
            if tag == Tag.PONG:
                if self._heartbeat:
                    self._pong_deadline = now + 2 * self.settings.ping_interval
                    self._reschedule()
                return
            if tag == Tag.RECONCILED:
                self._on_reconciled(frame.json(), now)
                return
            if tag in (Tag.PING, Tag.FIN, Tag.STREAM_REQUEST_OPEN_ACK):
                return  # not used on a WebSocket wire
            if tag == Tag.RECONCILE or tag in _CLIENT_ONLY_TAGS:
                raise ProtocolError(f"server sent client-only tag 0x{tag:02x}")
            core = self.channels.get(frame.ix)
            if core is not None:  # frames of a channel we already closed may still arrive
                core.receive(frame, now)
        except ProtocolError as exc:
            self._drop(now, f"protocol violation: {exc}"[:120])

    def _send_reconcile(self, now: float) -> None:
        wire = self._wire
        assert wire is not None
        entries: list[dict[str, Any]] = []
        for ix, core in self.channels.items():
            entry: dict[str, Any] = {"id": core.id, "ix": ix, "lastSeq": core.last_peer_seq}
            if not core.ever_attached:
                entry["initial"] = True
            entries.append(entry)
        payload: dict[str, Any] = {"open": entries}
        if self.session_id is not None:
            payload["sessionId"] = self.session_id
            if self._handoff is not None and not self._handoff.fin:
                payload["upgrade"] = True
        self._reconcile_ixes = set(self.channels)
        self._reconciling = True
        self._needs_reconcile = False
        self._reconcile_at = None
        self._reconcile_deadline = now + RECONCILE_TIMEOUT
        wire.write(encode_json(Tag.RECONCILE, payload))

    def _on_reconciled(self, payload: Any, now: float) -> None:
        wire = self._wire
        assert wire is not None
        if not isinstance(payload, dict) or not isinstance(payload.get("sessionId"), str):
            raise ProtocolError("RECONCILED: malformed payload")
        listed: dict[int, int] = {}
        for entry in payload.get("open", []):
            if not isinstance(entry, dict):
                raise ProtocolError("RECONCILED: malformed entry")
            ix, last_seq = entry.get("ix"), entry.get("lastSeq", 0)
            if type(ix) is not int or type(last_seq) is not int:
                raise ProtocolError("RECONCILED: malformed entry")
            listed[ix] = last_seq
        self.session_id = payload["sessionId"]
        self.settings.apply(payload)
        transports = payload.get("transports")
        if isinstance(transports, list):
            self.server_transports = tuple(t for t in transports if isinstance(t, str))
        asked, self._reconcile_ixes = self._reconcile_ixes, set()
        self._reconciling = False
        self._reconcile_deadline = None
        self._attempt = 0
        self._failing_since = None
        for ix in sorted(asked):
            core = self.channels.get(ix)
            if core is None:
                continue
            if ix not in listed:
                core.fail(NetworkError(NOT_ACKNOWLEDGED))
                continue
            if core.peer is not wire:
                core.attach(wire, ix, listed[ix], now)
            if self._wire is not wire:
                return  # a handler callback closed the client
        if not self._heartbeat:
            self._heartbeat = True
            wire.write(_PING)
            self._ping_at = now + self.settings.ping_interval
            self._pong_deadline = now + 2 * self.settings.ping_interval
        if any(ix not in asked for ix in self.channels):
            self._needs_reconcile = True
            self._reconcile_at = now
        if not self.channels:
            self._idle_deadline = now + self.settings.idle_timeout
        self._reschedule()
        self._try_complete_handoff(now)
        if self.on_reconciled is not None:
            self.on_reconciled()

    # ── timers ──────────────────────────────────────────────────────────

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` should run next (channels' deadlines included)."""
        return self.timers.next_deadline()

    def handle_timeout(self, now: float) -> None:
        """Fire every deadline due at ``now``."""
        self._now = now
        self.timers.run_due(now)

    def _deadline(self) -> float | None:
        candidates: list[float | None] = [self._connect_at]
        if self._failing_since is not None:
            candidates.append(self._failing_since + self.settings.reconnect_timeout)
        if self._handoff is not None:
            candidates.append(self._handoff.fin_deadline)
        if self._wire is not None:
            if self._needs_reconcile and not self._reconciling:
                candidates.append(self._reconcile_at)
            if self._reconciling:
                candidates.append(self._reconcile_deadline)
            elif self._heartbeat:
                candidates.append(self._pong_deadline)
            if self._heartbeat:
                candidates.append(self._ping_at)
            if not self.channels:
                candidates.append(self._idle_deadline)
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    def _reschedule(self) -> None:
        self.timers.schedule(self._timer, None if self.closed else self._deadline())

    def _on_timer(self, now: float) -> None:
        if self.closed:
            return
        wire = self._wire
        if wire is None:
            self._on_timer_unwired(now)
            return
        handoff = self._handoff
        if handoff is not None and handoff.fin_deadline is not None and now >= handoff.fin_deadline:
            self._drop(now, "upgrade: FIN without RECONCILED")
            return
        if self._reconciling:
            if self._reconcile_deadline is not None and now >= self._reconcile_deadline:
                self._drop(now, "no RECONCILED in time")
                return
        elif self._heartbeat and self._pong_deadline is not None and now >= self._pong_deadline:
            self._drop(now, "no PONG in time")
            return
        if self._heartbeat and self._ping_at is not None and now >= self._ping_at:
            wire.write(_PING)
            self._ping_at = now + self.settings.ping_interval
        if self._needs_reconcile and not self._reconciling:
            self._send_reconcile(now)
        idle = self._idle_deadline
        if not self.channels and idle is not None and now >= idle:
            self._close_idle(now)
            return
        self._reschedule()

    def _on_timer_unwired(self, now: float) -> None:
        failing_since = self._failing_since
        if failing_since is not None and now >= failing_since + self.settings.reconnect_timeout:
            self._fail_all(NetworkError(GAVE_UP))
            self.want_connect = False
        elif self._connect_at is not None and now >= self._connect_at:
            self._connect_at = None
            if self.channels and not self._connecting:
                self._want_connect()
        self._reschedule()

    def _close_idle(self, now: float) -> None:
        wire, self._wire = self._wire, None
        assert wire is not None
        wire.alive = False
        self._out.clear()
        self._close_requests.append((wire, CLOSE_NORMAL, "idle"))
        self._heartbeat = False
        self._ping_at = self._pong_deadline = self._idle_deadline = None
        self._reconciling = False
        self._reset_session()
        self._reschedule()
        self._output()


#: Tags only a client sends; receiving one from the server is a protocol violation.
_CLIENT_ONLY_TAGS = frozenset({Tag.PUBLISH_ACK_REQ, Tag.PUBLISH_BINARY_ACK_REQ})
