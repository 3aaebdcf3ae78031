"""`telefunc dev --edge`: the emulator over real HTTP and WebSocket on an ephemeral port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from telefunc.testing.edge_server import (
    EdgeServer,
    build_emulator,
    main_edge,
    parse_duration,
)

EDGE_WORKER = Path(__file__).resolve().parent / "edge_worker"


@pytest.fixture
async def demo() -> AsyncIterator[tuple[str, object]]:
    emu, what = build_emulator(EDGE_WORKER, ["weur", "apac"], kv_delay=30.0)
    assert what == str(EDGE_WORKER / "worker.py")
    server = EdgeServer(emu, "127.0.0.1", 0)
    port = await server.start()
    yield f"127.0.0.1:{port}", emu
    await server.stop()
    emu.close()


async def test_http_colos_kv_and_counter(demo: tuple[str, object]) -> None:
    addr, _emu = demo
    async with httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http:
        r = await http.get("/")
        assert r.status_code == 200 and "test worker" in r.text
        r = await http.get("/cf", headers={"x-telefunc-colo": "NRT"})
        assert r.json() == {"colo": "NRT", "country": "JP", "continent": "AS"}
        assert (await http.get("/cf?colo=CDG")).json()["colo"] == "CDG"
        assert (await http.get("/counter/a")).json() == {"n": 1, "colo": "LHR"}
        assert (await http.get("/counter/a?colo=NRT")).json() == {"n": 2, "colo": "NRT"}
        r = await http.put("/kv/greeting?colo=LHR", content=b"hello")
        assert r.json() == {"stored": "greeting", "colo": "LHR"}
        assert (await http.get("/kv/greeting?colo=LHR")).json()["value"] == "hello"
        # a 30 s propagation delay on the real clock: another colo cannot see it yet
        assert (await http.get("/kv/greeting?colo=NRT")).json()["value"] is None


async def test_streamed_response(demo: tuple[str, object]) -> None:
    addr, _ = demo
    async with (
        httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http,
        http.stream("GET", "/stream?colo=SIN") as r,
    ):
        assert r.headers["content-type"] == "text/event-stream"
        events = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    assert [json.loads(e[6:]) for e in events] == [{"i": i, "colo": "SIN"} for i in range(5)]


async def test_websocket_routed_to_durable_object(demo: tuple[str, object]) -> None:
    addr, _ = demo
    async with websockets.connect(f"ws://{addr}/ws/room?colo=NRT", open_timeout=10) as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 10) == "echo:hi n=1"
        await ws.send(b"\x01\x02")
        assert await asyncio.wait_for(ws.recv(), 10) == b"\x01\x02"
    # a plain GET to the WebSocket route is refused like a real worker would
    async with httpx.AsyncClient(base_url=f"http://{addr}", timeout=10) as http:
        assert (await http.get("/ws/room")).status_code == 426


async def test_websocket_over_32_mib_closed_with_1009(demo: tuple[str, object]) -> None:
    addr, _ = demo
    async with websockets.connect(
        f"ws://{addr}/ws/big", open_timeout=10, max_size=None, close_timeout=10
    ) as ws:
        await ws.send(b"\0" * ((32 << 20) + 1))
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 20)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert info.value.rcvd.reason.startswith("Message is too large")


async def test_root_worker_py_and_wrangler_bindings(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(
        "from workers import DurableObject, Response, WorkerEntrypoint\n"
        "class Room(DurableObject):\n"
        "    async def hello(self):\n"
        "        return 'room ' + self.ctx.id.name\n"
        "class Default(WorkerEntrypoint):\n"
        "    async def fetch(self, request):\n"
        "        text = await self.env.ROOMS.getByName('x').hello()\n"
        "        return Response(text + ' ' + self.env.GREETING + ' ' + request.cf.colo)\n"
    )
    (tmp_path / "wrangler.jsonc").write_text(
        "{ // comment\n"
        ' "durable_objects": {"bindings": [{"name": "ROOMS", "class_name": "Room"}]},\n'
        ' "kv_namespaces": [{"binding": "STORE", "id": "x"}], /* c */\n'
        ' "vars": {"GREETING": "hi"},\n}'
    )
    emu, what = build_emulator(tmp_path, ["enam"], kv_delay=1.0)
    assert what.endswith("worker.py")
    server = EdgeServer(emu, "127.0.0.1", 0)
    port = await server.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"http://127.0.0.1:{port}/")
        assert r.text == "room x hi IAD"
        assert emu.env.STORE is not None
    finally:
        await server.stop()
        emu.close()


def test_cli_parsing() -> None:
    assert parse_duration("2s") == 2.0 and parse_duration("500ms") == 0.5
    assert parse_duration("1m") == 60.0 and parse_duration("3") == 3.0
    with pytest.raises(SystemExit):
        main_edge(["dev", "--edge", ".", "--regions", "moon"])
