"""What a call, a WebSocket and a channel leave behind is freed by reference counting.

Objects caught in reference cycles wait for the cyclic garbage collector: under connection churn
they pile up between full collections (peak memory the allocator then keeps), and a full
collection over them stalls the event loop. So a finished call, channel and connection must
leave no cycle: with the collector off, a churn of them leaves nothing for it to find.
Runs ``telefunc serve``'s stack (our WebSocket and httptools protocols) on uvicorn, in a fresh
interpreter (what other tests of this process release meanwhile must not count).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import websockets

from live_server import LiveServer
from telefunc.asgi import TelefuncApp
from telefunc.asgi.uvicorn_settings import uvicorn_settings
from telefunc.wire.frames import Tag, decode_frame, encode_json
from telefunc.wire.placeholders import CHANNEL_PREFIX, split
from testpaths import APPS_DIR, REPO

CYCLES = 20
#: Modules whose objects must not be left to the cyclic collector.
OURS = ("telefunc.", "uvicorn.", "websockets.server", "httptools")


def _garbage_of_ours() -> Counter[str]:
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = Counter(
            f"{type(o).__module__}.{type(o).__qualname__}"
            for o in gc.garbage
            if type(o).__module__.startswith(OURS)
        )
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    return found


async def _one_cycle(http: httpx.AsyncClient, port: int) -> None:
    body = json.dumps({"file": "/chat.telefunc.py", "name": "welcome", "args": []})
    response = await http.post("/_telefunc", content=body)
    placeholder = split(json.loads(response.text)["ret"])
    assert placeholder is not None and placeholder[0] == CHANNEL_PREFIX
    channel_id = json.loads(placeholder[1])["channelId"]
    async with websockets.connect(f"ws://127.0.0.1:{port}/_telefunc") as ws:
        entry = {"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}
        await ws.send(encode_json(Tag.RECONCILE, {"open": [entry]}))
        tags: set[int] = set()
        while not {Tag.RECONCILED, Tag.TEXT} <= tags:  # the welcome message came too
            message = await asyncio.wait_for(ws.recv(), 10)
            assert isinstance(message, bytes)
            tags.add(decode_frame(message).tag)


async def _settled(app: TelefuncApp) -> None:
    """Until the server let go of every channel and wire (bounded)."""
    async with asyncio.timeout(10):
        while app.hub.channel_count or app.hub.mux.session_owners:
            await asyncio.sleep(0.01)


async def _churn() -> dict[str, int]:
    """The objects of ours a churn of CYCLES calls, channels and sockets left to the cyclic GC."""
    app = TelefuncApp(APPS_DIR / "channels")
    server = LiveServer(app, **uvicorn_settings())
    server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            await _one_cycle(http, server.port)  # warm up: imports, caches, the timer task
            await _settled(app)
            gc.collect()
            gc.disable()
            _garbage_of_ours()
            for _ in range(CYCLES):
                await _one_cycle(http, server.port)
            await _settled(app)
            return dict(_garbage_of_ours())
    finally:
        server.stop()


def test_a_churn_of_calls_channels_and_sockets_leaves_no_cycles() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(Path(__file__).parent.parent)]),
    }
    done = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    left = json.loads(done.stdout.strip().splitlines()[-1])
    assert left == {}, f"left to the cyclic GC after {CYCLES} cycles: {left}"


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_churn())))
