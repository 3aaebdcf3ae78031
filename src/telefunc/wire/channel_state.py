"""One channel's protocol state on the server, sans-I/O: :class:`ChannelCore`.

The core outlives wires (a reconnecting client re-attaches it) and owns sequence numbers, the
replay and pre-attach buffers, duplicate dropping, credit both ways, acks and the close
handshake (docs/protocol.md §7.2-§7.6). It reports to the application synchronously through a
:class:`ChannelEvents` handler and writes frames to a :class:`PeerLink`; time is always passed
in. A frame that arrives out of order raises :class:`ProtocolError` rather than being lost. Its
life is a :class:`ChannelPhase`, moved only through :data:`CHANNEL_TRANSITIONS`.
"""

from __future__ import annotations

import struct
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

from telefunc.errors import (
    ChannelClosedError,
    ChannelOverflowError,
    IllegalTransitionError,
    NetworkError,
    ProtocolError,
)
from telefunc.wire.credit import ReceiveWindow, SendCredit
from telefunc.wire.frames import (
    TAG_ABORT,
    TAG_ACK_RES,
    TAG_BDP_PING,
    TAG_BDP_PING_ACK,
    TAG_BINARY,
    TAG_BINARY_ACK_REQ,
    TAG_CLOSE,
    TAG_CLOSE_ACK,
    TAG_ERROR,
    TAG_MSG_WINDOW,
    TAG_PUBLISH,
    TAG_PUBLISH_ACK_REQ,
    TAG_PUBLISH_BINARY,
    TAG_PUBLISH_BINARY_ACK_REQ,
    TAG_TEXT,
    TAG_TEXT_ACK_REQ,
    TAG_WINDOW,
    AckStatus,
    Frame,
    encode_frame,
    encode_u32_frame,
)
from telefunc.wire.replay import ReplayBuffer

if TYPE_CHECKING:
    from telefunc.config import ChannelSettings
    from telefunc.wire.timers import Timers


__all__ = [
    "BINARY_TAGS",
    "CHANNEL_TRANSITIONS",
    "ChannelCore",
    "ChannelEvent",
    "ChannelEvents",
    "ChannelPhase",
    "PeerLink",
    "PreAttachBuffer",
    "SendResult",
]

#: Data tags stored in the binary lanes (replay and pre-attach buffers).
BINARY_TAGS = frozenset(
    {TAG_BINARY, TAG_BINARY_ACK_REQ, TAG_PUBLISH_BINARY, TAG_PUBLISH_BINARY_ACK_REQ}
)
#: Data tags a congested connection does not hold back (bounded by its hard limit instead).
UNHELD_TAGS = frozenset({TAG_PUBLISH, TAG_PUBLISH_BINARY})
#: Data tags that ask the peer for an ACK_RES.
ACK_REQ_TAGS = frozenset(
    {TAG_TEXT_ACK_REQ, TAG_BINARY_ACK_REQ, TAG_PUBLISH_ACK_REQ, TAG_PUBLISH_BINARY_ACK_REQ}
)

#: ACK_RES error text when an acknowledged message arrives and nobody listens.
NO_LISTENER = "No listener registered for ack request"
TIMEOUT_CONNECT = "Channel timed out: no client connected within TTL after response was sent"
TIMEOUT_RECONNECT = "Channel timed out: client did not reconnect within grace period"
RECOVERY_FAILED = "Channel not acknowledged by client after reconnect"
#: Holes in the received seqs remembered per channel (older ones are forgotten): enough to catch
#: frames fed out of order, a constant bound whatever the peer sends.
_MAX_HOLES = 8


class ChannelPhase(Enum):
    """Where a :class:`ChannelCore` is in its life (whether a wire carries it is ``attached``)."""

    #: Registered, no client attached yet: sends are buffered, ``connect_ttl`` runs.
    PENDING = "pending"
    #: A client attached once (``open`` fired); it may be detached, awaiting a reconnect.
    OPEN = "open"
    #: A CLOSE went either way: waiting for acks in flight and the peer's CLOSE_ACK.
    CLOSING = "closing"
    #: The close callbacks ran; waiting for the async ones (``hold_close``) to finish.
    CLOSE_FIRED = "close_fired"
    #: Terminal: the channel is gone.
    SHUTDOWN = "shutdown"


class ChannelEvent(Enum):
    """What moves a :class:`ChannelCore` from one :class:`ChannelPhase` to the next."""

    #: The first attach: ``open`` fires.
    OPEN = "open"
    #: ``close()`` on this side (sends CLOSE).
    CLOSE = "close"
    #: The peer's CLOSE arrived (answered with CLOSE_ACK).
    PEER_CLOSE = "peer_close"
    #: The close round trip is done (no acks in flight, CLOSE_ACK received): run ``on_close``.
    FIRE_CLOSE = "fire_close"
    #: The async close callbacks finished: a clean end.
    FINISH = "finish"
    #: ``abort()`` (server: ABORT frame; client: CLOSE with timeout 0).
    ABORT = "abort"
    #: The end without a clean close: a deadline (connect, reconnect, close), an error, the
    #: wire gone for good, or the client reconnected without this channel.
    TERMINATE = "terminate"


