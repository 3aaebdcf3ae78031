"""Outgoing memory per connection is bounded, against real uvicorn (issue 13, item 1).

The server runs with ``telefunc serve``'s WebSocket protocol
(:class:`telefunc.asgi.ws_protocol.TelefuncWebSocketProtocol`); the attacker is a raw WebSocket
client with a tiny receive buffer that never reads. ``config.limits.max_connection_buffer`` is
lowered so each test pushes past it quickly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from telefunc.asgi import ws_protocol
from telefunc.asgi.websocket import WRITE_BATCH
from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol
from telefunc.cli import build_app
from telefunc.config import config
from telefunc.errors import NetworkError
from telefunc.server.channel import Channel
from telefunc.server.hub import ChannelHub
from telefunc.wire.frames import Tag, encode_frame, encode_json, encode_u32_frame
from telefunc.wire.mux import CLOSE_SLOW_CONSUMER, HARD_LIMIT_FACTOR, SLOW_CONSUMER_REASON
from testpaths import APPS_DIR

CAP = 512 * 1024
FILE = "/outbound.telefunc.py"


# ── a raw WebSocket client that can stop reading ─────────────────────────────


class RawWebSocket:
    """RFC 6455 by hand: masked frames out, a tiny receive buffer, reads only when asked."""

    def __init__(self, port: int, path: str = "/_telefunc", rcvbuf: int = 4096) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # byte by byte: leave every frame in the kernel buffer
            assert chunk, "handshake cut"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.sock = sock

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_binary(self, payload: bytes) -> None:
        self.send_frame(0x2, payload)

    def read_until_close(self, timeout: float = 20.0) -> tuple[int, str] | None:
        """Read everything; the close frame's ``(code, reason)``, or ``None`` on EOF without one."""
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            found = _find_close(buf)
            if found is not None:
                return found
        return _find_close(buf)

    def close(self) -> None:
        # RST, not FIN: a client that goes away without reading.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def _find_close(buf: bytearray) -> tuple[int, str] | None:
    pos = 0
    while pos + 2 <= len(buf):
        opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
        head = 2
        if n == 126:
            if pos + 4 > len(buf):
                return None
            n, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
        elif n == 127:
            if pos + 10 > len(buf):
                return None
            n, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
        if pos + head + n > len(buf):
            return None
        if opcode == 0x8:
            body = bytes(buf[pos + head : pos + head + n])
            return struct.unpack("!H", body[:2])[0], body[2:].decode()
        pos += head + n
    return None


# ── the server ───────────────────────────────────────────────────────────────


class Serve:
    """The test app on uvicorn with ``telefunc serve``'s WebSocket protocol, in a thread."""

    def __init__(self) -> None:
        self.app = build_app(APPS_DIR / "outbound")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app, log_level="warning", lifespan="on", ws=TelefuncWebSocketProtocol
            )
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Serve:
        self.thread.start()
        wait_for(lambda: self.server.started or not self.thread.is_alive())
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def server() -> Iterator[Serve]:
    config.limits.max_connection_buffer = CAP
    try:
        with Serve() as live:
            yield live
    finally:
        config.limits.reset()


