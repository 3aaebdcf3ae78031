"""Outgoing memory per connection is bounded (issue 13, item 1), on a fake clock.

The attack tests push past each limit: a client granting itself 0xFFFFFFFF credit, a client that
never reads while a channel sends or a broadcast publishes, a PING flood that is never read.
"""

from __future__ import annotations

import json

import pytest
from client_model import ClientModel, Clock, Recorder, make_channel

from telefunc.config import ChannelSettings
from telefunc.errors import ChannelOverflowError, NetworkError
from telefunc.wire.channel_state import ChannelCore, SendResult
from telefunc.wire.credit import MAX_BYTES, MAX_MESSAGES, SendCredit
from telefunc.wire.frames import Tag, encode_frame, encode_u32_frame
from telefunc.wire.mux import (
    CLOSE_SLOW_CONSUMER,
    HARD_LIMIT_FACTOR,
    SLOW_CONSUMER_REASON,
    ServerConnection,
    ServerMux,
)

SETTINGS = ChannelSettings()
CAP = 4096


def attach(
    mux: ServerMux, clock: Clock, settings: ChannelSettings = SETTINGS, cap: int = CAP
) -> tuple[ChannelCore, Recorder, ClientModel, ServerConnection]:
    core, rec = make_channel(settings)
    mux.register(core, clock.now)
    client = ClientModel(mux, clock)
    client.add_channel(core.id, 0)
    link = client.connect()
    link.conn.max_buffer = cap
    client.deliver_c2s()
    client.deliver_s2c()
    assert core.attached
    return core, rec, client, link.conn


def grant_huge_credit(client: ClientModel) -> None:
    client.send_raw(encode_u32_frame(Tag.WINDOW, 0, 0xFFFFFFFF))
    client.send_raw(encode_u32_frame(Tag.MSG_WINDOW, 0, 0xFFFFFFFF))
    client.deliver_c2s()


# ── 1. granted credit is clamped to the protocol maximum ─────────────────────


def test_window_frames_are_clamped_to_the_protocol_maximum() -> None:
    credit = SendCredit()
    credit.set_bytes(0xFFFFFFFF)
    credit.set_messages(0xFFFFFFFF)
    assert (credit.bytes, credit.messages) == (MAX_BYTES, MAX_MESSAGES)
    assert (MAX_BYTES, MAX_MESSAGES) == (64 * 1024 * 1024, 50_000)


def test_a_client_granting_itself_0xffffffff_credit_gets_at_most_50000_messages() -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    core, _, client, _ = attach(mux, clock, cap=1 << 40)
    grant_huge_credit(client)
    results = [core.send(Tag.TEXT, b"1", clock.now) for _ in range(MAX_MESSAGES)]
    assert results[:-1] == [SendResult.SENT] * (MAX_MESSAGES - 1)
    assert results[-1] is SendResult.WAIT_CREDIT  # the 50,000th send spends the last credit


# ── 3. a channel past the connection's cap: held, then ChannelOverflowError ─────


def test_sends_past_the_cap_are_held_and_overflow_with_channel_overflow_error() -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    settings = ChannelSettings(buffer_limit=1000)
    core, rec, client, conn = attach(mux, clock, settings)
    grant_huge_credit(client)
    payload = json.dumps("x" * 90).encode()  # ~100-byte frames
    results = [core.send(Tag.TEXT, payload, clock.now, f"t{i}") for i in range(200)]
    sent = results.count(SendResult.SENT)
    assert 0 < sent < 200 and results[sent:] == [SendResult.PENDING] * (200 - sent)
    # The queue stopped at the cap (plus the frame that reached it); the rest waits in the
    # channel's own budget, and what did not fit failed like a detached channel's overflow.
    assert CAP <= conn.buffered < CAP + 200
    assert core.buffered * len(payload) <= 1000
    failed = [token for token, err in rec.failed if isinstance(err, ChannelOverflowError)]
    assert failed == [f"t{i}" for i in range(sent, 200 - core.buffered)]
    held = [f"t{i}" for i in range(200 - core.buffered, 200)]
    # The client reads: the held sends go out in order and complete.
    client.deliver_s2c()
    conn.drained(clock.now)
    client.deliver_s2c()
    assert rec.done == held
    seqs = [f.seq for f in client.channels[0].received if f.tag == Tag.TEXT]
    assert seqs == list(range(1, sent + len(held) + 1))  # no gap: evicted sends never got a seq
    assert core.buffered == 0 and conn.buffered == 0


