"""A receiver that stops consuming bounds what piles up to about one window (fake clock).

The sender plays telefunc@0.2.23's rules (a ``WINDOW`` / ``MSG_WINDOW`` frame *sets* its credit;
it stops once either axis is ``<= 0``; it answers ``BDP_PING`` at once) against the real
:class:`~telefunc.wire.channel_state.ChannelCore` of the server, over the lossless lockstep links
of :mod:`client_model`. Nothing here sleeps: each round advances the fake clock by one RTT.
"""

from __future__ import annotations

from collections import deque

from client_model import ClientModel, Clock, Recorder

from telefunc.config import ChannelSettings
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.credit import (
    INITIAL_BYTES,
    INITIAL_MESSAGES,
    ReceiveWindow,
    SendCredit,
)
from telefunc.wire.frames import Frame, Tag
from telefunc.wire.mux import ServerMux

CHUNK = 64 * 1024
RTT = 0.02  # one lockstep round of the fake clock: well above the 50 ms probe floor / 3


class SlowReader(Recorder):
    """Queues what arrives; the test decides when the application takes (consumes) it."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: deque[int] = deque()
        self.received = 0
        self.consumed = 0

    def handle_message(self, payload: bytes, binary: bool) -> None:
        self.queue.append(len(payload))
        self.received += len(payload)

    def take_all(self) -> None:
        assert self.core is not None
        while self.queue:
            n = self.queue.popleft()
            self.consumed += n
            self.core.consumed(n)

    @property
    def unconsumed(self) -> int:
        return self.received - self.consumed


class Upload:
    """One client→server byte upload driven round by round."""

    def __init__(self, total: int) -> None:
        self.clock = Clock()
        self.mux = ServerMux(ChannelSettings())
        self.reader = SlowReader()
        self.core = ChannelCore("up-1", ChannelSettings(), self.reader)
        self.reader.core = self.core
        self.mux.register(self.core, self.clock.now)
        self.client = ClientModel(self.mux, self.clock)
        self.client.add_channel(self.core.id, 0)
        self.client.connect()
        self.client.deliver_c2s()
        self.client.deliver_s2c()
        assert self.client.reconciled
        self.credit = SendCredit()
        self.total = total
        self.sent = 0
        self.seen = 0  # frames of channel 0 already looked at
        self.adverts: list[int] = []  # WINDOW values, in order
        self.peak_unconsumed = 0
        self.rounds = 0

    def round(self, *, consume: bool) -> int:
        """One RTT: send while credit lasts, deliver both ways; returns the bytes sent."""
        sent_before = self.sent
        self.rounds += 1
        if self.rounds % 50 == 1:  # once per second: alive past the ping timeout, under the rate
            self.client.ping()
        while self.credit.available and self.sent < self.total:
            n = min(CHUNK, self.total - self.sent)
            self.client.send(0, Tag.BINARY, bytes(n))
            self.credit.consume(n)
            self.sent += n
        self.client.deliver_c2s()
        self.peak_unconsumed = max(self.peak_unconsumed, self.reader.unconsumed)
        if consume:
            self.reader.take_all()
        self.client.deliver_s2c()  # BDP_PING_ACKs queue up on c2s for the next round
        received: list[Frame] = self.client.channels[0].received
        for frame in received[self.seen :]:
            if frame.tag == Tag.WINDOW:
                self.adverts.append(frame.u32)
                self.credit.set_bytes(frame.u32)
            elif frame.tag == Tag.MSG_WINDOW:
                self.credit.set_messages(frame.u32)
        self.seen = len(received)
        self.clock.advance(RTT, self.mux)
        return self.sent - sent_before


def grown_window(up: Upload) -> int:
    """The largest window the receiver has advertised so far."""
    return max([INITIAL_BYTES, *up.adverts])


def test_a_stopped_reader_stalls_the_sender_after_about_one_window_then_it_resumes() -> None:
    up = Upload(total=48 * 1024 * 1024)
    # A fast reader first: BDP probes grow the window past its initial 2 MiB.
    for _ in range(6):
        up.round(consume=True)
    window = grown_window(up)
    assert window >= 4 * INITIAL_BYTES, up.adverts
    assert up.sent < up.total
    # The reader stops. For 10 s of fake time (500 RTTs, many BDP probe periods) nothing is
    # consumed: the sender must stall with at most about one window unconsumed.
    up.peak_unconsumed = 0
    adverts_before = len(up.adverts)
    stalled_for = 0
    for _ in range(500):
        stalled_for = 0 if up.round(consume=False) else stalled_for + 1
    assert stalled_for >= 490, "the sender never stalled"
    assert up.peak_unconsumed <= window + CHUNK, (up.peak_unconsumed, window)
    # No growth and no re-advertisement beyond the window while nothing is consumed.
    assert all(value <= window for value in up.adverts[adverts_before:]), up.adverts
    assert grown_window(up) == window
    # The reader resumes: the sender resumes and the whole upload gets through.
    rounds = 0
    while up.reader.consumed < up.total:
        rounds += 1
        assert rounds < 500, (up.sent, up.reader.consumed)
        up.round(consume=True)
    assert up.sent == up.reader.received == up.total


def test_a_reader_that_takes_a_little_each_round_keeps_the_backlog_bounded() -> None:
    up = Upload(total=40 * 1024 * 1024)
    for _ in range(6):
        up.round(consume=True)
    window = grown_window(up)
    up.peak_unconsumed = 0
    # A slow reader: one chunk per RTT, far slower than the sender could go.
    for _ in range(400):
        up.round(consume=False)
        if up.reader.queue:
            n = up.reader.queue.popleft()
            up.reader.consumed += n
            up.core.consumed(n)
    assert up.peak_unconsumed <= window + CHUNK, (up.peak_unconsumed, window)
    assert grown_window(up) == window


def test_receive_window_does_not_grow_or_overcommit_while_backlogged() -> None:
    win = ReceiveWindow()
    now = 0.0
    assert win.on_received(INITIAL_BYTES // 2, now)  # a probe goes out with the first frame
    win.on_received(INITIAL_BYTES // 2, now)
    # A saturated sample, but the whole window is still unconsumed: no growth.
    assert win.on_ping_ack() == (None, None)
    assert win.byte_window == INITIAL_BYTES
    # Consuming a quarter re-advertises only the room left, never the whole window again.
    assert win.on_consumed(INITIAL_BYTES // 4) == (INITIAL_BYTES // 4, None)
    # Consuming the rest re-advertises the whole window.
    assert win.on_consumed(3 * INITIAL_BYTES // 4) == (INITIAL_BYTES, None)
    # With the backlog gone a saturated sample grows the window again.
    now += 1.0
    assert win.on_received(INITIAL_BYTES, now)
    win.on_consumed(INITIAL_BYTES)
    assert win.on_ping_ack() == (2 * INITIAL_BYTES, None)


def test_message_axis_is_bounded_the_same_way() -> None:
    win = ReceiveWindow()
    for _ in range(INITIAL_MESSAGES):
        win.on_received(1, 0.0)
    assert win.on_ping_ack() == (None, None)  # saturated but nothing consumed
    assert win.msg_window == INITIAL_MESSAGES
    adverts = [win.on_consumed(1)[1] for _ in range(INITIAL_MESSAGES // 4)]
    assert adverts[-1] == INITIAL_MESSAGES // 4  # only the room left
    assert win.byte_window == INITIAL_BYTES