def call(live: Serve, name: str, *args: Any) -> Any:
    body = json.dumps({"file": FILE, "name": name, "args": list(args)})
    r = httpx.post(live.origin + "/_telefunc", content=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["ret"]


def channel_id(placeholder: str) -> str:
    return str(json.loads(placeholder.split(":", 1)[1])["channelId"])


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def attach(live: Serve, cid: str, *, huge_credit: bool) -> RawWebSocket:
    ws = RawWebSocket(live.port)
    ws.send_binary(
        encode_json(Tag.RECONCILE, {"open": [{"id": cid, "ix": 0, "lastSeq": 0, "initial": True}]})
    )
    if huge_credit:
        for _ in range(2):
            ws.send_binary(encode_u32_frame(Tag.WINDOW, 0, 0xFFFFFFFF))
            ws.send_binary(encode_u32_frame(Tag.MSG_WINDOW, 0, 0xFFFFFFFF))
    return ws


def hub_of(live: Serve) -> ChannelHub:
    hub: ChannelHub = live.app.hub
    return hub


# ── the attacks ──────────────────────────────────────────────────────────────


def test_huge_credit_and_no_reading_hold_the_channel_and_overflow(server: Serve) -> None:
    n, size = 20_000, 1000
    cid = channel_id(call(server, "flood", n, size, False))
    ws = attach(server, cid, huge_credit=True)
    hub = hub_of(server)
    core = hub.mux.channels[cid]

    def settled() -> bool:
        p = call(server, "progress")  # every poll is a normal call answered meanwhile
        return bool(p["overflow"]) and p["sent"] + p["overflow"] + core.buffered == n

    wait_for(settled)
    conn = core.peer
    assert conn is not None
    frame = len(encode_frame(Tag.TEXT, 0, 1, json.dumps("x" * size).encode()))
    # The connection's queue stopped at the cap; the channel holds at most its budget; the
    # rest failed with ChannelOverflowError, as a detached channel's overflow does.
    assert conn.buffered <= CAP + WRITE_BATCH + frame
    assert core.buffered * size <= config.channel.buffer_limit
    progress = call(server, "progress")
    assert progress["other_errors"] == 0 and progress["sent"] < n
    ws.close()
    wait_for(lambda: conn.closed)
    assert conn.buffered == 0  # released with the client
    assert call(server, "hello") == "hello"


def test_a_broadcast_subscriber_that_never_reads_is_dropped_with_4002(server: Serve) -> None:
    key = "slow-room"
    cid = channel_id(call(server, "room", key))
    ws = attach(server, cid, huge_credit=False)
    ws.send_binary(encode_frame(Tag.BROADCAST_SUB, 0, 0, b"\x00"))
    hub = hub_of(server)
    wait_for(lambda: cid in hub.mux.channels and hub.mux.channels[cid].attached)
    core = hub.mux.channels[cid]
    conn = core.peer
    assert conn is not None

    def subscribed() -> bool:  # BROADCAST_SUB was processed: publishes reach this channel
        call(server, "publish", key, 1, 10)
        return core.out_seq > 0

    wait_for(subscribed)
    peak = 0
    for _ in range(40):  # 40 x 500 publishes of 1000 bytes: 20 MB, far past the hard limit
        call(server, "publish", key, 500, 1000)
        peak = max(peak, conn.buffered)
        if hub.stats.slow_consumer_drops:
            break
    assert hub.stats.slow_consumer_drops == 1
    assert peak <= CAP * HARD_LIMIT_FACTOR + 2 * 1024
    wait_for(lambda: conn.closed)
    assert cid not in hub.mux.channels  # the subscription ended (NetworkError server-side)
    assert isinstance(core.shutdown_error, NetworkError)
    # A client that reads after all finds the documented close code and reason.
    assert ws.read_until_close() == (CLOSE_SLOW_CONSUMER, SLOW_CONSUMER_REASON)
    ws.close()
    wait_for(lambda: conn.buffered == 0)  # the transport let go of what it held too
    assert call(server, "hello") == "hello"


def test_a_websocket_ping_flood_that_is_never_read_is_closed(
    server: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_protocol, "CLOSE_GRACE", 0.5)
    cid = channel_id(call(server, "room", "ping-room"))
    ws = attach(server, cid, huge_credit=False)
    hub = hub_of(server)
    ws.sock.settimeout(2)
    sent = 0
    try:
        while not hub.stats.slow_consumer_drops and sent < 2_000_000:
            ws.send_frame(0x9, b"p" * 125)  # RFC 6455 ping: uvicorn answers each with a pong
            sent += 1
    except OSError:
        pass  # the server stopped reading and closed
    wait_for(lambda: hub.stats.slow_consumer_drops == 1)
    # Pongs alone filled the transport to the cap, then the socket was dropped (memory freed).
    assert sent * 127 > CAP

    def no_websocket_left() -> bool:
        return not any(
            isinstance(c, TelefuncWebSocketProtocol) for c in server.server.server_state.connections
        )

    wait_for(no_websocket_left)
    ws.close()
    assert call(server, "hello") == "hello"


def test_a_client_flooding_a_connection_the_server_closed_is_dropped_not_parsed(
    server: Serve,
) -> None:
    """A PING flood is a protocol violation (1002); a client that keeps sending after the
    server's close frame gets its socket dropped past ``config.limits.max_after_close`` instead
    of having every frame parsed until the close timeout (which kept the loop busy)."""
    ws = RawWebSocket(server.port)
    batch = b"".join(_masked_binary(encode_frame(Tag.PING)) for _ in range(1000))
    sent = 0
    with pytest.raises(OSError):
        while sent < 8 * 1024 * 1024:  # far past the budget plus both sockets' buffers
            ws.sock.sendall(batch)
            sent += len(batch)
    assert sent > config.limits.max_after_close

    def no_websocket_left() -> bool:
        return not any(
            isinstance(c, TelefuncWebSocketProtocol) for c in server.server.server_state.connections
        )

    wait_for(no_websocket_left)
    ws.close()
    assert call(server, "hello") == "hello"


def _masked_binary(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x82, 0x80 | len(payload)) + mask + masked


# ── send() yields even with unlimited credit ────────────────────────────────


async def test_a_send_loop_with_unlimited_credit_lets_other_tasks_run() -> None:
    hub = ChannelHub()
    ch: Channel[Any, int] = Channel()
    hub.register(ch)
    conn = hub.open_connection()
    now = hub.now()
    open_entry = {"id": ch.id, "ix": 0, "lastSeq": 0, "initial": True}
    conn.receive(encode_json(Tag.RECONCILE, {"open": [open_entry]}), now)
    conn.receive(encode_u32_frame(Tag.WINDOW, 0, 0xFFFFFFFF), now)
    conn.receive(encode_u32_frame(Tag.MSG_WINDOW, 0, 0xFFFFFFFF), now)
    sent = 0
    seen_by_other: list[int] = []

    async def other() -> None:
        seen_by_other.append(sent)

    other_task = asyncio.ensure_future(other())
    for i in range(1000):
        await ch.send(i)  # never waits for credit, never finds the connection congested
        sent += 1
    await other_task
    assert seen_by_other and seen_by_other[0] < 100  # it ran early, not after the loop
    conn.connection_lost(hub.now(), permanent=True)
    await hub.aclose()


# ── what the official client sees ───────────────────────────────────────────


def test_the_official_client_sees_its_slow_subscription_fail_and_keeps_its_other_channels(
    run_node: Callable[..., list[dict[str, Any]]],
) -> None:
    config.limits.max_connection_buffer = 1024  # one 5,000-byte publish is past 2 x the cap
    try:
        with Serve() as live:
            [result] = run_node("slow_consumer.mjs", live.origin, "official-room", timeout=60)
            app = live.app
    finally:
        config.limits.reset()
    assert result["received"] == 1  # the small publish; the big one was never delivered
    assert result["error"] is not None and result["error"]["name"] == "NetworkError"
    assert result["answer"] == "STILL HERE"  # the plain channel reconnected and goes on
    assert app.hub.stats.slow_consumer_drops == 1
