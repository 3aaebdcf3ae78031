"""``WebSocketPair`` and ``WebSocket`` as in the Workers runtime, in-process.

The two ends of a pair are connected: ``send`` on one is a ``message`` on the other. An end
accepted with ``ws.accept()`` dispatches to ``addEventListener`` handlers; an end accepted with
``ctx.acceptWebSocket(ws)`` (hibernation API, docs/cloudflare.md §1.6) dispatches to the Durable
Object's ``webSocketMessage/Close/Error`` methods through the object's input gate, and survives
hibernation together with its attachment. Messages received by an accepted server end are limited
to 32 MiB; a larger one closes the socket with 1009 (docs/cloudflare.md §3, workerd
``WEBSOCKET_MAX_MESSAGE_SIZE``).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ._context import current_host
from .clone import clone_size, structured_clone
from .ffi import JsException, JsObject, JsProxy

__all__ = [
    "MAX_ATTACHMENT_BYTES",
    "MAX_MESSAGE_BYTES",
    "WebSocket",
    "WebSocketClient",
    "WebSocketPair",
]

MAX_MESSAGE_BYTES = 32 << 20
"""Largest message an accepted end receives (32 MiB, docs/cloudflare.md §3)."""

MAX_ATTACHMENT_BYTES = 2048
"""Largest serialized attachment (Cloudflare documents 2,048 bytes; JSON size approximates it)."""

CONNECTING, OPEN, CLOSING, CLOSED = 0, 1, 2, 3


class HibernationHost(Protocol):
    """What a Durable Object host offers to the sockets it accepted."""

    def ws_event(self, ws: WebSocket, kind: str, payload: Any) -> None:
        """Deliver ``message`` / ``close`` / ``error`` for ``ws``."""

    def run_listener(self, listener: Callable[..., Any], event: Any) -> None:
        """Run an ``addEventListener`` callback as an event of the object."""

    def send_through_output_gate(self, fn: Callable[[], None]) -> None:
        """Hold an outgoing message until earlier writes are durable."""

    @property
    def plain_sockets(self) -> set[WebSocket]:
        """Sockets accepted with ``accept()`` inside the object."""


def _size(data: str | bytes) -> int:
    return len(data.encode()) if isinstance(data, str) else len(data)


class WebSocket(JsProxy):
    """One end of a :class:`WebSocketPair`.

    ``__slots__`` keeps user code from hanging state on the socket object: in the real runtime
    that state would be lost on hibernation while the socket itself survives.
    """

    __slots__ = (
        "_accepted",
        "_attachment",
        "_auto_response_ts",
        "_closed_by_peer",
        "_host",
        "_limit",
        "_listeners",
        "_owner",
        "_peer",
        "_pending",
        "_sent_close",
        "_tags",
        "extensions",
        "protocol",
        "readyState",
        "url",
    )

    CONNECTING = CONNECTING
    OPEN = OPEN
    CLOSING = CLOSING
    CLOSED = CLOSED

    def __init__(self) -> None:
        self._peer: WebSocket | None = None
        self._accepted = False
        self._host: HibernationHost | None = None
        self._owner: HibernationHost | None = None
        self._listeners: dict[str, list[Any]] = {}
        self._pending: list[tuple[str, Any]] = []
        self._attachment: Any = None
        self._tags: list[str] = []
        self._limit = False
        self._sent_close = False
        self._closed_by_peer = False
        self._auto_response_ts: float | None = None
        self.readyState = OPEN
        self.url: str | None = None
        self.protocol = ""
        self.extensions = ""

    # -- accepting -------------------------------------------------------------------------
    def accept(self) -> None:
        """Start delivering events to ``addEventListener`` handlers (non-hibernatable)."""
        if self._accepted:
            raise JsException("TypeError", "Can't accept() WebSocket that was already used.")
        self._accepted = True
        owner = current_host.get()
        if owner is not None:
            # Accepted inside a Durable Object: its listeners run as that object's events, and
            # the open socket keeps the object in memory (it cannot hibernate).
            self._owner = owner
            self._limit = True
            owner.plain_sockets.add(self)
        self._flush_pending()

    def _accept_hibernatable(self, host: HibernationHost, tags: list[str]) -> None:
        if self._accepted:
            raise JsException("TypeError", "Can't accept() WebSocket that was already used.")
        if len(tags) > 10 or any(len(t) > 256 for t in tags):
            raise JsException("Error", "a WebSocket may have at most 10 tags of 256 chars")
        self._accepted = True
        self._host = host
        self._tags = list(tags)
        self._limit = True
        self._flush_pending()

    def _enforce_limit(self) -> None:
        self._limit = True

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for kind, payload in pending:
            self._dispatch(kind, payload)

    # -- events ----------------------------------------------------------------------------
    def addEventListener(self, type: str, listener: Callable[..., Any], *_: Any) -> None:
        """Register a handler for ``message``, ``close`` or ``error``."""
        self._listeners.setdefault(type, []).append(listener)

    def removeEventListener(self, type: str, listener: Callable[..., Any], *_: Any) -> None:
        """Remove a handler."""
        lst = self._listeners.get(type, [])
        if listener in lst:
            lst.remove(listener)

    def _dispatch(self, kind: str, payload: Any) -> None:
        if not self._accepted:
            self._pending.append((kind, payload))
            return
        if self._host is not None:
            self._host.ws_event(self, kind, payload)
            return
        if kind == "message":
            event = JsObject(type="message", data=payload)
        elif kind == "close":
            code, reason, clean = payload
            event = JsObject(type="close", code=code, reason=reason, wasClean=clean)
        else:
            event = JsObject(type="error", error=payload, message=str(payload))
        for listener in list(self._listeners.get(kind, [])):
            if self._owner is not None:
                self._owner.run_listener(listener, event)
                continue
            result = listener(event)
            if inspect.isawaitable(result):
                _background.add(task := asyncio.ensure_future(result))
                task.add_done_callback(_background.discard)

    # -- sending ---------------------------------------------------------------------------
    def send(self, message: str | bytes | bytearray | memoryview) -> None:
        """Send a text (``str``) or binary message to the other end."""
        if self.readyState != OPEN or self._sent_close:
            raise JsException("TypeError", "Can't call WebSocket send() after close().")
        if not self._accepted and self._host is None:
            raise JsException(
                "TypeError",
                "You must call one of accept() or state.acceptWebSocket() on this WebSocket "
                "before sending messages.",
            )
        data: str | bytes = message if isinstance(message, str) else bytes(message)
        peer = self._peer
        if peer is not None:
            _send_out(lambda: _soon(peer._receive, data))

    def _receive(self, data: str | bytes) -> None:
        if self.readyState == CLOSED:
            return
        n = _size(data)
        if self._limit and n > MAX_MESSAGE_BYTES:
            # docs/cloudflare.md §3: the receiving runtime fails the connection with 1009.
            # The peer's close frame
            # says "Message is too large" (checked against workerd by test_conformance); the
            # detailed "Message is too large: N > 33554432" is the error the object sees.
            detail = f"Message is too large: {n} > {MAX_MESSAGE_BYTES}"
            self.readyState = CLOSED
            self._sent_close = True
            if self._peer is not None:
                _soon(self._peer._receive_close, 1009, "Message is too large", False)
            self._dispatch("error", JsException("Error", detail))
            return
        self._dispatch("message", data)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start (or complete) the closing handshake."""
        if code is not None and not (code == 1000 or 3000 <= code <= 4999 or 1001 <= code <= 1014):
            raise JsException("TypeError", f"Invalid WebSocket close code: {code}.")
        if self._sent_close:
            return
        self._sent_close = True
        self.readyState = CLOSED if self._closed_by_peer else CLOSING
        peer = self._peer
        if peer is not None:
            _send_out(lambda: _soon(peer._receive_close, code or 1005, reason or "", True))

    def _receive_close(self, code: int, reason: str, clean: bool) -> None:
        if self._closed_by_peer:
            return
        self._closed_by_peer = True
        if not self._sent_close and self.readyState != CLOSED:
            # Auto-reply to close (compat flag web_socket_auto_reply_to_close, default on for
            # recent compatibility dates): the handshake completes without user code.
            self._sent_close = True
            if self._peer is not None:
                _soon(self._peer._receive_close, code, reason, clean)
        self.readyState = CLOSED
        self._dispatch("close", (code, reason, clean))

    # -- attachments (hibernation API) -----------------------------------------------------
    def serializeAttachment(self, value: Any) -> None:
        """Keep a structured clone of ``value`` with the socket; it survives hibernation."""
        copy = structured_clone(value)
        size = clone_size(copy)
        if size > MAX_ATTACHMENT_BYTES:
            raise JsException(
                "Error",
                f"A WebSocket 'attachment' cannot be larger than {MAX_ATTACHMENT_BYTES} bytes. "
                f"'attachment' was {size} bytes.",
            )
        self._attachment = copy

    def deserializeAttachment(self) -> Any:
        """A fresh copy of the attachment (``None`` if none was set)."""
        return structured_clone(self._attachment)

    def __repr__(self) -> str:
        return f"<WebSocket readyState={self.readyState} tags={self._tags}>"


