"""Streaming values and functions in call results, on the client side (docs/protocol.md §6).

Placeholders revive as :class:`RemoteGenerator`, :class:`RemoteStream`, :class:`RemotePromise`,
:class:`RemoteFile` and :class:`RemoteFunction`. Their bytes come from an :class:`InlineDemux`
(the inline body, read only when a consumer asks, at most :data:`MAX_BUFFER_PER_INDEX` buffered
for a value nobody reads) or a :class:`ChannelSource` (one channel per value, credit returned
only once the consumer took a frame). Closing every value closes the response, which cancels the
server side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any, Final, Protocol

from telefunc.endpoint.function import ChannelFunction
from telefunc.errors import (
    Abort,
    ChannelClosedError,
    ProtocolError,
    RemoteCallError,
    ShieldValidationError,
    TelefuncConnectionError,
)
from telefunc.wire.framing import (
    InlineBodyDecoder,
    InlineChunk,
    InlineDone,
    InlineEnd,
    InlineError,
    InlineEvent,
    InlineMetadata,
)
from telefunc.wire.placeholders import FN_SHIELD_ERROR_KEY
from telefunc.wire.serializer import parse

if TYPE_CHECKING:
    from telefunc.client._channel import Channel

__all__ = [
    "MAX_BUFFER_PER_INDEX",
    "CallInfo",
    "ChannelSource",
    "ChunkSource",
    "InlineDemux",
    "RemoteFile",
    "RemoteFunction",
    "RemoteGenerator",
    "RemotePromise",
    "RemoteStream",
]

logger = logging.getLogger("telefunc.client")

#: Bytes buffered for a value nobody is reading before the body stops being read.
MAX_BUFFER_PER_INDEX: Final = 1024 * 1024

_TAG_DATA: Final = 0x00
_TAG_ERROR: Final = 0x01


class CallInfo:
    """Which call a streaming value belongs to (for error messages)."""

    __slots__ = ("file", "name")

    def __init__(self, file: str, name: str) -> None:
        self.file = file
        self.name = name

    def abort(self, value: Any) -> Abort:
        """The :class:`Abort` a call raises, worded as for a plain call."""
        return Abort(value, f"Aborted telefunction call {self.name}() ({self.file}).")

    def bug(self) -> RemoteCallError:
        """The error for an in-band ``{"type":"bug"}``: the server logged the details."""
        error = RemoteCallError(200, "Internal Server Error")
        error.args = (
            f"Internal Server Error in a streaming value of {self.name}() ({self.file}) "
            "— see server logs",
        )
        return error

    def stream_error(self, payload: bytes) -> Exception:
        """The exception an error payload (``{"type":"abort",…}`` / ``{"type":"bug"}``) means."""
        try:
            error = parse(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return ProtocolError(f"{self.name}() ({self.file}): an unreadable stream error frame")
        if isinstance(error, dict) and error.get("type") == "abort" and "abortValue" in error:
            return self.abort(error["abortValue"])
        return self.bug()


class ChunkSource(Protocol):
    """Where one streaming value's chunks come from."""

    async def next_chunk(self) -> bytes | None:
        """The next non-empty chunk, ``None`` at the end; raises an in-band error."""
        ...

    def cancel(self) -> None:
        """Stop receiving (idempotent, synchronous); the server side is told in the background."""
        ...

    async def aclose(self) -> None:
        """Stop receiving and wait until the transport let go of the value."""
        ...


# --------------------------------------------------------------------------------------------
# the inline body (binary-inline, sse-inline)


