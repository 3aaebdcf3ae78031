"""Streaming values over channels: the ``channel`` stream transport and byte-stream arguments.

With the ``channel`` stream transport (docs/protocol.md §6) every streaming value of a result
travels on a channel of its own. :func:`pump_to_channel` drives one value: ``[0x00][payload]``
BINARY frames, ``[0x01][error JSON]`` for an exception, then the server closes the channel; the
client closing or aborting it stops the value (a generator's ``finally`` runs). A client
``ReadableStream`` argument arrives as a :class:`ChannelByteStream`, whose frames are acked only
as the telefunction takes them, so an upload never buffers more than the receive window.
:class:`ResponseAbort` makes an :class:`~telefunc.errors.Abort` of one streaming value abort the
call's others.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from telefunc.endpoint.channel import close_soon
from telefunc.errors import Abort, ChannelClosedError, ProtocolError, StreamError
from telefunc.server.channel import Channel
from telefunc.server.context import CallScope, reset_scope, set_scope
from telefunc.server.streaming import error_payload
from telefunc.wire.serializer import parse

__all__ = [
    "TAG_DATA",
    "TAG_ERROR",
    "ChannelByteStream",
    "ResponseAbort",
    "pump_to_channel",
]

logger = logging.getLogger("telefunc")

#: First byte of a pumped BINARY frame carrying data.
TAG_DATA: Final = 0x00
#: First byte of a pumped BINARY frame carrying ``{"type":"abort",…}`` / ``{"type":"bug"}``.
TAG_ERROR: Final = 0x01
_DATA_PREFIX = bytes((TAG_DATA,))
_ERROR_PREFIX = bytes((TAG_ERROR,))

_tasks: set[asyncio.Task[Any]] = set()


class ResponseAbort:
    """The abort shared by everything one call spawned (streams, functions, channels).

    :meth:`abort` runs every callback registered with :meth:`on_abort` once, with the
    :class:`Abort` error; callbacks registered later run at once.
    """

    __slots__ = ("_callbacks", "error")

    def __init__(self) -> None:
        self.error: Abort | None = None
        self._callbacks: list[Callable[[Abort], None]] = []

    def abort(self, value: Any) -> None:
        """Abort the whole response with ``value`` (only the first call counts)."""
        if self.error is not None:
            return
        self.error = Abort(value)
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self.error)
            except Exception:
                logger.exception("telefunc: aborting a streaming value raised")

    def on_abort(self, callback: Callable[[Abort], None]) -> None:
        """Call ``callback(abort_error)`` when the response aborts."""
        if self.error is not None:
            callback(self.error)
        else:
            self._callbacks.append(callback)


# --------------------------------------------------------------------------------------------
# server → client: one streaming value pumped over its own channel


def pump_to_channel(
    channel_id: str,
    open_chunks: Callable[[], AsyncIterator[bytes]],
    *,
    scope: CallScope,
    response_abort: ResponseAbort,
    where: str,
    discard: Callable[[], None] | None = None,
) -> Channel[Any, Any]:
    """Register a channel ``channel_id`` and stream ``open_chunks()`` over it once attached.

    The call's scope is held until the pump has finished (the value ended, failed, or the client
    closed the channel). ``discard`` releases the value when its chunks are never opened (the
    client never attached). Returns the channel.
    """
    channel: Channel[Any, Any] = Channel(id=channel_id)
    scope.hub.register(channel)
    pump = _Pump(channel, open_chunks, scope, response_abort, where, discard)
    token = set_scope(scope)  # the task copies the context: get_context() works in the value
    try:
        task = asyncio.ensure_future(pump.run())
    finally:
        reset_scope(token)
    pump.task = task
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return channel


class _Pump:
    __slots__ = (
        "abort_error",
        "channel",
        "client_closed",
        "discard",
        "open_chunks",
        "opened",
        "release",
        "response_abort",
        "scope",
        "task",
        "where",
    )

    def __init__(
        self,
        channel: Channel[Any, Any],
        open_chunks: Callable[[], AsyncIterator[bytes]],
        scope: CallScope,
        response_abort: ResponseAbort,
        where: str,
        discard: Callable[[], None] | None,
    ) -> None:
        self.channel = channel
        self.discard = discard
        self.open_chunks = open_chunks
        self.response_abort = response_abort
        self.where = where
        self.scope = scope
        self.release = scope.hold()
        self.opened = asyncio.Event()
        self.client_closed = False
        self.abort_error: Abort | None = None
        self.task: asyncio.Task[None] | None = None
        channel.on_open(self.opened.set)
        channel.on_close(self._on_close)
        response_abort.on_abort(self._on_response_abort)

    def _on_close(self, _error: Exception | None) -> None:
        # The client closed/aborted the channel (or it never attached): stop producing.
        self.client_closed = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _on_response_abort(self, error: Abort) -> None:
        if self.abort_error is None:
            self.abort_error = error
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def run(self) -> None:
        chunks: AsyncIterator[bytes] | None = None
        failure: BaseException | None = None
        try:
            await self.opened.wait()
            chunks = self.open_chunks()
            while True:
                try:
                    payload = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                if payload:
                    await self.channel.send_binary(_DATA_PREFIX + payload)
        except asyncio.CancelledError:
            # The client went away (nothing to report), or a sibling aborted the response.
            failure = None if self.client_closed else self.abort_error
        except ChannelClosedError:
            failure = None
        except Exception as exc:
            failure = exc
            if isinstance(exc, Abort):
                self.response_abort.abort(exc.value)
        finally:
            try:
                if chunks is not None:
                    await _aclose(chunks, self.where)
                elif self.discard is not None:
                    self.discard()
            finally:
                if failure is not None and not self.channel.is_closed:
                    payload = error_payload(
                        failure, f"a streaming value returned by {self.where}", self.scope
                    )
                    # Written at once (credit only delays the future), so it precedes CLOSE.
                    self.channel.send_binary(_ERROR_PREFIX + payload)
                if not self.channel.is_closed:
                    self.channel.close()
                self.release()


async def _aclose(chunks: AsyncIterator[bytes], where: str) -> None:
    close = getattr(chunks, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:
        logger.exception("telefunc: closing a streaming value of %s raised", where)


# --------------------------------------------------------------------------------------------
# client → server: a ReadableStream argument


class _Inbox:
    """The receiving state of a :class:`ChannelByteStream`, owned by the channel's listeners.

    Kept apart from the iterator object so that the channel (held by the hub) does not keep
    the iterator alive: dropping the iterator closes the channel.
    """

    __slots__ = ("closed", "error", "frames", "wake")

    def __init__(self) -> None:
        self.frames: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self.closed = False
        self.error: Exception | None = None
        self.wake: asyncio.Future[None] | None = None

    def _notify(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)
        self.wake = None

    def on_frame(self, frame: bytes) -> asyncio.Future[None]:
        # The listener's pending future delays the channel's "consumed" accounting (and so the
        # window advertisements) until the telefunction takes the frame: backpressure.
        consumed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.frames.append((frame, consumed))
        self._notify()
        return consumed

    def on_close(self, error: Exception | None) -> None:
        self.closed = True
        self.error = error
        self._notify()


class ChannelByteStream:
    """A client ``ReadableStream`` argument: ``async for chunk in stream`` yields ``bytes``.

    Iteration ends when the client has sent everything and closed the channel; an error the
    client reports in band raises (an :class:`~telefunc.errors.Abort` carries its value).
    :meth:`aclose` (or dropping the object) cancels the upload.
    """

    __slots__ = ("__weakref__", "_channel", "_inbox", "_pending")

    def __init__(self, channel: Channel[Any, Any]) -> None:
        self._channel = channel
        self._inbox = _Inbox()
        self._pending = b""
        channel.listen_binary(self._inbox.on_frame)
        channel.on_close(self._inbox.on_close)
        weakref.finalize(self, close_soon, channel, asyncio.get_running_loop())

    @property
    def channel_id(self) -> str:
        """The id of the channel the bytes arrive on."""
        return self._channel.id

    def __aiter__(self) -> ChannelByteStream:
        return self

    async def __anext__(self) -> bytes:
        inbox = self._inbox
        while True:
            while not inbox.frames:
                if inbox.closed:
                    if inbox.error is not None and not isinstance(inbox.error, ChannelClosedError):
                        raise inbox.error
                    raise StopAsyncIteration
                wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                inbox.wake = wake
                await wake
            frame, consumed = inbox.frames.popleft()
            if not consumed.done():
                consumed.set_result(None)
            if not frame:
                raise ProtocolError("an empty frame on a stream channel")
            if frame[0] == TAG_ERROR:
                raise _stream_error(frame[1:])
            if frame[0] != TAG_DATA:
                raise ProtocolError(f"unknown stream frame tag {frame[0]:#04x}")
            if len(frame) > 1:
                return frame[1:]

    async def read(self) -> bytes:
        """Every remaining byte, joined (buffers the whole stream: for small ones only)."""
        return b"".join([chunk async for chunk in self])

    async def aclose(self) -> None:
        """Stop receiving: close the channel (the client's pump stops)."""
        inbox = self._inbox
        inbox.closed = True
        while inbox.frames:
            _, consumed = inbox.frames.popleft()
            if not consumed.done():
                consumed.set_result(None)
        if not self._channel.is_closed:
            self._channel.close()


def _stream_error(payload: bytes) -> Exception:
    try:
        error = parse(payload.decode("utf-8"))
    except Exception:
        return ProtocolError("an unparsable error frame on a stream channel")
    if isinstance(error, dict) and error.get("type") == "abort":
        return Abort(error.get("abortValue"))
    return StreamError("the client reported an error while streaming")
