"""The JS adapter's semantics the Python adapter keeps (telefunc@0.2.23 ``telefunc/cloudflare``).

An async ``context(request, env)``; custom binding, KV and instance names end to end; a
WebSocket upgrade while the ``ws`` transport is off; the shortened channel windows telefunc's
Cloudflare documentation suggests letting an object hibernate; that documentation's camelCase
config keys refused with the Python name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from cf_broadcast_helpers import Subscriber

from telefunc.config import config
from telefunc.errors import UsageError


@pytest.fixture(autouse=True)
def default_channel_config() -> Iterator[None]:
    config.channel.reset()
    yield
    config.channel.reset()


async def test_async_context_factory_runs_in_the_object_with_the_sdk_env(make_edge: Any) -> None:
    seen: list[str] = []

    async def context(request: Any, env: Any) -> dict[str, Any]:
        seen.append(type(env).__name__)
        await asyncio.sleep(0)
        stored = await env.TelefuncKV.get("no-such-key")  # I/O inside the factory
        return {"shard": request.headers.get("x-telefunc-shard"), "region": f"kv={stored}"}

    edge = make_edge(context=context)
    status, token, body = await edge.call("whoami", colo="NRT")
    assert status == 200
    assert body == {"ret": {"shard": "telefunc-shard-apac-0", "region": "kv=None"}}
    assert token is not None and seen == ["_EnvWrapper"]


async def test_custom_binding_kv_and_instance_names_end_to_end(make_edge: Any) -> None:
    edge = make_edge(binding_name="Rooms", kv_binding_name="Sessions", instance_name="chat")
    status, token, body = await edge.call("whoami", colo="LHR")
    assert status == 200 and body["ret"]["shard"] == "chat-shard-weur-0"
    assert token is not None and token.startswith("chat-shard-weur-0:")
    await edge.emu.drain()
    page = await edge.emu.env.Sessions.list({"prefix": "session:"})
    assert [k["name"] for k in page["keys"]] == [f"session:{token}"]
    assert edge.emu.env.TelefuncKV is None and edge.emu.env.TelefuncDurableObject is None
    # The same session reaches the same object for a channel, from another colo.
    client = await edge.open_channel(colo="NRT", token=token)
    assert await client.echo("hi") == "hi"
    # Broadcast objects carry the instance name too.
    sub = await Subscriber.join(edge, "room:custom", colo="LHR")
    sub.publish("x")
    await sub.pump(1)
    names = {h.id.name for h in edge.emu.hosts()}
    assert names == {
        "chat-shard-weur-0",
        "chat:broadcast:authority:room:custom",
        "chat:broadcast:weur:0",
    }


async def test_websocket_upgrade_while_ws_is_disabled_answers_400(make_edge: Any) -> None:
    config.channel.transports = ["sse"]
    edge = make_edge()
    resp = await edge.emu.fetch(
        "https://app.test/_telefunc", colo="LHR", headers={"upgrade": "websocket"}
    )
    assert resp.status == 400 and resp.webSocket is None
    # Refused by the worker itself: no session lookup, no object woken up.
    assert edge.emu.counters.kv_reads == 0 and edge.emu.counters.do_requests == 0
    status, _, body = await edge.call("add", [1, 2], colo="LHR")
    assert (status, body) == (200, {"ret": 3})


async def test_shorter_channel_windows_let_the_object_hibernate_sooner(make_edge: Any) -> None:
    # The documented `config.channel = {reconnectTimeout: 5_000, idleTimeout: 5_000,
    # pingInterval: 2_000}`, in Python's names and seconds.
    config.channel = {"reconnect_timeout": 5, "idle_timeout": 5, "ping_interval": 2}
    edge = make_edge()
    client = await edge.open_channel(colo="LHR")
    (host,) = edge.emu.hosts()
    server = host.instance.telefunc
    client.ws.close(4000, "network blip")  # transient: the channel waits for a reconnect
    await edge.emu.drain()
    await edge.clock.advance(4)
    assert server.channel_count == 1 and edge.emu.counters.hibernations == 0
    await edge.clock.advance(2)  # 6 s > reconnect_timeout: the channel ends
    await edge.emu.drain()
    assert server.channel_count == 0 and not server.hub.has_timer
    await edge.clock.advance(11)  # the emulator's 10 s of inactivity
    assert edge.emu.counters.hibernations == 1 and host.instance is None
    # With the default 60 s windows the same object would still be awake at this point.


def test_a_camel_case_config_key_is_a_usage_error_naming_the_python_key() -> None:
    before = config.channel.reconnect_timeout
    with pytest.raises(UsageError, match=r"'reconnectTimeout'.*'reconnect_timeout'.*seconds"):
        config.channel = {"reconnectTimeout": 5_000, "idleTimeout": 5_000}
    with pytest.raises(UsageError, match=r"'pingInterval'.*'ping_interval'"):
        config.channel.pingInterval = 2_000
    assert config.channel.reconnect_timeout == before  # nothing applied
    with pytest.raises(UsageError, match="has no setting 'bufferSize'; known"):
        config.channel = {"bufferSize": 1}
