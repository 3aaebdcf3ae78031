"""(c) The sans-I/O server mux on a fake clock: RECONCILE -> RECONCILED, TEXT both ways.

Every frame the server writes is recorded as hex, so the test can compare the bytes produced
under Pyodide with the bytes produced under CPython, and check them against the frame layout.
Session ids come from ``telefunc.wire.ids.random_id`` (as the mux imported it); it is replaced by
a counter for the run so the RECONCILED bytes are deterministic.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from telefunc.config import ChannelSettings
from telefunc.wire import mux as mux_module
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.frames import AckStatus, Frame, Tag, encode_frame, encode_json
from telefunc.wire.mux import ServerConnection, ServerMux


class Events:
    """A ChannelEvents handler that records what the core reports and consumes at once."""

    def __init__(self) -> None:
        self.core: ChannelCore | None = None
        self.log: list[Any] = []

    def handle_open(self) -> None:
        self.log.append(["open"])

    def handle_message(self, payload: bytes, binary: bool) -> None:
        self.log.append(["message", payload.hex(), binary])
        if self.core is not None:
            self.core.consumed(len(payload))

    def handle_ack_request(self, seq: int, payload: bytes, binary: bool) -> None:
        self.log.append(["ack_request", seq, payload.hex(), binary])

    def handle_ack_result(self, token: Any, status: AckStatus, text: str) -> None:
        self.log.append(["ack_result", token, int(status), text])

    def handle_send_done(self, token: Any) -> None:
        self.log.append(["send_done", token])

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        self.log.append(["send_failed", token, type(error).__name__])

    def handle_credit(self) -> None:
        self.log.append(["credit"])

    def handle_fire_close(self, error: Exception | None) -> None:
        self.log.append(["fire_close", type(error).__name__ if error else None])

    def handle_shutdown(self, error: Exception | None) -> None:
        self.log.append(["shutdown", type(error).__name__ if error else None])

    def handle_other_frame(self, frame: Frame) -> None:
        self.log.append(["other", frame.tag])


def _text(value: Any) -> bytes:
    return json.dumps(value).encode()


def _drain(conn: ServerConnection) -> list[str]:
    return [frame.hex() for frame in conn.data_to_send()]


def run() -> dict[str, Any]:
    """Drive one channel through connect, traffic, a ping timeout and a reconnect with replay."""
    counter = iter(range(1, 1000))
    real_random_id = mux_module.random_id
    mux_module.random_id = lambda: str(uuid.UUID(int=next(counter)))
    try:
        return _scenario()
    finally:
        mux_module.random_id = real_random_id


def _scenario() -> dict[str, Any]:
    now = 1000.0
    settings = ChannelSettings()
    mux = ServerMux(settings)
    events = Events()
    core = ChannelCore("chan-1", settings, events)
    events.core = core
    out: dict[str, Any] = {}

    # Sent before any client is attached: buffered, flushed after RECONCILED.
    core.send(Tag.TEXT, _text("early-1"), now, "tok-early-1")
    core.send(Tag.TEXT, _text("early-2"), now, "tok-early-2")

    conn = mux.open_connection(now=now)
    conn.start(now)
    conn.receive(encode_frame(Tag.PING), now)
    out["pong"] = _drain(conn)

    # RECONCILE names a channel that is not registered yet ("initial"): the wire waits for it.
    reconcile = {"open": [{"id": "chan-1", "ix": 3, "lastSeq": 0, "initial": True}]}
    conn.receive(encode_json(Tag.RECONCILE, reconcile), now)
    out["before_register"] = _drain(conn)
    now += 0.25
    mux.register(core, now)
    out["reconciled"] = _drain(conn)
    out["session_id"] = conn.session_id

    # Client -> server TEXT frames, seq 1..3, with seq 2 repeated (a replay duplicate).
    for seq, value in ((1, "c1"), (2, "c2"), (2, "c2-dup"), (3, {"n": 3})):
        conn.receive(encode_frame(Tag.TEXT, 3, seq, _text(value)), now)
    # Server -> client TEXT after the attach.
    core.send(Tag.TEXT, _text("late"), now, "tok-late")
    out["after_traffic"] = _drain(conn)

    # No PING for longer than the ping deadline: the mux's timer drops the wire (transient).
    now += settings.ping_deadline + 0.001
    out["next_deadline_due"] = mux.next_deadline() is not None and mux.next_deadline() <= now  # type: ignore[operator]
    mux.handle_timeout(now)
    out["close_request"] = list(conn.close_request) if conn.close_request else None
    out["attached_after_drop"] = core.attached

    # Reconnect with the old session, having seen only seq 1 of ours: 2 and 3 are replayed.
    conn2 = mux.open_connection(now=now)
    conn2.start(now)
    # The client keeps a channel's ix across reconnects (telefunc 0.2.23 assigns it once).
    reconcile2 = {"sessionId": out["session_id"], "open": [{"id": "chan-1", "ix": 3, "lastSeq": 1}]}
    conn2.receive(encode_json(Tag.RECONCILE, reconcile2), now)
    out["reconnect"] = _drain(conn2)
    out["session_id_2"] = conn2.session_id
    out["events"] = events.log
    out["last_peer_seq"] = core.last_peer_seq
    return out
