"""Helpers of the SSE transport tests: an ASGI wrapper counting SSE POSTs by kind, SSE bodies,
and a reader of the event stream's frames.

The TCP proxy is tests/tcp_proxy.py, the Node runner reacting to progress lines is
tests/node_runner.py, the paths and the Node check are tests/testpaths.py.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx

from telefunc.asgi import TelefuncApp
from telefunc.config import Config, config
from telefunc.wire.frames import Frame, decode_frame
from telefunc.wire.framing import b64url_decode, length_prefixed
from testpaths import APPS_DIR

HEADERS = {"x-telefunc-request": "sse", "content-type": "application/octet-stream"}


def body(meta: dict[str, Any], *frames: bytes) -> bytes:
    return length_prefixed([json.dumps(meta).encode(), *frames])


def url(server: Any) -> str:
    return f"{server.origin}/_telefunc?_telefunc=sse"


class EventStream:
    """Reads ``data:`` events of an SSE response as decoded frames."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> Frame | None:
        async with asyncio.timeout(10):
            async for line in self.lines:
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("data: "):
                    return decode_frame(b64url_decode(line[6:]))
        return None

    async def next_tag(self, tag: int) -> Frame:
        while (frame := await self.next()) is not None:
            if frame.tag == tag:
                return frame
        raise AssertionError(f"stream ended before tag 0x{tag:02x}")


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


def channels_app(settings: Config | None = None) -> SseCounter:
    """The channel test app (tests/apps/channels), wrapped in a :class:`SseCounter`."""
    return SseCounter(TelefuncApp(APPS_DIR / "channels", settings=settings))


def refusing_stream_requests() -> Config:
    """The global settings, but answering SSE stream-request POSTs 400 at once."""
    settings = config.copy()
    settings.refuse_stream_requests = True
    return settings
