"""Conformance: the same scenarios in real workerd (a JS twin) and in the emulator (Python).

workerd runs JavaScript workers offline (docs/cloudflare.md §2.2); ``js/workerd-conformance`` holds
the JS twin and a pinned ``workerd``. Scenarios: KV validation errors, input gates (exact
read-modify-write, and the race across a KV await), and the 32 MiB WebSocket limit (1009).
CI must run ``npm ci`` in ``js/workerd-conformance`` first; without it these tests skip.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from telefunc.testing import Emulator, FakeClock, JsException, WebSocketClient

ROOT = Path(__file__).resolve().parents[2] / "js" / "workerd-conformance"
WORKERD = ROOT / "node_modules" / ".bin" / "workerd"

pytestmark = pytest.mark.skipif(
    not WORKERD.exists(),
    reason="workerd is not installed: run `npm ci` in js/workerd-conformance",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def workerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    # Run from a fresh copy: workerd keeps DO storage in ./.wrangler/state of its cwd.
    workdir = tmp_path_factory.mktemp("workerd")
    for name in ("worker.js", "wrangler.jsonc"):
        shutil.copy(ROOT / name, workdir / name)
    log = workdir / "workerd.log"
    cmd = [
        str(WORKERD),
        "serve",
        "--experimental",
        "wrangler.jsonc",
        "-s",
        f"http=127.0.0.1:{port}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"workerd did not start: {log.read_text()}") from None
                time.sleep(0.05)  # polling for the listening socket, bounded by the deadline
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the Python twin of worker.js ---------------------------------------------------------

from js import WebSocketPair  # type: ignore[import-not-found]  # noqa: E402
from workers import DurableObject, Response  # type: ignore[import-not-found]  # noqa: E402


class TwinCounter(DurableObject):  # type: ignore[misc]
    async def increment(self) -> int:
        n = int(await self.ctx.storage.get("n") or 0) + 1
        await self.ctx.storage.put("n", n)
        return n

    async def incrementWithKvInBetween(self) -> int:
        n = int(await self.ctx.storage.get("n") or 0)
        await self.env.KV.get("anything")
        await self.ctx.storage.put("n", n + 1)
        return n + 1

    async def getN(self) -> int:
        return int(await self.ctx.storage.get("n") or 0)

    async def fetch(self, request: Any) -> Any:
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:
        ws.send(f"len:{len(message)}")


@pytest.fixture
async def twin() -> AsyncIterator[Emulator]:
    emu = Emulator(clock=FakeClock())
    emu.kv("KV")
    emu.durable_object("COUNTER", TwinCounter)
    yield emu
    emu.close()


async def _error_of(aw: Any) -> str | None:
    try:
        await aw
    except JsException as exc:
        return exc.message
    return None


async def test_kv_validation_errors_match(workerd: str, twin: Emulator) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        real = (await http.get(f"http://{workerd}/kv-errors")).json()
    kv = twin.env.KV
    ours = {
        "expirationTtl": await _error_of(kv.put("k", "v", expirationTtl=10)),
        "cacheTtl": await _error_of(kv.get("k", cacheTtl=5)),
        "ok": await _error_of(kv.put("k", "v", expirationTtl=60)),
    }
    assert ours == real


@pytest.mark.parametrize(("race", "n"), [(False, 50), (True, 20)])
async def test_gates_match(workerd: str, twin: Emulator, race: bool, n: int) -> None:
    name = f"gates-{race}-{n}"
    query = f"n={n}&name={name}" + ("&race=1" if race else "")
    async with httpx.AsyncClient(timeout=30) as http:
        real = (await http.get(f"http://{workerd}/gates?{query}")).json()["final"]
    stub = twin.env.COUNTER.getByName(name)
    method = stub.incrementWithKvInBetween if race else stub.increment
    await asyncio.gather(*(method() for _ in range(n)))
    ours = await stub.getN()
    assert ours == real
    assert (real == n) is (not race)  # exact with gates; the KV await lets them race


async def test_websocket_limit_matches(workerd: str, twin: Emulator) -> None:
    small = "x" * (31 << 20)
    big = b"\0" * ((32 << 20) + 1)
    async with websockets.connect(
        f"ws://{workerd}/ws?name=ws", max_size=None, open_timeout=30, close_timeout=10
    ) as ws:
        await ws.send(small)
        real_small = await asyncio.wait_for(ws.recv(), 30)
        await ws.send(big)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 30)
    assert info.value.rcvd is not None
    real_close = (info.value.rcvd.code, info.value.rcvd.reason)

    resp = await twin.env.COUNTER.getByName("ws").fetch("https://do/ws")
    client = WebSocketClient(resp.webSocket)
    client.send(small)
    ours_small = await client.receive()
    client.send(big)
    ours_close = await client.wait_closed()
    assert ours_small == real_small == f"len:{31 << 20}"
    assert ours_close == real_close
