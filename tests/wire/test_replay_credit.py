"""Replay buffer lanes and credit windows, on a fake clock."""

from __future__ import annotations

import gc

from telefunc.wire.credit import (
    INITIAL_BYTES,
    INITIAL_MESSAGES,
    MAX_BYTES,
    MAX_MESSAGES,
    ReceiveWindow,
    SendCredit,
)
from telefunc.wire.replay import ReplayBuffer


def test_replay_returns_frames_after_seq_merged_across_lanes() -> None:
    buf = ReplayBuffer(1000, 1000, 60.0)
    buf.push(1, b"t1", 0.0)
    buf.push(2, b"b2", 0.0, binary=True)
    buf.push(3, b"t3", 0.0)
    buf.push(4, b"b4", 0.0, binary=True)
    assert buf.get_after(0) == [b"t1", b"b2", b"t3", b"b4"]
    assert buf.get_after(2) == [b"t3", b"b4"]
    assert buf.get_after(4) == []


def test_binary_lane_never_evicts_text() -> None:
    buf = ReplayBuffer(100, 10, 60.0)
    buf.push(1, b"x" * 50, 0.0)
    for seq in range(2, 10):
        buf.push(seq, b"y" * 6, 0.0, binary=True)  # overflows the 10-byte binary lane repeatedly
    assert buf.text.bytes == 50 and len(buf.text) == 1
    assert buf.binary.bytes <= 10


def test_oversized_frame_is_a_gap_and_replay_stops_there() -> None:
    buf = ReplayBuffer(10, 10, 60.0)
    buf.push(1, b"a", 0.0)
    assert buf.push(2, b"z" * 11, 0.0) is False
    buf.push(3, b"c", 0.0)
    assert buf.get_after(0) == [b"a"]
    assert buf.get_after(1) == []  # the very next frame is unrecoverable
    assert buf.get_after(2) == [b"c"]


def test_entries_expire_by_age() -> None:
    buf = ReplayBuffer(1000, 1000, 5.0)
    buf.push(1, b"old", 0.0)
    buf.push(2, b"new", 4.0)
    assert buf.next_expiry() == 5.0
    buf.evict(5.5)
    assert buf.get_after(0) == [b"new"]


def test_the_byte_budget_evicts_the_oldest_and_expiry_follows_the_new_oldest() -> None:
    buf = ReplayBuffer(10, 10, 5.0)
    buf.push(1, b"aaaa", 0.0)
    buf.push(2, b"bbbb", 1.0)
    buf.push(3, b"cccc", 2.0)  # 12 bytes: the oldest goes
    assert buf.get_after(0) == [b"bbbb", b"cccc"]
    assert (len(buf.text), buf.text.bytes) == (2, 8)
    assert buf.next_expiry() == 6.0  # seq 2's time + max_age
    buf.evict(6.5)
    assert buf.get_after(0) == [b"cccc"]
    buf.evict(7.5)
    assert (len(buf), buf.bytes, buf.next_expiry()) == (0, 0, None)


def test_replay_entries_are_no_objects_for_the_garbage_collector() -> None:
    # A fan-out keeps one entry per subscriber per publish: a container per entry would count
    # towards the young generation's threshold, and each collection would walk them all.
    buf = ReplayBuffer(1 << 20, 1 << 20, 60.0)
    buf.push(1, b"first", 0.0)
    frames = [b"frame %d" % seq for seq in range(2, 1002)]
    gc.disable()  # gc.get_count()[0] then counts every container allocated and kept
    try:
        before = gc.get_count()[0]
        for seq, frame in enumerate(frames, 2):
            buf.push(seq, frame, 0.0)
        kept = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert kept < 10
    assert len(buf.get_after(0)) == 1001


def test_send_credit_stalls_on_messages_and_bytes_and_resumes_on_window() -> None:
    credit = SendCredit()
    for _ in range(INITIAL_MESSAGES - 1):
        assert credit.consume(1)
    assert not credit.consume(1)  # the 100th message exhausts the message credit
    assert credit.set_messages(100)
    assert not credit.consume(INITIAL_BYTES)  # byte axis
    assert not credit.set_messages(50)
    assert credit.set_bytes(10)


def test_receive_window_advertises_after_a_quarter() -> None:
    win = ReceiveWindow()
    adverts = [win.on_consumed(10) for _ in range(25)]
    assert adverts[:24] == [(None, None)] * 24
    assert adverts[24] == (None, INITIAL_MESSAGES)
    assert win.on_consumed(INITIAL_BYTES // 4) == (INITIAL_BYTES, None)


def test_bdp_probe_grows_windows_to_their_caps() -> None:
    win = ReceiveWindow()
    now = 0.0
    rounds = 0
    while win.byte_window < MAX_BYTES or win.msg_window < MAX_MESSAGES:
        now += 1.0
        rounds += 1
        assert rounds < 20
        window = win.byte_window
        assert win.on_received(window, now)  # one probe per round, saturated sample
        for _ in range(win.msg_window):
            win.on_received(0, now)  # a full message window in flight during this RTT
        # The application keeps up (a backlog would block growth, see test_receive_backpressure).
        win.on_consumed(window)
        for _ in range(win.msg_window):
            win.on_consumed(0)
        win.on_ping_ack()
    assert rounds == 9  # 100 -> 51,200 msgs (capped at 50,000) takes 9 doublings
    assert win.byte_window == MAX_BYTES
    assert win.msg_window == MAX_MESSAGES
    assert not win.on_received(1, now + 100)  # at both caps probing stops


def test_bdp_probe_does_not_grow_on_small_samples_and_backs_off() -> None:
    win = ReceiveWindow()
    assert win.on_received(10, 0.0)
    assert win.on_ping_ack() == (None, None)
    assert not win.on_received(10, 0.06)  # interval doubled to 100 ms
    assert win.on_received(10, 0.2)
    assert win.byte_window == INITIAL_BYTES
