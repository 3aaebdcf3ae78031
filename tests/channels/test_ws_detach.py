"""``detach`` in the transport extension: the app hands its events to a callback and returns.

Under ``telefunc serve`` no task, coroutine frame or scope stays behind for an open WebSocket:
:func:`serve_websocket` detaches once the handshake is answered and the server's protocol hands
every later ASGI event (text frames, fragments, the disconnect) to the connection's writer. The
protocol is driven here through a fake transport, and the whole stack on uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
import websockets
from fake_ws import HANDSHAKE, binary, client_frame, serve_on_fake_transport
from websockets.frames import Close, Opcode

from telefunc.asgi.websocket import TRANSPORT_EXTENSION
from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol, _ReceiveQueue
from telefunc.server import observe
from telefunc.wire.frames import Tag, decode_frame, encode_frame
from testpaths import APPS_DIR

BOUND = 10.0


def close_frame(code: int) -> bytes:
    return client_frame(Opcode.CLOSE, Close(code, "").serialize())


class DetachingApp:
    """Accepts, optionally waits for ``go`` (so events queue up first), detaches, returns."""

    def __init__(self, *, wait: bool = False, fail_after_detach: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.detached = asyncio.Event()
        self.go = asyncio.Event()
        self.wait = wait
        self.fail_after_detach = fail_after_detach
        self.handle: Callable[[dict[str, Any]], None] = self.events.append

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        if self.wait:
            await self.go.wait()
        scope["extensions"][TRANSPORT_EXTENSION]["detach"](lambda event: self.handle(event))
        self.detached.set()
        if self.fail_after_detach:
            raise RuntimeError("the app failed after detaching")


async def app_returned(protocol: TelefuncWebSocketProtocol) -> None:
    async with asyncio.timeout(BOUND):
        while protocol.tasks:
            await asyncio.sleep(0)


async def test_a_detached_app_returns_and_its_events_reach_the_handler_in_order() -> None:
    app = DetachingApp()
    protocol, transport = serve_on_fake_transport(app)
    protocol.data_received(HANDSHAKE)
    await asyncio.wait_for(app.detached.wait(), BOUND)
    await app_returned(protocol)

    assert not transport.closing  # returning did not end the connection
    assert "headers" not in protocol.scope  # the handshake's scope is let go
    protocol.data_received(client_frame(Opcode.TEXT, b"one") + close_frame(1000))
    protocol.connection_lost(None)
    assert app.events == [
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]  # one disconnect: the one from connection_lost is not handed over


async def test_events_queued_before_detaching_reach_the_handler_first() -> None:
    app = DetachingApp(wait=True)
    protocol, _ = serve_on_fake_transport(app)
    protocol.data_received(HANDSHAKE)
    async with asyncio.timeout(BOUND):
        while not protocol.handshake_complete:
            await asyncio.sleep(0)
    protocol.data_received(binary(b"early") + client_frame(Opcode.TEXT, b"also early"))
    app.go.set()
    await asyncio.wait_for(app.detached.wait(), BOUND)
    protocol.data_received(binary(b"late"))
    assert app.events == [
        {"type": "websocket.receive", "bytes": b"early"},
        {"type": "websocket.receive", "text": "also early"},
        {"type": "websocket.receive", "bytes": b"late"},
    ]


async def test_a_failing_handler_is_logged_and_its_connection_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = DetachingApp()

    def fail(event: dict[str, Any]) -> None:
        raise ValueError("broken handler")

    app.handle = fail
    protocol, transport = serve_on_fake_transport(app)
    protocol.data_received(HANDSHAKE)
    await asyncio.wait_for(app.detached.wait(), BOUND)
    with caplog.at_level(logging.ERROR, logger="telefunc"):
        # Raises nowhere: the server's callback goes on, as uvicorn's does for a failed app.
        protocol.data_received(client_frame(Opcode.TEXT, b"x") * 50)
        assert transport.closing
        protocol.connection_lost(None)
    # One line for the frame that failed (the rest of the read is no longer parsed once the
    # transport closes), one for the disconnect; nothing after it.
    assert [r.getMessage() for r in caplog.records] == [
        "telefunc: error while handling a WebSocket event"
    ] * 2


async def test_an_app_that_fails_after_detaching_has_its_connection_closed() -> None:
    app = DetachingApp(fail_after_detach=True)
    protocol, transport = serve_on_fake_transport(app)
    protocol.data_received(HANDSHAKE)
    await asyncio.wait_for(app.detached.wait(), BOUND)
    await app_returned(protocol)
    assert transport.closing


def test_after_its_disconnect_a_queue_drops_what_is_put() -> None:
    queue, seen = _ReceiveQueue(), []
    queue.hand_over(seen.append)
    queue.put_nowait({"type": "websocket.disconnect", "code": 1006})
    queue.put_nowait({"type": "websocket.disconnect", "code": 1005})
    queue.put_nowait({"type": "websocket.receive", "bytes": b"x"})
    assert seen == [{"type": "websocket.disconnect", "code": 1006}]
    assert queue.empty()


SOCKETS = 8


async def test_open_websockets_hold_no_asgi_task_and_end_their_wires_when_closed(
    live_server: Any,
) -> None:
    server = live_server(APPS_DIR / "channels", metrics=True)
    state = server.server.server_state
    stats = observe._stats
    assert stats is not None
    url = f"ws://127.0.0.1:{server.port}/_telefunc"
    sockets = [await websockets.connect(url) for _ in range(SOCKETS)]
    try:
        for ws in sockets:  # each wire is served: PING answered with PONG
            await ws.send(encode_frame(Tag.PING))
            reply = await asyncio.wait_for(ws.recv(), BOUND)
            assert isinstance(reply, bytes) and decode_frame(reply).tag == Tag.PONG
        assert stats.connections_open.get("ws") == SOCKETS
        assert len(state.connections) == SOCKETS
        assert len(state.tasks) == 0  # every app call returned after the handshake
    finally:
        for ws in sockets:
            await ws.close()
    async with asyncio.timeout(BOUND):  # each disconnect ended its wire
        while stats.connections_open.get("ws") or state.connections:
            await asyncio.sleep(0.01)
    assert stats.connections_closed.get("ws") == SOCKETS
