"""Server CPU of the channel hot paths in one process, without sockets: what Python costs.

``telefunc serve``'s WebSocket protocol (TelefuncWebSocketProtocol) and TelefuncApp run on a
fake transport that only collects writes, so the kernel, the event loop's I/O and the client
are out of the figure; what is left is the Python a message or a delivery costs.

* ``oneway``: one channel (``sink``), reads of 50 frames, the 50th asking for an ack (as the
  perf bench's one-way row): process CPU per message, best of 5 rounds;
* ``fanout``: ``--subscribers`` broadcast subscribers (``join``), one publish at a time:
  process CPU per delivery, best of 5 rounds.

    PYTHONPATH=src:bench .venv/bin/python bench/inprocess.py [--messages 50000] [--subscribers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from uvicorn.server import ServerState

from telefunc import Broadcast
from telefunc.asgi import TelefuncApp
from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol
from telefunc.wire.frames import Tag, encode_frame, encode_json
from telefunc.wire.serializer import stringify

APP = Path(__file__).resolve().parent / "app"
HANDSHAKE = (
    b"GET /_telefunc HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
ROUNDS = 5


class CollectingTransport(asyncio.Transport):
    """A transport that keeps nothing but a count of writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def write(self, data: Any) -> None:
        self.writes += 1

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def client_frame(payload: bytes) -> bytes:
    """One masked binary WebSocket frame (zero mask: the bytes are the payload)."""
    size = len(payload)
    head = bytes((0x82, 0x80 | size)) if size < 126 else bytes((0x82, 0xFE)) + size.to_bytes(2)
    return head + b"\0\0\0\0" + payload


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def open_socket(app: TelefuncApp, channel_id: str) -> tuple[Any, CollectingTransport]:
    """A WebSocket of the serve stack with ``channel_id`` reconciled as ix 0."""
    config = uvicorn.Config(
        app, ws=TelefuncWebSocketProtocol, lifespan="off", log_level="error", ws_ping_interval=None
    )
    config.load()
    protocol = TelefuncWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
    transport = CollectingTransport()
    protocol.connection_made(transport)
    protocol.data_received(HANDSHAKE)
    await settle()
    entry = {"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}
    protocol.data_received(client_frame(encode_json(Tag.RECONCILE, {"open": [entry]})))
    await settle()
    return protocol, transport


async def call(app: TelefuncApp, name: str, args: list[Any]) -> str:
    """Call a bench telefunction returning a channel; its id."""
    body = json.dumps({"file": "/bench.telefunc.py", "name": name, "args": args})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        ret = (await c.post("/_telefunc", content=body)).json()["ret"]
    channel_id: str = json.loads(ret.split(":", 1)[1])["channelId"]
    return channel_id


async def oneway(messages: int) -> float:
    app = TelefuncApp(APP)
    protocol, _ = await open_socket(app, await call(app, "sink", []))
    text, seq = stringify("x" * 32).encode(), 0

    def read() -> bytes:
        nonlocal seq
        frames = []
        for i in range(50):
            seq += 1
            tag = Tag.TEXT_ACK_REQ if i == 49 else Tag.TEXT
            frames.append(client_frame(encode_frame(tag, 0, seq, text)))
        return b"".join(frames)

    best = float("inf")
    for _ in range(ROUNDS):
        reads = [read() for _ in range(messages // 50)]
        started = time.process_time()
        for data in reads:
            protocol.data_received(data)
            await asyncio.sleep(0)  # the ack's answer, as a server's loop would run it
            await asyncio.sleep(0)
        best = min(best, (time.process_time() - started) / (len(reads) * 50))
    await close([protocol])
    return best


async def close(protocols: list[Any]) -> None:
    """Disconnect, so each app handler returns before the loop ends."""
    for protocol in protocols:
        protocol.connection_lost(None)
    await settle()


async def fanout(subscribers: int, publishes: int) -> float:
    app = TelefuncApp(APP)
    protocols, transports = [], []
    for _ in range(subscribers):
        protocol, transport = await open_socket(app, await call(app, "join", ["key"]))
        protocol.data_received(client_frame(encode_frame(Tag.BROADCAST_SUB, 0, 0, b"\0")))
        protocols.append(protocol)
        transports.append(transport)
    await settle()
    best = float("inf")
    for _ in range(ROUNDS):
        before = sum(t.writes for t in transports)
        started = time.process_time()
        for i in range(publishes):
            await Broadcast.publish("key", {"kind": "msg", "who": f"{i}", "i": 0})
            await settle()
        elapsed = time.process_time() - started
        delivered = sum(t.writes for t in transports) - before
        if delivered != subscribers * publishes:
            raise RuntimeError(f"{delivered} writes for {subscribers * publishes} deliveries")
        best = min(best, elapsed / delivered)
    await close(protocols)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--publishes", type=int, default=20)
    args = parser.parse_args()
    per_message = asyncio.run(oneway(args.messages))
    per_delivery = asyncio.run(fanout(args.subscribers, args.publishes))
    print(f"oneway: {per_message * 1e6:.2f} µs of CPU per message (best of {ROUNDS})")
    print(f"fanout: {per_delivery * 1e6:.2f} µs of CPU per delivery (best of {ROUNDS})")


if __name__ == "__main__":
    main()
