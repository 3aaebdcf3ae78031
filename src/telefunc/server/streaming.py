"""Streaming return values: async generators, byte streams, awaitables, downloads and files.

:class:`InlineBody` encodes them in the response body (``binary-inline`` or ``sse-inline``,
docs/protocol.md §6); the ``channel`` transport is :mod:`telefunc.server.stream_channel`. A
byte stream must be marked with :class:`ByteStream` (an async generator of ``bytes`` is a
generator of ``Uint8Array`` values). Each value is produced only as fast as it is written out,
runs in the call's context, and is cancelled when the body is closed; an exception in one value
ends the whole body with the in-band error frame, and the call's scope stays open until then.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, Final, Protocol, runtime_checkable

from telefunc.endpoint.client_errors import log_client_error
from telefunc.errors import Abort, BodyTooLarge, MalformedBody, UsageError
from telefunc.server.bugs import report_bug
from telefunc.server.context import CallScope, reset_scope, set_scope
from telefunc.server.files import UploadedFile
from telefunc.wire.framing import SSE_CONTENT_TYPE, InlineBodyEncoder
from telefunc.wire.ids import random_id
from telefunc.wire.placeholders import (
    BINARY_INLINE,
    BLOB_PREFIX,
    CHANNEL,
    FILE_PREFIX,
    GENERATOR_PREFIX,
    PROMISE_PREFIX,
    SSE_INLINE,
    STREAM_PREFIX,
    STREAM_TRANSPORTS,
)
from telefunc.wire.serializer import stringify

__all__ = [
    "MAX_STREAMS",
    "STREAMING_HEADERS",
    "BodyStream",
    "ByteStream",
    "InlineBody",
    "StreamCollector",
    "StreamSource",
    "content_type_for",
    "error_payload",
    "resolve_transport",
]

logger = logging.getLogger("telefunc")

#: The u8 stream index limits one response to this many streaming values.
MAX_STREAMS: Final = 256
#: Extra headers of a streaming response (proxies must neither buffer nor transform it).
STREAMING_HEADERS: Final = (
    ("Cache-Control", "no-cache, no-transform"),
    ("X-Accel-Buffering", "no"),
)
_FILE_CHUNK = 64 * 1024

ChunkOpener = Callable[[], AsyncIterator[bytes]]


# --------------------------------------------------------------------------------------------
# response bodies


def error_payload(
    exc: BaseException, where: str = "a streaming value", scope: CallScope | None = None
) -> bytes:
    """The error frame's payload for ``exc``: an abort with its value, else a bug, logged and
    reported to ``on_bug`` with the call's ``scope``.

    An uploaded file whose request body broke its bounds or framing is the client's fault: one
    rate-limited line, no traceback.
    """
    if isinstance(exc, Abort):
        try:
            return stringify({"type": "abort", "abortValue": exc.value}).encode("utf-8")
        except Exception:
            logger.exception("telefunc: the Abort value raised by %s cannot be serialized", where)
    elif isinstance(exc, BodyTooLarge | MalformedBody):
        kind = "body-too-large" if isinstance(exc, BodyTooLarge) else "malformed-body"
        log_client_error(kind, "telefunc: %s failed on the request body: %s", where, exc)
    else:
        logger.error("telefunc: %s raised", where, exc_info=exc)
        report_bug(exc, scope, "streaming value")
    return stringify({"type": "bug"}).encode("utf-8")


def content_type_for(transport: str) -> str:
    """The Content-Type of a streaming body sent with ``transport``."""
    return SSE_CONTENT_TYPE if transport == SSE_INLINE else "application/octet-stream"


_warned_channel = False


def resolve_transport(requested: Any, default: str, *, channels: bool = False) -> str:
    """The stream transport to use: the envelope's valid ``stream.transport``, else ``default``.

    ``channels`` says whether the server can open channels (it has a hub); without them
    ``channel`` falls back to ``binary-inline`` (logged once).
    """
    transport = requested if requested in STREAM_TRANSPORTS else default
    if transport == CHANNEL and not channels:
        global _warned_channel
        if not _warned_channel:
            _warned_channel = True
            logger.warning(
                "telefunc: the 'channel' stream transport needs channels, which this server "
                "does not serve; streaming values are sent with 'binary-inline' instead"
            )
        return BINARY_INLINE
    return str(transport)


# --------------------------------------------------------------------------------------------
# the values that stream


@runtime_checkable
class StreamSource(Protocol):
    """An object that streams raw bytes under its own placeholder (``download(...)`` results).

    ``__telefunc_stream__()`` returns ``(prefix, metadata, open)``: the placeholder prefix, the
    metadata that follows ``__index`` (e.g. name, type, size), and a function opening the bytes.
    """

    def __telefunc_stream__(self) -> tuple[str, dict[str, Any], ChunkOpener]:
        """See the class docstring."""
        ...


class ByteStream:
    """Marks an iterable of ``bytes`` (async or not) as a byte stream (``!TelefuncStream:``).

    The client receives a ``ReadableStream<Uint8Array>``. Without this wrapper an async
    generator of ``bytes`` is a generator of ``Uint8Array`` values. A synchronous iterable is
    iterated on the event loop, so it should not block.
    """

    __slots__ = ("source",)

    def __init__(self, source: AsyncIterable[bytes] | Iterable[bytes]) -> None:
        if not isinstance(source, AsyncIterable | Iterable) or isinstance(
            source, bytes | bytearray | memoryview | str
        ):
            raise UsageError("ByteStream() needs an iterable of bytes (async or not)")
        self.source = source

    def __telefunc_stream__(self) -> tuple[str, dict[str, Any], ChunkOpener]:
        """A ``!TelefuncStream:`` placeholder and the source's bytes."""
        return STREAM_PREFIX, {}, lambda: iter_bytes(self.source)


