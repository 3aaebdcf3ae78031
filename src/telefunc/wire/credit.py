"""Per-channel credit flow control (WINDOW / MSG_WINDOW / BDP probes), sans-I/O.

Two independent axes bound what a sender may have in flight on one channel: bytes
(``WINDOW``) and messages (``MSG_WINDOW``). Only fire-and-forget TEXT/BINARY frames count;
ack-bearing frames, ACK_RES and PUBLISH are exempt (an ack's own round trip already paces the
caller, and ACK_RES must never deadlock behind credit).

* :class:`SendCredit` is the sender side: it starts at 2 MiB / 100 messages, each send takes one
  message and its payload bytes, and a ``WINDOW`` / ``MSG_WINDOW`` frame from the peer *sets*
  (not adds to) the credit. When either axis is ``<= 0`` the sender waits.
* :class:`ReceiveWindow` is the receiver side: it advertises its window again after a quarter of
  it has been consumed, and grows it gRPC-style: one ``BDP_PING`` in flight at a time, and when the
  bytes (messages) received between the ping and its ``BDP_PING_ACK`` reach 2/3 of the window, the
  window doubles, up to 64 MiB / 50,000 messages.

Both classes only count; the caller emits the frames they ask for.
"""

from __future__ import annotations

__all__ = [
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
MAX_BYTES = 64 * 1024 * 1024
MAX_MESSAGES = 50_000
#: Probe pacing bounds (seconds): never faster than 50 ms, back off to at most 10 s when idle.
BDP_PING_MIN_INTERVAL = 0.05
BDP_PING_MAX_INTERVAL = 10.0


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
        """Apply a WINDOW frame; returns whether credit is now available."""
        self.bytes = nbytes
        return self.available

    def set_messages(self, count: int) -> bool:
        """Apply a MSG_WINDOW frame; returns whether credit is now available."""
        self.messages = count
        return self.available

    def reset(self) -> None:
        """Back to the initial credit (on every re-attach)."""
        self.bytes = INITIAL_BYTES
        self.messages = INITIAL_MESSAGES


class ReceiveWindow:
    """Receiver-side window: advertisement after a quarter consumed, BDP-driven growth.

    :meth:`on_received` returns ``True`` when the caller should send a ``BDP_PING``;
    :meth:`on_consumed` and :meth:`on_ping_ack` return ``(byte_window | None, msg_window | None)``:
    the values to advertise in ``WINDOW`` / ``MSG_WINDOW`` frames (``None``: nothing to send).
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
    )

    def __init__(self) -> None:
        self.byte_window = INITIAL_BYTES
        self.msg_window = INITIAL_MESSAGES
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
        return probe

    def on_consumed(self, nbytes: int) -> tuple[int | None, int | None]:
        """Account a frame fully handled by the listeners; returns windows to advertise."""
        self._consumed_bytes += nbytes
        self._consumed_msgs += 1
        advertise_bytes = advertise_msgs = None
        if self._consumed_bytes >= self.byte_window >> 2:
            self._consumed_bytes = 0
            advertise_bytes = self.byte_window
        if self._consumed_msgs >= self.msg_window >> 2:
            self._consumed_msgs = 0
            advertise_msgs = self.msg_window
        return advertise_bytes, advertise_msgs

    def on_ping_ack(self) -> tuple[int | None, int | None]:
        """Settle the outstanding BDP probe; returns grown windows to advertise."""
        if not self._ping_in_flight:
            return None, None
        self._ping_in_flight = False
        byte_sample = self._bytes_received - self._bytes_at_ping
        msg_sample = self._msgs_received - self._msgs_at_ping
        grow_bytes = self.byte_window < MAX_BYTES and byte_sample * 3 >= self.byte_window * 2
        grow_msgs = self.msg_window < MAX_MESSAGES and msg_sample * 3 >= self.msg_window * 2
        if grow_bytes or grow_msgs:
            self._probe_interval = BDP_PING_MIN_INTERVAL
        else:
            self._probe_interval = min(BDP_PING_MAX_INTERVAL, self._probe_interval * 2)
        new_bytes = new_msgs = None
        if grow_bytes:
            self.byte_window = min(MAX_BYTES, self.byte_window * 2)
            new_bytes = self.byte_window
        if grow_msgs:
            self.msg_window = min(MAX_MESSAGES, self.msg_window * 2)
            new_msgs = self.msg_window
        return new_bytes, new_msgs

    def reset(self) -> None:
        """Drop the in-flight probe (its ack rode the previous wire); keep the grown windows."""
        self._ping_in_flight = False
        self._bytes_at_ping = self._bytes_received
        self._msgs_at_ping = self._msgs_received
