"""The adapter behind `telefunc dev --edge`: real HTTP and WebSocket, the official client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import websockets

from telefunc.cloudflare import Telefunc
from telefunc.testing.edge_server import EdgeServer, build_emulator
from telefunc.wire.frames import Tag, decode_frame, encode_json

REPO = Path(__file__).resolve().parents[2]
CHANNELS_APP = REPO / "tests" / "apps" / "channels"
EXAMPLE = REPO / "examples" / "cloudflare"


def _worker_module(telefunc: Telefunc) -> types.ModuleType:
    from workers import Response, WorkerEntrypoint  # type: ignore[import-not-found]

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Any) -> Any:
            response = await telefunc.serve(request=request, env=self.env, ctx=self.ctx)
            return response if response is not None else Response("Not found", status=404)

    module = types.ModuleType("cf_interop_worker")
    module.BINDINGS = {  # type: ignore[attr-defined]
        "durable_objects": {"TelefuncDurableObject": "TelefuncDurableObject"},
        "kv_namespaces": ["TelefuncKV"],
    }
    module.TelefuncDurableObject = telefunc.TelefuncDurableObject  # type: ignore[attr-defined]
    module.Default = Default  # type: ignore[attr-defined]
    return module


async def test_official_client_calls_and_channels_through_the_adapter(run_node: Any) -> None:
    telefunc = Telefunc(root=CHANNELS_APP)
    emu, _ = build_emulator(CHANNELS_APP, ["weur", "enam", "apac"], 2.0, _worker_module(telefunc))
    server = EdgeServer(emu, "127.0.0.1", 0)
    port = await server.start()
    try:
        origin = f"http://127.0.0.1:{port}"
        lines = await asyncio.to_thread(
            run_node, "channel_ws_basic.mjs", origin, env={"TELEFUNC_TRANSPORTS": "ws"}
        )
        results = {line["name"]: line for line in lines}
        assert results["echo"]["welcome"] == {"welcome": True}
        assert results["echo"]["count"] == 1000 and results["echo"]["inOrder"] is True
        assert results["ack"]["ack"] == 42
        assert results["binary"]["same"] is True
        assert results["abort"]["error"]["isAbort"] is True
        # Everything ran on Durable Objects of the adapter, in the default colo's region.
        names = {h.id.name for h in emu.hosts()}
        assert names and all(str(n).startswith("telefunc-shard-weur-") for n in names)
        assert emu.counters.do_websocket_messages > 1000
        assert emu.errors == []
    finally:
        await server.stop()
        emu.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_dev_edge_serves_the_example_with_a_colo_header() -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "telefunc", "dev", "--edge", str(EXAMPLE), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        transport = httpx.AsyncHTTPTransport(retries=30)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=20, transport=transport
        ) as http:
            body = {"file": "/hello.telefunc.py", "name": "hello", "args": ["edge"]}
            headers = {"x-telefunc-colo": "NRT", "x-user": "ada"}
            resp = await http.post("/_telefunc", content=json.dumps(body), headers=headers)
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"ret": "Hello edge, from ada"}
            token = resp.headers["x-telefunc-session"]
            assert token.startswith("telefunc-shard-apac-0:")
            chat = {"file": "/chat.telefunc.py", "name": "chat", "args": []}
            headers = {"x-telefunc-colo": "NRT", "x-telefunc-session": token}
            resp = await http.post("/_telefunc", content=json.dumps(chat), headers=headers)
            channel_id = json.loads(resp.json()["ret"].split(":", 1)[1])["channelId"]
            assert (await http.get("/elsewhere")).status_code == 404
        url = f"ws://127.0.0.1:{port}/_telefunc?colo=NRT&session={token}"
        async with websockets.connect(url, open_timeout=10) as ws:
            entry = {"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}
            await ws.send(encode_json(Tag.RECONCILE, {"open": [entry]}))
            tags = set()
            while Tag.RECONCILED not in tags or Tag.TEXT not in tags:
                data = await asyncio.wait_for(ws.recv(), 10)
                assert isinstance(data, bytes)
                frame = decode_frame(data)
                tags.add(frame.tag)
                if frame.tag == Tag.TEXT:
                    assert json.loads(frame.payload) == "welcome"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
