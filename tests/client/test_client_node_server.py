"""The Python client against the official telefunc@0.2.23 Node server (js/interop/node_server),
whose telefunctions mirror tests/apps/basic and tests/apps/channels."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from client_scenarios import (  # tests/client/client_scenarios.py
    TRANSPORT_IDS,
    TRANSPORTS,
    acks_both_ways,
    binary_echo,
    check_transport,
    cut_mid_stream,
    server_abort,
    server_close_then_client_close,
    thousand_sends_echoed,
    two_clients_and_the_server_publish,
)

from tcp_proxy import FaultyProxy
from telefunc.client import (
    Abort,
    Client,
    RemoteCallError,
    ShieldValidationError,
)
from telefunc.wire.serializer import UNDEFINED, JsRegExp
from testpaths import IN_CI, JS_DIR, node_available

CALC = "/calc.telefunc.mjs"
CHAT = "/chat.telefunc.mjs"
SERVER = JS_DIR / "interop" / "node_server" / "server.mjs"


@pytest.fixture
async def node_origin() -> AsyncIterator[tuple[str, int]]:
    """Start the Node server on an ephemeral 127.0.0.1 port; yields (origin, port)."""
    if not node_available():
        if IN_CI:
            pytest.fail("node or js/node_modules is missing: .ci/run must install them")
        pytest.skip("node or js/node_modules is missing (run: cd js && npm ci)")
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--no-warnings",
        str(SERVER),
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            stderr = (await proc.stderr.read()).decode()
            raise AssertionError(f"the Node server did not start:\n{stderr}")
        port = int(json.loads(line)["port"])
        yield f"http://127.0.0.1:{port}", port
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_calls(node_origin: tuple[str, int]) -> None:
    origin, _ = node_origin
    value = {
        "none": None,
        "undefined": UNDEFINED,
        "int": 42,
        "float": -1.25,
        "big": 2**70,
        "inf": -math.inf,
        "bang": "!bang",
        "html": "</script> ✓",
        "date": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "bytes": b"\x00\xff",
        "set": {1, 2},
        "map": {1: "a"},
        "regexp": JsRegExp("a+\\/b", "g"),  # canonical RegExp#source
        "list": [[1], {"x": UNDEFINED}],
    }
    async with Client(origin) as c:
        assert await c.module(CALC).add(1, 2) == 3
        assert await c.call(CALC, "echo", value) == value
        with pytest.raises(Abort) as abort:
            await c.call(CALC, "refuse", "nope")
        assert abort.value.value == {"reason": "nope"}
        with pytest.raises(RemoteCallError) as crash:
            await c.call(CALC, "crash")
        assert crash.value.status == 500 and "secret" not in str(crash.value)
        with pytest.raises(ShieldValidationError):
            await c.call(CALC, "add", "one", 2)
        with pytest.raises(RemoteCallError) as unknown:
            await c.call(CALC, "no_such_function")
        assert unknown.value.status == 400


@pytest.mark.parametrize("transports", TRANSPORTS, ids=TRANSPORT_IDS)
async def test_channels(node_origin: tuple[str, int], transports: tuple[str, ...]) -> None:
    origin, _ = node_origin
    async with Client(origin, transports=transports) as c:
        await thousand_sends_echoed(c, CHAT)
        await acks_both_ways(c, CHAT)
        await binary_echo(c, CHAT)
        await server_abort(c, CHAT)
        # A listener raising Abort rejects the acked send.
        refusing = await c.call(CHAT, "listener_abort")
        with pytest.raises(Abort) as refused:
            await refusing.send("x")
        assert refused.value.value == {"refused": "x"}
        await server_close_then_client_close(c, CHAT)
        await check_transport(c, transports)
        assert c.connection is not None and c.connection.connects == 1


@pytest.mark.parametrize("transports", TRANSPORTS, ids=TRANSPORT_IDS)
async def test_cut_mid_stream_loses_and_duplicates_nothing(
    node_origin: tuple[str, int], transports: tuple[str, ...]
) -> None:
    _, port = node_origin
    proxy = FaultyProxy(port)
    await proxy.start()
    try:
        await cut_mid_stream(proxy, CHAT, transports)
    finally:
        with contextlib.suppress(Exception):
            await proxy.close()


@pytest.mark.parametrize("transports", TRANSPORTS, ids=TRANSPORT_IDS)
async def test_broadcast_ordering_with_two_clients(
    node_origin: tuple[str, int], transports: tuple[str, ...]
) -> None:
    origin, _ = node_origin
    await two_clients_and_the_server_publish(origin, "/room.telefunc.mjs", transports=transports)
