"""The sans-I/O parts of the SSE transport and of the SSE -> WebSocket upgrade, on a fake clock:
held RECONCILED, connId replacement and lookup, and FIN on the old wire after an upgrade."""

from __future__ import annotations

import json
from typing import Any

from telefunc.config import ChannelSettings
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.frames import Frame, Tag, decode_frame, encode_frame, encode_json
from telefunc.wire.mux import CLOSE_REPLACED, ServerConnection, ServerMux

SETTINGS = ChannelSettings()
NOW = 1000.0


class Handler:
    """A ChannelEvents handler recording messages (consumed at once)."""

    def __init__(self) -> None:
        self.core: ChannelCore | None = None
        self.messages: list[Any] = []
        self.opened = 0
        self.shutdown: list[Exception | None] = []

    def handle_open(self) -> None:
        self.opened += 1

    def handle_message(self, payload: bytes, binary: bool) -> None:
        self.messages.append(json.loads(payload))
        assert self.core is not None
        self.core.consumed(len(payload))

    def handle_shutdown(self, error: Exception | None) -> None:
        self.shutdown.append(error)

    def __getattr__(self, name: str) -> Any:  # every other event is ignored
        return lambda *args: None


def channel(mux: ServerMux) -> tuple[ChannelCore, Handler]:
    handler = Handler()
    core = ChannelCore(f"ch-{len(mux.channels)}", SETTINGS, handler)
    handler.core = core
    mux.register(core, NOW)
    return core, handler


def reconcile(open_: list[dict[str, Any]], session: str | None = None, **extra: Any) -> bytes:
    payload: dict[str, Any] = {"open": open_, **extra}
    if session is not None:
        payload["sessionId"] = session
    return encode_json(Tag.RECONCILE, payload)


def text(seq: int, value: Any, ix: int = 0) -> bytes:
    return encode_frame(Tag.TEXT, ix, seq, json.dumps(value).encode())


def out(conn: ServerConnection) -> list[Frame]:
    return [decode_frame(f) for f in conn.data_to_send()]


def reconciled(frames: list[Frame]) -> list[dict[str, Any]]:
    return [f.json() for f in frames if f.tag == Tag.RECONCILED]


def sse_wire(mux: ServerMux, core: ChannelCore, conn_id: str = "c1") -> ServerConnection:
    conn = mux.open_connection(conn_id, transport="sse", now=NOW)
    conn.start(NOW)
    conn.receive(reconcile([{"id": core.id, "ix": 0, "lastSeq": 0, "initial": True}]), NOW)
    assert reconciled(out(conn))
    return conn


def test_reconciled_is_held_until_the_body_ends_and_counts_frames_read_meanwhile() -> None:
    mux = ServerMux(SETTINGS)
    core, handler = channel(mux)
    conn = mux.open_connection("c1", transport="sse", now=NOW)
    conn.hold_reconciled()
    conn.receive(reconcile([{"id": core.id, "ix": 0, "lastSeq": 0, "initial": True}]), NOW)
    conn.receive(text(1, "a"), NOW)  # the buffered frames after RECONCILE in the same body
    conn.receive(text(2, "b"), NOW)
    core.send(Tag.TEXT, b'"tick"', NOW)
    held = out(conn)
    assert reconciled(held) == []  # data may go out first; RECONCILED waits for the body end
    assert [f.tag for f in held if f.tag < 0x30] == [Tag.TEXT]  # (+ BDP_PING)
    assert handler.messages == ["a", "b"] and core.attached
    conn.release_reconciled(NOW)
    [payload] = reconciled(out(conn))
    assert payload["open"] == [{"ix": 0, "lastSeq": 2}]  # no replay of a, b needed
    assert payload["transports"] == ["sse", "ws"] and payload["sseFlushThrottle"] == 300
    assert payload["ssePostIdleFlushDelay"] == 50


def test_only_the_latest_held_reconciled_is_sent() -> None:
    mux = ServerMux(SETTINGS)
    a, _ = channel(mux)
    b, _ = channel(mux)
    conn = mux.open_connection("c1", transport="sse", now=NOW)
    conn.hold_reconciled()
    conn.receive(reconcile([{"id": a.id, "ix": 0, "lastSeq": 0, "initial": True}]), NOW)
    conn.hold_reconciled()  # a batch POST overlapping the stream-response body
    conn.receive(reconcile([{"id": a.id, "ix": 0, "lastSeq": 0}, {"id": b.id, "ix": 1}]), NOW)
    conn.release_reconciled(NOW)
    assert reconciled(out(conn)) == []
    conn.release_reconciled(NOW)
    [payload] = reconciled(out(conn))
    assert payload["sessionId"] == conn.session_id
    assert payload["open"] == [{"ix": 0, "lastSeq": 0}, {"ix": 1, "lastSeq": 0}]


