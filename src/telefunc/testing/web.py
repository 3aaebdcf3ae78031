"""Fetch-API objects shared by the ``workers`` and ``js`` stand-ins: headers, bodies, streams.

``workers.Request``/``workers.Response`` (Python SDK style, keyword arguments) and
``js.Request.new``/``js.Response.new`` (JS style, an init object) build the same classes here, as
the real SDK accepts a JS ``Response`` returned from a Python handler.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .ffi import JsException, JsMap, JsObject, JsProxy, from_js

if TYPE_CHECKING:
    from .websocket import WebSocket

__all__ = [
    "Body",
    "Headers",
    "ReadableStream",
    "Request",
    "Response",
    "TransformStream",
    "WritableStreamDefaultWriter",
    "init_options",
]

BodyInit = Any  # str | bytes | ReadableStream | AsyncIterable[bytes | str] | None


def init_options(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a trailing JS options object (dict/JsObject/JsMap) with Python keyword arguments.

    Pyodide turns keyword arguments into a trailing options object (docs/cloudflare.md §1.3), so
    ``get(id, locationHint="enam")`` and ``get(id, {"locationHint": "enam"})`` mean the same.
    """
    out: dict[str, Any] = {}
    for a in args:
        if a is None:
            continue
        if isinstance(a, JsObject | JsMap):
            out.update(a.to_py(depth=1))
        elif isinstance(a, Mapping):
            out.update(a)
        else:
            raise JsException("TypeError", f"expected an options object, got {type(a).__name__}")
    out.update(kwargs)
    return out


class Headers(JsProxy):
    """Case-insensitive HTTP headers (the fetch ``Headers`` class)."""

    __slots__ = ("_items",)

    def __init__(self, init: Any = None) -> None:
        self._items: list[tuple[str, str]] = []
        if init is None:
            return
        if isinstance(init, Headers):
            self._items = list(init._items)
            return
        if isinstance(init, JsObject | JsMap):
            init = init.to_py(depth=1)
        pairs: Iterable[Any] = init.items() if isinstance(init, Mapping) else init
        for k, v in pairs:
            self.append(str(k), str(v))

    @classmethod
    def new(cls, init: Any = None) -> Headers:
        """``new Headers(init)``."""
        return cls(init)

    def get(self, name: str, default: str | None = None) -> str | None:
        """Values of ``name`` joined by ``", "``, or ``default`` (``None``) when absent."""
        n = name.lower()
        vals = [v for k, v in self._items if k == n]
        return ", ".join(vals) if vals else default

    def getSetCookie(self) -> list[str]:
        """All ``set-cookie`` values."""
        return [v for k, v in self._items if k == "set-cookie"]

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name``."""
        n = name.lower()
        self._items = [(k, v) for k, v in self._items if k != n]
        self._items.append((n, str(value)))

    def append(self, name: str, value: str) -> None:
        """Add a value of ``name``."""
        self._items.append((name.lower(), str(value)))

    def has(self, name: str) -> bool:
        """Whether ``name`` is present."""
        n = name.lower()
        return any(k == n for k, _ in self._items)

    def delete(self, name: str) -> None:
        """Remove ``name``."""
        n = name.lower()
        self._items = [(k, v) for k, v in self._items if k != n]

    def entries(self) -> Iterator[tuple[str, str]]:
        """``(name, value)`` pairs, names lower-cased and sorted as in the fetch spec."""
        names = sorted({k for k, _ in self._items})
        return iter([(n, self.get(n) or "") for n in names])

    def keys(self) -> Iterator[str]:
        """Header names."""
        return (k for k, _ in self.entries())

    def values(self) -> Iterator[str]:
        """Header values."""
        return (v for _, v in self.entries())

    def items(self) -> list[tuple[str, str]]:
        """Pythonic alias of :meth:`entries`."""
        return list(self.entries())

    def raw_items(self) -> list[tuple[str, str]]:
        """Every stored pair, duplicates kept (for the HTTP front end)."""
        return list(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self.entries()

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)

    def to_py(self, *, depth: int = -1, **_options: Any) -> Any:
        """A ``dict`` of the headers."""
        return dict(self.entries())

    def __repr__(self) -> str:
        return f"Headers({dict(self.entries())!r})"


_EOF = object()


class ReadableStream(JsProxy):
    """A byte stream that can be read once, by async iteration or ``getReader()``."""

    __slots__ = ("_iter", "_locked")

    def __init__(self, source: AsyncIterable[Any] | None = None) -> None:
        self._iter: AsyncIterator[Any] | None = source.__aiter__() if source is not None else None
        self._locked = False

    @property
    def locked(self) -> bool:
        """Whether a reader took the stream."""
        return self._locked

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._locked:
            raise JsException("TypeError", "ReadableStream is locked")
        self._locked = True
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self._iter is None:
            return
        async for chunk in self._iter:
            yield _to_bytes(chunk)

    @classmethod
    def new(cls, source: Any = None) -> ReadableStream:
        """``new ReadableStream({start, pull, cancel})``: chunks come from the source's
        ``controller.enqueue`` calls until ``controller.close()`` (async ``pull`` awaited)."""
        if source is None:
            return cls()
        return cls(_pull_source(source))

    def getReader(self) -> _Reader:
        """A reader with ``await read()`` → ``{done, value}``."""
        return _Reader(self.__aiter__())

    async def cancel(self, reason: Any = None) -> None:
        """Stop the source."""
        it = self._iter
        self._iter = None
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()


class _Controller(JsProxy):
    """``ReadableStreamDefaultController``: what a source's ``pull`` enqueues into."""

    __slots__ = ("closed", "queue")

    def __init__(self) -> None:
        self.queue: list[Any] = []
        self.closed = False

    def enqueue(self, chunk: Any) -> None:
        """Add one chunk."""
        self.queue.append(chunk)

    def close(self) -> None:
        """End the stream after the queued chunks."""
        self.closed = True


