"""Settings belong to the app: two ``TelefuncApp`` in one process, each with its own ``Config``.

Both apps run on real uvicorn servers in the test's event loop (so the test can look at each
app's hub), with the Python client attached over a WebSocket through a fault-injecting proxy.
Each app advertises its own ``reconnect_timeout`` in RECONCILED, expires a detached channel
after its own timeout, and parses channel messages within its own ``limits.max_depth``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from tcp_proxy import FaultyProxy
from telefunc.asgi import TelefuncApp
from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol
from telefunc.broadcast.transport import InMemoryBroadcast
from telefunc.client import Client, NetworkError
from telefunc.config import Config, config
from telefunc.errors import UsageError
from testpaths import APPS_DIR

CHAT = "/chat.telefunc.py"
SHORT_RECONNECT = 1.0
LONG_RECONNECT = 60.0


@contextlib.asynccontextmanager
async def serving(app: TelefuncApp) -> AsyncIterator[int]:
    """``app`` on uvicorn in this event loop, on an ephemeral port (yielded)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    # telefunc serve's WebSocket protocol: it hands channel frames to the app as it parses them.
    ws = TelefuncWebSocketProtocol
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws=ws))
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup(sockets=[sock])
    try:
        yield sock.getsockname()[1]
    finally:
        await server.shutdown(sockets=[sock])
        sock.close()
        await app.hub.aclose()


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth - 1):
        value = [value]
    return value


class Attached:
    """A client attached to the ``welcome`` echo channel of one app, through a proxy."""

    def __init__(self, app: TelefuncApp, proxy: FaultyProxy, client: Client, ch: Any) -> None:
        self.app = app
        self.proxy = proxy
        self.client = client
        self.ch = ch
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        ch.listen(self.inbox.put_nowait)

    @property
    def server_core(self) -> Any:
        return self.app.hub.mux.channels.get(self.ch.id)


@contextlib.asynccontextmanager
async def attached(app: TelefuncApp) -> AsyncIterator[Attached]:
    async with serving(app) as port:
        proxy = FaultyProxy(port)
        await proxy.start()
        try:
            async with Client(proxy.origin, transports=("ws",)) as client:
                ch = await client.call(CHAT, "welcome")
                opened = asyncio.Event()
                ch.on_open(opened.set)
                it = Attached(app, proxy, client, ch)
                await asyncio.wait_for(opened.wait(), 10)
                assert await asyncio.wait_for(it.inbox.get(), 10) == {"welcome": True}
                yield it
        finally:
            await proxy.close()


def app_with(**channel: Any) -> tuple[TelefuncApp, Config]:
    settings = config.copy()
    settings.channel.update(channel)
    return TelefuncApp(APPS_DIR / "channels", settings=settings), settings


async def test_two_apps_in_one_process_each_keep_their_own_settings() -> None:
    short_app, short = app_with(reconnect_timeout=SHORT_RECONNECT)
    short.limits.max_depth = 8
    long_app, _ = app_with(reconnect_timeout=LONG_RECONNECT)
    global_before = config.channel.snapshot(), config.limits.snapshot()

    async with attached(short_app) as a, attached(long_app) as b:
        # RECONCILED carried each app's own reconnectTimeout to its client.
        assert a.client.connection is not None and b.client.connection is not None
        assert a.client.connection.mux.settings.reconnect_timeout == SHORT_RECONNECT
        assert b.client.connection.mux.settings.reconnect_timeout == LONG_RECONNECT
        assert a.server_core.settings.reconnect_timeout == SHORT_RECONNECT
        assert b.server_core.settings.reconnect_timeout == LONG_RECONNECT

        # A message nested past the short app's max_depth (8) is dropped there, not here.
        for it in (a, b):
            await it.ch.send(nested(10))
            await it.ch.send("after")
        assert await asyncio.wait_for(a.inbox.get(), 10) == "after"
        assert await asyncio.wait_for(b.inbox.get(), 10) == nested(10)
        assert await asyncio.wait_for(b.inbox.get(), 10) == "after"

        # The network goes away for both: each server keeps its channel for its own timeout.
        closed = asyncio.Event()
        short_server_channel = a.server_core._handler
        short_server_channel.on_close(lambda _error: closed.set())
        long_core = b.server_core
        for it in (a, b):
            await it.proxy.refuse()
            it.proxy.cut()
        loop = asyncio.get_running_loop()
        cut_at = loop.time()
        await asyncio.wait_for(closed.wait(), 20)  # the short app's own timer expired it
        assert loop.time() - cut_at >= SHORT_RECONNECT - 0.05
        assert a.ch.id not in short_app.hub.mux.channels
        # The long app's channel is detached and waits its 60 s; driven on its clock:
        assert not long_core.attached and not long_core.is_shutdown
        now = long_app.hub.now()
        long_app.hub.mux.handle_timeout(now + LONG_RECONNECT - 10)
        assert not long_core.is_shutdown and b.ch.id in long_app.hub.mux.channels
        long_app.hub.mux.handle_timeout(now + LONG_RECONNECT + 1)
        assert long_core.is_shutdown and b.ch.id not in long_app.hub.mux.channels
        # The short app's client gave up after the reconnect_timeout its server advertised.
        assert isinstance(await asyncio.wait_for(a.ch.wait_closed(), 20), NetworkError)

    assert (config.channel.snapshot(), config.limits.snapshot()) == global_before


