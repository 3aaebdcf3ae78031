"""Helpers of the SSE transport tests: an ASGI wrapper counting SSE POSTs by kind, a TCP proxy
that cuts every live connection on demand, and a Node runner that reacts to progress lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from telefunc.asgi import TelefuncApp

APPS = Path(__file__).resolve().parents[1] / "apps"
# Not imported from tests/conftest.py: another folder's conftest may shadow that module name.
JS_DIR = Path(__file__).resolve().parents[2] / "js"
INTEROP_DIR = JS_DIR / "interop"
IN_CI = bool(os.environ.get("CI"))


def node_available() -> bool:
    """Whether node and the pinned npm packages are installed."""
    return shutil.which("node") is not None and (JS_DIR / "node_modules" / "telefunc").is_dir()


class SseCounter:
    """Wraps a :class:`TelefuncApp`; counts SSE POSTs by kind (``response``, ``request``,
    ``batch``, read from the metadata record) and their response statuses."""

    def __init__(self, app: TelefuncApp) -> None:
        self.app = app
        self.kinds: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()

    @property
    def mux(self) -> Any:
        return self.app.hub.mux

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or b"_telefunc=sse" not in scope.get("query_string", b""):
            await self.app(scope, receive, send)
            return
        head = bytearray()
        kind = ["?"]

        async def counting_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if kind[0] == "?" and message["type"] == "http.request":
                head.extend(message.get("body", b""))
                if len(head) >= 4 and len(head) >= 4 + int.from_bytes(head[:4], "big"):
                    meta = json.loads(bytes(head[4 : 4 + int.from_bytes(head[:4], "big")]))
                    kind[0] = (
                        "response"
                        if meta.get("streamResponse")
                        else "request"
                        if meta.get("streamRequest")
                        else "batch"
                    )
                    self.kinds[kind[0]] += 1
            return message

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.statuses[(kind[0], message["status"])] += 1
            await send(message)

        await self.app(scope, counting_receive, counting_send)


def channels_app() -> SseCounter:
    """The channel test app (tests/apps/channels), wrapped in a :class:`SseCounter`."""
    return SseCounter(TelefuncApp(APPS / "channels"))


class CuttingProxy:
    """Forwards 127.0.0.1 TCP connections to ``target_port``; :meth:`cut` resets all live ones."""

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


async def run_node_lines(
    script: str,
    *args: str,
    env: dict[str, str],
    on_line: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
    timeout: float = 90,
) -> list[dict[str, Any]]:
    """Run a js/interop scenario, calling ``on_line`` for each JSON line as it is printed."""
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--conditions=browser",
        "--experimental-websocket",
        "--no-warnings",
        str(INTEROP_DIR / script),
        *args,
        cwd=JS_DIR,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while raw := await proc.stdout.readline():
                if not raw.startswith(b"{"):
                    continue
                line = json.loads(raw)
                lines.append(line)
                if on_line is not None:
                    result = on_line(line)
                    if result is not None:
                        await result
            stderr = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, f"node {script} exited {code}\n{stderr}"
    return lines
