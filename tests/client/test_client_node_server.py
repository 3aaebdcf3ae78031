"""The Python client against the official telefunc@0.2.23 Node server (js/interop/node_server),
whose telefunctions mirror tests/apps/basic and tests/apps/channels."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from faulty_proxy import FaultyProxy  # tests/client/faulty_proxy.py
from test_client_broadcast import two_clients_and_the_server_publish

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


class Inbox:
    """Collects messages; ``wait(n)`` waits (bounded) until ``n`` arrived."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait(self, n: int, timeout: float = 20.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.items) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.items


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


async def test_channels(node_origin: tuple[str, int]) -> None:
    origin, _ = node_origin
    async with Client(origin) as c:
        # 1,000 awaited sends, echoed in order, then a graceful close acknowledged by the server.
        ch = await c.call(CHAT, "welcome")
        inbox = Inbox()
        ch.listen(inbox)
        for i in range(1000):
            await ch.send(i)
        items = await inbox.wait(1001)
        assert items == [{"welcome": True}, *range(1000)]
        assert await ch.close() == 0

        # Acks both ways.
        acked = await c.call(CHAT, "acked")
        questions = Inbox()

        def answer(msg: Any) -> str:
            questions(msg)
            return "client-answer"

        acked.listen(answer)
        assert await acked.send(21) == 42
        assert await questions.wait(2) == ["question", {"client_answered": "client-answer"}]

        # 1 MiB binary, byte-exact.
        payload = bytes((i * 31 + 7) % 256 for i in range(1024 * 1024))
        binary = await c.call(CHAT, "binary_echo")
        echoes = Inbox()
        binary.listen_binary(echoes)
        await binary.send_binary(payload)
        assert (await echoes.wait(1))[0] == payload

        # A server abort reaches on_close with its value.
        aborted = await c.call(CHAT, "aborter", {"reason": "bye", "n": 7})
        error = await asyncio.wait_for(aborted.wait_closed(), 10)
        assert isinstance(error, Abort) and error.value == {"reason": "bye", "n": 7}

        # A listener raising Abort rejects the acked send.
        refusing = await c.call(CHAT, "listener_abort")
        with pytest.raises(Abort) as refused:
            await refusing.send("x")
        assert refused.value.value == {"refused": "x"}

        # The server closes; we acknowledge.
        closer = await c.call(CHAT, "closer")
        await closer.send("close-now")
        assert await asyncio.wait_for(closer.wait_closed(), 10) is None
        async with asyncio.timeout(10):
            while "server_close_result" not in (report := await c.call(CHAT, "server_report")):
                await asyncio.sleep(0.02)
        assert report["server_close_result"] == 0
        assert c.connection is not None and c.connection.connects == 1


async def test_cut_mid_stream_loses_and_duplicates_nothing(node_origin: tuple[str, int]) -> None:
    _, port = node_origin
    n = 600
    proxy = FaultyProxy(port)
    await proxy.start()
    try:
        async with Client(proxy.origin) as c:
            ch = await c.call(CHAT, "both_ways", n)
            ticks = Inbox()
            ch.listen(ticks)
            errors: list[Exception | None] = []
            ch.on_close(errors.append)

            async def cutter() -> int:
                await ticks.wait(n // 3)
                return proxy.cut()

            cut_task = asyncio.create_task(cutter())
            for i in range(n):
                await ch.send(i)
                if i % 50 == 0:
                    await asyncio.sleep(0)
            cuts = await asyncio.wait_for(cut_task, 30)
            assert await ticks.wait(n, timeout=30) == list(range(n))
            report = await asyncio.wait_for(ch.send("report", ack=True), 30)
            assert c.connection is not None
            connects = c.connection.connects
            errors_while_open = list(errors)
    finally:
        with contextlib.suppress(Exception):
            await proxy.close()
    assert cuts >= 1 and connects >= 2
    assert report == list(range(n))
    assert errors_while_open == []


async def test_broadcast_ordering_with_two_clients(node_origin: tuple[str, int]) -> None:
    origin, _ = node_origin
    await two_clients_and_the_server_publish(origin, "/room.telefunc.mjs")