async def _pull_source(source: Any) -> AsyncIterator[Any]:
    controller = _Controller()
    pull = getattr(source, "pull", None)
    cancel = getattr(source, "cancel", None)
    start = getattr(source, "start", None)
    finished = False
    try:
        if callable(start):
            started = start(controller)
            if inspect.isawaitable(started):
                await started
        while True:
            while controller.queue:
                yield controller.queue.pop(0)
            if controller.closed or not callable(pull):
                finished = True
                return
            pulled = pull(controller)
            if inspect.isawaitable(pulled):
                await pulled
    finally:
        if not finished and callable(cancel):  # the reader went away early
            cancelled = cancel(None)
            if inspect.isawaitable(cancelled):
                await cancelled


class _Reader(JsProxy):
    __slots__ = ("_it",)

    def __init__(self, it: AsyncIterator[bytes]) -> None:
        self._it = it

    async def read(self) -> JsObject:
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            return JsObject(done=True, value=None)
        return JsObject(done=False, value=chunk)

    def releaseLock(self) -> None:
        """No-op."""

    async def cancel(self, reason: Any = None) -> None:
        """Stop reading."""
        aclose = getattr(self._it, "aclose", None)
        if aclose is not None:
            await aclose()


class WritableStreamDefaultWriter(JsProxy):
    """The writer of a :class:`TransformStream`'s writable side."""

    __slots__ = ("_closed", "_queue")

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self._queue = queue
        self._closed = False

    async def write(self, chunk: Any) -> None:
        """Queue a chunk for the readable side."""
        if self._closed:
            raise JsException("TypeError", "This WritableStream has been closed.")
        self._queue.put_nowait(_to_bytes(chunk))

    async def close(self) -> None:
        """End the readable side."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_EOF)

    async def abort(self, reason: Any = None) -> None:
        """End the readable side with an error."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(JsException("Error", str(reason)))

    @property
    def ready(self) -> asyncio.Future[None]:
        """Always ready (backpressure is not modelled)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def releaseLock(self) -> None:
        """No-op."""


class _Writable(JsProxy):
    __slots__ = ("_queue",)

    def __init__(self, queue: asyncio.Queue[Any]) -> None:
        self._queue = queue

    def getWriter(self) -> WritableStreamDefaultWriter:
        return WritableStreamDefaultWriter(self._queue)


class TransformStream(JsProxy):
    """An identity ``TransformStream``: bytes written to ``writable`` come out of ``readable``."""

    __slots__ = ("readable", "writable")

    def __init__(self) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def drain() -> AsyncIterator[bytes]:
            while True:
                item = await queue.get()
                if item is _EOF:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        self.readable = ReadableStream(drain())
        self.writable = _Writable(queue)

    @classmethod
    def new(cls) -> TransformStream:
        """``new TransformStream()``."""
        return cls()


def _to_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, str):
        return chunk.encode()
    if isinstance(chunk, bytes | bytearray | memoryview):
        return bytes(chunk)
    to_bytes = getattr(chunk, "to_bytes", None)
    if callable(to_bytes):
        return bytes(to_bytes())
    raise JsException("TypeError", f"cannot use {type(chunk).__name__} as a body chunk")


class Body:
    """Body reading shared by :class:`Request` and :class:`Response`."""

    _data: bytes | None
    _stream: ReadableStream | None
    _used: bool

    def _init_body(self, body: BodyInit) -> None:
        self._used = False
        self._stream = None
        self._data = None
        if body is None:
            return
        if isinstance(body, ReadableStream):
            self._stream = body
        elif isinstance(body, str | bytes | bytearray | memoryview):
            self._data = _to_bytes(body)
        elif hasattr(body, "__aiter__"):
            self._stream = ReadableStream(body)
        elif isinstance(body, JsObject | Mapping):
            raise JsException("TypeError", "use Response.json() for objects")
        else:
            self._data = _to_bytes(body)

    @property
    def body(self) -> ReadableStream | None:
        """The body as a :class:`ReadableStream` (``None`` without a body)."""
        if self._stream is not None:
            return self._stream
        if self._data is None:
            return None
        data = self._data

        async def once() -> AsyncIterator[bytes]:
            yield data

        self._stream = ReadableStream(once())
        return self._stream

    @property
    def bodyUsed(self) -> bool:
        """Whether the body was read."""
        return self._used

    @property
    def is_streaming(self) -> bool:
        """Whether the body is a stream (not a buffered value)."""
        return self._stream is not None and self._data is None

    async def bytes(self) -> builtins.bytes:
        """The whole body."""
        if self._used:
            raise JsException("TypeError", "Body has already been used.")
        self._used = True
        if self._data is not None:
            return self._data
        if self._stream is None:
            return b""
        parts = [chunk async for chunk in self._stream]
        return b"".join(parts)

    async def arrayBuffer(self) -> builtins.bytes:
        """The whole body (an ``ArrayBuffer``; bytes here)."""
        return await self.bytes()

    async def text(self) -> str:
        """The body decoded as UTF-8."""
        return (await self.bytes()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body parsed as JSON."""
        text = await self.text()
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise JsException("SyntaxError", f"Unexpected token in JSON: {exc}") from None

    def _clone_body(self) -> BodyInit:
        if self._used:
            raise JsException("TypeError", "Body has already been used.")
        if self._stream is not None and self._data is None:
            raise JsException("TypeError", "cloning a streamed body is not supported here")
        return self._data


