"""Channels belong to their owner (fake clock).

A channel is bound to the session that attaches it first and follows that client through every
session-id rotation, a lost RECONCILED and the SSE-to-WebSocket upgrade. Another client holding
the channel id is refused (the entry is missing from its RECONCILED ``open``, which the official
client turns into a failed channel), and cannot end or move the owner's session.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from client_model import ClientModel, Clock, Recorder, connect_client, make_channel

from telefunc.config import ChannelSettings
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.frames import Frame, Tag, decode_frame, encode_frame, encode_json
from telefunc.wire.mux import ServerConnection, ServerMux

SETTINGS = ChannelSettings()


def owned(mux: ServerMux, clock: Clock) -> tuple[ChannelCore, Recorder, ClientModel]:
    core, rec = make_channel(SETTINGS, "victim-channel")
    client = connect_client(mux, clock, core)
    assert client.reconciled and core.attached
    return core, rec, client


def raw_connection(mux: ServerMux, clock: Clock, payload: dict[str, Any]) -> ServerConnection:
    conn = mux.open_connection()
    conn.start(clock.now)
    conn.receive(encode_json(Tag.RECONCILE, payload), clock.now)
    return conn


def frames(conn: ServerConnection) -> list[Frame]:
    return [decode_frame(f) for f in conn.data_to_send()]


def reconciled(conn: ServerConnection) -> dict[str, Any]:
    found = [f.json() for f in frames(conn) if f.tag == Tag.RECONCILED]
    assert len(found) == 1
    payload: dict[str, Any] = found[0]
    return payload


def test_the_owner_keeps_its_channel_through_every_session_rotation(
    mux: ServerMux, clock: Clock
) -> None:
    core, _, client = owned(mux, clock)
    seen = {client.session_id}
    for _ in range(5):
        client.drop()
        client.connect()
        client.deliver_c2s()
        client.deliver_s2c()
        assert client.reconciled and core.attached and not client.channels[0].removed
        seen.add(client.session_id)
    assert len(seen) == 6 and mux.refused_attaches == 0


@pytest.mark.parametrize("initial", [False, True])
def test_another_client_with_the_channel_id_is_refused(
    mux: ServerMux, clock: Clock, initial: bool
) -> None:
    core, rec, victim = owned(mux, clock)
    core.send(Tag.TEXT, b'"secret"', clock.now)
    victim.deliver_s2c()
    entry = {"id": core.id, "ix": 0, "lastSeq": 0} | ({"initial": True} if initial else {})
    intruder = raw_connection(mux, clock, {"open": [entry]})
    answer = reconciled(intruder)
    assert answer["open"] == []
    # Nothing was replayed to the intruder, the owner still carries the channel.
    assert core.peer is conn_of(victim) and mux.refused_attaches == 1
    # Frames the intruder sends on that index reach nobody.
    intruder.receive(encode_frame(Tag.TEXT, 0, 1, b'"forged"'), clock.now)
    assert rec.messages == []
    victim.send(0, Tag.TEXT, b'"mine"')
    victim.deliver_c2s()
    assert rec.messages == [b'"mine"']


def conn_of(client: ClientModel) -> ServerConnection:
    assert client.link is not None
    return client.link.conn


def test_a_refused_intruder_cannot_take_the_channel_while_the_owner_is_away(
    mux: ServerMux, clock: Clock
) -> None:
    core, _, victim = owned(mux, clock)
    # The owner confirms its session once (any later RECONCILE naming it does), then drops.
    victim.drop()
    victim.connect()
    victim.deliver_c2s()
    victim.deliver_s2c()
    victim.drop()
    assert not core.attached
    entry = {"id": core.id, "ix": 0, "lastSeq": 0, "initial": True}
    intruder = raw_connection(mux, clock, {"open": [entry]})
    assert reconciled(intruder)["open"] == [] and not core.attached
    victim.connect()
    victim.deliver_c2s()
    victim.deliver_s2c()
    assert core.attached and not victim.channels[0].removed


def test_an_unknown_or_stale_session_id_ends_nothing(mux: ServerMux, clock: Clock) -> None:
    core, _, victim = owned(mux, clock)
    first = victim.session_id
    victim.drop()
    victim.connect()
    victim.deliver_c2s()
    victim.deliver_s2c()
    for session_id in ("not-a-session", first):
        if session_id == first:
            # The victim confirmed the rotated id: the old one is void now.
            victim.drop()
            victim.connect()
            victim.deliver_c2s()
            victim.deliver_s2c()
        other = raw_connection(mux, clock, {"sessionId": session_id, "open": []})
        assert reconciled(other)["open"] == []
        assert not core.is_shutdown and core.attached


def test_a_lost_reconciled_on_reconnect_still_finds_the_channel(
    mux: ServerMux, clock: Clock
) -> None:
    """The server rotated the session but RECONCILED died with the wire: the client comes back
    with the id it knew, which stands for the rotated one."""
    core, _, client = owned(mux, clock)
    known = client.session_id
    client.drop()
    client.connect()
    client.deliver_c2s()  # the server reconciles and rotates...
    client.drop()  # ...and the wire dies before RECONCILED arrives
    assert client.session_id == known
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    assert client.reconciled and core.attached and not client.channels[0].removed
    assert len(mux.session_aliases) == 1  # one alias per session, no more


def test_a_lost_first_reconciled_lets_the_client_reclaim_its_new_channel(
    mux: ServerMux, clock: Clock
) -> None:
    core, _ = make_channel(SETTINGS, "fresh")
    mux.register(core, clock.now)
    client = ClientModel(mux, clock)
    client.add_channel(core.id, 0)
    client.connect()
    client.deliver_c2s()  # attached by a session the client never heard of
    client.drop()
    assert client.session_id is None
    client.connect()  # no session id, the channel still ``initial``
    client.deliver_c2s()
    client.deliver_s2c()
    assert client.reconciled and core.attached and not client.channels[0].removed
    # Once the client holds a session, the claim is firm.
    client.drop()
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    entry = {"id": core.id, "ix": 0, "lastSeq": 0, "initial": True}
    client.drop()
    intruder = raw_connection(mux, clock, {"open": [entry]})
    assert reconciled(intruder)["open"] == []


def test_the_upgrade_moves_the_session_and_only_with_its_id(mux: ServerMux, clock: Clock) -> None:
    core, _ = make_channel(SETTINGS, "up")
    mux.register(core, clock.now)
    sse = mux.open_connection("conn-1", transport="sse")
    sse.start(clock.now)
    entry = {"id": core.id, "ix": 0, "lastSeq": 0, "initial": True}
    sse.receive(encode_json(Tag.RECONCILE, {"open": [entry]}), clock.now)
    session_id = reconciled(sse)["sessionId"]
    # Someone without the session id asks to "upgrade" the channel: refused.
    thief = raw_connection(mux, clock, {"open": [entry], "upgrade": True})
    assert reconciled(thief)["open"] == [] and core.peer is sse
    assert not any(f.tag == Tag.FIN for f in frames(sse))
    # The client itself upgrades with its session id: the channel moves, FIN on the old wire.
    ws = raw_connection(
        mux,
        clock,
        {"sessionId": session_id, "upgrade": True, "open": [{**entry, "initial": False}]},
    )
    assert reconciled(ws)["open"] == [{"ix": 0, "lastSeq": 0}]
    assert core.peer is ws and any(f.tag == Tag.FIN for f in frames(sse))
    core.send(Tag.TEXT, json.dumps("after").encode(), clock.now)
    assert [f.payload for f in frames(ws) if f.tag == Tag.TEXT] == [b'"after"']


def test_ownership_is_forgotten_with_the_channel(mux: ServerMux, clock: Clock) -> None:
    core, _, client = owned(mux, clock)
    assert core.id in mux.channel_owners
    client.drop(permanent=True)
    assert core.is_shutdown
    assert mux.channel_owners == {} and mux.sessions == {} and mux.session_lineages == {}


def test_only_issued_session_ids_are_remembered(mux: ServerMux, clock: Clock) -> None:
    """A made-up ``sessionId`` (any size) is not kept as an alias of the new session."""
    core, _ = make_channel(SETTINGS, "mine")
    mux.register(core, clock.now)
    entry = {"id": core.id, "ix": 0, "lastSeq": 0, "initial": True}
    conn = raw_connection(mux, clock, {"sessionId": "x" * 10_000, "open": [entry]})
    assert reconciled(conn)["open"] == [{"ix": 0, "lastSeq": 0}]
    assert mux.session_aliases == {}


# ── a session id held by a live wire ──────────────────────────────────────────────────────────


def owns_two(mux: ServerMux, clock: Clock) -> tuple[list[ChannelCore], list[Recorder], ClientModel]:
    """A client holding two channels on one live wire, after one session-id rotation (so its
    previous id is an alias of the current one)."""
    pairs = [make_channel(SETTINGS, f"two-{n}") for n in range(2)]
    client = ClientModel(mux, clock)
    for ix, (core, _) in enumerate(pairs):
        mux.register(core, clock.now)
        client.add_channel(core.id, ix)
    for _ in range(2):
        client.drop()
        client.connect()
        client.deliver_c2s()
        client.deliver_s2c()
    assert client.reconciled and len(mux.session_aliases) == 1
    return [core for core, _ in pairs], [rec for _, rec in pairs], client


def round_trip(client: ClientModel, core: ChannelCore, rec: Recorder, ix: int, text: str) -> None:
    """One message each way on channel ``ix``; asserts both arrive."""
    before = len(client.texts(ix))
    core.send(Tag.TEXT, json.dumps(text).encode(), client.clock.now)
    client.deliver_s2c()
    assert client.texts(ix)[before:] == [json.dumps(text).encode()]
    client.send(ix, Tag.TEXT, json.dumps(f"re: {text}").encode())
    client.deliver_c2s()
    assert rec.messages[-1] == json.dumps(f"re: {text}").encode()


def assert_nothing_left(mux: ServerMux) -> None:
    assert mux.sessions == {} and mux.session_lineages == {} and mux.session_aliases == {}
    assert mux.channel_owners == {} and mux.session_owners == {} and mux._session_of == {}


@pytest.mark.parametrize("upgrade", [False, True], ids=["reconcile", "upgrade"])
@pytest.mark.parametrize("presented", ["current", "previous"])
def test_a_leaked_session_id_cannot_end_the_channels_of_its_live_wire(
    mux: ServerMux, clock: Clock, presented: str, upgrade: bool
) -> None:
    cores, recs, victim = owns_two(mux, clock)
    victim_conn = conn_of(victim)
    current = victim.session_id
    assert current is not None
    previous = next(iter(mux.session_aliases))  # the id the victim knew before, still an alias
    session_id = current if presented == "current" else previous
    payload: dict[str, Any] = {"sessionId": session_id, "open": []}
    if upgrade:
        payload["upgrade"] = True
    intruder = raw_connection(mux, clock, payload)
    assert reconciled(intruder)["open"] == []
    assert mux.upgrades == 0  # no FIN told the victim's wire to go away
    # Not failed, not detached: the victim's wire still carries both, under the same session.
    for core, rec in zip(cores, recs, strict=True):
        assert not core.is_shutdown and core.peer is victim_conn and rec.shutdown == []
    assert mux.sessions[current] == {0: cores[0], 1: cores[1]}
    assert mux.session_owners[current] is victim_conn
    for ix in (0, 1):
        round_trip(victim, cores[ix], recs[ix], ix, f"still mine {ix}")
    intruder.connection_lost(clock.now, permanent=True)
    assert all(not core.is_shutdown for core in cores)
    # Later the victim reconnects with its own session id and gets both channels back.
    victim.drop()
    victim.connect()
    victim.deliver_c2s()
    victim.deliver_s2c()
    assert victim.reconciled and victim.session_id != current
    assert all(core.peer is conn_of(victim) for core in cores)
    assert not any(ch.removed for ch in victim.channels.values())
    for ix in (0, 1):
        round_trip(victim, cores[ix], recs[ix], ix, f"after reconnect {ix}")
    victim.drop(permanent=True)
    assert all(core.is_shutdown for core in cores)
    assert_nothing_left(mux)


def test_a_leaked_session_id_takes_only_the_channels_it_lists(mux: ServerMux, clock: Clock) -> None:
    cores, recs, victim = owns_two(mux, clock)
    victim_conn, current = conn_of(victim), victim.session_id
    entry = {"id": cores[0].id, "ix": 0, "lastSeq": 0}
    intruder = raw_connection(mux, clock, {"sessionId": current, "open": [entry]})
    assert reconciled(intruder)["open"] == [{"ix": 0, "lastSeq": 0}]
    assert cores[0].peer is intruder and cores[1].peer is victim_conn
    assert current is not None and mux.sessions[current] == {1: cores[1]}
    round_trip(victim, cores[1], recs[1], 1, "untouched")
    # The victim's session id still means its session: a reconnect gets both channels back.
    victim.drop()
    victim.connect()
    victim.deliver_c2s()
    victim.deliver_s2c()
    assert all(core.peer is conn_of(victim) for core in cores)
    assert not any(ch.removed for ch in victim.channels.values())
    assert len(mux.sessions) == 1  # the intruder's session lost its only channel
    intruder.connection_lost(clock.now, permanent=False)
    victim.drop(permanent=True)
    assert_nothing_left(mux)


def test_repeated_takeovers_by_a_leaked_session_id_leave_no_sessions_behind(
    mux: ServerMux, clock: Clock
) -> None:
    cores, _, victim = owns_two(mux, clock)
    entry = {"id": cores[0].id, "ix": 0, "lastSeq": 0}
    for _ in range(20):
        intruder = raw_connection(mux, clock, {"sessionId": victim.session_id, "open": [entry]})
        assert cores[0].peer is intruder
        intruder.connection_lost(clock.now, permanent=False)
    # The victim's session and the last intruder's: each channel is in exactly one session.
    assert len(mux.sessions) == 2 and len(mux._session_of) == 2
    assert len(mux.session_lineages) == 2 and len(mux.session_owners) == 1
    victim.drop(permanent=True)
    clock.advance(SETTINGS.reconnect_timeout + 1, mux)
    assert all(core.is_shutdown for core in cores)
    assert_nothing_left(mux)


def test_a_half_open_reconnect_listing_every_channel_takes_them_over(
    mux: ServerMux, clock: Clock
) -> None:
    cores, recs, client = owns_two(mux, clock)
    old_conn, old_id = conn_of(client), client.session_id
    client.connect()  # the old wire is half-open: the server still thinks it is live
    client.deliver_c2s()
    client.deliver_s2c()
    assert client.reconciled and client.session_id != old_id
    assert all(core.peer is conn_of(client) for core in cores)
    assert not any(ch.removed for ch in client.channels.values())
    assert old_id not in mux.sessions and old_id not in mux.session_owners
    # The new session stands for the old id in case this RECONCILED is lost.
    assert mux.session_aliases == {old_id: client.session_id}
    for ix in (0, 1):
        round_trip(client, cores[ix], recs[ix], ix, f"moved {ix}")
    # The half-open wire times out later: nothing of the client's is touched.
    old_conn.connection_lost(clock.now, permanent=False)
    assert all(core.peer is conn_of(client) and not core.is_shutdown for core in cores)
    client.drop(permanent=True)
    assert_nothing_left(mux)


def test_a_reconnect_after_the_wire_closed_still_fails_the_unlisted_channels(
    mux: ServerMux, clock: Clock
) -> None:
    cores, recs, client = owns_two(mux, clock)
    client.drop()
    client.channels[1].removed = True  # the client let go of channel 1 meanwhile
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    assert cores[0].peer is conn_of(client) and not cores[0].is_shutdown
    assert cores[1].is_shutdown and len(recs[1].shutdown) == 1
    assert type(recs[1].shutdown[0]).__name__ == "NetworkError"
    client.drop(permanent=True)
    assert_nothing_left(mux)


def test_an_upgrade_finishes_channels_in_a_close_exchange_and_the_old_wire_gets_fin(
    mux: ServerMux, clock: Clock
) -> None:
    """The official client's upgrade lists the channels it still has: one the server already
    closed (CLOSE sent, no CLOSE_ACK yet) is gone on its side and is not listed. It must not keep
    the old session alive, or FIN never comes and the client waits for it forever."""
    cores, recs, client = owns_two(mux, clock)
    old_wire, current = conn_of(client), client.session_id
    assert cores[1].close(5.0, clock.now) and cores[1].is_closing
    open_entry = {"id": cores[0].id, "ix": 0, "lastSeq": 0}
    ws = raw_connection(mux, clock, {"sessionId": current, "upgrade": True, "open": [open_entry]})
    assert reconciled(ws)["open"] == [{"ix": 0, "lastSeq": 0}]
    assert cores[0].peer is ws and not cores[0].is_shutdown
    # It finishes its close as acknowledged: the client saw the CLOSE (its ack may be behind).
    assert cores[1].is_shutdown and recs[1].shutdown == [None] and cores[1].got_close_ack
    assert mux.upgrades == 1 and any(f.tag == Tag.FIN for f in frames(old_wire))
    assert current not in mux.sessions


def test_an_upgrade_leaving_out_an_open_channel_sends_no_fin(mux: ServerMux, clock: Clock) -> None:
    """Closing channels end, but an open one nobody listed keeps the old wire and its session."""
    cores, recs, client = owns_two(mux, clock)
    old_wire, current = conn_of(client), client.session_id
    assert current is not None
    ws = raw_connection(mux, clock, {"sessionId": current, "upgrade": True, "open": []})
    assert reconciled(ws)["open"] == []
    assert mux.upgrades == 0 and not any(f.tag == Tag.FIN for f in frames(old_wire))
    assert mux.sessions[current] == {0: cores[0], 1: cores[1]}
    assert all(core.peer is old_wire and not core.is_shutdown for core in cores)
    assert all(rec.shutdown == [] for rec in recs)