def test_a_held_reconciled_is_dropped_when_the_wire_dies() -> None:
    mux = ServerMux(SETTINGS)
    core, _ = channel(mux)
    conn = mux.open_connection("c1", transport="sse", now=NOW)
    conn.hold_reconciled()
    conn.receive(reconcile([{"id": core.id, "ix": 0, "lastSeq": 0, "initial": True}]), NOW)
    conn.connection_lost(NOW, permanent=False)
    conn.release_reconciled(NOW)
    assert out(conn) == []
    assert not core.attached and core.next_deadline() == NOW + SETTINGS.reconnect_timeout


def test_same_conn_id_replaces_the_older_wire_transiently() -> None:
    mux = ServerMux(SETTINGS)
    core, handler = channel(mux)
    old = sse_wire(mux, core)
    seen: list[ServerConnection] = []
    mux.wait_for_conn_id("c1", seen.append)  # a data POST overtaking the new stream-response
    new = mux.open_connection("c1", transport="sse", now=NOW + 1)
    assert old.closed and old.close_request is not None and old.close_request[0] == CLOSE_REPLACED
    assert mux.connection_for("c1") is new and seen == [new]
    # Transient: the channel waits for the client, which reconciles on the new wire.
    assert not core.attached and not handler.shutdown
    new.receive(reconcile([{"id": core.id, "ix": 0, "lastSeq": 0}], old.session_id), NOW + 1)
    assert core.attached and core.peer is new and reconciled(out(new))
    new.connection_lost(NOW + 2, permanent=False)
    assert mux.connection_for("c1") is None


def test_conn_id_waiters_can_be_cancelled() -> None:
    mux = ServerMux(SETTINGS)
    seen: list[ServerConnection] = []
    cancel = mux.wait_for_conn_id("c9", seen.append)
    cancel()
    mux.open_connection("c9", transport="sse", now=NOW)
    assert seen == [] and mux.connection_for("c9") is not None


def test_upgrade_reconciled_on_the_new_wire_then_fin_on_the_old_nothing_lost_or_doubled() -> None:
    mux = ServerMux(SETTINGS)
    core, handler = channel(mux)
    sse = sse_wire(mux, core)
    session = sse.session_id
    for i in range(3):
        core.send(Tag.TEXT, json.dumps(i).encode(), NOW)
    on_sse = out(sse)
    assert [f.seq for f in on_sse if f.tag == Tag.TEXT] == [1, 2, 3]
    sse.receive(text(1, "c1"), NOW)
    out(sse)  # (a BDP_PING)
    # The client saw ticks 1-2 (3 is still in flight on the SSE stream) when it upgrades.
    order: list[str] = []
    ws = mux.open_connection(transport="ws", now=NOW)
    ws.start(NOW)
    ws.receive(encode_frame(Tag.PING), NOW)  # the probe
    assert [f.tag for f in out(ws)] == [Tag.PONG]
    ws.on_output = lambda: order.append("ws")
    sse.on_output = lambda: order.append("sse")
    ws.receive(reconcile([{"id": core.id, "ix": 0, "lastSeq": 2}], session, upgrade=True), NOW)
    on_ws = out(ws)
    assert [(f.tag, f.seq) for f in on_ws if f.tag < 0x30] == [(Tag.TEXT, 3), (Tag.RECONCILED, 0)]
    assert reconciled(on_ws)[0]["open"] == [{"ix": 0, "lastSeq": 1}]
    assert [f.tag for f in out(sse)] == [Tag.FIN]
    assert order == ["ws", "sse"]  # RECONCILED was queued before FIN
    assert ws.upgraded and mux.upgrades == 1 and core.peer is ws
    # From now on the new wire carries the channel; late frames on the old wire are dropped
    # (the client replays them on the new one from the lastSeq it was given).
    core.send(Tag.TEXT, b"4", NOW)
    assert [f.seq for f in out(ws) if f.tag == Tag.TEXT] == [4] and out(sse) == []
    sse.receive(text(2, "c2"), NOW)
    ws.receive(text(2, "c2"), NOW)
    ws.receive(text(2, "c2"), NOW)
    assert handler.messages == ["c1", "c2"]
    # The client closes the old wire: a transient close of a wire that carries nothing.
    sse.connection_lost(NOW + 1, permanent=False)
    assert core.attached and core.peer is ws
    assert handler.shutdown == []
    assert mux.sessions == {ws.session_id: {0: core}}


