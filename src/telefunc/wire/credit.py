"""Per-channel credit flow control (WINDOW / MSG_WINDOW / BDP probes), sans-I/O.

:class:`SendCredit` is the sender's credit, set (not added to) by the peer's window frames and
clamped to the protocol's maximum; :class:`ReceiveWindow` decides when to advertise and when to
grow. The receiver advertises only the room left and does not grow while a quarter of its window
is unconsumed, so a stalled consumer holds about one window (docs/protocol.md §7.6). Both
classes only count; the caller emits the frames they ask for.
"""

from __future__ import annotations

__all__ = [
    "BACKLOG_SHIFT",
    "BDP_PING_MAX_INTERVAL",
    "BDP_PING_MIN_INTERVAL",
    "INITIAL_BYTES",
    "INITIAL_MESSAGES",
    "MAX_BYTES",
    "MAX_MESSAGES",
    "ReceiveWindow",
    "SendCredit",
]

INITIAL_BYTES = 2 * 1024 * 1024
INITIAL_MESSAGES = 100
#: The protocol's largest window (telefunc@0.2.23 ``CREDIT_WINDOW_MAX_BYTES`` /
#: ``CREDIT_MSG_WINDOW_MAX``): growth stops here, and granted credit is clamped to it.
MAX_BYTES = 64 * 1024 * 1024
MAX_MESSAGES = 50_000
#: Probe pacing bounds (seconds): never faster than 50 ms, back off to at most 10 s when idle.
BDP_PING_MIN_INTERVAL = 0.05
BDP_PING_MAX_INTERVAL = 10.0
#: Growth is refused while more than ``window >> BACKLOG_SHIFT`` (a quarter) is unconsumed.
BACKLOG_SHIFT = 2
#: What :meth:`ReceiveWindow.on_consumed` returns when no window is due.
_NOTHING_TO_ADVERTISE: tuple[None, None] = (None, None)


class SendCredit:
    """Sender-side credit on both axes."""

    __slots__ = ("bytes", "messages")

    def __init__(self) -> None:
        self.bytes = INITIAL_BYTES
        self.messages = INITIAL_MESSAGES

    @property
    def available(self) -> bool:
        """Whether the sender may go on (both axes positive)."""
        return self.bytes > 0 and self.messages > 0

    def consume(self, nbytes: int) -> bool:
        """Account one sent message of ``nbytes``; returns :attr:`available` afterwards."""
        self.bytes -= nbytes
        self.messages -= 1
        return self.bytes > 0 and self.messages > 0

    def set_bytes(self, nbytes: int) -> bool:
        """Apply a WINDOW frame (clamped to :data:`MAX_BYTES`); returns whether credit is now
        available."""
        self.bytes = min(nbytes, MAX_BYTES)
        return self.available

    def set_messages(self, count: int) -> bool:
        """Apply a MSG_WINDOW frame (clamped to :data:`MAX_MESSAGES`); returns whether credit is
        now available."""
        self.messages = min(count, MAX_MESSAGES)
        return self.available

    def reset(self) -> None:
        """Back to the initial credit (on every re-attach)."""
        self.bytes = INITIAL_BYTES
        self.messages = INITIAL_MESSAGES


