"""The uvicorn HTTP protocol ``telefunc serve`` runs on httptools: uvicorn's own, head bounded.

uvicorn's h11 protocol stops buffering a request head at ``h11_max_incomplete_event_size``;
its httptools protocol has no such limit (llhttp hands over the URL and each header piece by
piece, and both are collected without a cap), so a client could grow one request's head without
end. :class:`TelefuncHttpToolsProtocol` counts the bytes received while a request head is
incomplete and answers 400 and closes past
``config.limits.max_request_head`` (plus at most the one read that
crossed it), as uvicorn does for h11.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from telefunc.config import config
from telefunc.endpoint.client_errors import log_client_error

__all__ = ["HEAD_TOO_LARGE", "TelefuncHttpToolsProtocol"]

#: The 400 response's body.
HEAD_TOO_LARGE = "Request head too large."


class TelefuncHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on an incomplete request head."""

    #: Bytes received since the current request head began; ``None`` while reading a body.
    _head_bytes: int | None = 0

    def data_received(self, data: bytes) -> None:
        head = self._head_bytes
        if head is not None:
            self._head_bytes = head + len(data)
        super().data_received(data)
        head = self._head_bytes
        limit = config.limits.max_request_head
        if head is not None and head > limit and not self.transport.is_closing():
            log_client_error(
                "request-head-too-large",
                "closed a connection whose request head passed %d bytes",
                limit,
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
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0
