"""A WebSocket handshake and a fake transport, to drive TelefuncWebSocketProtocol directly.

``FakeTransport`` keeps every write and whether reading is paused or the transport closing;
``HANDSHAKE`` is a client's upgrade request for ``/`` (replace the path to reach an app route);
``serve_on_fake_transport`` connects a protocol serving an ASGI app to a new fake transport;
``client_frame`` and ``binary`` build the frames a client sends.
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

import uvicorn
from uvicorn.server import ServerState
from websockets.frames import Opcode

from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes; reading and closing are flags."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.reading = True
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def serve_on_fake_transport(
    app: Any, **options: Any
) -> tuple[TelefuncWebSocketProtocol, FakeTransport]:
    """A TelefuncWebSocketProtocol serving ``app`` (``options``: more ``uvicorn.Config``
    settings), connected to a new :class:`FakeTransport`."""
    config = uvicorn.Config(
        app, ws=TelefuncWebSocketProtocol, lifespan="off", log_level="error", **options
    )
    config.load()
    protocol = TelefuncWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """A client frame as RFC 6455 spells it (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, (0x80 if mask else 0) | size)
    elif size < 65536:
        head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, size)
    else:
        head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def binary(payload: bytes) -> bytes:
    return client_frame(Opcode.BINARY, payload)
