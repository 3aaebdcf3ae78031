"""The Python client against the official telefunc@0.2.23 Node server (js/interop/node_server),
whose telefunctions mirror tests/apps/basic and tests/apps/channels."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

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


ARGS = "/args.telefunc.mjs"


@pytest.mark.parametrize("channels", ["ws", "sse"])
@pytest.mark.parametrize("stream_transport", ["binary-inline", "sse-inline", "channel"])
async def test_stream_function_and_file_arguments(
    node_origin: tuple[str, int], channels: str, stream_transport: str
) -> None:
    from telefunc.client import File

    origin, _ = node_origin

    async def parts() -> AsyncIterator[bytes]:
        yield b"he"
        yield b"llo"

    async with Client(origin, transports=(channels,), stream_transport=stream_transport) as c:
        result = await c.call(
            ARGS,
            "everything",
            "x",
            parts(),
            lambda n: n * 2,
            File(b"file text", name="a.txt", type="text/plain"),
        )
    assert result == {"label": "x", "stream": "hello", "fn": [2, 4], "file": "file text"}


async def test_file_arguments(node_origin: tuple[str, int], tmp_path: Path) -> None:
    import hashlib
    import io
    import os

    from telefunc.client import File

    origin, _ = node_origin
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n" * 10_000)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    payload = os.urandom(2 * 1024 * 1024)

    async def big() -> AsyncIterator[bytes]:
        for offset in range(0, len(payload), 100_000):
            yield payload[offset : offset + 100_000]

    async with Client(origin) as c:
        described = await c.call(
            ARGS,
            "describe_files",
            path,
            File(b"\x00\x01", type="application/octet-stream"),
            File(io.BytesIO(b"from a file object"), name="notes.txt", type="text/plain"),
        )
        digest = await c.call(ARGS, "upload_digest", big())
    assert [(d["name"], d["type"], d["size"]) for d in described] == [
        ("report.csv", "", path.stat().st_size),
        (None, "application/octet-stream", 2),
        ("notes.txt", "text/plain", 18),
    ]
    assert described[0]["lastModified"] == 1_700_000_000_000
    assert described[0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest["total"] == len(payload)
    assert digest["sha256"] == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("transports", [("ws",), ("sse",)])
async def test_abort_value_and_message(
    node_origin: tuple[str, int], transports: tuple[str, ...]
) -> None:
    origin, _ = node_origin
    async with Client(origin, transports=transports) as c:
        ch = await c.call(CHAT, "abort_with_message", {"message": "room closed"}, "server text")
        error = await ch.wait_closed()
        assert isinstance(error, Abort)
        assert error.value == {"message": "room closed"} and str(error) == "room closed"
        assert (await c.call(CHAT, "server_report", ch.id))["closed"] == {
            "type": "Abort",
            "message": "server text",
        }

        watched = await c.call(CHAT, "watch_close")
        assert await watched.send("hi", ack=True) == "hi"
        watched.abort({"why": "bye"}, "client text")
        error = await watched.wait_closed()
        assert isinstance(error, Abort) and str(error) == "client text"
        for _ in range(500):
            report = await c.call(CHAT, "server_report", watched.id)
            if "closed" in report:
                break
        # The official server sees a client abort as a clean close (CLOSE 0), as ours does.
        assert report["closed"] is None
