"""Stand-in for the ``workers`` module of Python Workers (``workers-runtime-sdk``).

``from workers import DurableObject, WorkerEntrypoint, Response`` works unchanged under CPython
once :func:`telefunc.testing.install` ran (cloudflare.md §1.1-§1.4).
"""

from __future__ import annotations

from typing import Any

from .durable_objects import DurableObjectAbort
from .js_api import fetch as _js_fetch
from .web import Headers, ReadableStream, Request, Response
from .websocket import WebSocket, WebSocketPair

__all__ = [
    "DurableObject",
    "DurableObjectAbort",
    "FetchResponse",
    "Headers",
    "ReadableStream",
    "Request",
    "Response",
    "WebSocket",
    "WebSocketPair",
    "WorkerEntrypoint",
    "fetch",
]

FetchResponse = Response
"""What ``stub.fetch`` / ``fetch`` return (read with ``await resp.text()`` / ``.json()``)."""


class WorkerEntrypoint:
    """Base of the ``Default`` entrypoint class: ``self.ctx`` and ``self.env`` are set."""

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


class DurableObject:
    """Base of a Durable Object class: ``self.ctx`` (state) and ``self.env``.

    Public methods are RPC methods; ``fetch``, ``alarm``, ``webSocketMessage``,
    ``webSocketClose`` and ``webSocketError`` are the reserved handlers (§1.2).
    """

    def __init__(self, ctx: Any, env: Any) -> None:
        self.ctx = ctx
        self.env = env


async def fetch(input: str | Request, init: Any = None, **kwargs: Any) -> Response:
    """Outbound ``fetch`` (a counted subrequest), keyword arguments as the init object."""
    return await _js_fetch(input, init, **kwargs)