_PENDING: Final = ChannelPhase.PENDING
_OPEN: Final = ChannelPhase.OPEN
_CLOSING: Final = ChannelPhase.CLOSING
_CLOSE_FIRED: Final = ChannelPhase.CLOSE_FIRED
_SHUTDOWN: Final = ChannelPhase.SHUTDOWN
_EV_OPEN: Final = ChannelEvent.OPEN
_EV_CLOSE: Final = ChannelEvent.CLOSE
_EV_PEER_CLOSE: Final = ChannelEvent.PEER_CLOSE
_EV_FIRE_CLOSE: Final = ChannelEvent.FIRE_CLOSE
_EV_FINISH: Final = ChannelEvent.FINISH
_EV_ABORT: Final = ChannelEvent.ABORT
_TERMINATE: Final = ChannelEvent.TERMINATE

#: Every legal move of a :class:`ChannelCore`: ``(phase, event) -> next phase``. Consulted on
#: lifecycle events only; a pair not listed raises :class:`IllegalTransitionError` (a bug). The
#: methods check the phase first where an event may legitimately come late (e.g. ``abort()``
#: after ``close()`` does nothing), so the table lists only what happens.
CHANNEL_TRANSITIONS: Final[dict[tuple[ChannelPhase, ChannelEvent], ChannelPhase]] = {
    (_PENDING, ChannelEvent.OPEN): _OPEN,
    (_PENDING, ChannelEvent.CLOSE): _CLOSING,
    (_PENDING, ChannelEvent.PEER_CLOSE): _CLOSING,
    (_PENDING, ChannelEvent.ABORT): _SHUTDOWN,
    (_PENDING, ChannelEvent.TERMINATE): _SHUTDOWN,
    (_OPEN, ChannelEvent.CLOSE): _CLOSING,
    (_OPEN, ChannelEvent.PEER_CLOSE): _CLOSING,
    (_OPEN, ChannelEvent.ABORT): _SHUTDOWN,
    (_OPEN, ChannelEvent.TERMINATE): _SHUTDOWN,
    (_CLOSING, ChannelEvent.CLOSE): _CLOSING,
    (_CLOSING, ChannelEvent.PEER_CLOSE): _CLOSING,
    (_CLOSING, ChannelEvent.FIRE_CLOSE): _CLOSE_FIRED,
    (_CLOSING, ChannelEvent.TERMINATE): _SHUTDOWN,
    (_CLOSE_FIRED, ChannelEvent.CLOSE): _CLOSE_FIRED,
    (_CLOSE_FIRED, ChannelEvent.PEER_CLOSE): _CLOSE_FIRED,
    (_CLOSE_FIRED, ChannelEvent.FINISH): _SHUTDOWN,
    (_CLOSE_FIRED, ChannelEvent.TERMINATE): _SHUTDOWN,
}


class SendResult(Enum):
    """What :meth:`ChannelCore.send` did with a message."""

    #: Written to the wire and credit remains: the send is complete.
    SENT = "sent"
    #: Written to the wire but credit is exhausted: complete once ``handle_credit`` fires.
    WAIT_CREDIT = "wait_credit"
    #: Buffered or awaiting an ack: the token settles later through the handler.
    PENDING = "pending"


class ChannelEvents(Protocol):
    """What a :class:`ChannelCore` reports, synchronously, to the layer above it."""

    def handle_open(self) -> None:
        """The channel was attached to a client for the first time."""

    def handle_message(self, payload: bytes, binary: bool) -> None:
        """A fire-and-forget TEXT/BINARY arrived; call :meth:`ChannelCore.consumed` when handled."""

    def handle_ack_request(self, seq: int, payload: bytes, binary: bool) -> None:
        """An ack-bearing message arrived; answer with :meth:`ChannelCore.reply`."""

    def handle_ack_result(self, token: Any, status: AckStatus, text: str) -> None:
        """The peer answered an ack-bearing send."""

    def handle_send_done(self, token: Any) -> None:
        """A buffered fire-and-forget send was flushed to the wire."""

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        """A send will never complete (evicted from the buffer, or the channel closed)."""

    def handle_credit(self) -> None:
        """Send credit is available again (or the channel shut down): wake waiting senders."""

    def handle_fire_close(self, error: Exception | None) -> None:
        """Run the close callbacks now; use ``hold_close``/``release_close`` for async ones."""

    def handle_shutdown(self, error: Exception | None) -> None:
        """The channel is finished for good (``error`` is ``None`` for a clean close)."""

    def handle_other_frame(self, frame: Frame) -> None:
        """A frame plain channels ignore (PUBLISH_ACK_REQ, BROADCAST_SUB...); for subclasses."""