class Request(Body, JsProxy):
    """An HTTP request (``workers.Request`` / JS ``Request``).

    ``cf`` carries ``colo``, ``country``, ``continent``, ... (docs/cloudflare.md §1.8); the emulator
    fills it from the colo a test chose.
    """

    def __init__(
        self,
        input: str | Request,
        init: Any = None,
        /,
        *,
        method: str | None = None,
        headers: Any = None,
        body: BodyInit = None,
        cf: Any = None,
        **_other: Any,
    ) -> None:
        opts = init_options((init,), {})
        method = method or opts.get("method")
        headers = headers if headers is not None else opts.get("headers")
        body = body if body is not None else opts.get("body")
        cf = cf if cf is not None else opts.get("cf")
        if isinstance(input, Request):
            self.url: str = input.url
            self.method: str = (method or input.method).upper()
            self.headers: Headers = Headers(headers if headers is not None else input.headers)
            self._cf: Any = cf if cf is not None else input._cf
            self._init_body(body if body is not None else input._clone_body())
        else:
            self.url = str(input)
            self.method = (method or "GET").upper()
            self.headers = Headers(headers)
            self._cf = cf
            self._init_body(body)
        parts = urlsplit(self.url)
        if not parts.scheme or not parts.netloc:
            raise JsException("TypeError", f"Invalid URL: {self.url}")
        if self.method in ("GET", "HEAD") and (self._data or self._stream):
            raise JsException("TypeError", "Request with a GET or HEAD method cannot have a body.")

    @classmethod
    def new(cls, input: str | Request, init: Any = None, **kw: Any) -> Request:
        """``new Request(input, init)``."""
        return cls(input, init, **kw)

    @property
    def cf(self) -> Any:
        """``request.cf`` as a JS object (``None`` when the request has none)."""
        if self._cf is None:
            return None
        if isinstance(self._cf, JsObject):
            return self._cf
        return JsObject(from_js(self._cf))

    def clone(self) -> Request:
        """A copy with its own body."""
        return Request(self)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


