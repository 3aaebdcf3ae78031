"""The sans-I/O mux and channel state machine on a fake clock: one test per guarantee."""

from __future__ import annotations

import json

import pytest
from client_model import ClientModel, Clock, Recorder, connect_client, make_channel

from telefunc.config import ChannelSettings
from telefunc.errors import ChannelClosedError, ChannelOverflowError, NetworkError
from telefunc.wire.channel_state import ChannelCore, SendResult
from telefunc.wire.frames import AckStatus, Tag, decode_frame, encode_frame, encode_json
from telefunc.wire.mux import CLOSE_PING_TIMEOUT, CLOSE_PROTOCOL_ERROR, ServerMux

SETTINGS = ChannelSettings()


def attached(
    mux: ServerMux, clock: Clock, settings: ChannelSettings = SETTINGS
) -> tuple[ChannelCore, Recorder, ClientModel]:
    core, rec = make_channel(settings)
    client = connect_client(mux, clock, core)
    assert client.reconciled and core.attached and rec.opened == 1
    return core, rec, client


def send_text(core: ChannelCore, clock: Clock, text: str, token: object = None) -> SendResult:
    return core.send(Tag.TEXT, json.dumps(text).encode(), clock.now, token)


def test_reconciled_carries_settings_in_ms_and_a_new_session_each_time(
    mux: ServerMux, clock: Clock
) -> None:
    core, _, client = attached(mux, clock)
    first = client.reconciled_payloads[-1]
    assert first["open"] == [{"ix": 0, "lastSeq": 0}]
    assert first["reconnectTimeout"] == 60000 and first["pingInterval"] == 5000
    assert first["clientReplayBuffer"] == 1048576 and first["idleTimeout"] == 60000
    client.drop()
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    second = client.reconciled_payloads[-1]
    assert second["sessionId"] != first["sessionId"]
    assert core.attached


def test_ordering_server_to_client(mux: ServerMux, clock: Clock) -> None:
    core, _, client = attached(mux, clock)
    for i in range(50):
        send_text(core, clock, f"m{i}")
    client.deliver_s2c()
    ch = client.channels[0]
    data = [f for f in ch.received if f.tag == Tag.TEXT]
    assert [f.seq for f in data] == list(range(1, 51))
    assert [json.loads(f.payload) for f in data] == [f"m{i}" for i in range(50)]


def test_ordering_client_to_server(mux: ServerMux, clock: Clock) -> None:
    _, rec, client = attached(mux, clock)
    for i in range(50):
        client.send(0, Tag.TEXT, json.dumps(i).encode())
    client.deliver_c2s()
    assert [json.loads(m) for m in rec.messages] == list(range(50))


