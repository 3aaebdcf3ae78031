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
from client_model import ClientModel, Clock, Recorder, make_channel

from telefunc.config import ChannelSettings
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.frames import Frame, Tag, decode_frame, encode_frame, encode_json
from telefunc.wire.mux import ServerConnection, ServerMux

SETTINGS = ChannelSettings()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mux() -> ServerMux:
    return ServerMux(SETTINGS)


def owned(mux: ServerMux, clock: Clock) -> tuple[ChannelCore, Recorder, ClientModel]:
    core, rec = make_channel(SETTINGS, "victim-channel")
    mux.register(core, clock.now)
    client = ClientModel(mux, clock)
    client.add_channel(core.id, 0)
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
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
