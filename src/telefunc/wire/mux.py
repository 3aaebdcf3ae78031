"""The server side of the channel multiplexer, sans-I/O: sessions, channels and wires.

One :class:`ServerMux` per app holds every registered channel, the sessions a client's RECONCILE
refers to, and one deadline heap. A :class:`ServerConnection` is one wire (WebSocket or SSE
duplex): the I/O layer feeds it frames with :meth:`~ServerConnection.receive`, sends what
:meth:`~ServerConnection.data_to_send` returns, closes the socket when
:attr:`~ServerConnection.close_request` is set and reports the end with
:meth:`~ServerConnection.connection_lost`. Reconcile, heartbeat, ownership, upgrade:
docs/protocol.md §7.3-§7.7; the bounds on client input and on output: docs/protocol.md §12.
A protocol violation closes only the wire it arrived on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

from telefunc.config import ChannelSettings, LimitsSettings
from telefunc.errors import IllegalTransitionError, ProtocolError
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.frames import (
    HEADER,
    TAG_ABORT,
    TAG_BINARY,
    TAG_ERROR,
    TAG_FIN,
    TAG_PING,
    TAG_PONG,
    TAG_PUBLISH,
    TAG_PUBLISH_BINARY,
    TAG_RECONCILE,
    TAG_RECONCILED,
    TAG_STREAM_REQUEST_OPEN_ACK,
    TAG_TEXT,
    Frame,
    decode_frame,
    encode_frame,
    encode_json,
    unpack_header,
)
from telefunc.wire.ids import random_id
from telefunc.wire.timers import Timers

if TYPE_CHECKING:
    from telefunc.wire.channel_state import ChannelCore as _HeldCore


__all__ = [
    "CLIENT_FORBIDDEN_TAGS",
    "CLOSE_PING_TIMEOUT",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_REPLACED",
    "CLOSE_SLOW_CONSUMER",
    "CONNECTION_TRANSITIONS",
    "HARD_LIMIT_FACTOR",
    "SLOW_CONSUMER_REASON",
    "ConnectionEvent",
    "ConnectionPhase",
    "DirectWriter",
    "MuxStats",
    "ServerConnection",
    "ServerMux",
]

#: Tags only the server may send; receiving one from a client is a protocol violation.
CLIENT_FORBIDDEN_TAGS = frozenset(
    {
        TAG_PONG,
        TAG_FIN,
        TAG_RECONCILED,
        TAG_STREAM_REQUEST_OPEN_ACK,
        TAG_PUBLISH,
        TAG_PUBLISH_BINARY,
        TAG_ABORT,
        TAG_ERROR,
    }
)
#: WebSocket close code for a protocol violation.
CLOSE_PROTOCOL_ERROR = 1002
#: Close code when no PING arrived within the ping deadline (transient for the channels).
CLOSE_PING_TIMEOUT = 4000
#: Close code of a wire replaced by a newer one with the same ``connId`` (transient).
CLOSE_REPLACED = 4001
#: Close code of a wire whose client does not read what is sent to it fast enough: its queued
#: output passed ``HARD_LIMIT_FACTOR`` x ``config.limits.max_connection_buffer`` (transient for
#: its channels; a broadcast subscription that fell behind ends with ``NetworkError``).
CLOSE_SLOW_CONSUMER = 4002
#: The close reason sent with :data:`CLOSE_SLOW_CONSUMER`.
SLOW_CONSUMER_REASON = "slow consumer: outgoing buffer over config.limits.max_connection_buffer"
#: Frames that cannot wait may fill a connection's queue up to this many times its cap.
HARD_LIMIT_FACTOR = 2


class ConnectionPhase(Enum):
    """Where a :class:`ServerConnection` is in its life."""

    #: No RECONCILE yet: only PING and RECONCILE are allowed.
    AWAITING_RECONCILE = "awaiting_reconcile"
    #: A RECONCILE is being applied or waits for ``initial`` channels: frames are queued.
    RECONCILING = "reconciling"
    #: Reconciled: frames are routed to the session's channels by ``ix``.
    OPEN = "open"
    #: Terminal (:meth:`ServerConnection.connection_lost`): nothing is processed any more.
    CLOSED = "closed"


class ConnectionEvent(Enum):
    """What moves a :class:`ServerConnection` from one :class:`ConnectionPhase` to the next."""

    #: A RECONCILE frame is applied (the first one, or a later one on the same wire).
    RECONCILE = "reconcile"
    #: The RECONCILE finished: a new session id is issued (RECONCILED may still be held back).
    RECONCILED = "reconciled"
    #: The wire is gone (client close, ping timeout, violation, replaced, slow consumer).
    LOST = "lost"


_AWAITING_RECONCILE: Final = ConnectionPhase.AWAITING_RECONCILE
_RECONCILING: Final = ConnectionPhase.RECONCILING
_CONN_OPEN: Final = ConnectionPhase.OPEN
#: Tags of the frames :meth:`ServerConnection.receive` routes without decoding a Frame.
_MESSAGE_TAGS: Final = frozenset({int(TAG_TEXT), int(TAG_BINARY)})
_CONN_CLOSED: Final = ConnectionPhase.CLOSED

#: Every legal move of a :class:`ServerConnection`: ``(phase, event) -> next phase``. Consulted on
#: lifecycle events only; a pair not listed raises :class:`IllegalTransitionError` (a bug: frames
#: that arrive in the wrong phase are queued or refused before they get here).
CONNECTION_TRANSITIONS: Final[dict[tuple[ConnectionPhase, ConnectionEvent], ConnectionPhase]] = {
    (_AWAITING_RECONCILE, ConnectionEvent.RECONCILE): _RECONCILING,
    (_AWAITING_RECONCILE, ConnectionEvent.LOST): _CONN_CLOSED,
    (_RECONCILING, ConnectionEvent.RECONCILED): _CONN_OPEN,
    (_RECONCILING, ConnectionEvent.LOST): _CONN_CLOSED,
    (_CONN_OPEN, ConnectionEvent.RECONCILE): _RECONCILING,
    (_CONN_OPEN, ConnectionEvent.LOST): _CONN_CLOSED,
}


class DirectWriter(Protocol):
    """What :attr:`ServerConnection.direct` refers to (see there)."""

    def write_through(self, frame: bytes) -> bool:
        """Put ``frame`` on the wire now and return ``True``, or return ``False``."""


@dataclass(slots=True)
class MuxStats:
    """Counters of one :class:`ServerMux` (observability)."""

    #: Connections closed with :data:`CLOSE_SLOW_CONSUMER`.
    slow_consumer_drops: int = 0


_PONG = encode_frame(TAG_PONG)
_FIN = encode_frame(TAG_FIN)


class ServerMux:
    """Registry of channels and sessions shared by every connection of one server."""

    __slots__ = (
        "_alias_of",
        "_conn_waiters",
        "_limits",
        "_session_of",
        "_settings",
        "_waiters",
        "channel_owners",
        "channels",
        "connections_by_conn_id",
        "on_client_error",
        "on_slow_consumer",
        "opened",
        "reconnects",
        "refused_attaches",
        "replayed_frames",
        "session_aliases",
        "session_lineages",
        "session_owners",
        "sessions",
        "stats",
        "timers",
        "upgrades",
    )

    def __init__(
        self,
        settings: Callable[[], ChannelSettings] | ChannelSettings,
        limits: Callable[[], LimitsSettings] | LimitsSettings | None = None,
    ) -> None:
        self._settings = settings
        self._limits = limits if limits is not None else LimitsSettings()
        #: channel id -> ``(lineage, firm)`` of the session that attached it first (its owner);
        #: ``firm`` once that client proved it received the RECONCILED (see ``_attach``).
        self.channel_owners: dict[str, tuple[str, bool]] = {}
        #: session id -> its lineage, for every session in :attr:`sessions`.
        self.session_lineages: dict[str, str] = {}
        #: The id a client last knew -> the session it rotated into, while the client has not
        #: confirmed the new id (its RECONCILED may have been lost with the wire); one per session.
        self.session_aliases: dict[str, str] = {}
        self._alias_of: dict[str, str] = {}
        #: channel id -> the one session in :attr:`sessions` that holds it.
        self._session_of: dict[str, str] = {}
        #: RECONCILE entries refused because the channel belongs to another client.
        self.refused_attaches = 0
        #: ``(kind, message)`` of client misbehaviour, for the I/O layer's rate-limited log.
        self.on_client_error: Callable[[str, str], None] | None = None
        self.channels: dict[str, ChannelCore] = {}
        self.sessions: dict[str, dict[int, ChannelCore]] = {}
        self.timers = Timers()
        self._waiters: dict[str, list[ServerConnection]] = {}
        #: Live wires with a client ``connId`` (SSE), by that id.
        self.connections_by_conn_id: dict[str, ServerConnection] = {}
        self._conn_waiters: dict[str, list[Callable[[ServerConnection], None]]] = {}
        #: session id -> the live wire that reconciled it (where FIN goes on an upgrade).
        self.session_owners: dict[str, ServerConnection] = {}
        #: Wires opened so far, by transport name (observability, tests).
        self.opened: dict[str, int] = {}
        #: Completed upgrades (FIN sent on the old wire).
        self.upgrades = 0
        #: RECONCILEs on a new wire continuing a known session (a client came back).
        self.reconnects = 0
        #: Frames replayed to clients on attach (``seq > lastSeq`` from the replay buffer).
        self.replayed_frames = 0
        #: Counters (slow-consumer drops).
        self.stats = MuxStats()
        #: Called with a connection just cut as a slow consumer (the I/O layer logs it).
        self.on_slow_consumer: Callable[[ServerConnection], None] | None = None

    @property
    def settings(self) -> ChannelSettings:
        """The current channel settings."""
        s = self._settings
        return s if isinstance(s, ChannelSettings) else s()

    @property
    def limits(self) -> LimitsSettings:
        """The current bounds on client input (``config.limits``)."""
        limits = self._limits
        return limits if isinstance(limits, LimitsSettings) else limits()

    def register(self, core: ChannelCore, now: float) -> None:
        """Make a channel addressable by RECONCILE and start its ``connect_ttl``."""
        if core.is_shutdown or core.id in self.channels:
            return
        self.channels[core.id] = core
        core.on_shutdown_hook = self._unregister
        core.bind_timers(self.timers, now)
        for conn in self._waiters.pop(core.id, ()):
            conn._channel_registered(core, now)

    def _unregister(self, core: ChannelCore) -> None:
        if self.channels.get(core.id) is core:
            del self.channels[core.id]
            self.channel_owners.pop(core.id, None)
        self._take_from_session(core)

    def _take_from_session(self, core: ChannelCore) -> None:
        """Remove ``core`` from the session holding it; a session left empty is forgotten."""
        session_id = self._session_of.pop(core.id, None)
        session = self.sessions.get(session_id) if session_id is not None else None
        if session_id is None or session is None:
            return
        for ix, c in list(session.items()):
            if c is core:
                del session[ix]
        if not session:
            self.drop_session(session_id)

    def drop_session(self, session_id: str) -> dict[int, ChannelCore]:
        """Forget a session (its lineage and alias); returns its channels."""
        self.session_lineages.pop(session_id, None)
        alias = self._alias_of.pop(session_id, None)
        if alias is not None:
            self.session_aliases.pop(alias, None)
        session = self.sessions.pop(session_id, None) or {}
        for core in session.values():
            if self._session_of.get(core.id) == session_id:
                del self._session_of[core.id]
        return session

    def _add_session(
        self, session_id: str, session: dict[int, ChannelCore], lineage: str, known_as: str | None
    ) -> None:
        for core in session.values():
            self._take_from_session(core)
        self.sessions[session_id] = session
        for core in session.values():
            self._session_of[core.id] = session_id
        self.session_lineages[session_id] = lineage
        if known_as is not None:
            self.session_aliases[known_as] = session_id
            self._alias_of[session_id] = known_as

    def lineage_of(self, session_id: str) -> str | None:
        """The lineage of a live session id (``None``: unknown, expired or rotated away).

        A *lineage* is the identity a client keeps across session-id rotations and the
        SSE-to-WebSocket upgrade: whoever presents the current session id continues it, and
        the channels its sessions attached first belong to it.
        """
        lineage = self.session_lineages.get(session_id)
        if lineage is None:
            holder = self.session_owners.get(session_id)
            if holder is not None and not holder.closed:
                lineage = holder.lineage
        return lineage

    def report(self, kind: str, message: str) -> None:
        """Hand one client misbehaviour to the I/O layer's log (rate-limited there)."""
        if self.on_client_error is not None:
            self.on_client_error(kind, message)

    def open_connection(
        self, conn_id: str | None = None, *, transport: str = "ws", now: float = 0.0
    ) -> ServerConnection:
        """A new wire (an accepted WebSocket, an SSE stream-response POST).

        ``conn_id`` is the SSE client's stable connection id: an older live wire with the same id
        is closed (transiently, at ``now``) and replaced, and POSTs waiting for that id get the
        new wire.
        """
        conn = ServerConnection(self, conn_id=conn_id, transport=transport)
        self.opened[transport] = self.opened.get(transport, 0) + 1
        if conn_id is not None:
            old = self.connections_by_conn_id.get(conn_id)
            if old is not None:
                old._request_close(CLOSE_REPLACED, "replaced by a newer connection")
                old.connection_lost(now, permanent=False)
            self.connections_by_conn_id[conn_id] = conn
            for callback in self._conn_waiters.pop(conn_id, ()):
                callback(conn)
        return conn

    def connection_for(self, conn_id: str) -> ServerConnection | None:
        """The live wire opened with ``conn_id``, if any."""
        return self.connections_by_conn_id.get(conn_id)

    def wait_for_conn_id(
        self, conn_id: str, callback: Callable[[ServerConnection], None]
    ) -> Callable[[], None]:
        """Call ``callback(conn)`` when a wire with ``conn_id`` opens; returns a canceller.

        The caller bounds the wait (``connect_ttl``) and cancels on expiry.
        """
        waiters = self._conn_waiters.setdefault(conn_id, [])
        waiters.append(callback)

        def cancel() -> None:
            current = self._conn_waiters.get(conn_id)
            if current is not None and callback in current:
                current.remove(callback)
                if not current:
                    del self._conn_waiters[conn_id]

        return cancel

    def next_deadline(self) -> float | None:
        """The earliest deadline of any channel or connection."""
        return self.timers.next_deadline()

    def handle_timeout(self, now: float) -> None:
        """Fire every deadline due at ``now``."""
        self.timers.run_due(now)


