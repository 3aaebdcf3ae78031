"""A server CLOSE that crosses the client's SSE-to-WebSocket upgrade is still acknowledged.

The real ClientMux against the real ServerMux, in memory, on a fake clock. The frame order is
the one seen on live runs: the client has begun the upgrade (its channels are detached, its
RECONCILE ``upgrade: true`` queued on the new wire) when the server's CLOSE arrives on the old
wire. The server moves the channel, sends CLOSE again, RECONCILED on the new wire and FIN on the
old one; the client must answer CLOSE_ACK on the new wire, or the server's ``close()`` times out.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from client_model import Clock, Recorder

from telefunc.config import ChannelSettings
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.client_mux import ClientChannelCore, ClientMux, Wire
from telefunc.wire.frames import Frame, Tag, decode_frame
from telefunc.wire.mux import ServerConnection, ServerMux

SETTINGS = ChannelSettings()
CLOSE_TIMEOUT = 5.0


def tags(frames: list[bytes]) -> list[Tag]:
    return [Tag(decode_frame(f).tag) for f in frames]


class Upgrade:
    """One client and one server channel on an SSE-like wire, then a WebSocket-like one."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.server = ServerMux(SETTINGS)
        self.client = ClientMux()
        self.s_rec = Recorder()
        self.s_core = ChannelCore("ch-1", SETTINGS, self.s_rec)
        self.s_rec.core = self.s_core
        self.server.register(self.s_core, self.clock.now)
        self.c_rec = Recorder()
        self.c_core: ClientChannelCore = self.client.open_channel(
            "ch-1", self.c_rec, self.clock.now
        )
        self.c_rec.core = self.c_core
        # The first wire (SSE), reconciled and settled.
        self.client.connecting(self.clock.now)
        self.old_conn = self.server.open_connection("conn-1", transport="sse", now=self.clock.now)
        self.old_conn.start(self.clock.now)
        self.old_wire = self.client.connection_made(self.clock.now)
        self.new_conn: ServerConnection | None = None
        self.new_wire: Wire | None = None
        #: What the client put on each wire, in order.
        self.up: dict[str, list[bytes]] = {"old": [], "new": []}
        self.pump_old()
        assert self.client.settled and self.s_core.attached

    def pump_old(self) -> None:
        """Exchange frames on the old wire until it goes quiet (before the upgrade)."""
        for _ in range(100):
            up = self.client.data_to_send()
            self.up["old"] += up
            for frame in up:
                self.old_conn.receive(frame, self.clock.now)
            down = self.old_conn.data_to_send()
            for frame in down:
                self.client.receive_from(self.old_wire, frame, self.clock.now)
            if not up and not down:
                return
        raise AssertionError("the old wire never went quiet")

    def begin_upgrade(self) -> None:
        """The client moves to a new wire; what it still had for the old one goes there."""
        self.new_wire, leftover = self.client.begin_upgrade(self.clock.now)
        self.up["old"] += leftover
        for frame in leftover:
            self.old_conn.receive(frame, self.clock.now)
        self.new_conn = self.server.open_connection(transport="ws", now=self.clock.now)
        self.new_conn.start(self.clock.now)

    def client_to_new(self) -> list[bytes]:
        """Send what the client queued (for its current wire, the new one) to the server."""
        assert self.new_conn is not None
        up = self.client.data_to_send()
        self.up["new"] += up
        for frame in up:
            self.new_conn.receive(frame, self.clock.now)
        return up

    def deliver(self, conn: ServerConnection, wire: Wire) -> list[bytes]:
        """Hand the client what ``conn`` has queued, as received on ``wire``."""
        down = conn.data_to_send()
        for frame in down:
            self.client.receive_from(wire, frame, self.clock.now)
        return down

    def acked_close(self) -> Frame | None:
        found = [f for f in map(decode_frame, self.up["new"]) if f.tag == Tag.CLOSE_ACK]
        return found[0] if found else None


def reconcile_payload(frames: list[bytes]) -> dict[str, Any]:
    [frame] = [f for f in map(decode_frame, frames) if f.tag == Tag.RECONCILE]
    payload: dict[str, Any] = json.loads(frame.payload)
    return payload


@pytest.mark.parametrize("fin_first", [False, True], ids=["reconciled-then-fin", "fin-first"])
def test_a_server_close_arriving_on_the_old_wire_mid_upgrade_is_acknowledged(
    fin_first: bool,
) -> None:
    u = Upgrade()
    u.begin_upgrade()
    assert u.new_conn is not None and u.new_wire is not None
    # The server closes; its CLOSE goes out on the wire it knows, the old one.
    assert u.s_core.close(CLOSE_TIMEOUT, u.clock.now)
    assert tags(u.deliver(u.old_conn, u.old_wire)) == [Tag.CLOSE]
    assert u.c_rec.close_fired == []  # held with the old wire's frames until FIN
    # The drained old wire is done: the RECONCILE (upgrade) reaches the server on the new one.
    reconcile = reconcile_payload(u.client_to_new())
    assert reconcile["upgrade"] is True and [e["id"] for e in reconcile["open"]] == ["ch-1"]
    # The server moved the channel: CLOSE again and RECONCILED on the new wire, FIN on the old.
    new_down = u.new_conn.data_to_send()
    assert tags(new_down) == [Tag.CLOSE, Tag.RECONCILED]
    old_down = u.old_conn.data_to_send()
    assert tags(old_down) == [Tag.FIN]
    arrivals = [(u.old_wire, old_down), (u.new_wire, new_down)]
    for wire, frames in arrivals if fin_first else reversed(arrivals):
        for frame in frames:
            u.client.receive_from(wire, frame, u.clock.now)
    assert not u.client.upgrading and u.client.upgrades == 1
    # The client processed the CLOSE and ended its side cleanly ...
    assert u.c_rec.close_fired == [None] and u.c_core.is_shutdown
    # ... and acknowledged it on the new wire, after its RECONCILE.
    u.client_to_new()
    ack = u.acked_close()
    assert ack is not None and ack.ix == reconcile["open"][0]["ix"]
    assert tags(u.up["new"])[0] == Tag.RECONCILE
    # The server's close() resolves acknowledged (result 0), well before its timeout.
    assert u.s_core.got_close_ack and u.s_core.is_shutdown
    assert u.s_rec.close_fired == [None]
    u.clock.advance(CLOSE_TIMEOUT + 1, u.server)
    assert u.s_rec.shutdown == [None]


def test_a_close_exchange_finished_before_the_upgrade_is_not_repeated() -> None:
    """The passing order of live runs: CLOSE and CLOSE_ACK both on the old wire, then the
    upgrade lists no channel and the client sends no second CLOSE_ACK."""
    u = Upgrade()
    assert u.s_core.close(CLOSE_TIMEOUT, u.clock.now)
    u.pump_old()
    assert tags(u.up["old"]).count(Tag.CLOSE_ACK) == 1
    assert u.s_core.got_close_ack and u.s_rec.close_fired == [None]
    assert u.c_rec.close_fired == [None] and u.client.channels == {}
    u.begin_upgrade()
    assert u.new_conn is not None and u.new_wire is not None
    assert reconcile_payload(u.client_to_new())["open"] == []
    u.deliver(u.new_conn, u.new_wire)
    u.deliver(u.old_conn, u.old_wire)
    assert u.client.upgrades == 1
    u.client_to_new()
    assert u.acked_close() is None