class AppOwnBroadcast(InMemoryBroadcast):
    """The broadcast transport of one app's own settings (told apart by its class name)."""


async def test_channel_listeners_run_with_their_apps_own_broadcast_transport() -> None:
    settings = config.copy()
    settings.broadcast.transport = AppOwnBroadcast()
    app = TelefuncApp(APPS_DIR / "channels", settings=settings)
    async with serving(app) as port, Client(f"http://127.0.0.1:{port}", transports=("ws",)) as c:
        ch = await c.call(CHAT, "broadcast_transport_probe")
        answers: asyncio.Queue[Any] = asyncio.Queue()
        ch.listen(answers.put_nowait)
        await ch.send("which transport?")
        # The server ran the listener for this frame as it parsed it, in the app's context.
        assert await asyncio.wait_for(answers.get(), 10) == "AppOwnBroadcast"
        await ch.close()


async def test_allowed_origins_and_the_stream_request_fallback_are_per_app() -> None:
    open_settings = config.copy()
    open_settings.allowed_origins = ["http://front.example"]
    open_settings.refuse_stream_requests = True
    apps = {
        "open": TelefuncApp(APPS_DIR / "channels", settings=open_settings),
        "default": TelefuncApp(APPS_DIR / "channels"),
    }
    statuses = {}
    for name, app in apps.items():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
            response = await http.post(
                "/_telefunc",
                content=b'{"file":"/chat.telefunc.py","name":"welcome","args":[]}',
                headers={"origin": "http://front.example", "content-type": "text/plain"},
            )
            statuses[name] = response.status_code
    assert statuses == {"open": 200, "default": 403}
    assert apps["default"].settings is config and config.refuse_stream_requests is False
    assert apps["open"].hub.settings.refuse_stream_requests is True


def test_settings_must_be_a_config_and_copies_are_independent() -> None:
    with pytest.raises(UsageError, match=r"settings must be a telefunc\.config\.Config"):
        TelefuncApp(APPS_DIR / "channels", settings={"channel": {}})  # type: ignore[arg-type]
    copy = config.copy()
    copy.channel.reconnect_timeout = 3.0
    copy.allowed_origins = ["http://a.example"]
    assert config.channel.reconnect_timeout != 3.0 and config.allowed_origins == ()
    assert copy.limits.snapshot() == config.limits.snapshot()
    with pytest.raises(UsageError, match="refuse_stream_requests must be True or False"):
        copy.refuse_stream_requests = "yes"


def test_every_channel_registered_with_an_apps_hub_parses_within_that_apps_max_depth() -> None:
    """Not only channels a telefunction returns: request channels, function and stream channels
    reach the hub through ``register`` alone, and take the app's limits there."""
    from telefunc.server.channel import Channel
    from telefunc.server.hub import ChannelHub

    settings = config.copy()
    settings.limits.max_depth = 8
    hub = ChannelHub(settings)
    channel: Channel[Any, Any] = Channel()
    assert channel._max_depth() == config.limits.max_depth  # unregistered: the global limits
    hub.register(channel)
    assert channel._max_depth() == 8
    settings.limits.max_depth = 9  # read live
    assert channel._max_depth() == 9
