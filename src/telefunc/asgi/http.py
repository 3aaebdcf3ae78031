"""Small ASGI helpers: the request object given to the context factory, body reading, replies."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from http.cookies import SimpleCookie
from typing import Any, TypeVar, overload
from urllib.parse import parse_qs

from telefunc.server.origin import OriginRefusal, check_origin
from telefunc.server.rpc import RpcResponse

__all__ = [
    "AsgiBody",
    "Headers",
    "HttpRequest",
    "Receive",
    "Scope",
    "Send",
    "call_head",
    "origin_refusal",
    "send_response",
    "send_rpc_response",
]

logger = logging.getLogger("telefunc")

_T = TypeVar("_T")
_TEXT_PLAIN = b"text/plain"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers (the last value wins for repeated names)."""

    __slots__ = ("_raw", "_values")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._values = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | _T) -> str | _T: ...

    def get(self, name: str, /, default: Any = None) -> Any:
        # Mapping.get goes through __getitem__ and a KeyError for every absent header.
        return self._values.get(name.lower(), default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get_all(self, name: str) -> list[str]:
        """Every value sent under ``name``."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._raw if k.lower() == key]


def origin_refusal(
    scope: Mapping[str, Any], allowed: tuple[str, ...], headers: Headers | None = None
) -> OriginRefusal | None:
    """Cross-site protection for an HTTP or WebSocket scope (see :mod:`telefunc.server.origin`).

    ``allowed`` is the app's ``allowed_origins``. The own origin is the scope's scheme (uvicorn
    derives it from ``X-Forwarded-Proto`` for trusted proxies only) and the ``Host`` header.
    ``headers``: the scope's, when already built.
    """
    if headers is None:
        headers = Headers(scope.get("headers", []))
    return check_origin(
        scheme=scope.get("scheme", "http"),
        host=headers.get("host"),
        origins=headers.get_all("origin"),
        sec_fetch_site=headers.get("sec-fetch-site"),
        allowed=allowed,
    )


def call_head(
    scope: Scope,
) -> tuple[str | None, list[str], str | None, str | None, str | None]:
    """What the call endpoint reads of a request head, in one pass over its headers.

    ``(host, origins, sec_fetch_site, x_telefunc_request, content_length)``: the last value of
    each (every ``Origin``), ``None`` when absent. The same values :class:`Headers` gives, for
    much less work than building it.
    """
    host = fetch_site = kind = length = None
    origins: list[str] = []
    for name, value in scope.get("headers", ()):
        name = name.lower()
        if name == b"host":
            host = value
        elif name == b"content-length":
            length = value
        elif name == b"origin":
            origins.append(value.decode("latin-1"))
        elif name == b"sec-fetch-site":
            fetch_site = value
        elif name == b"x-telefunc-request":
            kind = value
    return (
        None if host is None else host.decode("latin-1"),
        origins,
        None if fetch_site is None else fetch_site.decode("latin-1"),
        None if kind is None else kind.decode("latin-1"),
        None if length is None else length.decode("latin-1"),
    )


def query_params(raw_query: bytes) -> dict[str, str]:
    """A query string's parameters, the first value of each."""
    if not raw_query:
        return {}
    text = raw_query.decode("latin-1")
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


class HttpRequest:
    """The request as the app's ``context`` factory sees it (HTTP or WebSocket).

    ``headers`` (case-insensitive), ``cookies``, ``query`` (first value per name), ``path``,
    ``method``, ``client`` (host, port) and the raw ASGI ``scope``.
    """

    __slots__ = ("_cookies", "_headers", "_query", "method", "path", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope.get("method", "GET")
        self.path: str = scope.get("path", "/")
        # Built when first read: a context factory may read neither.
        self._headers: Headers | None = None
        self._query: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def headers(self) -> Headers:
        """The request headers (case-insensitive)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self.scope.get("headers", []))
        return headers

    @property
    def query(self) -> dict[str, str]:
        """The query parameters, the first value of each."""
        query = self._query
        if query is None:
            query = self._query = query_params(self.scope.get("query_string", b""))
        return query

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies by name."""
        if self._cookies is None:
            jar = SimpleCookie()
            for header in self.headers.get_all("cookie"):
                try:
                    jar.load(header)
                except Exception:  # a malformed cookie header must not break the call
                    continue
            self._cookies = {name: morsel.value for name, morsel in jar.items()}
        return self._cookies

    @property
    def client(self) -> tuple[str, int] | None:
        """The peer address, when the server knows it."""
        client = self.scope.get("client")
        return (client[0], client[1]) if client else None


class AsgiBody:
    """Reads an ASGI HTTP request body incrementally (a :class:`BodyReader`), and tells when
    the client disconnects.

    Received messages are kept as a queue of chunks and handed out without re-copying what
    remains, so reading a body costs time linear in its size whatever the read sizes. It holds
    only what the caller asked for plus one ASGI message: limits are the caller's
    (:class:`~telefunc.server.request_body.BoundedBody`).
    """

    __slots__ = ("_chunks", "_disconnected", "_done", "_offset", "_over", "_receive")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # bytes of _chunks[0] already handed out
        self._done = False
        self._disconnected = False
        # Set once the body has ended: from then on `receive` can only report the disconnect.
        # Created only by `wait_disconnect` (a streaming response): most requests never wait.
        self._over: asyncio.Event | None = None

    def _note(self, message: Message) -> None:
        if message["type"] == "http.disconnect":
            self._disconnected = True
            self._end()
            return
        chunk = message.get("body", b"")
        if chunk:
            self._chunks.append(bytes(chunk))
        if not message.get("more_body", False):
            self._end()

    def _end(self) -> None:
        self._done = True
        if self._over is not None:
            self._over.set()

    async def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` bytes (all that is left when negative); ``b""`` at the end."""
        if not self._chunks:
            if self._done:
                return b""
            # The common body: one complete message, handed out as it is.
            message = await self._receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                chunk = message.get("body", b"")
                if max_bytes < 0 or len(chunk) <= max_bytes:
                    self._end()
                    return chunk if type(chunk) is bytes else bytes(chunk)
            self._note(message)
        if max_bytes < 0:
            while not self._done:
                self._note(await self._receive())
            return self._take(-1)
        while not self._chunks and not self._done:
            self._note(await self._receive())
        return self._take(max_bytes)

    def _take(self, max_bytes: int) -> bytes:
        """Hand out up to ``max_bytes`` buffered bytes (all when negative)."""
        chunks = self._chunks
        parts: list[bytes] = []
        wanted = max_bytes
        while chunks and wanted != 0:
            head = chunks[0]
            available = len(head) - self._offset
            if 0 <= wanted < available:
                parts.append(head[self._offset : self._offset + wanted])
                self._offset += wanted
                break
            parts.append(head[self._offset :] if self._offset else head)
            chunks.popleft()
            self._offset = 0
            if wanted > 0:
                wanted -= available
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def wait_disconnect(self) -> None:
        """Return once the client has disconnected.

        It first waits for the body to end — the body may still be being read (lazily, by an
        uploaded file) while a response streams, and calling ``receive`` here meanwhile would
        swallow its chunks — then for ASGI's ``http.disconnect``.
        """
        if not self._done:
            if self._over is None:
                self._over = asyncio.Event()
            await self._over.wait()
        while not self._disconnected:
            self._note(await self._receive())


_TEXT_PLAIN_HEADER = (b"content-type", _TEXT_PLAIN)


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = "text/plain",
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    """Send a complete response with a Content-Length."""
    raw_headers = [
        _TEXT_PLAIN_HEADER
        if content_type == "text/plain"
        else (b"content-type", content_type.encode("latin-1")),
        (b"content-length", b"%d" % len(body)),
    ]
    if headers:
        raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_rpc_response(send: Send, body: AsgiBody, response: RpcResponse) -> None:
    """Send ``response`` (a call's, or the SSE transport's): complete, or streamed."""
    if response.stream is None:
        await send_response(
            send, response.status, response.body, response.content_type, response.headers
        )
        return
    await _send_streaming(send, body, response)


async def _send_streaming(send: Send, body: AsgiBody, response: RpcResponse) -> None:
    """Send a streaming response chunk by chunk; cancel it when the client disconnects."""
    stream = response.stream
    assert stream is not None
    headers = [(b"content-type", response.content_type.encode("latin-1"))]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]

    async def pump() -> None:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        # `send` returns once the server took the chunk (uvicorn waits while the socket's
        # buffer is full), and only then is the next chunk computed: backpressure.
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    pumping = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(body.wait_disconnect())
    try:
        await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
        if not pumping.done():  # the client went away: stop producing
            pumping.cancel()
        try:
            await pumping
        except asyncio.CancelledError:
            if not watching.done():  # our own task was cancelled, not just the pump
                raise
        except OSError:  # the connection broke while writing
            logger.info("telefunc: the client went away during a streaming response")
    finally:
        watching.cancel()
        if not pumping.done():
            pumping.cancel()
        await stream.aclose()
