"""Inbound work is bounded (fake clock): receive window, RECONCILE queue and size, sessions, PINGs.

Each limit has its happy path next to the attack that pushes past it: the attacker's connection
is closed with 1002 (other connections are unaffected), and nothing it sent stays queued.
"""

from __future__ import annotations

import json
import uuid

from client_model import ClientModel, Clock, Recorder, connect_client, make_channel

from telefunc.config import ChannelSettings, LimitsSettings
from telefunc.errors import NetworkError
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.credit import INITIAL_BYTES, INITIAL_MESSAGES
from telefunc.wire.frames import Tag, encode_frame, encode_json
from telefunc.wire.mux import CLOSE_PROTOCOL_ERROR, ServerConnection, ServerMux

SETTINGS = ChannelSettings()


def make_mux(**limits: float) -> tuple[ServerMux, list[tuple[str, str]]]:
    mux = ServerMux(SETTINGS, LimitsSettings(**limits))  # type: ignore[arg-type]
    reported: list[tuple[str, str]] = []
    mux.on_client_error = lambda kind, message: reported.append((kind, message))
    return mux, reported


def attached(
    mux: ServerMux, clock: Clock, channel_id: str = "ch-1"
) -> tuple[ChannelCore, Recorder, ClientModel]:
    core, rec = make_channel(SETTINGS, channel_id)
    client = connect_client(mux, clock, core)
    assert client.reconciled and core.attached
    return core, rec, client


def conn_of(client: ClientModel) -> ServerConnection:
    assert client.link is not None
    return client.link.conn


def violated(conn: ServerConnection) -> bool:
    return conn.closed and conn.close_request is not None and conn.close_request[0] == 1002


# ── 1. the receive window is enforced ──────────────────────────────────


def test_a_sender_within_its_credit_is_never_cut_off_by_a_slow_reader(clock: Clock) -> None:
    """Happy path: an awaiting sender (credit rules of telefunc@0.2.23: a window frame *sets*
    the credit) facing a reader far slower than itself keeps going, with the default bound."""
    mux, _ = make_mux()
    core, rec, client = attached(mux, clock)
    rec.auto_consume = False
    credit_msgs, credit_bytes, sent, consumed = INITIAL_MESSAGES, INITIAL_BYTES, 0, 0
    for _ in range(300):
        while credit_msgs > 0 and credit_bytes > 0:
            client.send(0, Tag.TEXT, b'"x"')
            credit_msgs, credit_bytes, sent = credit_msgs - 1, credit_bytes - 3, sent + 1
        client.deliver_c2s()
        # The application takes up to 10 messages per round trip.
        for _ in range(min(10, len(rec.messages) - consumed)):
            core.consumed(3)
            consumed += 1
        client.deliver_s2c()
        for frame in client.channels[0].received:
            if frame.tag == Tag.MSG_WINDOW:
                credit_msgs = frame.u32
            elif frame.tag == Tag.WINDOW:
                credit_bytes = frame.u32
        client.channels[0].received.clear()
    assert not conn_of(client).closed
    assert sent > 2500 and len(rec.messages) == sent


def test_frames_past_the_advertised_window_close_the_connection(clock: Clock) -> None:
    mux, reported = make_mux(max_window_overrun=2)
    core, rec, client = attached(mux, clock)
    rec.auto_consume = False
    # Two windows' worth (the client ignores its credit) is still tolerated...
    for _ in range(2 * INITIAL_MESSAGES):
        client.send(0, Tag.TEXT, b'"x"')
    client.deliver_c2s()
    assert not conn_of(client).closed
    # ...one message more is a protocol violation, not a longer queue.
    client.send(0, Tag.TEXT, b'"x"')
    conn = conn_of(client)
    client.deliver_c2s()
    assert violated(conn)
    assert conn.close_request is not None and "receive window" in conn.close_request[1]
    assert core.is_shutdown and len(rec.messages) == 2 * INITIAL_MESSAGES + 1
    assert reported and reported[0][0] == "protocol-violation"


