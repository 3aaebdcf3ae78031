"""The sans-I/O client mux against the sans-I/O server mux, in memory, on a fake clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from telefunc.config import ChannelSettings
from telefunc.errors import Abort, NetworkError
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.client_mux import (
    CLOSE_TRANSIENT,
    RECONNECT_MAX_DELAY,
    ClientChannelCore,
    ClientMux,
    Wire,
)
from telefunc.wire.frames import AckStatus, Frame, Tag, decode_frame
from telefunc.wire.mux import ServerConnection, ServerMux


class Recorder:
    """A ChannelEvents handler recording everything; consumes messages at once."""

    def __init__(self) -> None:
        self.core: ChannelCore | None = None
        self.texts: list[Any] = []
        self.ack_requests: list[tuple[int, bytes]] = []
        self.ack_results: list[tuple[Any, AckStatus, str]] = []
        self.opened = 0
        self.closed: list[Exception | None] = []
        self.failed: list[tuple[Any, Exception]] = []

    def handle_open(self) -> None:
        self.opened += 1

    def handle_message(self, payload: bytes, binary: bool) -> None:
        self.texts.append(payload if binary else json.loads(payload))
        assert self.core is not None
        self.core.consumed(len(payload))

    def handle_ack_request(self, seq: int, payload: bytes, binary: bool) -> None:
        self.ack_requests.append((seq, payload))

    def handle_ack_result(self, token: Any, status: AckStatus, text: str) -> None:
        self.ack_results.append((token, status, text))

    def handle_send_done(self, token: Any) -> None:
        pass

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        self.failed.append((token, error))

    def handle_credit(self) -> None:
        pass

    def handle_fire_close(self, error: Exception | None) -> None:
        self.closed.append(error)

    def handle_shutdown(self, error: Exception | None) -> None:
        pass

    def handle_other_frame(self, frame: Frame) -> None:
        pass


class Harness:
    """One ClientMux and one ServerMux joined by lossy in-memory wires."""

    def __init__(self, settings: ChannelSettings | None = None) -> None:
        self.now = 1000.0
        self.server = ServerMux(settings or ChannelSettings())
        self.client = ClientMux()
        self.conn: ServerConnection | None = None
        self.wire: Wire | None = None
        self.client_frames: list[bytes] = []  # everything the client put on a wire

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.client.handle_timeout(self.now)
        self.server.handle_timeout(self.now)

    def server_channel(self, channel_id: str) -> tuple[ChannelCore, Recorder]:
        rec = Recorder()
        core = ChannelCore(channel_id, self.server.settings, rec)
        rec.core = core
        self.server.register(core, self.now)
        return core, rec

    def client_channel(self, channel_id: str) -> tuple[ClientChannelCore, Recorder]:
        rec = Recorder()
        core = self.client.open_channel(channel_id, rec, self.now)
        rec.core = core
        return core, rec

    def connect(self) -> None:
        assert self.client.want_connect
        self.client.connecting(self.now)
        self.conn = self.server.open_connection()
        self.conn.start(self.now)
        self.wire = self.client.connection_made(self.now)

    def pump(self) -> None:
        for _ in range(1000):
            up = self.client.data_to_send()
            self.client_frames += up
            for frame in up:
                assert self.conn is not None
                self.conn.receive(frame, self.now)
            down = self.conn.data_to_send() if self.conn is not None else []
            for frame in down:
                self.client.receive(frame, self.now)
            if not up and not down:
                return
        raise AssertionError("the two sides never went quiet")

    def cut(self) -> None:
        assert self.conn is not None and self.wire is not None
        self.conn.connection_lost(self.now, permanent=False)
        self.client.connection_lost(self.wire, self.now)
        self.conn = None

    def sent(self, tag: int) -> list[Frame]:
        return [f for f in map(decode_frame, self.client_frames) if f.tag == tag]


def _attached(h: Harness) -> tuple[ChannelCore, Recorder, ClientChannelCore, Recorder]:
    s_core, s_rec = h.server_channel("ch0")
    c_core, c_rec = h.client_channel("ch0")
    h.connect()
    h.pump()
    return s_core, s_rec, c_core, c_rec


def reconciles(h: Harness) -> list[dict[str, Any]]:
    return [json.loads(f.payload) for f in h.sent(Tag.RECONCILE)]


def test_first_reconcile_marks_new_channels_initial_and_opens_them() -> None:
    h = Harness()
    _s_core, s_rec, c_core, c_rec = _attached(h)
    assert reconciles(h) == [{"open": [{"id": "ch0", "ix": 0, "lastSeq": 0, "initial": True}]}]
    assert s_rec.opened == 1 and c_rec.opened == 1 and c_core.attached
    assert h.client.session_id is not None
    assert len(h.sent(Tag.PING)) == 1  # the heartbeat starts with a PING


def test_reconnect_replays_both_ways_exactly_once() -> None:
    h = Harness()
    s_core, s_rec, c_core, c_rec = _attached(h)
    session = h.client.session_id
    for i in range(3):
        s_core.send(Tag.TEXT, json.dumps(i).encode(), h.now)
        c_core.send(Tag.TEXT, json.dumps(i).encode(), h.now)
    h.pump()
    # Frames in flight both ways are lost with the wire.
    s_core.send(Tag.TEXT, b"3", h.now)
    c_core.send(Tag.TEXT, b"3", h.now)
    h.client.data_to_send()
    h.cut()
    assert not c_core.attached and c_rec.closed == []
    c_core.send(Tag.TEXT, b"4", h.now)  # sent while detached: buffered, flushed after replay
    s_core.send(Tag.TEXT, b"4", h.now)
    assert not h.client.want_connect  # backoff first
    h.advance(0.5)
    h.connect()
    h.pump()
    assert reconciles(h)[-1] == {
        "open": [{"id": "ch0", "ix": 0, "lastSeq": 3}],
        "sessionId": session,
    }
    assert c_rec.texts == [0, 1, 2, 3, 4]
    assert s_rec.texts == [0, 1, 2, 3, 4]
    assert c_rec.opened == 1 and s_rec.opened == 1  # open fires once
    assert h.client.session_id != session  # the session rotates


def test_backoff_doubles_up_to_five_seconds_then_gives_up_after_reconnect_timeout() -> None:
    h = Harness(ChannelSettings(reconnect_timeout=20.0))
    _s_core, _s_rec, _c_core, c_rec = _attached(h)
    assert h.client.settings.reconnect_timeout == 20.0  # taken from RECONCILED
    h.cut()
    delays = []
    for _ in range(6):
        start = h.now
        while not h.client.want_connect:
            h.advance(0.25)
            if c_rec.closed:
                break
        if c_rec.closed:
            break
        delays.append(h.now - start)
        h.client.connecting(h.now)
        h.client.connection_failed(h.now)  # the server stays away
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == RECONNECT_MAX_DELAY
    while not c_rec.closed:
        h.advance(0.25)
    assert isinstance(c_rec.closed[0], NetworkError)
    assert h.now - 1000.0 == pytest.approx(20.0, abs=0.3)  # given up at reconnect_timeout
    assert h.client.channels == {}


def test_missing_pong_drops_the_wire_as_transient() -> None:
    h = Harness(ChannelSettings(ping_interval=2.0))
    _attached(h)
    wire = h.wire
    pings = len(h.sent(Tag.PING))
    h.advance(2.0)
    h.pump()  # the server answers: the wire stays
    assert len(h.sent(Tag.PING)) == pings + 1 and h.client.wire is wire
    h.advance(2.0)
    h.client.data_to_send()  # this PING and its PONG are lost
    h.advance(1.99)
    assert h.client.wire is wire
    h.advance(0.02)  # 4 s (2 x ping_interval) after the last PONG
    request = h.client.take_close_request()
    assert request is not None and request[0] is wire and request[1] == CLOSE_TRANSIENT
    assert h.client.wire is None


def test_channel_missing_from_reconciled_fails_with_network_error() -> None:
    h = Harness(ChannelSettings(reconnect_timeout=1.0))
    s_core, _s_rec, _c_core, c_rec = _attached(h)
    h.client.settings.reconnect_timeout = 60.0  # the client would wait longer than the server
    h.cut()
    h.advance(1.5)  # the server gives the channel up
    assert s_core.is_shutdown
    h.advance(0.5)
    h.connect()
    h.pump()
    assert isinstance(c_rec.closed[0], NetworkError)
    assert "not acknowledged" in str(c_rec.closed[0])


def test_client_advertises_windows_so_the_server_never_stalls() -> None:
    h = Harness()
    s_core, _s_rec, _c_core, c_rec = _attached(h)
    for i in range(1000):
        s_core.send(Tag.TEXT, json.dumps(i).encode(), h.now)
        h.pump()
    assert c_rec.texts == list(range(1000))
    assert s_core.credit_available
    assert {f.u32 for f in h.sent(Tag.MSG_WINDOW)} >= {100}
    assert h.sent(Tag.BDP_PING)  # the client probes too


def test_client_answers_bdp_ping_and_acks_and_closes() -> None:
    h = Harness()
    s_core, s_rec, c_core, c_rec = _attached(h)
    s_core.send(Tag.TEXT_ACK_REQ, b'"q"', h.now, "token")
    h.pump()
    [(seq, _payload)] = c_rec.ack_requests
    c_core.reply(seq, AckStatus.OK, '"answer"', h.now)
    h.pump()
    assert s_rec.ack_results == [("token", AckStatus.OK, '"answer"')]
    c_core.close(5.0, h.now)
    h.pump()
    assert c_core.is_shutdown and c_core.got_close_ack and c_rec.closed == [None]


def test_server_abort_reaches_the_client_with_its_value() -> None:
    h = Harness()
    s_core, _s_rec, _c_core, c_rec = _attached(h)
    s_core.abort(b'{"why":"bye"}', Abort({"why": "bye"}))
    h.pump()
    [error] = c_rec.closed
    assert isinstance(error, Abort) and error.value == {"why": "bye"}
    assert h.client.channels == {}


def test_client_abort_sends_close_zero() -> None:
    h = Harness()
    s_core, _s_rec, c_core, _c_rec = _attached(h)
    c_core.abort_local(Abort("x"))
    h.pump()
    [close] = h.sent(Tag.CLOSE)
    assert close.u32 == 0
    assert s_core.is_shutdown


def test_channels_registered_on_a_live_wire_are_reconciled_together() -> None:
    h = Harness()
    _attached(h)
    h.server_channel("b")
    h.server_channel("c")
    _, b_rec = h.client_channel("b")
    _, c_rec = h.client_channel("c")
    h.pump()
    assert len(reconciles(h)) == 1  # coalesced by a zero-delay timer
    h.advance(0.0)
    h.pump()
    last = reconciles(h)[-1]
    assert [e["id"] for e in last["open"]] == ["ch0", "b", "c"]
    assert [e.get("initial", False) for e in last["open"]] == [False, True, True]
    assert b_rec.opened == 1 and c_rec.opened == 1


def test_idle_connection_closes_normally() -> None:
    h = Harness(ChannelSettings(idle_timeout=3.0))
    _s_core, _s_rec, c_core, _c_rec = _attached(h)
    c_core.close(1.0, h.now)
    h.pump()
    assert c_core.is_shutdown
    h.advance(2.9)
    assert h.client.take_close_request() is None
    h.advance(0.2)
    request = h.client.take_close_request()
    assert request is not None and request[1] == 1000