_background: set[asyncio.Future[Any]] = set()


def _send_out(fn: Callable[[], None]) -> None:
    host = current_host.get()
    if host is None:
        fn()
    else:
        # docs/cloudflare.md §3 output gate: a message sent after a write leaves once the
        # write is durable.
        host.send_through_output_gate(fn)


def _soon(fn: Callable[..., Any], *args: Any) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        fn(*args)
        return
    # An empty context: the receiver must not run as the sender's object.
    loop.call_soon(fn, *args, context=contextvars.Context())


class WebSocketPair(JsProxy):
    """Two connected :class:`WebSocket` ends: ``client, server = WebSocketPair.new()``.

    Also indexable (``pair[0]``, ``pair[1]``) and ``object_values()``-able, as in Pyodide
    (docs/cloudflare.md §1.6).
    """

    __slots__ = ("client", "server")

    def __init__(self) -> None:
        self.client = WebSocket()
        self.server = WebSocket()
        self.client._peer = self.server
        self.server._peer = self.client

    @classmethod
    def new(cls) -> WebSocketPair:
        """``new WebSocketPair()``."""
        return cls()

    def __iter__(self) -> Iterator[WebSocket]:
        return iter((self.client, self.server))

    def __getitem__(self, index: int | str) -> WebSocket:
        return (self.client, self.server)[int(index)]

    def object_values(self) -> list[WebSocket]:
        """``Object.values(pair)`` → ``[client, server]``."""
        return [self.client, self.server]