_REASONS = {
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    426: "Upgrade Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _ResponseJson:
    """Make ``response.json()`` read the body on instances while ``Response.json(data)`` builds.

    The SDK has ``Response.json(data)`` as a constructor and ``await resp.json()`` on fetched
    responses; a descriptor gives both under one name.
    """

    def __get__(self, obj: Any, owner: Any) -> Any:
        if obj is None:
            return _build_json.__get__(owner, owner)
        return obj.json_body


def _build_json(
    cls: Any,
    data: Any,
    init: Any = None,
    *,
    status: int = 200,
    headers: Any = None,
    **kw: Any,
) -> Response:
    opts = init_options((init,), kw)
    h = Headers(headers if headers is not None else opts.get("headers"))
    if not h.has("content-type"):
        h.set("content-type", "application/json")
    resp: Response = cls(json.dumps(from_js(data)), status=opts.get("status", status), headers=h)
    return resp


class Response(Body, JsProxy):
    """An HTTP response (``workers.Response`` / JS ``Response``).

    ``Response(body, status=101, web_socket=client)`` (Python SDK) and
    ``Response.new(None, {"status": 101, "webSocket": client})`` (JS) both hand a WebSocket back.
    """

    def __init__(
        self,
        body: BodyInit = None,
        init: Any = None,
        /,
        *,
        status: int | None = None,
        statusText: str | None = None,
        status_text: str | None = None,
        headers: Any = None,
        web_socket: WebSocket | None = None,
        webSocket: WebSocket | None = None,
        **_other: Any,
    ) -> None:
        opts = init_options((init,), {})
        self.status: int = int(status if status is not None else opts.get("status", 200))
        ws = web_socket or webSocket or opts.get("webSocket") or opts.get("web_socket")
        if self.status == 101:
            if ws is None:
                raise JsException(
                    "RangeError", "Responses with status 101 must have a webSocket attached."
                )
        elif not 200 <= self.status <= 599:
            raise JsException("RangeError", f"Invalid HTTP status code: {self.status}")
        self.webSocket: WebSocket | None = ws
        #: A response built by the worker has no URL (JS ``""``).
        self.url = ""
        self.type = "default"
        self.statusText: str = (
            statusText or status_text or opts.get("statusText") or _REASONS.get(self.status, "")
        )
        self.headers: Headers = Headers(headers if headers is not None else opts.get("headers"))
        self._init_body(body)
        if isinstance(body, str) and not self.headers.has("content-type"):
            self.headers.set("content-type", "text/plain;charset=UTF-8")

    @classmethod
    def new(cls, body: BodyInit = None, init: Any = None, **kw: Any) -> Response:
        """``new Response(body, init)``."""
        return cls(body, init, **kw)

    # ``Response.json(data)`` builds, ``await resp.json()`` reads (see _ResponseJson).
    json: Any = _ResponseJson()

    async def json_body(self) -> Any:
        """The body parsed as JSON (``Response.json`` is the JS factory on the class)."""
        return await Body.json(self)

    @classmethod
    def redirect(cls, url: str, status: int = 302) -> Response:
        """``Response.redirect(url, status)``."""
        return cls(None, status=status, headers={"location": url})

    @property
    def ok(self) -> bool:
        """``200 <= status < 300``."""
        return 200 <= self.status < 300

    @property
    def web_socket(self) -> WebSocket | None:
        """Python alias of :attr:`webSocket`."""
        return self.webSocket

    def clone(self) -> Response:
        """A copy with its own body."""
        return Response(self._clone_body(), status=self.status, headers=self.headers)

    def __repr__(self) -> str:
        return f"<Response {self.status}>"
