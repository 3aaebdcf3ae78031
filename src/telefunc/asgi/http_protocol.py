"""The uvicorn HTTP protocol ``telefunc serve`` runs on httptools: uvicorn's own, head bounded,
a response's head and first body bytes in one write.

uvicorn's h11 protocol stops buffering a request head at ``h11_max_incomplete_event_size``;
its httptools protocol has no such limit (llhttp hands over the URL and each header piece by
piece, and both are collected without a cap), so a client could grow one request's head without
end. :class:`TelefuncHttpToolsProtocol` counts the bytes received while a request head is
incomplete and answers 400 and closes past
``config.limits.max_request_head`` (plus at most the one read that
crossed it), as uvicorn does for h11.

uvicorn writes a response's head as soon as the app sends ``http.response.start`` and its body
with the next message: two writes, which uvloop turns into two ``send`` system calls (and the
peer into two wake-ups) for every small response. Here the head waits for the first body
message and goes out with it, as one write; a head the app does not follow up with a body
before it yields to the event loop (a stream whose first chunk is not ready) is written then,
so headers are never held back. What is written, and in which order, is uvicorn's.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from telefunc.config import config
from telefunc.endpoint.client_errors import log_client_error

__all__ = ["HEAD_TOO_LARGE", "TelefuncHttpToolsProtocol"]

#: The 400 response's body.
HEAD_TOO_LARGE = "Request head too large."
#: Up to this many body bytes are copied behind the head; a longer body goes out by writelines.
_JOIN_LIMIT = 16 * 1024


class TelefuncHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on an incomplete request head, and a
    response's head written together with its first body bytes."""

    #: Bytes received since the current request head began; ``None`` while reading a body.
    _head_bytes: int | None = 0

    def data_received(self, data: bytes) -> None:
        head = self._head_bytes
        if head is not None:
            self._head_bytes = head + len(data)
        super().data_received(data)
        head = self._head_bytes
        # 0: the data ended with a complete request (the usual case), nothing to check.
        if head and head > config.limits.max_request_head:
            if self.transport.is_closing():
                return
            log_client_error(
                "request-head-too-large",
                "closed a connection whose request head passed %d bytes",
                config.limits.max_request_head,
            )
            self.send_400_response(HEAD_TOO_LARGE)

    def handle_websocket_upgrade(self) -> None:
        """uvicorn's; then the parser (which holds this protocol's callbacks) is let go, as
        uvicorn's ``connection_lost`` does, since the WebSocket protocol now owns the socket:
        otherwise every upgrade leaves a cycle only a full GC frees."""
        super().handle_websocket_upgrade()
        self.parser = None  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # A new request's cycle (not a WebSocket upgrade): it writes through a _HeadHolder, set
        # before its task first runs. One waiting to send `100 Continue` writes directly.
        if cycle is not previous and cycle is not None and not cycle.waiting_for_100_continue:
            cycle.transport = _HeadHolder(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0


class _HeadHolder:
    """A request cycle's transport: its first write (the response head) waits for the second.

    The second write (the body's first bytes) goes out together with the head, as one write;
    a head still held when the event loop next runs its callbacks is written alone then.
    Everything else passes through.
    """

    __slots__ = ("_head", "_loop", "_started", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:
            self._started = True
            self._head = data
            self._loop.call_soon(self.flush)
            return
        head = self._head
        if head is None:
            self.transport.write(data)
            return
        self._head = None
        if len(data) <= _JOIN_LIMIT:
            self.transport.write(head + data)
        else:
            self.transport.writelines((head, data))

    def flush(self) -> None:
        """Write the head if it is still held (and the connection still open)."""
        head = self._head
        if head is not None:
            self._head = None
            if not self.transport.is_closing():
                self.transport.write(head)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        self.flush()
        self.transport.close()
