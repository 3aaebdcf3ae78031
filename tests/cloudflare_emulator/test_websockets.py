"""WebSockets: hibernation API, wake-up with constructor re-run, attachments, 32 MiB limit."""

from __future__ import annotations

from typing import Any

import pytest
from cf_sample_worker import Counter, Default

from telefunc.testing import MAX_MESSAGE_BYTES, Emulator, JsException, WebSocketClient


@pytest.fixture
def app(emu: Emulator) -> Emulator:
    emu.kv("KV")
    emu.durable_object("COUNTER", Counter)
    emu.set_worker(Default)
    return emu


async def connect(emu: Emulator, name: str) -> WebSocketClient:
    resp = await emu.fetch(f"https://app.test/counter/{name}", headers={"upgrade": "websocket"})
    assert resp.status == 101 and resp.webSocket is not None
    return WebSocketClient(resp.webSocket)


async def test_hibernated_object_is_woken_by_a_message(app: Emulator) -> None:
    client = await connect(app, "room")
    client.send("hi")
    assert await client.receive() == "ann:hi:memory=0"
    client.send("again")
    assert await client.receive() == "ann:again:memory=1"
    host = app.hosts()[0]
    assert host.constructions == 1
    await app.clock.advance(10.5)  # idle with only hibernatable sockets: hibernates at 10 s
    assert host.instance is None and app.counters.hibernations == 1
    client.send("wake")
    # constructor re-ran (memory back to 0), attachment survived with the socket
    assert await client.receive() == "ann:wake:memory=0"
    assert host.constructions == 2
    assert len(host.ctx.getWebSockets("chat")) == 1 if host.ctx else False
    assert app.counters.do_websocket_messages == 3


async def test_client_close_reaches_webSocketClose(app: Emulator) -> None:
    client = await connect(app, "closing")
    client.close(4000, "bye")
    assert await client.wait_closed() == (4000, "bye")  # the runtime auto-replies to close
    await app.drain()
    stub = app.namespace("COUNTER").getByName("closing")
    host = app.host_of(stub)
    assert host.storage_data["closed"] == [4000, "bye"]
    assert host.ctx is not None and host.ctx.getWebSockets() == []


async def test_message_over_32_mib_closes_with_1009(app: Emulator) -> None:
    client = await connect(app, "big")
    client.send("x" * (31 << 20))  # under the limit: delivered
    reply = await client.receive()
    assert isinstance(reply, str) and reply.startswith("ann:x")
    n = MAX_MESSAGE_BYTES + 1024
    client.send(b"\0" * n)
    code, reason = await client.wait_closed()
    assert code == 1009
    assert reason == "Message is too large"
    await app.drain()
    # the object's webSocketError gets the detailed error (sample_worker has no handler: no-op)
    assert n > MAX_MESSAGE_BYTES
    with pytest.raises(JsException, match="after close"):
        client.send("more")


async def test_plain_accept_keeps_object_alive_and_uses_listeners(emu: Emulator) -> None:
    from js import WebSocketPair  # type: ignore[import-not-found]
    from workers import DurableObject, Response  # type: ignore[import-not-found]

    class Echo(DurableObject):  # type: ignore[misc]
        def __init__(self, ctx: Any, env: Any) -> None:
            super().__init__(ctx, env)
            self.count = 0

        async def fetch(self, request: Any) -> Any:
            client, server = WebSocketPair.new()
            server.accept()
            server.addEventListener("message", lambda e: self.on_message(server, e))
            return Response(None, status=101, web_socket=client)

        async def on_message(self, ws: Any, event: Any) -> None:
            self.count += 1
            await self.ctx.storage.put("last", event.data)
            ws.send(f"{self.count}:{event.data}")

    stub = emu.durable_object("ECHO", Echo).getByName("e")
    resp = await stub.fetch("https://do/ws")
    assert resp.webSocket is not None
    client = WebSocketClient(resp.webSocket)
    client.send("a")
    assert await client.receive() == "1:a"
    await emu.clock.advance(200)  # a connected plain socket keeps the object in memory
    client.send("b")
    assert await client.receive() == "2:b"
    emu.evict(stub)  # an eviction drops it: the client sees an abnormal close
    assert (await client.wait_closed())[0] == 1006


async def test_attachment_limit_and_copy_semantics(app: Emulator) -> None:
    from js import WebSocketPair

    _client, server = WebSocketPair.new()
    value = {"a": [1]}
    server.serializeAttachment(value)
    value["a"].append(2)
    assert server.deserializeAttachment() == {"a": [1]}
    with pytest.raises(JsException, match="cannot be larger than 2048"):
        server.serializeAttachment("x" * 3000)
    with pytest.raises(AttributeError):
        server.my_state = 1  # state must not hang off the socket (it would not hibernate)