class WebSocketClient:
    """Test-side helper driving the client end of a pair (what a browser would do).

    ``await c.receive()`` returns the next message; it raises :class:`ConnectionError` with the
    close code once the socket closed. ``c.close_code`` / ``c.close_reason`` hold the close.
    """

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()
        ws.addEventListener("message", lambda e: self._queue.put_nowait(("message", e.data)))
        ws.addEventListener("close", self._on_close)
        ws.addEventListener("error", lambda e: self._queue.put_nowait(("error", e.error)))
        ws.accept()

    def _on_close(self, e: Any) -> None:
        self.close_code = e.code
        self.close_reason = e.reason
        self.closed.set()
        self._queue.put_nowait(("close", (e.code, e.reason)))

    def send(self, data: str | bytes) -> None:
        """Send a message to the server end."""
        self.ws.send(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client side."""
        self.ws.close(code, reason)

    async def receive(self, timeout: float = 5.0) -> str | bytes:
        """The next message (bounded wait in real time)."""
        kind, payload = await asyncio.wait_for(self._queue.get(), timeout)
        if kind == "message":
            data: str | bytes = payload
            return data
        if kind == "close":
            self._queue.put_nowait((kind, payload))
            raise ConnectionError(f"WebSocket closed: {payload[0]} {payload[1]}")
        raise ConnectionError(f"WebSocket error: {payload}")

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the close; returns ``(code, reason)``."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code, self.close_reason
