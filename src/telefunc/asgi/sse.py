"""The SSE channel transport on ASGI: a thin adapter of :func:`telefunc.server.sse.handle_sse`."""

from __future__ import annotations

import contextlib

from telefunc.asgi.http import AsgiBody, HttpRequest, Send, send_rpc_response
from telefunc.server.hub import ChannelHub
from telefunc.server.sse import handle_sse

__all__ = ["serve_sse"]


async def serve_sse(hub: ChannelHub, request: HttpRequest, body: AsgiBody, send: Send) -> None:
    """Answer one SSE channel POST (stream-response, stream-request or batch)."""
    response = await handle_sse(hub, method=request.method, body=body)
    with contextlib.suppress(OSError):  # the client went away before its answer
        await send_rpc_response(send, body, response)
