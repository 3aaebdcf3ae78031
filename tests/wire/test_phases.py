"""The lifecycle tables of ChannelCore and ServerConnection: illegal moves raise, and the close
races the other wire tests do not reach (both sides closing, closes during async close callbacks,
a close before any client attached) take the moves the table lists."""

from __future__ import annotations

import pytest
from client_model import ClientModel, Clock, Recorder, connect_client, make_channel

from telefunc.config import ChannelSettings
from telefunc.errors import ChannelClosedError, IllegalTransitionError, TelefuncError
from telefunc.wire.channel_state import (
    CHANNEL_TRANSITIONS,
    ChannelCore,
    ChannelEvent,
    ChannelPhase,
)
from telefunc.wire.frames import AckStatus, Tag, decode_frame, encode_u32_frame
from telefunc.wire.mux import (
    CONNECTION_TRANSITIONS,
    ConnectionEvent,
    ConnectionPhase,
    ServerMux,
)

SETTINGS = ChannelSettings()


class HoldingRecorder(Recorder):
    """``on_close`` starts an async callback: the close waits for ``release_close``."""

    def handle_fire_close(self, error: Exception | None) -> None:
        super().handle_fire_close(error)
        assert self.core is not None
        self.core.hold_close()


def attached(
    mux: ServerMux, clock: Clock, rec: Recorder | None = None
) -> tuple[ChannelCore, Recorder, ClientModel]:
    if rec is None:
        core, rec = make_channel(SETTINGS)
    else:
        core = ChannelCore("ch-1", SETTINGS, rec)
        rec.core = core
    client = connect_client(mux, clock, core)
    assert core.phase is ChannelPhase.OPEN and rec.opened == 1
    return core, rec, client


def client_close(client: ClientModel, timeout_ms: int = 1000) -> None:
    client.send_raw(encode_u32_frame(Tag.CLOSE, 0, timeout_ms))


def received_tags(client: ClientModel) -> list[int]:
    return [f.tag for f in client.channels[0].received]


# ── the tables ─────────────────────────────────────────────────────────


def test_illegal_channel_transition_raises_and_keeps_the_phase() -> None:
    core, _ = make_channel(SETTINGS)
    with pytest.raises(IllegalTransitionError, match="FINISH is not allowed in phase PENDING"):
        core._transition(ChannelEvent.FINISH)
    assert core.phase is ChannelPhase.PENDING
    core.fail(RuntimeError("boom"))
    assert core.phase is ChannelPhase.SHUTDOWN
    with pytest.raises(IllegalTransitionError, match="OPEN is not allowed in phase SHUTDOWN"):
        core._transition(ChannelEvent.OPEN)
    assert issubclass(IllegalTransitionError, TelefuncError)


def test_illegal_connection_transition_raises_and_keeps_the_phase(mux: ServerMux) -> None:
    conn = mux.open_connection()
    assert conn.phase is ConnectionPhase.AWAITING_RECONCILE
    with pytest.raises(IllegalTransitionError, match="RECONCILED is not allowed"):
        conn._transition(ConnectionEvent.RECONCILED)
    assert conn.phase is ConnectionPhase.AWAITING_RECONCILE and not conn.closed
    conn.connection_lost(0.0, permanent=True)
    assert conn.phase is ConnectionPhase.CLOSED and conn.closed
    with pytest.raises(IllegalTransitionError, match="RECONCILE is not allowed in phase CLOSED"):
        conn._transition(ConnectionEvent.RECONCILE)


def test_terminal_phases_have_no_way_out_and_every_phase_is_reachable() -> None:
    for table, terminal in (
        (CHANNEL_TRANSITIONS, ChannelPhase.SHUTDOWN),
        (CONNECTION_TRANSITIONS, ConnectionPhase.CLOSED),
    ):
        assert not [key for key in table if key[0] is terminal]
        start = next(iter(table))[0]
        reached, frontier = {start}, [start]
        while frontier:
            phase = frontier.pop()
            for (src, _), dst in table.items():
                if src is phase and dst not in reached:
                    reached.add(dst)
                    frontier.append(dst)
        assert reached == set(type(start))


# ── close races ────────────────────────────────────────────────────────