def test_duplicates_are_dropped_on_replay(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    for i in range(3):
        client.send(0, Tag.TEXT, json.dumps(i).encode())
    client.deliver_c2s()
    # The wire drops before the client learns what the server processed: it replays everything.
    client.drop()
    client.channels[0].out_seq = 3
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    reconciled = client.reconciled_payloads[-1]
    assert reconciled["open"] == [{"ix": 0, "lastSeq": 3}]
    for f in client.channels[0].replay.get_after(0):  # a naive client re-sends 1..3 anyway
        client.send_raw(f)
    client.send(0, Tag.TEXT, b"3")
    client.deliver_c2s()
    assert [json.loads(m) for m in rec.messages] == [0, 1, 2, 3]
    assert core.last_peer_seq == 4


def test_server_replays_frames_the_client_missed(mux: ServerMux, clock: Clock) -> None:
    core, _, client = attached(mux, clock)
    for i in range(5):
        send_text(core, clock, str(i))
    client.deliver_s2c(limit=2)  # frames 3..5 are lost with the wire
    client.drop()
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    assert [json.loads(p) for p in client.texts(0)] == ["0", "1", "2", "3", "4"]


def test_pre_attach_buffer_text_and_binary_budgets_are_separate(clock: Clock) -> None:
    settings = ChannelSettings(buffer_limit=100, buffer_limit_binary=50)
    core, rec = make_channel(settings)
    core.send(Tag.TEXT, b"t" * 60, clock.now, "text-1")
    for i in range(5):  # 5 x 20 bytes of binary: the oldest binaries are evicted, never text
        core.send(Tag.BINARY, b"b" * 20, clock.now, f"bin-{i}")
    assert [t for t, _ in rec.failed] == ["bin-0", "bin-1", "bin-2"]
    assert all(isinstance(e, ChannelOverflowError) for _, e in rec.failed)
    core.send(Tag.TEXT, b"u" * 60, clock.now, "text-2")  # 120 > 100: evicts text-1 only
    assert [t for t, _ in rec.failed][-1] == "text-1"
    assert core.buffered == 3


def test_oversized_message_clears_its_lane_only(clock: Clock) -> None:
    settings = ChannelSettings(buffer_limit=100, buffer_limit_binary=50)
    core, rec = make_channel(settings)
    core.send(Tag.TEXT, b"t", clock.now, "text")
    core.send(Tag.BINARY, b"b", clock.now, "bin")
    core.send(Tag.BINARY, b"x" * 51, clock.now, "huge")
    assert [t for t, _ in rec.failed] == ["bin", "huge"]
    assert core.buffered == 1


def test_buffered_sends_flush_in_order_on_attach(mux: ServerMux, clock: Clock) -> None:
    core, rec = make_channel(SETTINGS)
    core.send(Tag.TEXT, b'"a"', clock.now, "a")
    core.send(Tag.BINARY, b"\x01", clock.now, "b")
    core.send(Tag.TEXT_ACK_REQ, b'"c"', clock.now, "c")
    mux.register(core, clock.now)
    client = ClientModel(mux, clock)
    client.add_channel(core.id, 0)
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    got = [(f.tag, f.seq, f.payload) for f in client.channels[0].received]
    assert got == [(Tag.TEXT, 1, b'"a"'), (Tag.BINARY, 2, b"\x01"), (Tag.TEXT_ACK_REQ, 3, b'"c"')]
    assert rec.done == ["a", "b"]
    client.reply_ack(0, 3, '"ok"')
    client.deliver_c2s()
    assert rec.ack_results == [("c", AckStatus.OK, '"ok"')]


def test_sender_stalls_on_credit_and_resumes_on_msg_window_and_window(
    mux: ServerMux, clock: Clock
) -> None:
    core, rec, client = attached(mux, clock)
    results = [send_text(core, clock, "x") for _ in range(100)]
    assert results[:99] == [SendResult.SENT] * 99
    assert results[99] is SendResult.WAIT_CREDIT and not core.credit_available
    credit_before = rec.credit
    client.window(0, Tag.MSG_WINDOW, 100)
    client.deliver_c2s()
    assert core.credit_available and rec.credit == credit_before + 1
    big = b"x" * (2 * 1024 * 1024)
    assert core.send(Tag.BINARY, big, clock.now) is SendResult.WAIT_CREDIT  # byte axis
    client.window(0, Tag.WINDOW, 4 * 1024 * 1024)
    client.deliver_c2s()
    assert core.credit_available and rec.credit == credit_before + 2
    # Ack-bearing sends never wait for credit.
    client.window(0, Tag.WINDOW, 0)
    client.deliver_c2s()
    assert core.send(Tag.TEXT_ACK_REQ, b"1", clock.now, "t") is SendResult.PENDING


def test_receiver_advertises_windows_as_messages_are_consumed(mux: ServerMux, clock: Clock) -> None:
    _core, _, client = attached(mux, clock)
    for i in range(25):
        client.send(0, Tag.TEXT, str(i).encode())
    client.deliver_c2s()
    client.deliver_s2c()
    ctrl = [(f.tag, f.u32) for f in client.channels[0].received if f.tag == Tag.MSG_WINDOW]
    assert ctrl == [(Tag.MSG_WINDOW, 100)]
    assert any(f.tag == Tag.BDP_PING for f in client.channels[0].received)


def test_close_waits_for_in_flight_ack_even_after_close_ack(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    core.send(Tag.TEXT_ACK_REQ, b'"q"', clock.now, "q")
    assert core.close(5.0, clock.now)
    assert core.is_closed
    with pytest.raises(ChannelClosedError):
        send_text(core, clock, "late")
    client.deliver_s2c()  # the client gets the ack request, then CLOSE, answers CLOSE_ACK
    client.deliver_c2s()
    assert core.got_close_ack and rec.close_fired == [] and not core.is_shutdown
    client.reply_ack(0, 1, '"answer"')  # the ack races behind the CLOSE_ACK
    client.deliver_c2s()
    assert rec.ack_results == [("q", AckStatus.OK, '"answer"')]
    assert rec.close_fired == [None] and rec.shutdown == [None]


def test_close_times_out_when_the_ack_never_comes(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    core.send(Tag.TEXT_ACK_REQ, b'"q"', clock.now, "q")
    core.close(5.0, clock.now)
    client.deliver_s2c()
    client.deliver_c2s()
    clock.advance(4.9, mux)
    assert not core.is_shutdown
    clock.advance(0.2, mux)
    assert core.is_shutdown and isinstance(rec.shutdown[0], ChannelClosedError)
    assert rec.failed[0][0] == "q" and isinstance(rec.failed[0][1], ChannelClosedError)


def test_peer_close_is_acknowledged_and_waits_for_inbound_acks(
    mux: ServerMux, clock: Clock
) -> None:
    core, rec, client = attached(mux, clock)
    client.send(0, Tag.TEXT_ACK_REQ, b'"need answer"')
    client.send_raw(encode_frame(Tag.CLOSE, 0, 0, (1000).to_bytes(4, "little")))
    client.deliver_c2s()
    client.deliver_s2c()
    assert any(f.tag == Tag.CLOSE_ACK for f in client.channels[0].received)
    assert core.is_closed and not core.is_shutdown
    core.reply(rec.ack_requests[0][0], AckStatus.OK, "1", clock.now)
    assert rec.shutdown == [None]


def test_async_close_callbacks_hold_the_close(mux: ServerMux, clock: Clock) -> None:
    core, _rec, client = attached(mux, clock)
    core.close(5.0, clock.now)
    core.hold_close()  # as if on_close started an async callback
    client.deliver_s2c()
    client.deliver_c2s()
    assert not core.is_shutdown
    core.release_close(clock.now)
    assert core.is_shutdown and core.got_close_ack


def test_abort_sends_abort_and_shuts_down(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    err = RuntimeError("aborted")
    core.abort(b'{"reason":1}', err)
    client.deliver_s2c()
    frames = client.channels[0].received
    assert frames[-1].tag == Tag.ABORT and frames[-1].payload == b'{"reason":1}'
    assert rec.shutdown == [err] and rec.close_fired == [err]
    assert core.id not in mux.channels


def test_reconnect_inside_the_window_keeps_the_channel(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    client.drop()
    clock.advance(30.0, mux)
    assert not core.is_shutdown
    send_text(core, clock, "while away")  # buffered
    client.send(0, Tag.TEXT, b'"offline"')  # kept in the client replay buffer
    clock.advance(29.0, mux)
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    client.deliver_c2s()
    assert rec.opened == 1 and not core.is_shutdown
    assert client.texts(0) == [b'"while away"']
    assert rec.messages == [b'"offline"']


def test_reconnect_after_the_window_fails_with_network_error(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    client.drop()
    clock.advance(60.0, mux)
    assert core.is_shutdown and isinstance(rec.shutdown[0], NetworkError)
    assert "grace period" in str(rec.shutdown[0])
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    assert client.reconciled_payloads[-1]["open"] == []
    assert client.channels[0].removed


def test_permanent_close_shuts_channels_down_at_once(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    client.drop(permanent=True)
    assert core.is_shutdown and rec.shutdown == [None]


def test_channel_not_attached_within_connect_ttl_closes(mux: ServerMux, clock: Clock) -> None:
    core, rec = make_channel(SETTINGS)
    core.send(Tag.TEXT, b"1", clock.now, "t")
    mux.register(core, clock.now)
    clock.advance(4.9, mux)
    assert not core.is_shutdown
    clock.advance(0.2, mux)
    assert isinstance(rec.shutdown[0], NetworkError) and rec.failed[0][0] == "t"


def test_initial_reconcile_waits_for_registration(mux: ServerMux, clock: Clock) -> None:
    core, rec = make_channel(SETTINGS)
    client = ClientModel(mux, clock)
    client.add_channel(core.id, 0)
    client.connect()
    client.deliver_c2s()
    client.send_raw(encode_frame(Tag.PING))
    client.deliver_c2s()
    client.deliver_s2c()
    assert not client.reconciled  # PING answered, RECONCILED waits for the channel
    clock.advance(1.0, mux)
    mux.register(core, clock.now)
    client.deliver_s2c()
    assert client.reconciled and client.reconciled_payloads[-1]["open"] == [{"ix": 0, "lastSeq": 0}]
    assert rec.opened == 1


def test_initial_reconcile_gives_up_after_connect_ttl(mux: ServerMux, clock: Clock) -> None:
    client = ClientModel(mux, clock)
    client.add_channel("never-registered", 0)
    client.connect()
    client.deliver_c2s()
    clock.advance(5.1, mux)
    client.deliver_s2c()
    assert client.reconciled_payloads[-1]["open"] == []


def test_previous_session_channels_not_relisted_fail(mux: ServerMux, clock: Clock) -> None:
    _core, rec, client = attached(mux, clock)
    other, _other_rec = make_channel(SETTINGS, "ch-2")
    mux.register(other, clock.now)
    client.add_channel("ch-2", 1)
    client.connect()  # a re-reconcile on a new wire listing both
    client.deliver_c2s()
    client.deliver_s2c()
    client.drop()
    client.channels[0].removed = True  # the client forgot channel 0
    client.connect()
    client.deliver_c2s()
    assert isinstance(rec.shutdown[0], NetworkError)
    assert "not acknowledged" in str(rec.shutdown[0])
    assert not other.is_shutdown and other.attached


def test_ping_deadline_drops_the_wire_transiently(mux: ServerMux, clock: Clock) -> None:
    core, _, client = attached(mux, clock)
    link = client.link
    assert link is not None
    clock.advance(9.0, mux)
    client.ping()
    client.deliver_c2s()
    clock.advance(9.0, mux)
    assert link.conn.close_request is None
    clock.advance(1.1, mux)
    assert link.conn.close_request == (CLOSE_PING_TIMEOUT, "ping timeout")
    assert not core.attached and not core.is_shutdown  # transient: waiting for a reconnect


@pytest.mark.parametrize(
    ("name", "frames"),
    [
        ("unknown tag", [bytes([0x7E, 0, 0, 0, 0, 0, 0])]),
        ("truncated frame", [b"\x10\x00"]),
        ("data before RECONCILE", [encode_frame(Tag.TEXT, 0, 1, b"1")]),
        ("server-only tag", ["reconcile", encode_frame(Tag.RECONCILED, 0, 0, b"{}")]),
        ("server-only channel tag", ["reconcile", encode_frame(Tag.ABORT, 0, 0, b"1")]),
        ("publish from client", ["reconcile", encode_frame(Tag.PUBLISH, 0, 1, b"1,2\n3")]),
        ("malformed reconcile", [encode_frame(Tag.RECONCILE, 0, 0, b"[1]")]),
    ],
)
def test_protocol_violations_end_only_that_connection(
    mux: ServerMux, clock: Clock, name: str, frames: list[object]
) -> None:
    core, _, good = attached(mux, clock)
    bad_core, _ = make_channel(SETTINGS, "bad")
    mux.register(bad_core, clock.now)
    conn = mux.open_connection()
    conn.start(clock.now)
    reconcile = encode_json(Tag.RECONCILE, {"open": [{"id": "bad", "ix": 0, "lastSeq": 0}]})
    for frame in frames:
        conn.receive(reconcile if frame == "reconcile" else frame, clock.now)  # type: ignore[arg-type]
    assert conn.close_request is not None and conn.close_request[0] == CLOSE_PROTOCOL_ERROR, name
    assert conn.closed
    assert not core.is_shutdown and core.attached  # the other connection is untouched
    send_text(core, clock, "still fine")
    good.deliver_s2c()
    assert good.texts(0) == [b'"still fine"']


def test_frames_for_unknown_ix_are_dropped(mux: ServerMux, clock: Clock) -> None:
    _, rec, client = attached(mux, clock)
    client.send_raw(encode_frame(Tag.TEXT, 9, 1, b"1"))
    client.deliver_c2s()
    assert rec.messages == [] and client.link is not None and client.link.conn.close_request is None


def test_bdp_ping_is_answered(mux: ServerMux, clock: Clock) -> None:
    _, _, client = attached(mux, clock)
    client.send_raw(encode_frame(Tag.BDP_PING, 0))
    client.deliver_c2s()
    client.deliver_s2c()
    assert client.channels[0].received[-1].tag == Tag.BDP_PING_ACK


def test_ack_res_statuses_reach_the_handler(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    for status in AckStatus:
        core.send(Tag.TEXT_ACK_REQ, b"0", clock.now, status)
    client.deliver_s2c()
    for status in AckStatus:
        client.reply_ack(0, int(status) + 1, f"t{int(status)}", status)
    client.deliver_c2s()
    assert rec.ack_results == [(s, s, f"t{int(s)}") for s in AckStatus]


def test_decode_of_server_output_is_always_valid(mux: ServerMux, clock: Clock) -> None:
    core, _, client = attached(mux, clock)
    core.send(Tag.TEXT, b"1", clock.now)
    link = client.link
    assert link is not None
    for raw in link.conn.data_to_send():
        decode_frame(raw)