class _BodyEvents:
    """The events of a streaming response body, its bytes read on demand.

    The body's reads run as their own task and the decoder is fed only once a read completed,
    so a consumer cancelled in the middle of a read leaves the decoder consistent.
    """

    def __init__(self, response: Any, sse: bool) -> None:
        self.response = response
        self._chunks: AsyncIterator[bytes] = response.aiter_bytes()
        self._decoder = InlineBodyDecoder(sse=sse)
        self._next: asyncio.Future[bytes] | None = None

    async def next_event(self) -> InlineEvent:
        """The body's next event, reading as much as it takes."""
        while (event := self._decoder.next_event()) is None:
            # A consumer cancelled while waiting must not cancel the body's iterator (which
            # would end it); the next call picks the read up.
            if self._next is None:
                self._next = asyncio.ensure_future(self._chunks.__anext__())
            try:
                chunk = await asyncio.shield(self._next)
            except StopAsyncIteration:
                self._next = None
                raise TelefuncConnectionError(
                    "Connection lost — the server closed the stream before all data was received"
                ) from None
            except asyncio.CancelledError:
                if self._next.cancelled():  # the response is being closed
                    self._next = None
                    task = asyncio.current_task()
                    if task is not None and not task.cancelling():
                        raise ChannelClosedError("the streaming response was closed") from None
                raise
            except BaseException:
                self._next = None
                raise
            self._next = None
            self._decoder.receive_data(chunk)
        return event


class InlineDemux:
    """Demultiplexes the indexed frames of one inline streaming body to its values' consumers.

    :meth:`register` an index per value while reviving, then :meth:`source` gives each value
    its :class:`ChunkSource`. The body is read by whichever consumer needs the next frame.
    """

    def __init__(
        self,
        response: Any,
        *,
        sse: bool,
        info: CallInfo,
        max_buffer: int = MAX_BUFFER_PER_INDEX,
    ) -> None:
        self._body = _BodyEvents(response, sse)
        self._info = info
        self._max_buffer = max_buffer
        self._registered: set[int] = set()
        self._finished: set[int] = set()  # done, cancelled or closed by the consumer
        self._done: set[int] = set()  # the server said the value ended
        self._pending: dict[int, deque[bytes]] = {}
        self._pending_bytes: dict[int, int] = {}
        self._ended = False
        self._error: Exception | None = None
        self._reading = False
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def open(
        cls,
        response: Any,
        *,
        sse: bool,
        info: CallInfo,
        max_buffer: int = MAX_BUFFER_PER_INDEX,
    ) -> tuple[InlineDemux, str]:
        """Read the metadata at the start of ``response``'s body; returns it with the demux."""
        demux = cls(response, sse=sse, info=info, max_buffer=max_buffer)
        try:
            event = await demux._next_event()
            if not isinstance(event, InlineMetadata):  # the decoder's first event
                raise ProtocolError("a streaming response without metadata")
            metadata = event.data.decode("utf-8")
        except BaseException:
            await demux.aclose()
            raise
        return demux, metadata

    @property
    def closed(self) -> bool:
        """Whether the response was closed."""
        return self._closed

    def register(self, index: int) -> None:
        """A placeholder with ``{"__index": index}`` was revived."""
        self._registered.add(index)

    def source(self, index: int) -> ChunkSource:
        """The chunk source of value ``index``."""
        return _IndexSource(self, index)

    async def _next_event(self) -> InlineEvent:
        try:
            return await self._body.next_event()
        except (TelefuncConnectionError, ProtocolError):
            raise
        except Exception as exc:  # httpx errors: the connection broke mid-body
            if self._closed:
                raise ChannelClosedError("the streaming response was closed") from exc
            raise TelefuncConnectionError(
                f"Connection lost while reading the streaming response of {self._info.name}() "
                f"({self._info.file}): {exc!r}"
            ) from exc

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _wait_change(self) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(fut)
        await fut

    def _paused(self) -> bool:
        # Backpressure: a value nobody reads holds a full buffer.
        return any(n >= self._max_buffer for n in self._pending_bytes.values())

    async def next_chunk(self, index: int) -> bytes | None:
        """The next chunk of value ``index`` (``None``: it ended, or was cancelled)."""
        while True:
            if index in self._finished:
                return None
            queue = self._pending.get(index)
            if queue:
                payload = queue.popleft()
                self._pending_bytes[index] -= len(payload)
                self._notify()  # a paused reader may go on
                return payload
            if index in self._done or index in self._finished:
                return None
            if self._error is not None:
                raise self._error
            if self._ended:
                return None
            if self._reading or self._paused():
                await self._wait_change()
                continue
            await self._read_one()

    async def _read_one(self) -> None:
        self._reading = True
        try:
            await self._read_frame()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._error is None:
                self._error = exc
            self._close_soon()
        finally:
            self._reading = False
            self._notify()

    async def _read_frame(self) -> None:
        event = await self._next_event()
        if isinstance(event, InlineEnd):
            self._ended = True
            self._close_soon()
            return
        if isinstance(event, InlineError):
            raise self._info.stream_error(event.payload)
        if not isinstance(event, InlineChunk | InlineDone):
            raise ProtocolError("a second metadata record in a streaming response")
        index = event.index
        if index not in self._registered or index in self._finished:
            return  # nobody will read it (a value never revived, or already closed)
        if isinstance(event, InlineDone):
            self._done.add(index)
            return
        payload = event.payload
        self._pending.setdefault(index, deque()).append(payload)
        self._pending_bytes[index] = self._pending_bytes.get(index, 0) + len(payload)

    def check_idle(self) -> None:
        """Close the body if no revived value reads it (all finished already, or none)."""
        if self._registered <= self._finished:
            self._close_soon()

    def finish(self, index: int) -> None:
        """Value ``index`` is no longer read: drop its frames; close the body after the last."""
        if index in self._finished:
            return
        self._finished.add(index)
        self._pending.pop(index, None)
        self._pending_bytes.pop(index, None)
        self._notify()
        if self._registered <= self._finished:
            self._close_soon()

    def _close_soon(self) -> None:
        if self._closed or self._close_task is not None:
            return
        self._close_task = self._loop.create_task(self.aclose())

    async def aclose(self) -> None:
        """Close the response (the server cancels what still runs); consumers then end."""
        if self._closed:
            if self._close_task is not None and self._close_task is not asyncio.current_task():
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._close_task)
            return
        self._closed = True
        if not self._ended and self._error is None:
            self._error = ChannelClosedError("the streaming response was closed")
        self._notify()
        pending = self._body._next
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        try:
            await self._body.response.aclose()
        except Exception as exc:  # closing a broken connection may fail: nothing to do
            logger.debug("telefunc: closing a streaming response failed: %r", exc)