class ReceiveWindow:
    """Receiver-side window: advertisement after a quarter consumed, BDP-driven growth.

    :meth:`on_received` returns ``True`` when the caller should send a ``BDP_PING``;
    :meth:`on_consumed` and :meth:`on_ping_ack` return ``(byte_credit | None, msg_credit | None)``:
    the values to advertise in ``WINDOW`` / ``MSG_WINDOW`` frames (``None``: nothing to send).
    An advertised value is the window minus what is still unconsumed, so the sender's credit plus
    the receiver's backlog never exceeds one window.
    """

    __slots__ = (
        "_bytes_at_ping",
        "_bytes_received",
        "_consumed_bytes",
        "_consumed_msgs",
        "_last_ping_at",
        "_msgs_at_ping",
        "_msgs_received",
        "_ping_in_flight",
        "_probe_interval",
        "byte_window",
        "msg_window",
        "unconsumed_bytes",
        "unconsumed_msgs",
    )

    def __init__(self) -> None:
        self.byte_window = INITIAL_BYTES
        self.msg_window = INITIAL_MESSAGES
        #: Received but not yet consumed by the application (the receiver's backlog).
        self.unconsumed_bytes = 0
        self.unconsumed_msgs = 0
        self._consumed_bytes = 0
        self._consumed_msgs = 0
        self._bytes_received = 0
        self._msgs_received = 0
        self._bytes_at_ping = 0
        self._msgs_at_ping = 0
        self._ping_in_flight = False
        self._last_ping_at = float("-inf")
        self._probe_interval = BDP_PING_MIN_INTERVAL

    def on_received(self, nbytes: int, now: float) -> bool:
        """Account a credit-counted frame off the wire; ``True``: send a BDP_PING now."""
        probe = False
        at_cap = self.byte_window >= MAX_BYTES and self.msg_window >= MAX_MESSAGES
        if (
            not self._ping_in_flight
            and not at_cap
            and now - self._last_ping_at >= self._probe_interval
        ):
            # Snapshot before counting this frame: it is the first byte in flight of the sample.
            self._bytes_at_ping = self._bytes_received
            self._msgs_at_ping = self._msgs_received
            self._ping_in_flight = True
            self._last_ping_at = now
            probe = True
        self._bytes_received += nbytes
        self._msgs_received += 1
        self.unconsumed_bytes += nbytes
        self.unconsumed_msgs += 1
        return probe

    def room_bytes(self) -> int:
        """Byte credit the sender may have on top of the backlog (never negative)."""
        return max(0, self.byte_window - self.unconsumed_bytes)

    def room_msgs(self) -> int:
        """Message credit the sender may have on top of the backlog (never negative)."""
        return max(0, self.msg_window - self.unconsumed_msgs)

    def overrun(self, windows: int, slack_bytes: int) -> bool:
        """Whether the backlog exceeds ``windows`` times the window (bytes: plus ``slack_bytes``).

        A sender that respects its credit cannot get there: since a window frame *sets* its
        credit, the backlog of an awaiting sender stays within a few windows even when several
        advertisements were in flight at once; see :mod:`telefunc.wire.credit`.
        """
        return (
            self.unconsumed_msgs > self.msg_window * windows
            or self.unconsumed_bytes > self.byte_window * windows + slack_bytes
        )

    def on_consumed(self, nbytes: int) -> tuple[int | None, int | None]:
        """Account a frame fully handled by the listeners; returns credits to advertise."""
        # Clamped: a frame consumed twice (or never counted) must not inflate the room.
        left = self.unconsumed_bytes - nbytes
        self.unconsumed_bytes = left if left > 0 else 0
        left = self.unconsumed_msgs - 1
        self.unconsumed_msgs = left if left > 0 else 0
        consumed_bytes = self._consumed_bytes + nbytes
        consumed_msgs = self._consumed_msgs + 1
        if consumed_bytes < self.byte_window >> 2 and consumed_msgs < self.msg_window >> 2:
            self._consumed_bytes = consumed_bytes
            self._consumed_msgs = consumed_msgs
            return _NOTHING_TO_ADVERTISE  # the common case: no allocation
        advertise_bytes = advertise_msgs = None
        if consumed_bytes >= self.byte_window >> 2:
            consumed_bytes = 0
            advertise_bytes = self.room_bytes()
        if consumed_msgs >= self.msg_window >> 2:
            consumed_msgs = 0
            advertise_msgs = self.room_msgs()
        self._consumed_bytes = consumed_bytes
        self._consumed_msgs = consumed_msgs
        return advertise_bytes, advertise_msgs

    def on_ping_ack(self) -> tuple[int | None, int | None]:
        """Settle the outstanding BDP probe; returns credits of grown windows to advertise."""
        if not self._ping_in_flight:
            return None, None
        self._ping_in_flight = False
        byte_sample = self._bytes_received - self._bytes_at_ping
        msg_sample = self._msgs_received - self._msgs_at_ping
        # The link had room for more, but growing while the application lags would only let
        # the backlog grow: refuse until it has caught up to within a quarter window.
        byte_backlogged = self.unconsumed_bytes > self.byte_window >> BACKLOG_SHIFT
        msg_backlogged = self.unconsumed_msgs > self.msg_window >> BACKLOG_SHIFT
        grow_bytes = (
            self.byte_window < MAX_BYTES
            and not byte_backlogged
            and byte_sample * 3 >= self.byte_window * 2
        )
        grow_msgs = (
            self.msg_window < MAX_MESSAGES
            and not msg_backlogged
            and msg_sample * 3 >= self.msg_window * 2
        )
        if grow_bytes or grow_msgs:
            self._probe_interval = BDP_PING_MIN_INTERVAL
        else:
            self._probe_interval = min(BDP_PING_MAX_INTERVAL, self._probe_interval * 2)
        new_bytes = new_msgs = None
        if grow_bytes:
            self.byte_window = min(MAX_BYTES, self.byte_window * 2)
            new_bytes = self.room_bytes()
        if grow_msgs:
            self.msg_window = min(MAX_MESSAGES, self.msg_window * 2)
            new_msgs = self.room_msgs()
        return new_bytes, new_msgs

    def reset(self) -> None:
        """Drop the in-flight probe (its ack rode the previous wire); keep the grown windows.

        The backlog is kept too: frames received before the drop are still queued for the
        application and are consumed (and counted down) as usual.
        """
        self._ping_in_flight = False
        self._bytes_at_ping = self._bytes_received
        self._msgs_at_ping = self._msgs_received