class _NoEvents:
    """The handler of a channel that shut down: it reports nothing more.

    Dropping the real handler (which holds the core) breaks the reference cycle between the two,
    so a finished channel is freed at once by reference counting, not by a later full GC.
    """

    def handle_open(self) -> None:
        pass

    def handle_message(self, payload: bytes, binary: bool) -> None:
        pass

    def handle_ack_request(self, seq: int, payload: bytes, binary: bool) -> None:
        pass

    def handle_ack_result(self, token: Any, status: AckStatus, text: str) -> None:
        pass

    def handle_send_done(self, token: Any) -> None:
        pass

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        pass

    def handle_credit(self) -> None:
        pass

    def handle_fire_close(self, error: Exception | None) -> None:
        pass

    def handle_shutdown(self, error: Exception | None) -> None:
        pass

    def handle_other_frame(self, frame: Frame) -> None:
        pass


_NO_EVENTS = _NoEvents()


class PeerLink(Protocol):
    """The connection a channel is attached to: somewhere to write encoded frames."""

    def write(self, frame: bytes) -> None:
        """Queue one encoded frame for the wire."""

    @property
    def congested(self) -> bool:
        """The wire's outgoing queue is at its cap: data sends are held by the channel."""

    @property
    def cut(self) -> bool:
        """The wire was cut as a slow consumer: what is written to it is dropped."""

    def hold(self, core: ChannelCore) -> None:
        """``core`` holds sends; call ``core.flush_held(self, now)`` once the queue drained."""


class PreAttachBuffer:
    """Messages sent while no client is attached: two FIFO lanes with byte budgets.

    Entries are ``(order, tag, payload, token)``. When a lane exceeds its budget the oldest
    entries are evicted and their tokens fail with :class:`ChannelOverflowError`; a single entry
    larger than the whole budget clears its lane. Text and binary budgets are separate, so binary
    never evicts text.
    """

    __slots__ = ("_bytes", "_lanes", "_limits", "_order")

    def __init__(self, text_limit: int, binary_limit: int) -> None:
        # The lanes are created on the first push and dropped by ``drain``: most channels are
        # attached almost at once and never buffer, and two empty deques cost ~1.5 KB.
        self._lanes: tuple[deque[tuple[int, int, bytes, Any]], ...] | None = None
        self._bytes = [0, 0]
        self._limits = (text_limit, binary_limit)
        self._order = 0

    def __len__(self) -> int:
        lanes = self._lanes
        return len(lanes[0]) + len(lanes[1]) if lanes is not None else 0

    def push(self, tag: int, payload: bytes, token: Any) -> list[tuple[int, Any]]:
        """Buffer a message; returns ``(tag, token)`` of evicted entries (maybe this one)."""
        lane_ix = 1 if tag in BINARY_TAGS else 0
        if self._lanes is None:
            self._lanes = (deque(), deque())
        lane = self._lanes[lane_ix]
        limit = self._limits[lane_ix]
        size = len(payload)
        if size > limit:
            evicted = [(e[1], e[3]) for e in lane] + [(tag, token)]
            lane.clear()
            self._bytes[lane_ix] = 0
            return evicted
        self._order += 1
        lane.append((self._order, tag, payload, token))
        self._bytes[lane_ix] += size
        evicted = []
        while self._bytes[lane_ix] > limit:
            _, old_tag, old, old_token = lane.popleft()
            self._bytes[lane_ix] -= len(old)
            evicted.append((old_tag, old_token))
        return evicted

    def drain(self) -> list[tuple[int, bytes, Any]]:
        """Remove and return every entry as ``(tag, payload, token)`` in insertion order."""
        if self._lanes is None:
            return []
        text, binary = self._lanes
        self._lanes = None
        merged = (
            sorted([*text, *binary], key=lambda e: e[0]) if binary and text else [*text, *binary]
        )
        self._bytes = [0, 0]
        return [(tag, payload, token) for _, tag, payload, token in merged]

    def popleft(self) -> tuple[int, bytes, Any]:
        """Remove and return the oldest entry (of both lanes) as ``(tag, payload, token)``."""
        assert self._lanes is not None
        text, binary = self._lanes
        lane_ix = 0 if text and (not binary or text[0][0] < binary[0][0]) else 1
        _, tag, payload, token = self._lanes[lane_ix].popleft()
        self._bytes[lane_ix] -= len(payload)
        if not text and not binary:
            self._lanes = None
        return tag, payload, token

    def tokens(self) -> list[Any]:
        """The tokens of every buffered entry."""
        return [e[3] for lane in self._lanes or () for e in lane]


_U32 = struct.Struct("<I")