class _IndexSource:
    """One value of an :class:`InlineDemux`."""

    __slots__ = ("_demux", "_index")

    def __init__(self, demux: InlineDemux, index: int) -> None:
        self._demux = demux
        self._index = index

    async def next_chunk(self) -> bytes | None:
        return await self._demux.next_chunk(self._index)

    def cancel(self) -> None:
        self._demux.finish(self._index)

    async def aclose(self) -> None:
        self._demux.finish(self._index)
        task = self._demux._close_task
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)


# --------------------------------------------------------------------------------------------
# the channel transport


class ChannelSource:
    """One value streamed on its own channel (the ``channel`` stream transport)."""

    def __init__(self, channel: Channel[Any, Any], info: CallInfo) -> None:
        self._channel = channel
        self._info = info
        self._frames: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self._closed = False
        self._cancelled = False
        self._error: Exception | None = None
        self._wake: asyncio.Future[None] | None = None
        channel.listen_binary(self._on_frame)
        channel.on_close(self._on_close)

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        self._wake = None

    def _on_frame(self, frame: bytes) -> asyncio.Future[None]:
        # The pending future holds the channel's credit until the consumer takes the frame.
        consumed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._cancelled:
            consumed.set_result(None)
            return consumed
        self._frames.append((frame, consumed))
        self._notify()
        return consumed

    def _on_close(self, error: Exception | None) -> None:
        self._closed = True
        self._error = error
        self._notify()

    async def next_chunk(self) -> bytes | None:
        while True:
            while not self._frames:
                if self._cancelled:
                    return None
                if self._closed:
                    error = self._error
                    if error is None or isinstance(error, ChannelClosedError):
                        return None
                    if isinstance(error, Abort):
                        raise self._info.abort(error.value) from error
                    raise error
                wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._wake = wake
                await wake
            frame, consumed = self._frames.popleft()
            if not consumed.done():
                consumed.set_result(None)
            if not frame:
                raise ProtocolError("an empty frame on a stream channel")
            if frame[0] == _TAG_ERROR:
                raise self._info.stream_error(frame[1:])
            if frame[0] != _TAG_DATA:
                raise ProtocolError(f"unknown stream frame tag {frame[0]:#04x}")
            if len(frame) > 1:
                return frame[1:]

    def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        while self._frames:
            _, consumed = self._frames.popleft()
            if not consumed.done():
                consumed.set_result(None)
        self._notify()
        if not self._channel.is_closed:
            self._channel.close()

    async def aclose(self) -> None:
        self.cancel()