def test_both_sides_closing_at_once_end_cleanly(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    assert core.close(5.0, clock.now)  # OPEN -CLOSE-> CLOSING
    client_close(client)  # crosses our CLOSE: CLOSING -PEER_CLOSE-> CLOSING
    client.deliver_c2s()
    assert core.phase is ChannelPhase.CLOSING and rec.close_fired == []
    client.deliver_s2c()  # our CLOSE and CLOSE_ACK; the model answers our CLOSE
    assert Tag.CLOSE in received_tags(client) and Tag.CLOSE_ACK in received_tags(client)
    client.deliver_c2s()
    assert core.got_close_ack and rec.close_fired == [None] and rec.shutdown == [None]


def test_close_after_the_peers_close_also_waits_for_its_ack(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock)
    client.send(0, Tag.TEXT_ACK_REQ, b'"q"')
    client_close(client)
    client.deliver_c2s()
    assert core.phase is ChannelPhase.CLOSING  # an ack request is still unanswered
    assert core.close(5.0, clock.now)  # CLOSING -CLOSE-> CLOSING: sends CLOSE as well
    core.reply(rec.ack_requests[0][0], AckStatus.OK, "1", clock.now)
    assert rec.close_fired == []  # our CLOSE is not acknowledged yet
    client.deliver_s2c()
    client.deliver_c2s()
    assert core.got_close_ack and rec.close_fired == [None] and rec.shutdown == [None]


def test_closes_while_async_close_callbacks_run(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock, HoldingRecorder())
    client_close(client)
    client.deliver_c2s()
    assert core.phase is ChannelPhase.CLOSE_FIRED and rec.close_fired == [None]
    assert core.close(1.0, clock.now)  # CLOSE_FIRED -CLOSE-> CLOSE_FIRED
    client_close(client)  # a repeated CLOSE: CLOSE_FIRED -PEER_CLOSE-> CLOSE_FIRED
    client.deliver_c2s()
    client.deliver_s2c()
    assert received_tags(client).count(Tag.CLOSE_ACK) == 2 and Tag.CLOSE in received_tags(client)
    assert core.phase is ChannelPhase.CLOSE_FIRED
    core.release_close(clock.now)  # CLOSE_FIRED -FINISH-> SHUTDOWN
    assert rec.close_fired == [None] and rec.shutdown == [None]


def test_close_times_out_while_an_async_close_callback_runs(mux: ServerMux, clock: Clock) -> None:
    core, rec, client = attached(mux, clock, HoldingRecorder())
    core.close(1.0, clock.now)
    client.deliver_s2c()
    client.deliver_c2s()  # CLOSE_ACK: CLOSING -FIRE_CLOSE-> CLOSE_FIRED, held
    assert core.phase is ChannelPhase.CLOSE_FIRED
    clock.advance(1.1, mux)  # CLOSE_FIRED -TERMINATE-> SHUTDOWN
    assert rec.close_fired == [None]  # the close callbacks ran once
    assert len(rec.shutdown) == 1 and isinstance(rec.shutdown[0], ChannelClosedError)


def test_close_before_any_client_attached(mux: ServerMux, clock: Clock) -> None:
    core, rec = make_channel(SETTINGS)
    mux.register(core, clock.now)
    assert core.close(5.0, clock.now)  # PENDING -CLOSE-> CLOSING
    client = ClientModel(mux, clock)
    client.add_channel(core.id, 0)
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()  # attached while closing: CLOSE is resent, ``open`` never fires
    assert rec.opened == 0 and Tag.CLOSE in received_tags(client)
    client.deliver_c2s()
    assert rec.close_fired == [None] and rec.shutdown == [None]


def test_abort_before_any_client_attached_fails_buffered_sends(clock: Clock) -> None:
    core, rec = make_channel(SETTINGS)
    core.send(Tag.TEXT, b'"early"', clock.now, "early")
    error = RuntimeError("aborted")
    core.abort(b"null", error)  # PENDING -ABORT-> SHUTDOWN
    assert core.is_shutdown and rec.shutdown == [error] and rec.close_fired == [error]
    assert rec.failed == [("early", error)]


def test_peer_close_before_attach_is_acknowledged_on_attach(mux: ServerMux, clock: Clock) -> None:
    core, rec = make_channel(SETTINGS)
    mux.register(core, clock.now)
    core.receive(decode_frame(encode_u32_frame(Tag.CLOSE, 0, 1000)), clock.now)
    # PENDING -PEER_CLOSE-> CLOSING, and nothing in flight: the close is done at once.
    assert core.is_shutdown and rec.close_fired == [None] and rec.shutdown == [None]
    assert rec.opened == 0
    core2, rec2 = make_channel(SETTINGS, "ch-2")
    mux.register(core2, clock.now)
    core2.hold_close()
    core2.receive(decode_frame(encode_u32_frame(Tag.CLOSE, 0, 1000)), clock.now)
    assert core2.phase is ChannelPhase.CLOSE_FIRED
    client = ClientModel(mux, clock)
    client.add_channel(core2.id, 0)
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    assert rec2.opened == 0 and received_tags(client) == [Tag.CLOSE_ACK]
    core2.release_close(clock.now)
    assert rec2.shutdown == [None]