class _PendingReconcile:
    """A RECONCILE waiting for ``initial`` channels to be registered."""

    __slots__ = (
        "confirmed",
        "deadline",
        "entries",
        "lineage",
        "presented",
        "prev_session",
        "upgrade",
        "waiting",
    )

    def __init__(
        self,
        presented: str | None,
        prev_session: str | None,
        deadline: float,
        upgrade: bool,
        lineage: str,
    ) -> None:
        #: The ``sessionId`` the client sent, and the live session it stands for.
        self.presented = presented
        self.prev_session = prev_session
        #: Who is reconciling: the lineage of ``prev_session``, else of the wire, else new.
        self.lineage = lineage
        #: The client presented a live session id of its lineage (it got that RECONCILED).
        self.confirmed = False
        self.deadline = deadline
        #: The client moves this session over from another wire (SSE -> WebSocket).
        self.upgrade = upgrade
        self.entries: list[tuple[int, ChannelCore]] = []
        #: channel id -> (ix, lastSeq)
        self.waiting: dict[str, tuple[int, int]] = {}


class ServerConnection:
    """One client wire; its life is a :class:`ConnectionPhase` (:data:`CONNECTION_TRANSITIONS`)."""

    __slots__ = (
        "_deferred",
        "_held",
        "_holds",
        "_out",
        "_out_bytes",
        "_pending",
        "_phase",
        "_ping_at",
        "_ping_deadline",
        "_ping_tokens",
        "_queued",
        "_queued_bytes",
        "_timer_at",
        "close_request",
        "conn_id",
        "cut",
        "direct",
        "io",
        "io_buffered",
        "lineage",
        "max_buffer",
        "mux",
        "on_output",
        "session_id",
        "transport",
        "upgraded",
    )

    def __init__(
        self, mux: ServerMux, *, conn_id: str | None = None, transport: str = "ws"
    ) -> None:
        self.mux = mux
        #: The SSE client's stable connection id (``None`` for WebSockets).
        self.conn_id = conn_id
        #: ``"ws"`` or ``"sse"``: which transport carries this wire.
        self.transport = transport
        #: Set once a RECONCILE with ``upgrade: true`` moved a session onto this wire.
        self.upgraded = False
        #: Free for the I/O layer (per-wire state of the transport).
        self.io: Any = None
        self._holds = 0
        self._deferred: tuple[str, dict[int, ChannelCore], ServerConnection | None] | None = None
        #: The current session id (set by each completed reconcile).
        self.session_id: str | None = None
        #: ``(code, reason)`` once the server wants this wire closed.
        self.close_request: tuple[int, str] | None = None
        self._phase = _AWAITING_RECONCILE
        #: Called whenever output becomes available or a close is requested.
        self.on_output: Callable[[], None] | None = None
        #: Set by an I/O layer that can often put a frame on the wire at once: each frame
        #: written while nothing is queued or held and no close is requested is offered to its
        #: ``write_through(frame)``, which returns whether it took the frame (else the frame is
        #: queued and :attr:`on_output` called as usual).
        self.direct: DirectWriter | None = None
        # A list, not a deque: an idle connection's empty deque would cost ~550 bytes more.
        self._out: list[bytes] = []
        #: Bytes in ``_out``.
        self._out_bytes = 0
        #: Cap on queued output (``max_connection_buffer`` of the mux's limits when it opened).
        self.max_buffer = mux.limits.max_connection_buffer
        #: Bytes the transport took but has not flushed yet, if the I/O layer can tell.
        self.io_buffered: Callable[[], int] | None = None
        #: Cut as a slow consumer: output is dropped until the I/O layer ends the wire.
        self.cut = False
        #: Channels holding sends until the queue drains (an ordered set).
        self._held: dict[_HeldCore, None] | None = None
        #: The RECONCILE being applied (RECONCILING only).
        self._pending: _PendingReconcile | None = None
        #: Frames received while a RECONCILE waits (``None`` when there are none).
        self._queued: list[Frame] | None = None
        self._queued_bytes = 0
        #: The lineage of this wire's current session (``None`` before the first reconcile).
        self.lineage: str | None = None
        #: PING token bucket: tokens left, and when they were counted (``None``: full).
        self._ping_tokens = 0.0
        self._ping_at: float | None = None
        self._ping_deadline: float | None = None
        self._timer_at: float | None = None

    # ── phase ───────────────────────────────────────────────────────────

    @property
    def phase(self) -> ConnectionPhase:
        """Where the wire is in its life (see :data:`CONNECTION_TRANSITIONS`)."""
        return self._phase

    @property
    def closed(self) -> bool:
        """Set by :meth:`connection_lost`; nothing is processed afterwards."""
        return self._phase is _CONN_CLOSED

    def _transition(self, event: ConnectionEvent) -> ConnectionPhase:
        """Move to the phase the table gives for ``event``; returns the phase left."""
        phase = self._phase
        try:
            self._phase = CONNECTION_TRANSITIONS[phase, event]
        except KeyError:
            raise IllegalTransitionError(
                f"connection: {event.name} is not allowed in phase {phase.name}"
            ) from None
        return phase

    # ── output ──────────────────────────────────────────────────────────

    def write(self, frame: bytes) -> None:
        """Queue one encoded frame (channels attached to this wire call this).

        Past ``HARD_LIMIT_FACTOR`` x :attr:`max_buffer` the connection is cut as a slow consumer.
        """
        if self._phase is _CONN_CLOSED or self.cut:
            return
        if not self._out_bytes:  # nothing queued (frames are never empty); the list stays untouched
            direct = self.direct
            if (
                direct is not None
                and not self._held
                and self.close_request is None
                and direct.write_through(frame)
            ):
                return
        out = self._out
        out.append(frame)
        self._out_bytes += len(frame)
        if self._out_bytes > self.max_buffer * HARD_LIMIT_FACTOR:
            self.cut_slow_consumer()
            return
        if len(out) == 1 and self.on_output is not None:
            self.on_output()

    @property
    def buffered(self) -> int:
        """Bytes queued towards the client and not flushed yet (queue plus transport)."""
        io = self.io_buffered
        return self._out_bytes + (io() if io is not None else 0)

    @property
    def output_idle(self) -> bool:
        """Nothing queued and no channel holding sends: :meth:`drained` would do nothing."""
        return not self._out and not self._held

    @property
    def congested(self) -> bool:
        """At the cap: channels hold their data sends until :meth:`drained`."""
        io = self.io_buffered  # asked before every data send: :attr:`buffered` inlined
        return self._out_bytes + (io() if io is not None else 0) >= self.max_buffer

    def would_overflow(self, nbytes: int) -> bool:
        """Whether queueing ``nbytes`` more would pass the hard limit (a slow consumer)."""
        return self.buffered + nbytes > self.max_buffer * HARD_LIMIT_FACTOR

    def hold(self, core: _HeldCore) -> None:
        """``core`` holds sends because of congestion: :meth:`drained` lets it go on."""
        if self._phase is _CONN_CLOSED or self.cut:
            return
        if self._held is None:
            self._held = {}
        self._held[core] = None
        if not self._out and self.on_output is not None:
            self.on_output()  # an idle I/O layer would never call drained()

    def data_to_send(self, max_bytes: int | None = None) -> list[bytes]:
        """Take the queued frames in order (each is one WebSocket binary message).

        With ``max_bytes`` only a batch of about that size (at least one frame) is taken, so the
        bytes in the I/O layer's hands stay small; the rest stays counted in :attr:`buffered`.
        """
        out = self._out
        if max_bytes is None or self._out_bytes <= max_bytes:
            self._out = []
            self._out_bytes = 0
            return out
        taken = n = 0
        while taken < max_bytes:
            taken += len(out[n])
            n += 1
        batch = out[:n]
        del out[:n]
        self._out_bytes -= taken
        return batch

    def drained(self, now: float) -> None:
        """The I/O layer flushed output: channels holding sends go on while there is room."""
        held = self._held
        while held and self._phase is not _CONN_CLOSED and not self.cut and not self.congested:
            core = next(iter(held))
            if not core.flush_held(self, now):
                return
            held.pop(core, None)

    def cut_slow_consumer(self) -> None:
        """Drop the queue and ask the I/O layer to close with :data:`CLOSE_SLOW_CONSUMER`.

        The I/O layer then ends the wire with :meth:`connection_lost` (transient).
        """
        if self.cut or self._phase is _CONN_CLOSED:
            return
        self.cut = True
        self._out.clear()
        self._out_bytes = 0
        self._held = None
        self.mux.stats.slow_consumer_drops += 1
        if self.mux.on_slow_consumer is not None:
            self.mux.on_slow_consumer(self)
        self._request_close(CLOSE_SLOW_CONSUMER, SLOW_CONSUMER_REASON)

    # ── input ───────────────────────────────────────────────────────────

    def start(self, now: float) -> None:
        """The wire is open: start the ping deadline."""
        self._reset_ping(now)

    def receive(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Process one received frame. Protocol violations close this connection."""
        phase = self._phase
        if phase is _CONN_CLOSED:
            return
        try:
            if phase is _CONN_OPEN and len(data) >= HEADER and data[0] in _MESSAGE_TAGS:
                # Most frames: a channel message, routed without a Frame or the checks below
                # (a known tag without a minimum payload, which a client may send).
                tag, ix, seq = unpack_header(data)
                self._to_channel(ix, tag, seq, bytes(data[HEADER:]), now, None)
                return
            frame = decode_frame(data)
            if frame.tag == TAG_PING:
                self._take_ping_token(now)
                self._reset_ping(now)
                self.write(_PONG)
                return
            if phase is _RECONCILING:
                self._queue(frame)
                return
            self._dispatch(frame, now)
        except ProtocolError as exc:
            self.protocol_violation(str(exc), now)

    def _take_ping_token(self, now: float) -> None:
        """PINGs are answered at ``max_pings_per_second`` (burst: twice that); more violate.

        A PONG is output the client may never read, and every PING is work on the event loop.
        """
        rate = self.mux.limits.max_pings_per_second
        if rate <= 0:
            return
        burst = max(2.0, 2.0 * rate)
        last = self._ping_at
        tokens = burst if last is None else min(burst, self._ping_tokens + (now - last) * rate)
        self._ping_at = now
        if tokens < 1.0:
            raise ProtocolError(f"more than {rate:g} PINGs per second")
        self._ping_tokens = tokens - 1.0

    def _queue(self, frame: Frame) -> None:
        """Hold a frame while a RECONCILE waits, within ``max_pending_frames/bytes``."""
        limits = self.mux.limits
        queued = self._queued
        if queued is None:
            queued = self._queued = []
        size = HEADER + len(frame.payload)
        if (
            len(queued) >= limits.max_pending_frames
            or self._queued_bytes + size > limits.max_pending_bytes
        ):
            raise ProtocolError(
                f"more than {limits.max_pending_frames} frames or "
                f"{limits.max_pending_bytes} bytes sent while RECONCILE waits"
            )
        queued.append(frame)
        self._queued_bytes += size

    def _dispatch(self, frame: Frame, now: float) -> None:
        tag = frame.tag
        if tag == TAG_RECONCILE:
            self._reconcile(frame.json(), now)
            return
        if self._phase is _AWAITING_RECONCILE:
            raise ProtocolError(f"frame 0x{tag:02x} before RECONCILE")
        if tag in CLIENT_FORBIDDEN_TAGS:
            raise ProtocolError(f"client sent server-only tag 0x{tag:02x}")
        if 0x10 <= tag < 0x30:
            self._to_channel(frame.ix, tag, frame.seq, frame.payload, now, frame)
            return
        core = self._channel(frame.ix)
        if core is not None:
            core.receive(frame, now)

    def _channel(self, ix: int) -> ChannelCore | None:
        """Channel ``ix`` of this wire's session (frames for other channels are ignored)."""
        session_id = self.session_id
        session = self.mux.sessions.get(session_id) if session_id else None
        return session.get(ix) if session else None

    def _to_channel(
        self, ix: int, tag: int, seq: int, payload: bytes, now: float, frame: Frame | None
    ) -> None:
        """A data frame for channel ``ix`` of this wire's session; enforces the inbound bound."""
        core = self._channel(ix)
        # Only a backlog past one window (what ``receive_data`` returns) can be past the bound.
        if core is not None and core.receive_data(tag, seq, payload, now, frame):
            limits = self.mux.limits
            overrun = core.inbound_overrun(
                max(1, limits.max_window_overrun), limits.max_message_size
            )
            if overrun is not None:
                raise ProtocolError(overrun)

    # ── reconcile ───────────────────────────────────────────────────────

    def _reconcile(self, payload: Any, now: float) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("open", []), list):
            raise ProtocolError("RECONCILE: malformed payload")
        prev = payload.get("sessionId")
        if prev is not None and not isinstance(prev, str):
            raise ProtocolError("RECONCILE: malformed sessionId")
        entries = payload.get("open", [])
        limits = self.mux.limits
        if len(entries) > limits.max_reconcile_entries:
            raise ProtocolError(
                f"RECONCILE: {len(entries)} entries, more than {limits.max_reconcile_entries}"
            )
        self._reset_ping(now)
        upgrade = payload.get("upgrade") is True and prev is not None
        # An id the client knew before a RECONCILED it never got stands for its successor.
        resolved = self.mux.session_aliases.get(prev, prev) if prev is not None else None
        known = self.mux.lineage_of(resolved) if resolved is not None else None
        lineage = known or self.lineage or random_id()
        deadline = now + self.mux.settings.connect_ttl
        pending = _PendingReconcile(prev, resolved, deadline, upgrade, lineage)
        pending.confirmed = known is not None
        if known is not None and self._phase is _AWAITING_RECONCILE and not upgrade:
            self.mux.reconnects += 1
        # Set first: a violation below must still detach what this RECONCILE attached.
        self._pending = pending
        self._transition(ConnectionEvent.RECONCILE)
        for entry in entries:
            if not isinstance(entry, dict):
                raise ProtocolError("RECONCILE: malformed entry")
            cid, ix, last_seq = entry.get("id"), entry.get("ix"), entry.get("lastSeq", 0)
            if not isinstance(cid, str) or type(ix) is not int or type(last_seq) is not int:
                raise ProtocolError("RECONCILE: malformed entry")
            if not 0 <= ix <= 0xFFFF or last_seq < 0:
                raise ProtocolError("RECONCILE: entry out of range")
            core = self.mux.channels.get(cid)
            if core is not None:
                self._attach(pending, core, ix, last_seq, now, initial=entry.get("initial") is True)
            elif entry.get("initial") and cid not in pending.waiting:
                pending.waiting[cid] = (ix, last_seq)
                self.mux._waiters.setdefault(cid, []).append(self)
            if len(pending.entries) + len(pending.waiting) > limits.max_channels_per_session:
                raise ProtocolError(
                    f"RECONCILE: more than {limits.max_channels_per_session} channels"
                )
        if pending.waiting:
            self.mux.timers.schedule(self, self._next_deadline())
            return
        self._finish_reconcile(now)

    def _channel_registered(self, core: ChannelCore, now: float) -> None:
        pending = self._pending
        if self._phase is not _RECONCILING or pending is None or core.id not in pending.waiting:
            return
        ix, last_seq = pending.waiting.pop(core.id)
        self._attach(pending, core, ix, last_seq, now, initial=True)
        if not pending.waiting:
            self._finish_reconcile(now)

    def _attach(
        self,
        pending: _PendingReconcile,
        core: ChannelCore,
        ix: int,
        last_seq: int,
        now: float,
        *,
        initial: bool,
    ) -> None:
        """Attach ``core`` for this RECONCILE unless it belongs to another lineage.

        The session that attaches a channel first owns it (the client the telefunction's HTTP
        response went to attaches it with ``initial`` at once); a refused entry is left out of
        RECONCILED's ``open``, which the official client answers by failing that channel.

        One exception keeps a lost first RECONCILED recoverable: a client whose first wire died
        before RECONCILED arrived comes back without a session id, as a new lineage, and lists
        its channels as ``initial`` again. So a claim stays *tentative* until its lineage
        presents a session id it received; while tentative, an ``initial`` entry may take over a
        channel no wire carries.
        """
        mux = self.mux
        lineage = pending.lineage
        owner = mux.channel_owners.get(core.id)
        if owner is not None and owner[0] != lineage and (owner[1] or not initial or core.attached):
            mux.refused_attaches += 1
            mux.report("channel-refused", "RECONCILE named a channel of another session")
            return
        mux.replayed_frames += core.replayable(last_seq)
        if core.attach(self, ix, last_seq, now):
            if owner is None or owner[0] != lineage or (pending.confirmed and not owner[1]):
                mux.channel_owners[core.id] = (lineage, pending.confirmed)
            pending.entries.append((ix, core))

    def _drop_waiters(self, pending: _PendingReconcile) -> None:
        for cid in pending.waiting:
            conns = self.mux._waiters.get(cid)
            if conns and self in conns:
                conns.remove(self)
                if not conns:
                    del self.mux._waiters[cid]
        pending.waiting.clear()

    def _finish_reconcile(self, now: float) -> None:
        pending = self._pending
        assert pending is not None
        self._drop_waiters(pending)
        mux = self.mux
        kept = {id(core) for _, core in pending.entries}
        # Another open wire still carrying the presented session may be its client's old,
        # half-open connection (the client lists every channel it still has), or the session id
        # leaked. Either way only the listed channels move here (taken out of that session
        # below); the others stay on the live wire, untouched, and keep the session id.
        holder = self._live_holder(pending)
        if holder is not None and pending.upgrade:
            # The official client lists every channel it still has; one it dropped after a
            # CLOSE exchange may still be closing here (the CLOSE_ACK can be behind, on the old
            # wire). Those finish their close, so a real upgrade empties the old session and its
            # wire gets FIN. A still-open channel nobody listed stays with the live wire, no FIN.
            held = mux.sessions.get(pending.prev_session or "", {})
            for core in [c for c in held.values() if id(c) not in kept and c.is_closing]:
                mux._take_from_session(core)
                core.dropped_while_closing(now)
            if pending.prev_session not in mux.sessions:
                holder = None
        if holder is None and pending.prev_session is not None:
            for core in mux.drop_session(pending.prev_session).values():
                if id(core) not in kept:
                    core.recovery_failed()
        if self.session_id is not None and self.session_id != pending.prev_session:
            # A RECONCILE without (or with another) sessionId on a live wire starts over: the
            # channels of the wire's old session the client did not list again are gone.
            for core in mux.drop_session(self.session_id).values():
                if id(core) not in kept and core.peer is self:
                    core.recovery_failed()
        new_id = random_id()
        session = {ix: core for ix, core in pending.entries if not core.is_shutdown}
        if session:
            for core in session.values():
                mux._take_from_session(core)
        # The presented session lives on with the channels nobody listed (held case only).
        stays = holder is not None and pending.prev_session in mux.sessions
        if session:
            # Only a session id we issued may stand for the new one (never a client's string),
            # and never one that still names a live session.
            known_as = pending.presented if pending.confirmed and not stays else None
            mux._add_session(new_id, session, pending.lineage, known_as)
        self.lineage = pending.lineage
        # The wire that owned the previous session gets FIN after our RECONCILED (upgrade only).
        old_wire: ServerConnection | None = None
        if pending.prev_session is not None and not stays:
            owner = mux.session_owners.pop(pending.prev_session, None)
            if pending.upgrade and owner is not None and owner is not self and not owner.closed:
                old_wire = owner
        if self.session_id is not None and mux.session_owners.get(self.session_id) is self:
            del mux.session_owners[self.session_id]
        mux.session_owners[new_id] = self
        self.session_id = new_id
        self._pending = None
        self._transition(ConnectionEvent.RECONCILED)
        if pending.upgrade:
            self.upgraded = True
        if self._holds:
            # RECONCILED waits for the end of the body carrying this RECONCILE; a later
            # reconcile in the same body supersedes it (its FIN target is kept).
            prev_old_wire = self._deferred[2] if self._deferred is not None else None
            self._deferred = (new_id, session, old_wire or prev_old_wire)
        else:
            self._emit_reconciled(new_id, session, old_wire)
        self._reset_ping(now)
        queued, self._queued = self._queued or [], None
        self._queued_bytes = 0
        for i, frame in enumerate(queued):
            if self._phase is _CONN_CLOSED:
                return
            if self._phase is _RECONCILING:  # a queued RECONCILE is waiting again
                self._queued = queued[i:] + (self._queued or [])
                self._queued_bytes = sum(HEADER + len(f.payload) for f in self._queued)
                return
            try:
                self._dispatch(frame, now)
            except ProtocolError as exc:
                self.protocol_violation(str(exc), now)
                return

    def _live_holder(self, pending: _PendingReconcile) -> ServerConnection | None:
        """The other, still open wire carrying the session a RECONCILE presents.

        An upgrade is no exception: the official client's upgrade lists every open channel,
        which empties the old session (then the old wire gets FIN); one that lists fewer (a
        leaked session id) moves only those, and the old wire keeps the rest and gets no FIN.
        """
        if pending.prev_session is None:
            return None
        holder = self.mux.session_owners.get(pending.prev_session)
        if holder is None or holder is self or holder.closed:
            return None
        if pending.prev_session not in self.mux.sessions:
            return None
        return holder

    def _emit_reconciled(
        self, session_id: str, session: dict[int, ChannelCore], old_wire: ServerConnection | None
    ) -> None:
        # ``lastSeq`` is read now, so frames dispatched while RECONCILED was held count too.
        self.write(
            encode_json(
                TAG_RECONCILED,
                {
                    "sessionId": session_id,
                    "open": [
                        {"ix": ix, "lastSeq": core.last_peer_seq} for ix, core in session.items()
                    ],
                    **self.mux.settings.reconciled_settings(),
                },
            )
        )
        if old_wire is not None and not old_wire.closed:
            old_wire.write(_FIN)
            self.mux.upgrades += 1

    def hold_reconciled(self) -> None:
        """Defer RECONCILED until the matching :meth:`release_reconciled` (end of a POST body)."""
        self._holds += 1

    def release_reconciled(self, now: float) -> None:
        """A body that held RECONCILED ended: send the latest deferred one when none is left."""
        self._holds = max(0, self._holds - 1)
        if self._holds or self._deferred is None or self._phase is _CONN_CLOSED:
            return
        session_id, session, old_wire = self._deferred
        self._deferred = None
        self._emit_reconciled(session_id, session, old_wire)

    # ── timers ──────────────────────────────────────────────────────────

    def _reset_ping(self, now: float) -> None:
        self._ping_deadline = now + self.mux.settings.ping_deadline
        when = self._next_deadline()
        at = self._timer_at
        if at is not None and when is not None and at <= when:
            # Every PING pushes the deadline later; pushing a heap entry each time would leave a
            # stale one per ping in the shared heap until its time came. The earlier entry is
            # kept instead: when it fires, handle_timeout finds the deadline not reached yet and
            # schedules the real one.
            return
        self.mux.timers.schedule(self, when)

    def _next_deadline(self) -> float | None:
        phase = self._phase
        if phase is _CONN_CLOSED:
            return None
        if phase is _RECONCILING and self._pending is not None and self._pending.waiting:
            # The ping deadline does not apply while reconciling (pings are delayed by it).
            return self._pending.deadline
        return self._ping_deadline

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` should run next."""
        return self._next_deadline()

    def handle_timeout(self, now: float) -> None:
        """Ping deadline (drop the wire, transient) or reconcile wait over (finish without them)."""
        if self._phase is _CONN_CLOSED:
            return
        pending = self._pending
        if self._phase is _RECONCILING and pending is not None and pending.waiting:
            if now >= pending.deadline:
                self._finish_reconcile(now)
            self.mux.timers.schedule(self, self._next_deadline())
            return
        if self._ping_deadline is not None and now >= self._ping_deadline:
            self._request_close(CLOSE_PING_TIMEOUT, "ping timeout")
            self.connection_lost(now, permanent=False)
            return
        self.mux.timers.schedule(self, self._next_deadline())

    # ── closing ─────────────────────────────────────────────────────────

    def _request_close(self, code: int, reason: str) -> None:
        if self.close_request is None:
            self.close_request = (code, reason)
            if self.on_output is not None:
                self.on_output()

    def protocol_violation(self, reason: str, now: float) -> None:
        """End this connection for breaking the protocol (close code 1002, permanent).

        For transports that find a violation themselves (a text message on the binary
        WebSocket, a frame the core failed on); other connections are unaffected.
        """
        if self.close_request is None and self._phase is not _CONN_CLOSED:
            self.mux.report("protocol-violation", reason[:200])
        self._request_close(CLOSE_PROTOCOL_ERROR, f"protocol violation: {reason}"[:120])
        self.connection_lost(now, permanent=True)

    def connection_lost(self, now: float, *, permanent: bool) -> None:
        """The wire is gone. ``permanent``: client close code 1000/1001 (or a violation)."""
        if self._phase is _CONN_CLOSED:
            return
        self._transition(ConnectionEvent.LOST)
        self._out.clear()
        self._out_bytes = 0
        self._held = None
        self._deferred = None
        self.mux.timers.schedule(self, None)
        mux = self.mux
        if self.conn_id is not None and mux.connections_by_conn_id.get(self.conn_id) is self:
            del mux.connections_by_conn_id[self.conn_id]
        if self.session_id is not None and mux.session_owners.get(self.session_id) is self:
            del mux.session_owners[self.session_id]
        pending, self._pending = self._pending, None
        self._queued = None
        self._queued_bytes = 0
        if pending is not None:
            self._drop_waiters(pending)
            for _, core in pending.entries:
                core.detach(self, now, permanent=permanent)
        if self.session_id is None:
            return
        session: dict[int, ChannelCore] | None
        if permanent:
            session = self.mux.drop_session(self.session_id)
        else:
            # Kept so the next RECONCILE naming it can fail channels the client dropped.
            session = self.mux.sessions.get(self.session_id)
        for core in list((session or {}).values()):
            core.detach(self, now, permanent=permanent)