def test_a_congested_connection_holds_sends_until_drained_even_with_room_left() -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    core, rec, client, conn = attach(mux, clock)
    pending = [0]
    conn.io_buffered = lambda: pending[0]  # the transport holds unflushed bytes
    pending[0] = CAP
    assert conn.congested
    assert core.send(Tag.TEXT, b"1", clock.now, "a") is SendResult.PENDING
    pending[0] = 0  # the transport flushed, but order demands the held send goes first
    assert core.send(Tag.TEXT, b"2", clock.now, "b") is SendResult.PENDING
    conn.drained(clock.now)
    client.deliver_s2c()
    assert [f.payload for f in client.channels[0].received if f.tag == Tag.TEXT] == [b"1", b"2"]
    assert rec.done == ["a", "b"]


def test_batches_leave_the_rest_counted_against_the_cap() -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    core, _, _, conn = attach(mux, clock, cap=1 << 20)
    for _ in range(10):
        core.send(Tag.BINARY, b"b" * 1000, clock.now)
    before = conn.buffered
    batch = conn.data_to_send(2500)
    assert len(batch) == 3 and conn.buffered == before - sum(map(len, batch))


# ── 3. broadcast deliveries bypass credit: a subscriber that stays behind is cut ─


def test_publish_frames_past_the_hard_limit_cut_the_connection_as_a_slow_consumer() -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    core, _, client, conn = attach(mux, clock)
    closes: list[ServerConnection] = []
    mux.on_slow_consumer = closes.append
    publish = b"1,0\n" + b'"' + b"p" * 200 + b'"'
    sent = 0
    while not conn.cut:
        core.send(Tag.PUBLISH, publish, clock.now)  # never held, never waits for credit
        sent += 1
        assert sent < 1000, "the connection was never cut"
    assert sent * (len(publish) + 7) > CAP * HARD_LIMIT_FACTOR
    assert conn.close_request == (CLOSE_SLOW_CONSUMER, SLOW_CONSUMER_REASON)
    assert len(SLOW_CONSUMER_REASON.encode()) <= 123  # fits a WebSocket close frame
    assert mux.stats.slow_consumer_drops == 1 and closes == [conn]
    assert conn.buffered == 0 and conn.data_to_send() == []  # the queue is released at once
    core.send(Tag.PUBLISH, publish, clock.now)
    assert conn.buffered == 0  # and nothing piles up until the I/O layer ends the wire
    client.drop()
    assert core.attached is False  # transient: the channel waits for a reconnect


def test_pongs_to_an_unread_ping_flood_count_and_cut_the_connection() -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    _, _, _, conn = attach(mux, clock, cap=64)
    ping = encode_frame(Tag.PING)
    for _ in range(1000):
        conn.receive(ping, clock.now)
        if conn.cut:
            break
    assert conn.cut and conn.close_request is not None
    assert conn.close_request[0] == CLOSE_SLOW_CONSUMER
    assert mux.stats.slow_consumer_drops == 1


def test_ack_replies_to_an_unread_client_cannot_grow_the_queue_without_limit() -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    core, rec, client, conn = attach(mux, clock, cap=1024)
    replies = 0
    while not conn.cut and replies < 2000:  # ack requests need no credit; replies pile up
        client.send(0, Tag.TEXT_ACK_REQ, b"1")
        client.deliver_c2s()
        core.reply(rec.ack_requests[-1][0], 0, "x" * 50, clock.now)
        replies += 1
    assert conn.cut and replies < 2000
    assert conn.buffered == 0


@pytest.mark.parametrize("transient", [True, False])
def test_memory_is_released_when_the_client_goes_away(transient: bool) -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    core, _, client, conn = attach(mux, clock)
    grant_huge_credit(client)
    for _ in range(100):
        core.send(Tag.TEXT, b"y" * 100, clock.now, object())
    assert core.buffered > 0 and conn.buffered >= CAP
    client.drop(permanent=not transient)
    assert conn.buffered == 0 and conn.data_to_send() == []
    if transient:
        assert core.buffered > 0  # held like any send to a detached channel (bounded)
    else:
        assert core.is_shutdown and core.buffered == 0


def test_a_slow_subscriber_drop_ends_the_channel_with_network_error() -> None:
    clock = Clock()
    mux = ServerMux(SETTINGS)
    core, rec, _, conn = attach(mux, clock)
    conn.cut_slow_consumer()
    core.fail(NetworkError(SLOW_CONSUMER_REASON))
    assert core.is_shutdown
    assert isinstance(rec.shutdown[-1], NetworkError)
    assert core.id not in mux.channels  # a reconnect finds it gone: the client sees the error
    assert conn.data_to_send() == []
