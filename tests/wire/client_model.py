"""A small in-test model of the client side of the channel protocol, driving a ServerMux.

It plays what telefunc@0.2.23's ClientConnection does on the wire: RECONCILE on every connect
(with the previous session id and, per channel, the highest server seq received), sequence
numbers and a replay buffer for its own frames, replay of ``seq > lastSeq`` after RECONCILED,
duplicate dropping, PONG-less pings. Links are lossy on purpose: ``drop()`` discards everything
in flight in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telefunc.config import ChannelSettings
from telefunc.wire.channel_state import ChannelCore, SendResult
from telefunc.wire.frames import (
    AckStatus,
    Frame,
    Tag,
    decode_frame,
    encode_ack_res,
    encode_frame,
    encode_json,
    encode_u32_frame,
)
from telefunc.wire.mux import ServerConnection, ServerMux
from telefunc.wire.replay import ReplayBuffer


class Clock:
    """A fake clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float, mux: ServerMux | None = None) -> None:
        self.now += seconds
        if mux is not None:
            mux.handle_timeout(self.now)


class Recorder:
    """A ChannelEvents handler that records everything and consumes messages at once."""

    def __init__(self) -> None:
        self.core: ChannelCore | None = None
        self.messages: list[bytes] = []
        self.binary: list[bytes] = []
        self.ack_requests: list[tuple[int, bytes, bool]] = []
        self.ack_results: list[tuple[Any, AckStatus, str]] = []
        self.done: list[Any] = []
        self.failed: list[tuple[Any, Exception]] = []
        self.credit = 0
        self.opened = 0
        self.close_fired: list[Exception | None] = []
        self.shutdown: list[Exception | None] = []
        self.other: list[Frame] = []
        self.auto_consume = True

    def handle_open(self) -> None:
        self.opened += 1

    def handle_message(self, payload: bytes, binary: bool) -> None:
        (self.binary if binary else self.messages).append(payload)
        if self.auto_consume and self.core is not None:
            self.core.consumed(len(payload))

    def handle_ack_request(self, seq: int, payload: bytes, binary: bool) -> None:
        self.ack_requests.append((seq, payload, binary))

    def handle_ack_result(self, token: Any, status: AckStatus, text: str) -> None:
        self.ack_results.append((token, status, text))

    def handle_send_done(self, token: Any) -> None:
        self.done.append(token)

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        self.failed.append((token, error))

    def handle_credit(self) -> None:
        self.credit += 1

    def handle_fire_close(self, error: Exception | None) -> None:
        self.close_fired.append(error)

    def handle_shutdown(self, error: Exception | None) -> None:
        self.shutdown.append(error)

    def handle_other_frame(self, frame: Frame) -> None:
        self.other.append(frame)


def make_channel(
    settings: ChannelSettings, channel_id: str = "ch-1", **kwargs: Any
) -> tuple[ChannelCore, Recorder]:
    rec = Recorder()
    core = ChannelCore(channel_id, settings, rec, **kwargs)
    rec.core = core
    return core, rec


@dataclass
class ClientChannel:
    id: str
    ix: int
    replay: ReplayBuffer
    out_seq: int = 0
    last_server_seq: int = 0
    confirmed: bool = False
    received: list[Frame] = field(default_factory=list)
    removed: bool = False


class Link:
    """One lossy wire between the client model and a ServerConnection."""

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self.c2s: list[bytes] = []
        self.s2c: list[bytes] = []
        self.alive = True

    def pull(self) -> None:
        self.s2c.extend(self.conn.data_to_send())


