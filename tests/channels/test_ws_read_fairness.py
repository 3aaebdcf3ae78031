"""One flooding WebSocket cannot hold the event loop: after a large read the protocol skips one
loop turn before reading that socket again (libuv reads a busy socket up to 32 times in a row),
and the pongs of one read go out in one write."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from fake_ws import HANDSHAKE, serve_on_fake_transport

from telefunc.asgi.ws_protocol import YIELD_AFTER_READ


def masked_ping(payload: bytes = b"p" * 125) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x89, 0x80 | len(payload)) + mask + masked


async def test_a_large_read_pauses_the_socket_for_one_loop_turn_and_pongs_go_out_at_once() -> None:
    accepted = asyncio.Event()
    done = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        accepted.set()
        await done.wait()

    protocol, transport = serve_on_fake_transport(app)
    protocol.data_received(HANDSHAKE)
    await asyncio.wait_for(accepted.wait(), 5)
    transport.writes.clear()

    pings = masked_ping() * (YIELD_AFTER_READ // len(masked_ping()) + 1)
    protocol.data_received(pings)
    assert not transport.reading  # the other connections get a turn first
    assert len(transport.writes) == 1  # every pong of the read in one write
    assert transport.writes[0].count(b"\x8a\x7d") == len(pings) // len(masked_ping())
    await asyncio.sleep(0)
    assert transport.reading

    protocol.data_received(masked_ping())  # a small read: no pause
    assert transport.reading and len(transport.writes) == 2
    done.set()
    protocol.connection_lost(None)
