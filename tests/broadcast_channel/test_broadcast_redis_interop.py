"""Two ``telefunc serve --redis URL`` processes share broadcast through a real redis-server; an
official client on each (Node, WebSocket) subscribes to one key. Three publishers — one client
per server plus ``Broadcast.publish`` on the first server — publish 1,000 messages concurrently:
both clients receive all of them in exactly the same order with strictly increasing seq, and
every receipt matches what the subscribers saw."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from redis_support import RedisServer, free_port
from testpaths import APPS_DIR, IN_CI, INTEROP_DIR, JS_DIR, REPO, node_available

SRC = REPO / "src"
APP = APPS_DIR / "broadcast"
PER_CLIENT, SERVER_COUNT = 333, 334
TOTAL = 2 * PER_CLIENT + SERVER_COUNT

pytestmark = pytest.mark.skipif(not node_available() and not IN_CI, reason="node missing")


async def _wait_listening(port: int, proc: asyncio.subprocess.Process, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"telefunc serve exited with {proc.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # polling a port that is not bound yet
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


@contextlib.asynccontextmanager
async def serve(redis_url: str) -> AsyncIterator[str]:
    """``telefunc serve tests/apps/broadcast --redis URL`` in a child process; yields its origin."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "telefunc",
        "serve",
        str(APP),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--redis",
        redis_url,
        "--log-level",
        "warning",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _wait_listening(port, proc, 30)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _node(origin: str, key: str, who: str, lead: bool) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "node",
        "--conditions=browser",
        "--experimental-websocket",
        "--no-warnings",
        str(INTEROP_DIR / "broadcast_pubsub.mjs"),
        origin,
        key,
        who,
        str(PER_CLIENT),
        "stdin",
        "1" if lead else "0",
        str(SERVER_COUNT),
        str(TOTAL),
        cwd=JS_DIR,
        env={**os.environ, "TELEFUNC_TRANSPORTS": "ws"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=16 * 1024 * 1024,  # the result line holds 1,000 entries
    )


async def _line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    raw = await proc.stdout.readline()
    if not raw:
        assert proc.stderr is not None
        raise AssertionError(f"node ended early: {(await proc.stderr.read()).decode()}")
    line: dict[str, Any] = json.loads(raw)
    return line


async def test_two_server_processes_share_one_order_through_redis(
    redis_server: RedisServer,
) -> None:
    key = f"room-{uuid.uuid4()}"
    async with serve(redis_server.url) as origin1, serve(redis_server.url) as origin2:
        procs = {
            "a": await _node(origin1, key, "a", True),
            "b": await _node(origin2, key, "b", False),
        }
        try:
            async with asyncio.timeout(120):
                for proc in procs.values():  # each subscribed and saw its own marker
                    assert (await _line(proc))["phase"] == "ready"
                for proc in procs.values():
                    assert proc.stdin is not None
                    proc.stdin.write(b"go\n")
                    await proc.stdin.drain()
                results = {who: await _line(proc) for who, proc in procs.items()}
                for proc in procs.values():
                    assert await proc.wait() == 0
        finally:
            for proc in procs.values():
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    a, b = results["a"], results["b"]
    assert len(a["received"]) == TOTAL
    assert a["received"] == b["received"]  # same messages, same order, same seq and timestamp
    seqs = [entry[0] for entry in a["received"]]
    assert all(x < y for x, y in itertools.pairwise(seqs))
    expected = {(w, i) for w in ("a", "b") for i in range(PER_CLIENT)}
    expected |= {("server", i) for i in range(SERVER_COUNT)}
    assert {(w, i) for _, w, i, _ in a["received"]} == expected
    by_seq = {seq: (who, i, ts) for seq, who, i, ts in a["received"]}
    for result in (a, b):
        assert len(result["receipts"]) == PER_CLIENT
        for seq, i, ts, receipt_key in result["receipts"]:
            assert receipt_key == key and by_seq[seq] == (result["who"], i, ts)
    assert len(a["serverReceipts"]) == SERVER_COUNT
    for seq, i, ts in a["serverReceipts"]:
        assert by_seq[seq] == ("server", i, ts)