class ClientModel:
    def __init__(self, mux: ServerMux, clock: Clock) -> None:
        self.mux = mux
        self.clock = clock
        self.channels: dict[int, ClientChannel] = {}
        self.session_id: str | None = None
        self.link: Link | None = None
        self.reconciled = False
        self.reconciled_payloads: list[dict[str, Any]] = []

    def add_channel(self, channel_id: str, ix: int) -> ClientChannel:
        ch = ClientChannel(channel_id, ix, ReplayBuffer(1 << 30, 1 << 30, 1e9))
        self.channels[ix] = ch
        return ch

    # ── links ──
    def connect(self) -> Link:
        conn = self.mux.open_connection()
        conn.start(self.clock.now)
        self.link = Link(conn)
        self.reconciled = False
        payload: dict[str, Any] = {
            "open": [
                {"id": c.id, "ix": c.ix, "lastSeq": c.last_server_seq}
                | ({} if c.confirmed else {"initial": True})
                for c in self.channels.values()
                if not c.removed
            ]
        }
        if self.session_id is not None:
            payload["sessionId"] = self.session_id
        self.link.c2s.append(encode_json(Tag.RECONCILE, payload))
        return self.link

    def drop(self, *, permanent: bool = False) -> None:
        link = self.link
        if link is None:
            return
        self.link = None
        self.reconciled = False
        link.alive = False
        link.conn.connection_lost(self.clock.now, permanent=permanent)

    # ── client → server ──
    def send_raw(self, frame: bytes) -> None:
        if self.link is not None:
            self.link.c2s.append(frame)

    def send(self, ix: int, tag: int, payload: bytes) -> int:
        ch = self.channels[ix]
        ch.out_seq += 1
        frame = encode_frame(tag, ix, ch.out_seq, payload)
        ch.replay.push(ch.out_seq, frame, self.clock.now, binary=tag == Tag.BINARY)
        if self.reconciled and self.link is not None:
            self.link.c2s.append(frame)
        return ch.out_seq

    def deliver_c2s(self, limit: int | None = None) -> None:
        link = self.link
        if link is None:
            return
        n = len(link.c2s) if limit is None else min(limit, len(link.c2s))
        batch, link.c2s = link.c2s[:n], link.c2s[n:]
        for frame in batch:
            if not link.alive:
                return
            link.conn.receive(frame, self.clock.now)

    # ── server → client ──
    def deliver_s2c(self, limit: int | None = None) -> None:
        link = self.link
        if link is None:
            return
        link.pull()
        n = len(link.s2c) if limit is None else min(limit, len(link.s2c))
        batch, link.s2c = link.s2c[:n], link.s2c[n:]
        for raw in batch:
            self._handle(decode_frame(raw))

    def _handle(self, frame: Frame) -> None:
        if frame.tag == Tag.RECONCILED:
            payload = frame.json()
            self.reconciled_payloads.append(payload)
            self.session_id = payload["sessionId"]
            listed = {e["ix"]: e["lastSeq"] for e in payload["open"]}
            for ix, ch in self.channels.items():
                if ch.removed:
                    continue
                if ix not in listed:
                    ch.removed = True
                    continue
                ch.confirmed = True
                for f in ch.replay.get_after(listed[ix]):
                    self.send_raw(f)
            self.reconciled = True
            return
        if frame.tag in (Tag.PONG, Tag.FIN):
            return
        target = self.channels.get(frame.ix)
        if target is None:
            return
        ch = target
        if 0x10 <= frame.tag < 0x30:
            if frame.seq <= ch.last_server_seq:
                return
            ch.last_server_seq = frame.seq
        ch.received.append(frame)
        if frame.tag == Tag.CLOSE:
            self.send_raw(encode_frame(Tag.CLOSE_ACK, frame.ix))
        elif frame.tag == Tag.BDP_PING:
            self.send_raw(encode_frame(Tag.BDP_PING_ACK, frame.ix))

    def reply_ack(self, ix: int, acked_seq: int, text: str, status: int = AckStatus.OK) -> None:
        ch = self.channels[ix]
        ch.out_seq += 1
        frame = encode_ack_res(ix, ch.out_seq, acked_seq, status, text)
        ch.replay.push(ch.out_seq, frame, self.clock.now)
        if self.reconciled:
            self.send_raw(frame)

    def window(self, ix: int, tag: int, value: int) -> None:
        self.send_raw(encode_u32_frame(tag, ix, value))

    def ping(self) -> None:
        self.send_raw(encode_frame(Tag.PING))

    def texts(self, ix: int) -> list[bytes]:
        return [f.payload for f in self.channels[ix].received if f.tag == Tag.TEXT]


__all__ = ["ClientModel", "Clock", "Link", "Recorder", "SendResult", "make_channel"]


def connect_client(mux: ServerMux, clock: Clock, core: ChannelCore) -> ClientModel:
    """Register ``core``, then a client that lists it at ix 0 connects and reconciles."""
    mux.register(core, clock.now)
    client = ClientModel(mux, clock)
    client.add_channel(core.id, 0)
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    return client
