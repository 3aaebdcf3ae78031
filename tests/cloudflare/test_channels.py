"""Channels on the Durable Object: affinity, SSE, eviction, hibernation, missing bindings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from telefunc.errors import UsageError
from telefunc.wire.frames import Tag, encode_json
from telefunc.wire.framing import length_prefixed


async def test_session_sticks_across_100_requests_and_a_websocket_reconnect(make_edge: Any) -> None:
    edge = make_edge(scale=3, kv_delay=2.0)
    client = await edge.open_channel(colo="LHR")
    assert await client.echo("hi") == "hi"
    token = client.token
    home = {h.id.name for h in edge.emu.hosts()}
    assert len(home) == 1
    shards = set()
    colos = ("LHR", "IAD", "NRT", "ZZA")
    for i in range(100):
        # Like the official client: send the last token back; requests roam between colos.
        _, token, body = await edge.call("whoami", colo=colos[i % 4], token=token)
        shards.add(body["ret"]["shard"])
        if i % 10 == 0:
            await edge.clock.advance(1)
            client.ping()
    assert shards == home
    # Transient disconnect, then a reconnect (from another colo) with the session id.
    client.ws.close(4000, "network blip")
    await edge.emu.drain()
    again = type(client)
    reconnected = await again.connect(edge, colo="NRT", token=token)
    reconnected.session_id = client.session_id
    reconciled = await reconnected.reconcile([{"id": client.channel_id, "ix": 0, "lastSeq": 1}])
    assert reconciled["open"] == [{"ix": 0, "lastSeq": 1}]
    reconnected.seq = client.seq
    assert await reconnected.echo({"after": "reconnect"}) == {"after": "reconnect"}
    assert {h.id.name for h in edge.emu.hosts()} == home
    (host,) = edge.emu.hosts()
    assert host.constructions == 1 and host.instance.telefunc.requests >= 102


async def test_http_sse_and_websocket_of_one_client_reach_the_same_object(make_edge: Any) -> None:
    edge = make_edge(scale=4)
    _, token, body = await edge.call("whoami", colo="IAD")
    shard = body["ret"]["shard"]
    client = await edge.open_channel(colo="IAD", token=token)
    await client.echo(1)
    meta = json.dumps({"connId": "sse-1", "streamResponse": True}).encode()
    reconcile = encode_json(Tag.RECONCILE, {"open": []})
    resp = await edge.emu.fetch(
        "https://app.test/_telefunc?_telefunc=sse",
        colo="IAD",
        method="POST",
        headers={"x-telefunc-session": token, "x-telefunc-request": "sse"},
        body=length_prefixed([meta, reconcile]),
    )
    assert resp.status == 200
    assert resp.headers.get("content-type") == "text/event-stream"
    assert resp.headers.get("x-telefunc-session") == token
    chunks = resp.body.__aiter__()
    assert await chunks.__anext__() == b": open\n\n"
    assert (await chunks.__anext__()).startswith(b"data: ")  # RECONCILED
    (host,) = [h for h in edge.emu.hosts() if h.id.name == shard]
    assert len(edge.emu.hosts()) == 1
    assert host.instance.telefunc.hub.mux.opened == {"ws": 1, "sse": 1}


async def test_object_evicted_mid_stream(make_edge: Any) -> None:
    edge = make_edge()
    client = await edge.open_channel(colo="NRT")
    assert await client.echo("before") == "before"
    (host,) = edge.emu.hosts()
    edge.emu.evict(host)
    code, _ = await client.ws.wait_closed()
    assert code == 1006 and edge.emu.counters.evictions == 1
    # The client reconnects: same object name, fresh instance, the channel is gone -> the
    # RECONCILED does not list it, which the client turns into a NetworkError.
    fresh = await type(client).connect(edge, colo="NRT", token=client.token)
    fresh.session_id = client.session_id
    reconciled = await fresh.reconcile([{"id": client.channel_id, "ix": 0, "lastSeq": 1}])
    assert reconciled["open"] == []
    assert edge.emu.hosts() == [host] and host.constructions == 2
    # New calls work on the fresh instance.
    _, _, body = await edge.call("add", [2, 2], colo="NRT", token=client.token)
    assert body == {"ret": 4}


async def test_hibernation_only_after_channels_closed_and_windows_passed(make_edge: Any) -> None:
    edge = make_edge()
    client = await edge.open_channel(colo="LHR")
    (host,) = edge.emu.hosts()
    server = host.instance.telefunc
    # A connected client with an open channel: 2 minutes of pings, never hibernated.
    for _ in range(24):
        await edge.clock.advance(5)
        client.ping()
    await edge.emu.drain()
    assert edge.emu.counters.hibernations == 0 and host.instance is not None
    assert server.channel_count == 1 and server.hub.has_timer
    # Transient disconnect: kept alive through the 60 s reconnect window.
    client.ws.close(4000, "gone")
    await edge.emu.drain()
    await edge.clock.advance(55)
    assert edge.emu.counters.hibernations == 0 and host.instance is not None
    assert server.channel_count == 1
    await edge.clock.advance(6)  # the reconnect window is over: the channel ends
    await edge.emu.drain()
    assert server.channel_count == 0 and not server.hub.has_timer
    await edge.clock.advance(11)  # nothing left: the runtime may hibernate it
    assert edge.emu.counters.hibernations == 1 and host.instance is None
    assert edge.emu.counters.evictions == 0


async def test_permanent_close_lets_the_object_hibernate(make_edge: Any) -> None:
    edge = make_edge()
    client = await edge.open_channel(colo="IAD")
    (host,) = edge.emu.hosts()
    client.ws.close(1000, "bye")
    await edge.emu.drain()
    assert host.instance.telefunc.channel_count == 0
    await edge.clock.advance(11)
    assert edge.emu.counters.hibernations == 1


async def test_counters_per_call_and_per_channel_open(make_edge: Any) -> None:
    edge = make_edge()
    _, token, _ = await edge.call("add", [0, 0], colo="LHR")
    await edge.emu.drain()
    before = edge.emu.counters.snapshot()
    await edge.call("add", [1, 1], colo="LHR", token=token)
    assert edge.emu.counters.diff(before) == {"requests": 1, "do_requests": 1, "kv_reads": 1}
    before = edge.emu.counters.snapshot()
    client = await edge.open_channel(colo="LHR", token=token)
    await edge.emu.drain()
    opened = edge.emu.counters.diff(before)
    # call + upgrade: 2 worker requests, 2 object requests, 2 KV reads, 1 WS message (RECONCILE)
    assert opened == {"requests": 2, "do_requests": 2, "kv_reads": 2, "do_websocket_messages": 1}
    before = edge.emu.counters.snapshot()
    await client.echo("x")
    assert edge.emu.counters.diff(before) == {"do_websocket_messages": 1}


async def test_missing_bindings_plain_calls_work_channels_raise(make_edge: Any) -> None:
    edge = make_edge(bindings=False)
    status, token, body = await edge.call("add", [20, 22], colo="LHR")
    assert (status, body, token) == (200, {"ret": 42}, None)
    _, _, body = await edge.call("whoami", colo="NRT")
    assert body == {"ret": {"shard": None, "region": None}}  # ran in the worker itself
    with pytest.raises(UsageError, match="TelefuncDurableObject"):
        await edge.call("echo", colo="LHR")
    with pytest.raises(UsageError, match="TelefuncKV"):
        await edge.emu.fetch(
            "https://app.test/_telefunc", colo="LHR", headers={"upgrade": "websocket"}
        )
    assert edge.emu.counters.kv_reads == 0 and edge.emu.counters.do_requests == 0


async def test_a_send_on_a_socket_closed_under_the_object_is_a_transient_loss(
    make_edge: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from telefunc.cloudflare import _ffi
    from telefunc.testing import JsException
    from telefunc.wire.frames import Tag, encode_frame

    edge = make_edge()
    client = await edge.open_channel(colo="LHR")
    assert await client.echo("one") == "one"
    (host,) = edge.emu.hosts()
    server = host.instance.telefunc

    def closed_under_us(ws: Any, data: bytes) -> None:
        # What workerd throws when the network closed the socket before webSocketClose ran.
        raise JsException("TypeError", "Can't call WebSocket send() after close().")

    with monkeypatch.context() as patch:
        patch.setattr(_ffi, "websocket_send", closed_under_us)
        client.seq += 1
        client.ws.send(encode_frame(Tag.TEXT, 0, client.seq, json.dumps("two").encode()))
        await edge.emu.drain()
        assert server.wires != {}  # detached on the next turn, not inside the failed write
        await edge.clock.advance(0)  # (a 0 ms setTimeout of the object)
        await edge.emu.drain()
    assert edge.emu.errors == []
    assert server.wires == {} and server.channel_count == 1  # detached, waiting for a reconnect
    reconnected = await type(client).connect(edge, colo="LHR", token=client.token)
    reconnected.session_id = client.session_id
    reconciled = await reconnected.reconcile([{"id": client.channel_id, "ix": 0, "lastSeq": 1}])
    assert reconciled["open"] == [{"ix": 0, "lastSeq": 2}]  # the object did receive "two"
    # The replay (sent with RECONCILED) carries the echo the failed send dropped.
    texts = [json.loads(f.payload) for f in reconnected.received if f.tag == Tag.TEXT]
    assert texts[-1] == "two"