async def iter_bytes(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[bytes]:
    """The non-empty ``bytes`` chunks of ``source``; closes an async source when stopped.

    Empty chunks are skipped: on the wire an empty payload means "done".
    """
    if isinstance(source, AsyncIterable):
        iterator = aiter(source)
        try:
            async for chunk in iterator:
                data = _as_bytes(chunk)
                if data:
                    yield data
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
    else:
        for chunk in source:
            data = _as_bytes(chunk)
            if data:
                yield data


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise UsageError(f"a byte stream must yield bytes, got {type(chunk).__name__}")


def _is_async_iterator(value: Any) -> bool:
    cls = type(value)
    return hasattr(cls, "__anext__") and hasattr(cls, "__aiter__")


async def _generator_chunks(iterator: Any) -> AsyncIterator[bytes]:
    try:
        while True:
            try:
                item = await iterator.__anext__()
            except StopAsyncIteration:
                return
            yield stringify(item).encode("utf-8")
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


async def _promise_chunks(awaitable: Any) -> AsyncIterator[bytes]:
    if inspect.iscoroutine(awaitable):
        value = await awaitable
    else:
        # A future/task the telefunction shares: the client going away must not cancel it
        # (a JavaScript promise cannot be cancelled either).
        value = await asyncio.shield(asyncio.ensure_future(awaitable))
    yield stringify(value).encode("utf-8")


def _upload_source(upload: UploadedFile) -> tuple[str, dict[str, Any], ChunkOpener]:
    if upload.name is None:
        return BLOB_PREFIX, {"type": upload.type, "size": upload.size}, upload.chunks
    last_modified = upload.last_modified if upload.last_modified is not None else 0
    meta = {"name": upload.name, "type": upload.type, "lastModified": last_modified}
    return FILE_PREFIX, {**meta, "size": upload.size}, upload.chunks


class _Producer:
    """One streaming value of a response: its index, how to open its chunks, how to drop it."""

    __slots__ = ("channel_id", "index", "open", "value")

    def __init__(
        self, index: int, open: ChunkOpener, value: Any, channel_id: str | None = None
    ) -> None:
        self.index = index
        self.open = open
        self.value = value
        #: With the ``channel`` transport: the id of the channel the value travels on.
        self.channel_id = channel_id

    def discard(self) -> None:
        """Release a value whose chunks were never opened (no 'never awaited' warning)."""
        if inspect.iscoroutine(self.value):
            self.value.close()


#: Values that are never streamed (a tuple: ``isinstance`` with a ``X | Y`` union would build the
#: union on every call, and this check runs once per value of every result).
_PLAIN_DATA: Final = (str, int, float, bytes, list, dict, type)
#: Exact types that are neither streamed nor turned into a placeholder by any fallback replacer
#: (no ``__telefunc_placeholder__``, not callable): the replacer answers them at once.
_JSON_TYPES: Final = frozenset({str, int, float, bool, type(None), dict, list, tuple})


class StreamCollector:
    """Finds the streaming values of a result while it is serialized, and numbers them.

    ``stringify(result, replacer=collector.replacer(fallback))`` turns each streaming value into
    its placeholder (``{"__index": n}`` plus metadata); the same object referenced twice gets
    the identical placeholder. ``fallback`` handles everything else (channels, …).

    With ``channels=True`` (the ``channel`` transport) each value gets a fresh channel id and
    the placeholder metadata is ``{"channelId": id}`` plus metadata instead.
    """

    def __init__(self, *, channels: bool = False) -> None:
        self.channels = channels
        self.producers: list[_Producer] = []
        self._seen: dict[int, str] = {}
        self._keep: list[Any] = []  # keeps the values alive so their ids stay unique

    def replacer(
        self, fallback: Callable[[Any], str | None] | None = None
    ) -> Callable[[Any], str | None]:
        """A serializer replacer producing the placeholders of streaming values."""

        def replace(value: Any) -> str | None:
            if type(value) in _JSON_TYPES:
                return None  # the hot path: most values of a result are plain data
            found = self._classify(value)
            if found is None:
                return fallback(value) if fallback is not None else None
            cached = self._seen.get(id(value))
            if cached is not None:
                return cached
            prefix, extra, opener = found
            index = len(self.producers)
            meta: dict[str, Any]
            if self.channels:
                channel_id = random_id()
                self.producers.append(_Producer(index, opener, value, channel_id))
                meta = {"channelId": channel_id, **extra}
            else:
                if index >= MAX_STREAMS:
                    raise UsageError(
                        f"a telefunction result can hold at most {MAX_STREAMS} streaming values"
                    )
                self.producers.append(_Producer(index, opener, value))
                meta = {"__index": index, **extra}
            placeholder = prefix + stringify(meta, script_safe=False)
            self._seen[id(value)] = placeholder
            self._keep.append(value)
            return placeholder

        return replace

    def _classify(self, value: Any) -> tuple[str, dict[str, Any], ChunkOpener] | None:
        if value is None or isinstance(value, _PLAIN_DATA):
            return None  # the hot path: plain data
        method = getattr(type(value), "__telefunc_stream__", None)
        if method is not None:
            prefix, extra, opener = method(value)
            return prefix, dict(extra), opener
        if isinstance(value, UploadedFile):
            return _upload_source(value)
        if _is_async_iterator(value):
            return GENERATOR_PREFIX, {}, lambda: _generator_chunks(value)
        if inspect.isawaitable(value):
            return PROMISE_PREFIX, {}, lambda: _promise_chunks(value)
        return None

    def discard(self) -> None:
        """Drop every collected value (the response will not stream after all)."""
        for producer in self.producers:
            producer.discard()
        self.producers.clear()


# --------------------------------------------------------------------------------------------
# the inline body


class BodyStream(Protocol):
    """A response body produced chunk by chunk; ``aclose()`` cancels it (idempotent)."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's chunks, each to be written before the next one is asked for."""
        ...

    async def aclose(self) -> None:
        """Stop producing and release everything (the client went away, or the body ended)."""
        ...


_CHUNK, _DONE, _ERROR = 0, 1, 2


class InlineBody:
    """The ``binary-inline`` / ``sse-inline`` body multiplexing a result's streaming values.

    An async iterator of body chunks: iterate it, writing each chunk before asking for the
    next one, and always call :meth:`aclose` at the end (it cancels whatever still runs, waits
    for the generators' ``finally`` blocks and releases the call's scope).
    """

    def __init__(
        self,
        metadata: str,
        producers: list[_Producer],
        *,
        transport: str = BINARY_INLINE,
        scope: CallScope | None = None,
        where: str = "a telefunction",
    ) -> None:
        self._metadata = metadata
        self._producers = list(producers)
        self._encoder = InlineBodyEncoder(sse=transport == SSE_INLINE)
        self._scope = scope
        self._release = scope.hold() if scope is not None else None
        self._where = where
        self._queue: asyncio.Queue[tuple[int, int, Any, asyncio.Future[None] | None]] = (
            asyncio.Queue()
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._written: asyncio.Future[None] | None = None
        self._active = len(self._producers)
        self._started = False
        self._ended = False  # the terminator or the error frame was produced
        self._closed = False

    def __aiter__(self) -> InlineBody:
        return self

    async def __anext__(self) -> bytes:
        if self._written is not None:
            # The previous chunk was written: its producer may compute the next one.
            if not self._written.done():
                self._written.set_result(None)
            self._written = None
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            self._start()
            return self._encoder.header(self._metadata)
        if self._ended or self._active == 0:
            if not self._ended:
                self._ended = True
                return self._encoder.end()
            await self.aclose()
            raise StopAsyncIteration
        kind, index, payload, written = await self._queue.get()
        if kind == _CHUNK:
            self._written = written
            return self._encoder.chunk(index, payload)
        if kind == _DONE:
            self._active -= 1
            return self._encoder.done(index)
        # An error ends the whole body: stop the other values, then send the error frame.
        self._ended = True
        self._cancel_tasks()
        data = error_payload(payload, f"a streaming value returned by {self._where}", self._scope)
        return self._encoder.error(data)

    def _start(self) -> None:
        self._started = True
        # The tasks copy the current context: run them inside the call's scope so that
        # get_context() works in generator bodies and their finally blocks.
        token = set_scope(self._scope) if self._scope is not None else None
        try:
            for producer in self._producers:
                self._tasks.append(asyncio.ensure_future(self._drive(producer)))
        finally:
            if token is not None:
                reset_scope(token)

    async def _drive(self, producer: _Producer) -> None:
        loop = asyncio.get_running_loop()
        chunks = producer.open()
        try:
            while True:
                try:
                    payload = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                if not payload:
                    continue  # an empty payload would mean "done" on the wire
                written: asyncio.Future[None] = loop.create_future()
                self._queue.put_nowait((_CHUNK, producer.index, payload, written))
                await written
            self._queue.put_nowait((_DONE, producer.index, None, None))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._queue.put_nowait((_ERROR, producer.index, exc, None))
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        """Cancel every streaming value still running, wait for their cleanup, release."""
        if self._closed:
            return
        self._closed = True
        if self._written is not None and not self._written.done():
            self._written.cancel()
        if not self._started:
            for producer in self._producers:
                producer.discard()
        self._cancel_tasks()
        try:
            if self._tasks:
                results = await asyncio.gather(*self._tasks, return_exceptions=True)
                for result in results:
                    if isinstance(result, Exception):
                        logger.error(
                            "telefunc: closing a streaming value of %s raised",
                            self._where,
                            exc_info=result,
                        )
        finally:
            if self._release is not None:
                self._release()