class ChannelCore:
    """Wire state of one channel on the server side; see the module docstring."""

    __slots__ = (
        "_acks_in",
        "_acks_out",
        "_awaiting_close_ack",
        "_buffer",
        "_close_deadline",
        "_close_holds",
        "_connect_deadline",
        "_credit",
        "_got_close_ack",
        "_handler",
        "_holes",
        "_ix",
        "_opened",
        "_out_seq",
        "_peer",
        "_pending_ack_res",
        "_pending_acks",
        "_pending_close_ack",
        "_phase",
        "_reconnect_deadline",
        "_replay",
        "_shutdown_error",
        "_timer_at",
        "_timers",
        "_window",
        "id",
        "last_peer_seq",
        "on_shutdown_hook",
        "settings",
    )

    def __init__(
        self,
        channel_id: str,
        settings: ChannelSettings,
        handler: ChannelEvents,
        *,
        buffer_limit: int | None = None,
    ) -> None:
        self.id = channel_id
        self.settings = settings
        self._handler = handler
        self._phase = _PENDING
        #: Highest client seq received and dispatched (dedup, and ``lastSeq`` in RECONCILED).
        self.last_peer_seq = 0
        #: The latest ranges of seqs below ``last_peer_seq`` never received (at most _MAX_HOLES).
        self._holes: list[tuple[int, int]] | None = None
        #: Set by the mux when registering, called once on shutdown to drop its bookkeeping.
        self.on_shutdown_hook: Any = None
        self._peer: PeerLink | None = None
        self._ix = 0
        self._out_seq = 0
        self._replay = ReplayBuffer(
            settings.server_replay_buffer,
            settings.server_replay_buffer_binary,
            settings.server_replay_max_age,
        )
        self._buffer = PreAttachBuffer(
            buffer_limit if buffer_limit is not None else settings.buffer_limit,
            settings.buffer_limit_binary,
        )
        self._credit = SendCredit()
        self._window = ReceiveWindow()
        self._pending_acks: dict[int, Any] = {}
        self._pending_ack_res: list[tuple[int, int, bytes]] = []
        self._acks_out = 0
        self._acks_in = 0
        #: Whether the channel passed through OPEN (a close before the first attach skips it).
        self._opened = False
        self._close_holds = 0
        self._close_deadline: float | None = None
        self._awaiting_close_ack = False
        self._got_close_ack = False
        self._pending_close_ack = False
        self._shutdown_error: Exception | None = None
        self._connect_deadline: float | None = None
        self._reconnect_deadline: float | None = None
        self._timers: Timers | None = None
        self._timer_at: float | None = None

    # ── phase ───────────────────────────────────────────────────────────

    @property
    def phase(self) -> ChannelPhase:
        """Where the channel is in its life (see :data:`CHANNEL_TRANSITIONS`)."""
        return self._phase

    def _transition(self, event: ChannelEvent) -> ChannelPhase:
        """Move to the phase the table gives for ``event``; returns the phase left."""
        phase = self._phase
        try:
            self._phase = CHANNEL_TRANSITIONS[phase, event]
        except KeyError:
            raise IllegalTransitionError(
                f"channel {self.id!r}: {event.name} is not allowed in phase {phase.name}"
            ) from None
        return phase

    @property
    def is_closed(self) -> bool:
        """``close()``/``abort()`` was called or the peer closed: nothing more may be sent."""
        phase = self._phase
        return phase is not _OPEN and phase is not _PENDING

    @property
    def is_shutdown(self) -> bool:
        """Terminal: the channel is gone."""
        return self._phase is _SHUTDOWN

    # ── properties ──────────────────────────────────────────────────────

    @property
    def attached(self) -> bool:
        """Whether a connection currently carries this channel."""
        return self._peer is not None

    @property
    def peer(self) -> PeerLink | None:
        """The attached connection, if any."""
        return self._peer

    @property
    def is_closing(self) -> bool:
        """Whether a CLOSE went either way: the client drops the channel once it has seen one."""
        phase = self._phase
        return phase is _CLOSING or phase is _CLOSE_FIRED

    @property
    def got_close_ack(self) -> bool:
        """Whether the peer acknowledged our CLOSE (``close()`` resolves 0 then, else 1)."""
        return self._got_close_ack

    @property
    def credit_available(self) -> bool:
        """Whether fire-and-forget sends may proceed without waiting."""
        return self._credit.available or self._phase is _SHUTDOWN

    @property
    def out_seq(self) -> int:
        """The last sequence number this side used."""
        return self._out_seq

    @property
    def buffered(self) -> int:
        """Messages waiting in the pre-attach buffer."""
        return len(self._buffer)

    @property
    def buffered_bytes(self) -> int:
        """Bytes this channel holds for its peer: replay buffer and pre-attach buffer."""
        return self._replay.text.bytes + self._replay.binary.bytes + sum(self._buffer._bytes)

    def replayable(self, last_seq: int) -> int:
        """How many frames :meth:`attach` with ``last_seq`` would replay."""
        return 0 if self._phase is _SHUTDOWN else len(self._replay.get_after(last_seq))

    # ── registration and timers ─────────────────────────────────────────

    def bind_timers(self, timers: Timers, now: float) -> None:
        """Registration: publish deadlines to ``timers`` and start the ``connect_ttl`` clock."""
        self._timers = timers
        if not self._opened and self._phase is not _SHUTDOWN:
            self._connect_deadline = now + self.settings.connect_ttl
        self._reschedule()

    def next_deadline(self) -> float | None:
        """The earliest pending deadline of this channel."""
        candidates = [
            d
            for d in (
                self._connect_deadline,
                self._reconnect_deadline,
                self._close_deadline if self.is_closing else None,
                self._replay.next_expiry(),
            )
            if d is not None
        ]
        return min(candidates) if candidates else None

    def _reschedule(self) -> None:
        if self._timers is not None:
            self._timers.schedule(self, None if self._phase is _SHUTDOWN else self.next_deadline())

    def handle_timeout(self, now: float) -> None:
        """Process every deadline that is due at ``now``."""
        if self._phase is _SHUTDOWN:
            return
        self._replay.evict(now)
        if self._connect_deadline is not None and now >= self._connect_deadline:
            self._connect_deadline = None
            self._shutdown(NetworkError(TIMEOUT_CONNECT), _TERMINATE)
            return
        if self._reconnect_deadline is not None and now >= self._reconnect_deadline:
            self._reconnect_deadline = None
            self._shutdown(NetworkError(TIMEOUT_RECONNECT), _TERMINATE)
            return
        if self.is_closing:
            self._progress(now)
        self._reschedule()

    # ── sending ─────────────────────────────────────────────────────────

    def send(self, tag: int, payload: bytes, now: float, token: Any = None) -> SendResult:
        """Send one data message (TEXT, BINARY, their ``*_ACK_REQ``, PUBLISH...).

        Raises :class:`ChannelClosedError` once the channel is closed. Ack-bearing tags register
        ``token`` for :meth:`ChannelEvents.handle_ack_result`.
        """
        phase = self._phase
        if phase is not _OPEN and phase is not _PENDING:
            raise ChannelClosedError("Channel is closed")
        is_ack = tag in ACK_REQ_TAGS
        if is_ack:
            self._acks_out += 1
        peer = self._peer
        if (
            peer is None
            or len(self._buffer)  # holding already: later sends queue behind (order)
            or (tag not in UNHELD_TAGS and peer.congested)
        ):
            if peer is not None:
                peer.hold(self)
            for evicted_tag, evicted in self._buffer.push(tag, payload, token):
                if evicted_tag in ACK_REQ_TAGS:
                    self._acks_out -= 1
                self._handler.handle_send_failed(
                    evicted, ChannelOverflowError("Channel buffer overflow")
                )
            return SendResult.PENDING
        seq = self._emit_data(tag, payload, now)
        if is_ack:
            self._pending_acks[seq] = token
            return SendResult.PENDING
        if tag in (TAG_TEXT, TAG_BINARY) and not self._credit.consume(len(payload)):
            return SendResult.WAIT_CREDIT
        return SendResult.SENT

    def send_publish(self, tag: int, payload: bytes, now: float) -> bool:
        """Send one broadcast delivery (PUBLISH or PUBLISH_BINARY); ``True`` if the wire is cut.

        What :meth:`send` does for these tags (never held for congestion, no credit, no token),
        with the common case (attached, nothing buffered) in one call: it runs once per
        subscriber per publish. Does nothing once the channel is closed. ``True`` means the
        attached wire was cut as a slow consumer (by this write or before it).
        """
        phase = self._phase
        if phase is not _OPEN and phase is not _PENDING:
            return False
        peer = self._peer
        if peer is None or self._buffer._lanes is not None:
            self.send(tag, payload, now)  # buffered until attached, or behind held sends
            return False
        self._out_seq = seq = self._out_seq + 1
        frame = encode_frame(tag, self._ix, seq, payload)
        replay = self._replay
        (replay.binary if tag == TAG_PUBLISH_BINARY else replay.text).push(seq, frame, now)
        peer.write(frame)
        return peer.cut

    def flush_held(self, peer: PeerLink, now: float) -> bool:
        """``peer`` drained: write held sends while it has room; ``True`` once none is left."""
        buffer = self._buffer
        while len(buffer) and self._peer is peer and not peer.congested:
            self._emit_buffered(*buffer.popleft(), now)
        return not len(buffer) or self._peer is not peer

    def _emit_buffered(self, tag: int, payload: bytes, token: Any, now: float) -> None:
        """Write a send that waited in the buffer; it resolves now unless it awaits an ack."""
        seq = self._emit_data(tag, payload, now)
        if tag in ACK_REQ_TAGS:
            self._pending_acks[seq] = token
        else:
            if tag in (TAG_TEXT, TAG_BINARY):
                self._credit.consume(len(payload))
            self._handler.handle_send_done(token)

    def _emit_data(self, tag: int, payload: bytes, now: float) -> int:
        self._out_seq += 1
        seq = self._out_seq
        frame = encode_frame(tag, self._ix, seq, payload)
        self._replay.push(seq, frame, now, binary=tag in BINARY_TAGS)
        assert self._peer is not None
        self._peer.write(frame)
        return seq

    def _emit_ack_res(self, acked_seq: int, status: int, text: bytes, now: float) -> None:
        self._out_seq += 1
        seq = self._out_seq
        frame = encode_frame(
            TAG_ACK_RES, self._ix, seq, _U32.pack(acked_seq) + bytes((status,)) + text
        )
        self._replay.push(seq, frame, now)
        assert self._peer is not None
        self._peer.write(frame)

    def _write_ctrl(self, frame: bytes) -> None:
        if self._peer is not None:
            self._peer.write(frame)

    def reply(self, acked_seq: int, status: int, text: str, now: float) -> None:
        """Answer an ack request the handler got through ``handle_ack_request``."""
        self._acks_in = max(0, self._acks_in - 1)
        if self._phase is _SHUTDOWN:
            return
        payload = text.encode()
        if self._peer is not None:
            self._emit_ack_res(acked_seq, status, payload, now)
        else:
            self._pending_ack_res.append((acked_seq, status, payload))
        if self.is_closing:
            self._progress(now)

    def consumed(self, nbytes: int) -> None:
        """The listeners finished with a fire-and-forget message: maybe advertise the window.

        What is advertised is the room left (window minus the messages still unconsumed), so a
        slow application holds at most about one window; see :mod:`telefunc.wire.credit`.
        """
        if self._phase is _SHUTDOWN:
            return
        new_bytes, new_msgs = self._window.on_consumed(nbytes)
        if new_bytes is not None:
            self._write_ctrl(encode_u32_frame(TAG_WINDOW, self._ix, new_bytes))
        if new_msgs is not None:
            self._write_ctrl(encode_u32_frame(TAG_MSG_WINDOW, self._ix, new_msgs))

    def inbound_overrun(self, windows: int, slack_bytes: int) -> str | None:
        """Why the peer is past its receive window, or ``None``: the bound on inbound work.

        Messages received but not yet processed (fire-and-forget ones not yet
        :meth:`consumed`, ack requests not yet answered) may exceed the advertised window only
        by ``windows`` times (bytes: plus ``slack_bytes``); the connection treats more as a
        protocol violation instead of queueing it.
        """
        window = self._window
        if window.overrun(windows, slack_bytes):
            return (
                f"receive window exceeded ({window.unconsumed_msgs} messages, "
                f"{window.unconsumed_bytes} bytes unprocessed)"
            )
        if self._acks_in > window.msg_window * windows:
            return f"receive window exceeded ({self._acks_in} ack requests unanswered)"
        return None

    # ── receiving ───────────────────────────────────────────────────────

    def receive(self, frame: Frame, now: float) -> bool:
        """Handle one frame the connection routed to this channel.

        Returns whether the inbound backlog (messages and ack requests not yet processed) is
        past one receive window: only then can :meth:`inbound_overrun` find an overrun, so the
        connection asks it only then. Raises :class:`ProtocolError` for frames a client must
        never send on a channel.
        """
        tag = frame.tag
        if 0x10 <= tag < 0x30:
            return self.receive_data(tag, frame.seq, frame.payload, now, frame)
        if self._phase is not _SHUTDOWN:
            self._receive_ctrl(frame, now)
        return False

    def receive_data(
        self, tag: int, seq: int, payload: bytes, now: float, frame: Frame | None = None
    ) -> bool:
        """Handle one data frame (tags ``0x10``-``0x2f``), given by its header fields.

        What :meth:`receive` does for such a frame; a connection may call it for TEXT and
        BINARY frames without building a :class:`Frame` (``frame`` is then built when needed).
        """
        if self._phase is _SHUTDOWN:
            return False
        if seq:
            last = self.last_peer_seq
            if seq <= last:
                if self._holes is not None and any(lo <= seq <= hi for lo, hi in self._holes):
                    raise ProtocolError(
                        f"channel {self._ix}: seq {seq} arrived after seq {last}: "
                        "frames out of order"
                    )
                return False  # a duplicate from a replay
            if seq > last + 1:
                self._note_hole(last + 1, seq - 1)
            self.last_peer_seq = seq
        window = self._window
        if tag in (TAG_TEXT, TAG_BINARY):  # the common frame, without another call
            if window.on_received(len(payload), now):
                self._write_ctrl(encode_frame(TAG_BDP_PING, self._ix))
            self._handler.handle_message(payload, tag == TAG_BINARY)
        else:
            self._receive_data(frame or Frame(tag, self._ix, seq, payload), now)
        msg_window = window.msg_window
        return (
            window.unconsumed_msgs > msg_window
            or window.unconsumed_bytes > window.byte_window
            or self._acks_in > msg_window
        )

    def _note_hole(self, lo: int, hi: int) -> None:
        holes = self._holes
        if holes is None:
            holes = self._holes = []
        holes.append((lo, hi))
        if len(holes) > _MAX_HOLES:
            del holes[0]

    def _receive_data(self, frame: Frame, now: float) -> None:
        tag = frame.tag
        if tag in (TAG_TEXT, TAG_BINARY):
            if self._window.on_received(len(frame.payload), now):
                self._write_ctrl(encode_frame(TAG_BDP_PING, self._ix))
            self._handler.handle_message(frame.payload, tag == TAG_BINARY)
        elif tag in (TAG_TEXT_ACK_REQ, TAG_BINARY_ACK_REQ):
            self._acks_in += 1
            self._handler.handle_ack_request(frame.seq, frame.payload, tag == TAG_BINARY_ACK_REQ)
        elif tag == TAG_ACK_RES:
            acked_seq, status, text = frame.ack_res()
            if acked_seq in self._pending_acks:
                token = self._pending_acks.pop(acked_seq)
                self._acks_out -= 1
                self._handler.handle_ack_result(token, status, text)
                if self.is_closing:
                    self._progress(now)
        elif tag in (TAG_PUBLISH, TAG_PUBLISH_BINARY):
            raise ProtocolError(f"client sent server-only tag 0x{tag:02x}")
        else:
            self._handler.handle_other_frame(frame)

    def _receive_ctrl(self, frame: Frame, now: float) -> None:
        tag = frame.tag
        if tag == TAG_WINDOW:
            if self._credit.set_bytes(frame.u32):
                self._handler.handle_credit()
        elif tag == TAG_MSG_WINDOW:
            if self._credit.set_messages(frame.u32):
                self._handler.handle_credit()
        elif tag == TAG_BDP_PING:
            self._write_ctrl(encode_frame(TAG_BDP_PING_ACK, self._ix))
        elif tag == TAG_BDP_PING_ACK:
            new_bytes, new_msgs = self._window.on_ping_ack()
            if new_bytes is not None:
                self._write_ctrl(encode_u32_frame(TAG_WINDOW, self._ix, new_bytes))
            if new_msgs is not None:
                self._write_ctrl(encode_u32_frame(TAG_MSG_WINDOW, self._ix, new_msgs))
        elif tag == TAG_CLOSE:
            self._on_peer_close(frame.u32 / 1000.0, now)
        elif tag == TAG_CLOSE_ACK:
            self._got_close_ack = True
            self._awaiting_close_ack = False
            if self.is_closing:
                self._progress(now)
        elif tag in (TAG_ABORT, TAG_ERROR):
            raise ProtocolError(f"client sent server-only tag 0x{tag:02x}")
        else:
            self._handler.handle_other_frame(frame)

    # ── attach / detach ─────────────────────────────────────────────────

    def attach(self, peer: PeerLink, ix: int, last_seq: int, now: float) -> bool:
        """Attach to a connection as channel ``ix``: replay, flush, fire ``open``.

        ``last_seq`` is the highest seq of ours the client reports having received. Returns
        ``False`` if the channel is already shut down.
        """
        if self._phase is _SHUTDOWN:
            return False
        self._connect_deadline = None
        self._reconnect_deadline = None
        ix_bytes = struct.pack("<H", ix)
        for frame in self._replay.get_after(last_seq):
            if frame[1:3] != ix_bytes:  # the client picked a new index: re-stamp the header
                frame = frame[:1] + ix_bytes + frame[3:]
            peer.write(frame)
        self._peer = peer
        self._ix = ix
        self._credit.reset()
        self._window.reset()
        for tag, payload, token in self._buffer.drain():
            self._emit_buffered(tag, payload, token, now)
        for acked_seq, status, text in self._pending_ack_res:
            self._emit_ack_res(acked_seq, status, text, now)
        self._pending_ack_res.clear()
        if self._pending_close_ack:
            peer.write(encode_frame(TAG_CLOSE_ACK, ix))
        if self._awaiting_close_ack and self._close_deadline is not None:
            remaining_ms = max(0, round((self._close_deadline - now) * 1000))
            peer.write(encode_u32_frame(TAG_CLOSE, ix, remaining_ms))
        if self.is_shutdown:
            return True  # a handler callback above shut the channel down
        if self.is_closed:
            self._progress(now)
            self._reschedule()
            return True
        self._reschedule()
        if self._credit.available:
            self._handler.handle_credit()
        if self._phase is _PENDING:
            self._transition(_EV_OPEN)
            self._opened = True
            self._handler.handle_open()
        return True

    def detach(self, peer: PeerLink, now: float, *, permanent: bool) -> None:
        """The connection ``peer`` went away; transient: start the ``reconnect_timeout`` grace."""
        if self._phase is _SHUTDOWN or self._peer is not peer:
            return
        self._peer = None
        if permanent:
            self._shutdown(None, _TERMINATE)
            return
        self._reconnect_deadline = now + self.settings.reconnect_timeout
        self._reschedule()

    def dropped_while_closing(self, now: float) -> None:
        """The client left this closing channel out of a RECONCILE: it has seen the CLOSE
        exchange and dropped the channel (its CLOSE_ACK may still travel on its old wire), so
        the close completes as acknowledged."""
        if not self.is_closing:
            return
        if self._awaiting_close_ack:
            self._awaiting_close_ack = False
            self._got_close_ack = True
        self._progress(now)

    def recovery_failed(self) -> None:
        """The client reconnected without listing this channel: it is lost."""
        if self._phase is _SHUTDOWN:
            return
        self._peer = None
        self._shutdown(NetworkError(RECOVERY_FAILED), _TERMINATE)

    # ── close / abort ───────────────────────────────────────────────────

    def close(self, timeout: float, now: float) -> bool:
        """Start a graceful close; returns ``False`` if the channel was already shut down."""
        if self._phase is _SHUTDOWN:
            return False
        if self._awaiting_close_ack or self._got_close_ack:
            return True
        deadline = now + max(0.0, timeout)
        if self._close_deadline is None or deadline < self._close_deadline:
            self._close_deadline = deadline
        self._awaiting_close_ack = True
        self._transition(_EV_CLOSE)
        self._write_ctrl(encode_u32_frame(TAG_CLOSE, self._ix, round(max(0.0, timeout) * 1000)))
        self._progress(now)
        self._reschedule()
        return True

    def _on_peer_close(self, timeout: float, now: float) -> None:
        deadline = now + timeout
        if self._close_deadline is None or deadline < self._close_deadline:
            self._close_deadline = deadline
        self._pending_close_ack = True
        self._write_ctrl(encode_frame(TAG_CLOSE_ACK, self._ix))
        self._transition(_EV_PEER_CLOSE)
        self._progress(now)
        self._reschedule()

    def abort(self, payload: bytes, error: Exception) -> None:
        """Abort now: send ABORT with the serialized abort value and shut down with ``error``."""
        if self.is_closed:
            return
        self._write_ctrl(encode_frame(TAG_ABORT, self._ix, 0, payload))
        self._peer = None
        self._shutdown(error, _EV_ABORT)

    def fail(self, error: Exception) -> None:
        """An unhandled server error: send ERROR and shut down with ``error``."""
        if self._phase is _SHUTDOWN:
            return
        self._write_ctrl(encode_frame(TAG_ERROR, self._ix))
        self._peer = None
        self._shutdown(error, _TERMINATE)

    def hold_close(self) -> None:
        """An async close callback started; shutdown waits for :meth:`release_close`."""
        self._close_holds += 1

    def release_close(self, now: float) -> None:
        """An async close callback finished."""
        self._close_holds = max(0, self._close_holds - 1)
        if self.is_closing:
            self._progress(now)

    def _roundtrip_done(self) -> bool:
        in_flight = self._acks_out + self._acks_in
        return in_flight == 0 and (not self._awaiting_close_ack or self._got_close_ack)

    def _progress(self, now: float) -> None:
        """Advance a close (CLOSING or CLOSE_FIRED): fire ``on_close``, finish, or time out."""
        if self._phase is _CLOSING and self._roundtrip_done():
            self._transition(_EV_FIRE_CLOSE)
            self._handler.handle_fire_close(None)
        phase = self._phase
        if phase is _SHUTDOWN:
            return
        if phase is _CLOSE_FIRED and self._close_holds == 0:
            self._shutdown(None, _EV_FINISH)
            return
        if self._close_deadline is not None and now >= self._close_deadline:
            self._shutdown(ChannelClosedError("Channel close timed out"), _TERMINATE)

    def _shutdown(self, error: Exception | None, event: ChannelEvent) -> None:
        if self._phase is _SHUTDOWN:
            return
        close_fired = self._transition(event) is _CLOSE_FIRED
        self._shutdown_error = error
        self._peer = None
        self._connect_deadline = self._reconnect_deadline = None
        self._replay.clear()
        self._reschedule()
        hook, self.on_shutdown_hook = self.on_shutdown_hook, None
        if hook is not None:
            hook(self)
        handler = self._handler
        if not close_fired:
            handler.handle_fire_close(error)
        handler.handle_credit()
        ack_error = error if error is not None else ChannelClosedError("Channel is closed")
        pending = list(self._pending_acks.values()) + self._buffer.tokens()
        self._pending_acks.clear()
        self._buffer.drain()
        self._pending_ack_res.clear()
        self._acks_out = self._acks_in = 0
        for token in pending:
            handler.handle_send_failed(token, ack_error)
        handler.handle_shutdown(error)
        self._handler = _NO_EVENTS

    @property
    def shutdown_error(self) -> Exception | None:
        """Why the channel shut down (``None``: cleanly, or not yet)."""
        return self._shutdown_error