# --------------------------------------------------------------------------------------------
# revived values


def _cancel_later(source: ChunkSource, loop: asyncio.AbstractEventLoop) -> None:
    """A finalizer: cancel ``source`` on its loop (finalizers may run on any thread)."""
    try:
        if asyncio.get_running_loop() is loop:
            source.cancel()
            return
    except RuntimeError:
        pass
    if not loop.is_closed():
        loop.call_soon_threadsafe(source.cancel)


def _on_drop(owner: object, source: ChunkSource) -> None:
    # Like the reference client's GC registry: a value dropped unread stops its stream.
    finalizer = weakref.finalize(owner, _cancel_later, source, asyncio.get_running_loop())
    finalizer.atexit = False


class _RemoteChunks:
    """What a generator and a byte stream share: pulling chunks from their source, once."""

    __slots__ = ("__weakref__", "_finished", "_source")

    def __init__(self, source: ChunkSource) -> None:
        self._source = source
        self._finished = False
        _on_drop(self, source)

    async def _next_chunk(self) -> bytes:
        """The next chunk; ``StopAsyncIteration`` at the end (the source is then released)."""
        if self._finished:
            raise StopAsyncIteration
        try:
            chunk = await self._source.next_chunk()
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._finished = True
            self._source.cancel()
            raise
        if chunk is None:
            self._finished = True
            self._source.cancel()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Stop receiving; the server stops producing."""
        self._finished = True
        await self._source.aclose()

    def __repr__(self) -> str:
        state = "finished" if self._finished else "open"
        return f"<telefunc.client.{type(self).__name__} {state}>"


class RemoteGenerator(_RemoteChunks):
    """An async generator a telefunction returned: ``async for item in gen``.

    Items are revived with the json-serializer codec. An :class:`~telefunc.errors.Abort`
    raised by the server's generator is raised here with its ``value``; a crash there raises
    :class:`~telefunc.errors.RemoteCallError`. :meth:`aclose` stops early: the server's
    generator is cancelled (its ``finally`` runs).
    """

    __slots__ = ()

    def __aiter__(self) -> RemoteGenerator:
        return self

    async def __anext__(self) -> Any:
        return parse((await self._next_chunk()).decode("utf-8"))


class RemoteStream(_RemoteChunks):
    """A byte stream a telefunction returned (``ByteStream`` / ``ReadableStream``).

    ``async for chunk in stream`` yields ``bytes``; :meth:`read` joins them all; :meth:`aclose`
    stops early (the server stops producing).
    """

    __slots__ = ()

    def __aiter__(self) -> RemoteStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._next_chunk()

    async def read(self) -> bytes:
        """Every remaining byte, joined (buffers the whole stream)."""
        return b"".join([chunk async for chunk in self])


class RemotePromise:
    """A promise (awaitable) a telefunction returned: ``value = await promise``.

    Awaiting it more than once gives the same value. :meth:`aclose` gives it up.
    """

    __slots__ = ("__weakref__", "_info", "_source", "_task")

    def __init__(self, source: ChunkSource, info: CallInfo) -> None:
        self._source = source
        self._info = info
        self._task: asyncio.Task[Any] | None = None
        _on_drop(self, source)

    async def _resolve(self) -> Any:
        try:
            chunk = await self._source.next_chunk()
        finally:
            self._source.cancel()
        if chunk is None:
            raise TelefuncConnectionError(
                f"a promise returned by {self._info.name}() ({self._info.file}) ended before "
                "it resolved"
            )
        return parse(chunk.decode("utf-8"))

    def __await__(self) -> Generator[Any, None, Any]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._resolve())
        return asyncio.shield(self._task).__await__()

    async def aclose(self) -> None:
        """Give the promise up (awaiting it afterwards raises)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._resolve())
        if not self._task.done():
            self._task.cancel()
            self._task.add_done_callback(_retrieve)
        await self._source.aclose()

    def __repr__(self) -> str:
        state = "pending" if self._task is None or not self._task.done() else "settled"
        return f"<telefunc.client.RemotePromise {state}>"


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class RemoteFile:
    """A file or blob a telefunction returned (``download(...)``, or an echoed upload).

    ``name`` and ``last_modified`` (milliseconds since the epoch) are ``None`` for a blob;
    ``size`` is ``None`` when the server did not know it. A download is lazy: its bytes are
    read from the server by :meth:`read` or :meth:`chunks` (once); :meth:`aclose` gives it up.
    """

    __slots__ = (
        "__weakref__",
        "_consumed",
        "_data",
        "_source",
        "last_modified",
        "loaded",
        "name",
        "size",
        "type",
    )

    def __init__(self, source: ChunkSource, meta: dict[str, Any], *, file: bool) -> None:
        self._source = source
        self.name: str | None = str(meta.get("name", "")) if file else None
        self.type: str = str(meta.get("type", ""))
        size = meta.get("size")
        self.size: int | None = int(size) if isinstance(size, int | float) else None
        modified = meta.get("lastModified")
        self.last_modified: int | float | None = (
            modified if file and isinstance(modified, int | float) else None
        )
        #: Bytes received so far.
        self.loaded = 0
        self._consumed = False
        self._data: bytes | None = None
        _on_drop(self, source)

    @property
    def is_file(self) -> bool:
        """Whether it has a name (a ``File``) rather than being a ``Blob``."""
        return self.name is not None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The bytes as they arrive (a download can be read only once)."""
        if self._data is not None:
            if self._data:
                yield self._data
            return
        if self._consumed:
            raise ChannelClosedError("the bytes of this file were already read")
        self._consumed = True
        try:
            while True:
                chunk = await self._source.next_chunk()
                if chunk is None:
                    break
                self.loaded += len(chunk)
                yield chunk
            if self.size is not None and self.loaded != self.size:
                raise ProtocolError(f"the file ended after {self.loaded} of its {self.size} bytes")
        finally:
            self._source.cancel()

    async def read(self) -> bytes:
        """All the bytes (kept, so reading again returns them)."""
        if self._data is None:
            self._data = b"".join([chunk async for chunk in self.chunks()])
        return self._data

    async def aclose(self) -> None:
        """Give the bytes up (the server stops sending them)."""
        self._consumed = True
        await self._source.aclose()

    def __repr__(self) -> str:
        kind = "file" if self.is_file else "blob"
        return f"<telefunc.client.RemoteFile {kind} {self.name!r} {self.type!r} size={self.size}>"


class RemoteFunction(ChannelFunction):
    """A function a telefunction returned: ``await fn(*args)`` calls it on the server.

    Each call travels on the function's ack channel; state the server closure keeps survives
    across calls. Raises :class:`~telefunc.errors.ShieldValidationError` when the server's
    shield refused the arguments, :class:`~telefunc.errors.Abort` when the function aborted,
    :class:`~telefunc.errors.ChannelRemoteError` when it crashed and
    :class:`~telefunc.errors.ChannelClosedError` once the channel is closed (:meth:`aclose`, or
    the server closed it). Dropping the last reference closes the channel.
    """

    __slots__ = ()

    CLOSED_MESSAGE = "the channel of this returned function is closed"
    REPR_NAME = "telefunc.client.RemoteFunction"

    def _result(self, value: Any) -> Any:
        if isinstance(value, dict) and value.get(FN_SHIELD_ERROR_KEY) is True:
            raise ShieldValidationError(
                "Shield Validation Error — the returned function rejected its arguments; "
                "see server logs"
            )
        return value


def read_meta(text: str) -> dict[str, Any]:
    """The JSON metadata after a placeholder prefix."""
    meta = json.loads(text)
    if not isinstance(meta, dict):
        raise ValueError(f"placeholder metadata is not an object: {text[:100]!r}")
    return meta