def test_reconnect_without_the_upgrade_flag_sends_no_fin() -> None:
    mux = ServerMux(SETTINGS)
    core, _ = channel(mux)
    sse = sse_wire(mux, core)
    ws = mux.open_connection(transport="ws", now=NOW)
    ws.receive(reconcile([{"id": core.id, "ix": 0, "lastSeq": 0}], sse.session_id), NOW)
    assert reconciled(out(ws)) and out(sse) == []
    assert mux.upgrades == 0 and not ws.upgraded and core.peer is ws


def test_upgrade_after_the_old_wire_died_still_reconciles() -> None:
    mux = ServerMux(SETTINGS)
    core, _ = channel(mux)
    sse = sse_wire(mux, core)
    session = sse.session_id
    sse.connection_lost(NOW, permanent=False)
    ws = mux.open_connection(transport="ws", now=NOW)
    ws.receive(reconcile([{"id": core.id, "ix": 0, "lastSeq": 0}], session, upgrade=True), NOW)
    assert reconciled(out(ws)) and mux.upgrades == 0 and core.peer is ws


def test_upgrade_with_a_held_reconciled_sends_fin_after_it() -> None:
    mux = ServerMux(SETTINGS)
    core, _ = channel(mux)
    sse = sse_wire(mux, core)
    other = mux.open_connection("c2", transport="sse", now=NOW)
    other.hold_reconciled()
    other.receive(
        reconcile([{"id": core.id, "ix": 0, "lastSeq": 0}], sse.session_id, upgrade=True), NOW
    )
    assert out(sse) == [] and reconciled(out(other)) == []
    other.release_reconciled(NOW)
    assert reconciled(out(other)) and [f.tag for f in out(sse)] == [Tag.FIN]


def test_a_frame_fed_after_a_later_one_ends_the_wire_instead_of_being_dropped() -> None:
    """Reordered frames (a batch fed before an earlier one) are no replay: dropping the older
    ones as duplicates would lose them silently."""
    mux = ServerMux(SETTINGS)
    core, handler = channel(mux)
    reports: list[str] = []
    mux.on_client_error = lambda kind, message: reports.append(message)
    conn = sse_wire(mux, core)
    conn.receive(text(1, "one"), NOW)
    conn.receive(text(4, "four"), NOW)  # 2 and 3 are missing...
    conn.receive(text(2, "two"), NOW)  # ...and come late
    assert handler.messages == ["one", "four"]
    assert conn.closed and reports and "out of order" in reports[0]
    assert handler.shutdown  # the channel ends with the wire (a permanent close)
    assert not core.attached


def test_a_replay_of_frames_received_before_the_reconnect_is_still_dropped() -> None:
    mux = ServerMux(SETTINGS)
    core, handler = channel(mux)
    old = sse_wire(mux, core)
    old.receive(text(1, "one"), NOW)
    old.receive(text(2, "two"), NOW)
    new = mux.open_connection("c1", transport="sse", now=NOW + 1)
    new.receive(reconcile([{"id": core.id, "ix": 0, "lastSeq": 0}], old.session_id), NOW + 1)
    # The client re-sends what it was unsure of (a batch whose answer it never got), then more.
    for seq, value in ((1, "one"), (2, "two"), (3, "three")):
        new.receive(text(seq, value), NOW + 1)
    assert handler.messages == ["one", "two", "three"]
    assert not new.closed and not handler.shutdown


def test_seqs_the_client_skips_for_good_leave_duplicates_harmless() -> None:
    """The client's replay stops at frames it no longer holds and goes on with later ones: the
    skipped seqs never come, and re-sent received frames are still dropped quietly."""
    mux = ServerMux(SETTINGS)
    core, handler = channel(mux)
    conn = sse_wire(mux, core)
    for seq, value in ((1, "one"), (4, "four"), (5, "five"), (4, "four"), (5, "five"), (6, "six")):
        conn.receive(text(seq, value), NOW)
    assert handler.messages == ["one", "four", "five", "six"]
    assert not conn.closed and core.last_peer_seq == 6
