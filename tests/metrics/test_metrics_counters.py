"""Each metric moves as its event happens, read back through the app's /metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from telefunc import Channel, config
from telefunc.asgi import metrics as metrics_module
from telefunc.asgi.metrics import render
from telefunc.broadcast.redis import RedisBroadcast
from telefunc.broadcast.transport import BroadcastGap
from telefunc.client import Client
from telefunc.server import observe
from telefunc.server.broadcast import Broadcast
from telefunc.server.hub import ChannelHub
from telefunc.top import Snapshot, parse_page
from telefunc.wire.frames import Tag, encode_frame
from telefunc.wire.mux import CLOSE_SLOW_CONSUMER, ServerMux
from testpaths import APPS_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wire"))
from client_model import ClientModel, Clock, connect_client, make_channel

ADD = "/calc.telefunc.py:add"
CHAT = "/chat.telefunc.py"
HEADERS = {"x-telefunc-request": "txt", "content-type": "text/plain"}


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    observe.reset()
    metrics_module._registry = None
    yield
    observe.reset()
    metrics_module._registry = None


async def scrape(origin: str) -> Snapshot:
    async with httpx.AsyncClient(base_url=origin, timeout=20) as client:
        r = await client.get("/_telefunc/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_page(r.text, 0.0)


async def post(origin: str, file: str, name: str, args: list[Any]) -> int:
    body = json.dumps({"file": file, "name": name, "args": args})
    async with httpx.AsyncClient(base_url=origin, timeout=20) as client:
        r = await client.post("/_telefunc?_telefunc=txt", content=body, headers=HEADERS)
    return r.status_code


async def until(condition: Any, what: str, timeout: float = 10.0) -> None:
    """Poll (bounded) server state that has no event of its own."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_calls_are_counted_by_telefunction_and_status(live_server: Any) -> None:
    server = live_server(APPS_DIR / "basic", metrics=True)
    o, calc = server.origin, "/calc.telefunc.py"
    assert await post(o, calc, "add", [1, 2]) == 200
    assert await post(o, calc, "refuse", ["no"]) == 403
    assert await post(o, calc, "add", ["a", "b"]) == 422
    assert await post(o, calc, "crash", []) == 500
    assert await post(o, calc, "nope", []) == 400
    assert await post(o, "/user-controlled-file", "x" * 50, []) == 400
    snap = await scrape(o)
    calls = "telefunc_calls_total"
    assert snap.total(calls, telefunction=ADD, status="200") == 1
    assert snap.total(calls, telefunction="/calc.telefunc.py:refuse", status="403") == 1
    assert snap.total(calls, telefunction=ADD, status="422") == 1
    assert snap.total(calls, telefunction="/calc.telefunc.py:crash", status="500") == 1
    assert snap.total(calls, telefunction="unknown", status="400") == 2
    assert snap.total(calls) == 6
    assert snap.total("telefunc_call_duration_seconds_count", telefunction=ADD) == 2
    assert snap.total("telefunc_call_duration_seconds_bucket", telefunction=ADD, le="+Inf") == 2


async def test_connection_channel_and_messages_move_with_a_ws_client(live_server: Any) -> None:
    server = live_server(APPS_DIR / "channels", metrics=True)
    o = server.origin
    async with Client(o, transports=("ws",)) as c:
        ch = await c.call(CHAT, "welcome")
        got: list[Any] = []
        done = asyncio.Event()

        def on_message(message: Any) -> None:
            got.append(message)
            if len(got) == 4:
                done.set()

        ch.listen(on_message)
        for i in range(3):
            await ch.send(i)
        await asyncio.wait_for(done.wait(), 20)
        snap = await scrape(o)
        assert snap.total("telefunc_connections", transport="ws") == 1
        assert snap.total("telefunc_connections_opened_total", transport="ws") == 1
        assert snap.total("telefunc_channels") == 1
        assert snap.total("telefunc_channels_opened_total") == 1
        assert snap.total("telefunc_sessions") == 1
        # RECONCILE + 3 messages in; RECONCILED + welcome + 3 echoes out (plus PING/PONG, acks)
        assert snap.total("telefunc_messages_in_total", transport="ws") >= 4
        assert snap.total("telefunc_messages_out_total", transport="ws") >= 5
        assert snap.total("telefunc_bytes_out_total", transport="ws") > 0
        ch.close()
        hub = server.app.hub
        await until(lambda: hub.channel_count == 0, "the channel to close")
        assert (await scrape(o)).total("telefunc_channels") == 0
    await until(lambda: observe._stats.connections_open.get("ws") == 0, "the disconnect")
    snap = await scrape(o)
    assert snap.total("telefunc_connections", transport="ws") == 0
    assert snap.total("telefunc_connections_opened_total", transport="ws") == 1


async def test_protocol_violations_are_counted_by_kind(live_server: Any) -> None:
    server = live_server(APPS_DIR / "channels", metrics=True)
    url = f"ws://127.0.0.1:{server.port}/_telefunc"
    async with websockets.connect(url) as ws:
        await ws.send("a text message")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 20)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
    async with websockets.connect(url) as ws:
        for _ in range(200):
            await ws.send(encode_frame(Tag.PING))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 20)
    snap = await scrape(server.origin)
    violations = "telefunc_protocol_violations_total"
    assert snap.total(violations, kind="text-message") == 1
    assert snap.total(violations, kind="ping-flood") == 1
    assert snap.total("telefunc_overflows_total", reason="ping-flood") == 1
    assert snap.total("telefunc_overflows_total", reason="text-message") == 0