def test_bytes_past_the_window_close_the_connection(clock: Clock) -> None:
    mux, _ = make_mux(max_window_overrun=1, max_message_size=1024)
    core, rec, client = attached(mux, clock)
    rec.auto_consume = False
    chunk = bytes(INITIAL_BYTES // 4)
    for _ in range(4):  # exactly one window of bytes: allowed
        client.send(0, Tag.BINARY, chunk)
    client.deliver_c2s()
    assert not conn_of(client).closed
    conn = conn_of(client)
    client.send(0, Tag.BINARY, bytes(2048))  # more than the one-message slack on top
    client.deliver_c2s()
    assert violated(conn) and core.is_shutdown


def test_unanswered_ack_requests_count_against_the_window(clock: Clock) -> None:
    mux, _ = make_mux(max_window_overrun=1)
    _, rec, client = attached(mux, clock)
    for _ in range(INITIAL_MESSAGES):
        client.send(0, Tag.TEXT_ACK_REQ, b'"q"')
    client.deliver_c2s()
    conn = conn_of(client)
    assert not conn.closed and len(rec.ack_requests) == INITIAL_MESSAGES
    client.send(0, Tag.TEXT_ACK_REQ, b'"q"')
    client.deliver_c2s()
    assert violated(conn)


# ── 3. frames queued while RECONCILE waits ─────────────────────────────


def waiting_connection(mux: ServerMux, clock: Clock) -> ServerConnection:
    """A connection whose RECONCILE waits for a channel that is not registered (yet)."""
    conn = mux.open_connection()
    conn.start(clock.now)
    reconcile = {"open": [{"id": "later", "ix": 0, "lastSeq": 0, "initial": True}]}
    conn.receive(encode_json(Tag.RECONCILE, reconcile), clock.now)
    assert not conn.closed and conn.data_to_send() == []
    return conn


def test_frames_sent_while_reconcile_waits_are_delivered_once_it_completes(clock: Clock) -> None:
    mux, _ = make_mux(max_pending_frames=4)
    conn = waiting_connection(mux, clock)
    for seq in range(1, 5):
        conn.receive(encode_frame(Tag.TEXT, 0, seq, json.dumps(seq).encode()), clock.now)
    core, rec = make_channel(SETTINGS, "later")
    mux.register(core, clock.now)
    assert not conn.closed and [json.loads(m) for m in rec.messages] == [1, 2, 3, 4]


def test_a_reconcile_for_a_missing_channel_then_a_frame_stream_is_cut_off(clock: Clock) -> None:
    mux, _ = make_mux()
    conn = waiting_connection(mux, clock)
    limit = LimitsSettings().max_pending_frames
    for seq in range(1, limit + 1):
        conn.receive(encode_frame(Tag.TEXT, 0, seq, b"1"), clock.now)
    assert not conn.closed
    conn.receive(encode_frame(Tag.TEXT, 0, limit + 1, b"1"), clock.now)
    assert violated(conn)
    assert conn._queued is None and "later" not in mux._waiters


def test_queued_bytes_are_capped_too(clock: Clock) -> None:
    mux, _ = make_mux(max_pending_bytes=64 * 1024)
    conn = waiting_connection(mux, clock)
    conn.receive(encode_frame(Tag.BINARY, 0, 1, bytes(60 * 1024)), clock.now)
    assert not conn.closed
    conn.receive(encode_frame(Tag.BINARY, 0, 2, bytes(8 * 1024)), clock.now)
    assert violated(conn)


# ── 4. RECONCILE entries and channels per session ──────────────────────


def reconcile_entries(n: int, *, initial: bool = True) -> bytes:
    return encode_json(
        Tag.RECONCILE,
        {"open": [{"id": f"c{i}", "ix": i, "lastSeq": 0, "initial": initial} for i in range(n)]},
    )


def test_a_reconcile_at_the_entry_limit_is_accepted(clock: Clock) -> None:
    mux, _ = make_mux(max_reconcile_entries=8)
    conn = mux.open_connection()
    conn.receive(reconcile_entries(8, initial=False), clock.now)
    assert not conn.closed and conn.session_id is not None


def test_a_reconcile_over_the_entry_limit_is_a_violation(clock: Clock) -> None:
    mux, _ = make_mux(max_reconcile_entries=8)
    conn = mux.open_connection()
    conn.receive(reconcile_entries(9, initial=False), clock.now)
    assert violated(conn)


def registered(mux: ServerMux, clock: Clock, n: int) -> list[ChannelCore]:
    cores = []
    for i in range(n):
        core, _ = make_channel(SETTINGS, f"c{i}")
        mux.register(core, clock.now)
        cores.append(core)
    return cores


def test_a_session_at_the_channel_limit_is_accepted(clock: Clock) -> None:
    mux, _ = make_mux(max_channels_per_session=2)
    cores = registered(mux, clock, 2)
    conn = mux.open_connection()
    conn.receive(reconcile_entries(2), clock.now)
    assert not conn.closed and all(core.attached for core in cores)


def test_channels_per_session_are_capped(clock: Clock) -> None:
    mux, _ = make_mux(max_channels_per_session=2)
    cores = registered(mux, clock, 3)
    conn = mux.open_connection()
    conn.receive(reconcile_entries(3), clock.now)
    assert violated(conn)
    # What the refused RECONCILE attached before the violation is not left behind.
    assert all(core.is_shutdown for core in cores[:2]) and not cores[2].attached


def test_waiting_initial_entries_count_towards_the_session_cap(clock: Clock) -> None:
    mux, _ = make_mux(max_channels_per_session=2)
    conn = mux.open_connection()
    conn.receive(reconcile_entries(3), clock.now)  # none registered: all three would wait
    assert violated(conn) and not mux._waiters


# ── 5. a new RECONCILE without sessionId detaches the old session ──────


def test_a_reconcile_naming_its_session_keeps_every_channel(clock: Clock) -> None:
    mux, _ = make_mux()
    core, _, client = attached(mux, clock)
    conn = conn_of(client)
    conn.receive(
        encode_json(
            Tag.RECONCILE,
            {"sessionId": client.session_id, "open": [{"id": core.id, "ix": 0, "lastSeq": 0}]},
        ),
        clock.now,
    )
    assert core.attached and not core.is_shutdown and len(mux.sessions) == 1


def test_a_reconcile_without_session_id_releases_the_old_sessions_channels(
    clock: Clock,
) -> None:
    mux, _ = make_mux()
    cores = []
    client = ClientModel(mux, clock)
    for i in range(3):
        core, _ = make_channel(SETTINGS, f"c{i}")
        mux.register(core, clock.now)
        client.add_channel(core.id, i)
        cores.append(core)
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    conn = conn_of(client)
    assert all(c.attached for c in cores) and len(mux.sessions) == 1
    conn.receive(encode_json(Tag.RECONCILE, {"open": []}), clock.now)
    assert not conn.closed
    for core in cores:
        assert core.is_shutdown and isinstance(core.shutdown_error, NetworkError)
    assert mux.channels == {} and mux.sessions == {} and mux.session_lineages == {}
    assert mux.channel_owners == {} and mux.session_aliases == {}


# ── 6. PINGs are rate-limited ──────────────────────────────────────────


def test_pings_at_the_allowed_rate_are_answered_for_ever(clock: Clock) -> None:
    mux, _ = make_mux(max_pings_per_second=10)
    conn = mux.open_connection()
    conn.start(clock.now)
    for _ in range(1000):
        conn.receive(encode_frame(Tag.PING), clock.now)
        clock.advance(0.1)
    assert not conn.closed and len(conn.data_to_send()) == 1000


def test_a_ping_flood_past_the_burst_is_a_violation(clock: Clock) -> None:
    mux, _ = make_mux(max_pings_per_second=10)
    conn = mux.open_connection()
    conn.start(clock.now)
    for _ in range(20):  # the burst: twice the rate
        conn.receive(encode_frame(Tag.PING), clock.now)
    assert not conn.closed
    conn.receive(encode_frame(Tag.PING), clock.now)
    assert violated(conn) and conn.data_to_send() == []


def test_the_ping_limit_can_be_turned_off(clock: Clock) -> None:
    mux, _ = make_mux(max_pings_per_second=0)
    conn = mux.open_connection()
    for _ in range(1000):
        conn.receive(encode_frame(Tag.PING), clock.now)
    assert not conn.closed


# ── 8. ids ─────────────────────────────────────────────────────────────


def test_session_ids_are_random_version_4_uuids(clock: Clock) -> None:
    mux, _ = make_mux()
    ids = set()
    for _ in range(50):
        conn = mux.open_connection()
        conn.receive(encode_json(Tag.RECONCILE, {"open": []}), clock.now)
        assert conn.session_id is not None
        assert uuid.UUID(conn.session_id).version == 4
        ids.add(conn.session_id)
    assert len(ids) == 50


def test_limits_are_validated_and_reach_the_mux() -> None:
    assert CLOSE_PROTOCOL_ERROR == 1002
    mux = ServerMux(SETTINGS, lambda: LimitsSettings(max_pings_per_second=3.0))
    assert mux.limits.max_pings_per_second == 3.0
    assert ServerMux(SETTINGS).limits == LimitsSettings()
