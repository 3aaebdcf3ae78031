"""A TCP proxy cuts the official client's WebSocket mid-stream while both sides send: after the
client reconnects, nothing is lost, nothing duplicated, order is kept."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from testpaths import INTEROP_DIR, JS_DIR, node_available

APPS = Path(__file__).resolve().parents[1] / "apps"
N = 600


class CuttingProxy:
    """Forwards 127.0.0.1 TCP connections to ``target``; :meth:`cut` resets every live one."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.cuts = 0
        self.accepted = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        link = (writer, up_writer)
        self.links.append(link)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        if link in self.links:
            self.links.remove(link)

    def cut(self) -> None:
        """Abort every live connection (both halves), as a network failure would."""
        self.cuts += len(self.links)
        for client_side, server_side in self.links:
            client_side.transport.abort()
            server_side.transport.abort()
        self.links.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.mark.skipif(not node_available() and not os.environ.get("CI"), reason="node missing")
async def test_reconnect_through_a_cutting_proxy(live_server: Any) -> None:
    server = live_server(APPS / "channels")
    proxy = CuttingProxy(server.port)
    await proxy.start()
    origin = f"http://127.0.0.1:{proxy.port}"
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--conditions=browser",
        "--experimental-websocket",
        "--no-warnings",
        str(INTEROP_DIR / "channel_ws_reconnect.mjs"),
        origin,
        str(N),
        cwd=JS_DIR,
        env={**os.environ, "TELEFUNC_TRANSPORTS": "ws"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[dict[str, Any]] = []
    accepted_before_cut = -1
    try:
        async with asyncio.timeout(90):
            while raw := await proc.stdout.readline():
                line = json.loads(raw)
                lines.append(line)
                if line.get("phase") == "midway":
                    accepted_before_cut = proxy.accepted
                    proxy.cut()
            stderr = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proxy.close()
    assert code == 0, stderr
    assert proxy.cuts >= 1  # the WebSocket really was cut mid-stream...
    assert proxy.accepted > accepted_before_cut >= 1  # ...and the client reconnected through us
    result = next(line for line in lines if line.get("name") == "result")
    assert result["ticks"] == list(range(N))  # server -> client: no loss, no duplicate, in order
    assert result["serverGot"] == list(range(N))  # client -> server: the same
    assert result["errors"] == []