def test_a_reconnect_with_replay_is_counted() -> None:
    observe.enable_stats()
    clock = Clock()
    hub = ChannelHub()
    mux = hub.mux = ServerMux(hub.mux.settings, hub.mux.limits)
    core, _ = make_channel(mux.settings)
    client = connect_client(mux, clock, core)
    for i in range(5):
        core.send(Tag.TEXT, json.dumps(str(i)).encode(), clock.now, None)
    client.deliver_s2c(limit=2)  # frames 3..5 are lost with the wire
    client.drop()
    before = parse_page(render().decode(), 0.0)
    assert before.total("telefunc_reconnects_total") == 0
    assert before.total("telefunc_channel_buffer_bytes") > 0  # 5 frames wait in the replay buffer
    client.connect()
    client.deliver_c2s()
    client.deliver_s2c()
    assert [json.loads(p) for p in client.texts(0)] == ["0", "1", "2", "3", "4"]
    after = parse_page(render().decode(), 0.0)
    assert after.total("telefunc_reconnects_total") == 1
    assert after.total("telefunc_replayed_frames_total") == 3


def test_a_slow_consumer_drop_is_counted() -> None:
    observe.enable_stats()
    clock = Clock()
    hub = ChannelHub()
    mux = hub.mux = ServerMux(hub.mux.settings, hub.mux.limits)
    core, _ = make_channel(mux.settings)
    mux.register(core, clock.now)
    client = ClientModel(mux, clock)
    client.add_channel(core.id, 0)
    conn = client.connect().conn
    conn.max_buffer = 4096
    client.deliver_c2s()
    client.deliver_s2c()
    publish = b"1,0\n" + b'"' + b"p" * 200 + b'"'
    for _ in range(1000):  # a subscriber that never reads its broadcast deliveries
        core.send(Tag.PUBLISH, publish, clock.now)
        if conn.cut:
            break
    assert conn.cut and conn.close_request is not None
    assert conn.close_request[0] == CLOSE_SLOW_CONSUMER
    snap = parse_page(render().decode(), 0.0)
    assert snap.total("telefunc_drops_total", reason="slow-consumer") == 1


async def test_broadcast_publishes_and_redis_gaps_are_counted() -> None:
    stats = observe.enable_stats()
    got: list[Any] = []
    unsubscribe = Broadcast.subscribe("metrics-key", lambda data, info: got.append(data))
    assert stats.broadcast_subscriptions == 1
    await Broadcast.publish("metrics-key", {"n": 1})
    unsubscribe()
    assert got == [{"n": 1}]
    redis = RedisBroadcast("redis://127.0.0.1:1")  # never connected: only its gap report runs
    redis._report_gap(BroadcastGap("k", 3, 7, "skipped"))
    snap = parse_page(render().decode(), 0.0)
    assert snap.total("telefunc_broadcast_publishes_total", transport="memory") == 1
    assert snap.total("telefunc_broadcast_subscriptions") == 0
    assert snap.total("telefunc_redis_gaps_total") == 1


def test_every_metric_has_help_text() -> None:
    page = render().decode()
    names = {line.split()[2] for line in page.splitlines() if line.startswith("# TYPE")}
    helps = {
        line.split()[2]: line.split(None, 3)[3]
        for line in page.splitlines()
        if line.startswith("# HELP")
    }
    assert len(names) >= 20
    assert all(helps.get(name, "").strip() for name in names)


async def test_channel_buffer_overflow_is_counted() -> None:
    observe.enable_stats()
    config.channel.buffer_limit = 100
    try:
        hub = ChannelHub()
        channel: Channel[Any, Any] = Channel()
        hub.register(channel)  # no client attached: sends wait in the pre-attach buffer
        sends = [channel.send("x" * 60) for _ in range(4)]
        evicted = [s for s in sends if s.done() and isinstance(s.exception(), Exception)]
        assert len(evicted) == 3  # each 60-byte send pushes the one before it out
        snap = parse_page(render().decode(), 0.0)
        assert snap.total("telefunc_overflows_total", reason="channel-buffer") == 3
        channel.abort(None)
        await hub.aclose()
    finally:
        config.channel.reset()


async def test_sse_connections_and_messages_are_counted(live_server: Any) -> None:
    server = live_server(APPS_DIR / "channels", metrics=True)
    async with Client(server.origin, transports=("sse",)) as c:
        ch = await c.call(CHAT, "welcome")
        echoed = asyncio.Event()
        ch.listen(lambda message: echoed.set() if message == "hello" else None)
        await ch.send("hello")
        await asyncio.wait_for(echoed.wait(), 20)
        snap = await scrape(server.origin)
        assert snap.total("telefunc_connections", transport="sse") == 1
        assert snap.total("telefunc_connections", transport="ws") == 0
        assert snap.total("telefunc_messages_in_total", transport="sse") >= 2  # RECONCILE, hello
        assert snap.total("telefunc_messages_out_total", transport="sse") >= 3
        assert snap.total("telefunc_bytes_out_total", transport="sse") > 0


async def test_broadcast_deliveries_and_subscriptions_move_with_a_subscriber(
    live_server: Any,
) -> None:
    server = live_server(APPS_DIR / "broadcast", metrics=True)
    async with Client(server.origin) as c:
        ch = await c.call("/room.telefunc.py", "room", "metrics-room")
        arrived = asyncio.Event()
        ch.subscribe(lambda data, info: arrived.set())
        async with asyncio.timeout(20):
            while not arrived.is_set():  # the subscription goes live asynchronously
                await c.call("/room.telefunc.py", "server_publish", "metrics-room", 1, "test")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 0.2)
        snap = await scrape(server.origin)
        publishes = snap.total("telefunc_broadcast_publishes_total", transport="memory")
        assert publishes >= 1
        assert snap.total("telefunc_broadcast_deliveries_total", transport="memory") >= 1
        assert snap.total("telefunc_broadcast_subscriptions") == 1
