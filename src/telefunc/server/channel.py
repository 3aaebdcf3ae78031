"""The server-side :class:`Channel`: a bidirectional, ordered, acked, resumable message stream.

Return a ``Channel`` from a telefunction (anywhere in its result) and the client gets the other
end::

    async def chat() -> Channel[str, str]:
        ch = Channel()
        ch.on_open(lambda: ch.send("welcome"))
        ch.listen(lambda msg: ch.send(f"echo: {msg}"))
        return ch

This module is the asyncio face of :class:`~telefunc.wire.channel_state.ChannelCore`, which owns
every protocol decision (sequence numbers, replay, buffering, credit, close handshake). ``Channel``
turns the core's synchronous events into futures and listener calls, and serializes values with
the json-serializer codec. The data plane is generic over the frame tag (:meth:`Channel._send_tag`,
:meth:`Channel.on_other_frame`) so a broadcast channel can extend it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from telefunc.config import config
from telefunc.errors import Abort, ChannelClosedError, ShieldValidationError, TelefuncError
from telefunc.wire.channel_state import ChannelCore, SendResult
from telefunc.wire.frames import AckStatus, Frame, Tag
from telefunc.wire.serializer import parse, stringify

if TYPE_CHECKING:
    from telefunc.server.hub import ChannelHub

__all__ = ["Channel", "ChannelAckError"]

logger = logging.getLogger("telefunc")

ClientToServer = TypeVar("ClientToServer")
ServerToClient = TypeVar("ServerToClient")

INTERNAL_ERROR = "Internal Server Error — see server logs"
PLACEHOLDER_PREFIX = "!TelefuncChannel:"

_background: set[asyncio.Future[Any]] = set()


class ChannelAckError(TelefuncError):
    """The peer's listener failed while handling an ack-bearing send (ACK_RES status ERROR)."""


def _spawn(awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
    task = asyncio.ensure_future(awaitable)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _mark_retrieved(fut: asyncio.Future[Any]) -> None:
    # Like the JS `ret.catch(() => {})`: an un-awaited failed send is not an "unhandled" error.
    if not fut.cancelled():
        fut.exception()


class Channel(Generic[ClientToServer, ServerToClient]):
    """A server-side channel; see the module docstring.

    ``ack=True`` makes every :meth:`send` wait for the client's listener return value (override
    per send with ``ack=False``). ``buffer_limit`` overrides ``config.channel.buffer_limit`` (text
    bytes kept while no client is attached).
    """

    __slots__ = (
        "__weakref__",
        "_binary_listeners",
        "_close_callbacks",
        "_close_fired",
        "_close_future",
        "_core",
        "_credit_waiters",
        "_hub",
        "_listeners",
        "_open_callbacks",
        "_open_fired",
        "_release_hold",
        "ack",
        "id",
    )

    def __init__(
        self, ack: bool = False, *, id: str | None = None, buffer_limit: int | None = None
    ):
        self.id: str = id if id is not None else str(uuid.uuid4())
        self.ack: bool = ack
        self._core = ChannelCore(
            self.id, config.channel.snapshot(), self, buffer_limit=buffer_limit
        )
        self._listeners: list[Callable[[Any], Any]] = []
        self._binary_listeners: list[Callable[[bytes], Any]] = []
        self._open_callbacks: list[Callable[[], Any]] = []
        self._close_callbacks: list[Callable[[Exception | None], Any]] = []
        self._open_fired = False
        self._close_fired = False
        self._credit_waiters: list[asyncio.Future[None]] = []
        self._close_future: asyncio.Future[int] | None = None
        self._hub: ChannelHub | None = None
        self._release_hold: Callable[[], None] | None = None

    def __class_getitem__(cls, params: Any) -> Any:
        return super().__class_getitem__(params)  # type: ignore[misc]

    def __repr__(self) -> str:
        state = "closed" if self._core.is_closed else "open"
        return f"<Channel {self.id} {state}>"

    # ── public state ────────────────────────────────────────────────────

    @property
    def is_closed(self) -> bool:
        """``True`` once ``close()``/``abort()`` was called or the channel ended."""
        return self._core.is_closed

    @property
    def client(self) -> Channel[ClientToServer, ServerToClient]:
        """The same channel (``return ch.client`` serializes exactly like ``return ch``)."""
        return self

    def _now(self) -> float:
        return self._hub.now() if self._hub is not None else time.monotonic()

    # ── sending ─────────────────────────────────────────────────────────

    def send(self, data: ServerToClient, ack: bool | None = None) -> asyncio.Future[Any]:
        """Send ``data`` (any json-serializer value) to the client.

        Returns an awaitable: it resolves once send credit allows the next send, or — for an
        acked send (``ack=True``, or the channel's default unless ``ack=False``) — with the
        client listener's return value. Raises :class:`ChannelClosedError` at once after
        ``close()``/``abort()``. A message evicted from the pre-attach buffer fails with
        :class:`~telefunc.errors.ChannelOverflowError`.
        """
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        needs_ack = ack is not False and (ack is True or self.ack)
        payload = stringify(data).encode()
        return self._send_tag(Tag.TEXT_ACK_REQ if needs_ack else Tag.TEXT, payload)

    def send_binary(
        self, data: bytes | bytearray | memoryview, ack: bool = False
    ) -> asyncio.Future[Any]:
        """Send raw bytes; acked only when ``ack=True`` (the channel default does not apply)."""
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        return self._send_tag(Tag.BINARY_ACK_REQ if ack else Tag.BINARY, bytes(data))

    def _send_tag(self, tag: int, payload: bytes) -> asyncio.Future[Any]:
        """Send one data frame of any data tag; the generic path subclasses reuse."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        fut.add_done_callback(_mark_retrieved)
        result = self._core.send(tag, payload, self._now(), fut)
        if result is SendResult.SENT:
            fut.set_result(None)
        elif result is SendResult.WAIT_CREDIT:
            self._credit_waiters.append(fut)
        return fut

    # ── listening ───────────────────────────────────────────────────────

    def listen(self, callback: Callable[[ClientToServer], Any]) -> Callable[[], None]:
        """Call ``callback(data)`` for every text message; returns a function that unlistens.

        ``callback`` may be async. Its (awaited) return value is the ack value of an acked send
        (the last listener's wins). Raising :class:`~telefunc.errors.Abort` aborts the channel.
        """
        return _add(self._listeners, callback)

    def listen_binary(self, callback: Callable[[bytes], Any]) -> Callable[[], None]:
        """Like :meth:`listen`, for binary messages (``bytes``)."""
        return _add(self._binary_listeners, callback)

    def on_open(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` when the client attaches (at once if it already has)."""
        if self._open_fired:
            self._invoke(callback)
        else:
            self._open_callbacks.append(callback)

    def on_close(self, callback: Callable[[Exception | None], Any]) -> None:
        """Call ``callback(err)`` when the channel closes (``err`` is ``None`` for a clean close).

        An async callback is awaited before a graceful close completes.
        """
        if self._close_fired:
            self._invoke(callback, self._core.shutdown_error)
        else:
            self._close_callbacks.append(callback)

    # ── closing ─────────────────────────────────────────────────────────

    def close(self, timeout: float = 5.0) -> asyncio.Future[int]:
        """Close gracefully; resolves 0 if the client acknowledged, 1 if ``timeout`` ran out.

        :attr:`is_closed` is ``True`` immediately.
        """
        loop = asyncio.get_running_loop()
        if self._close_future is None:
            self._close_future = loop.create_future()
        fut = self._close_future
        if self._core.is_shutdown:
            if not fut.done():
                fut.set_result(0 if self._core.got_close_ack else 1)
            return fut
        self._core.close(timeout, self._now())
        if self._hub is None and not self._core.is_shutdown:
            # Never registered: no hub timer wheel drives this channel, so time the close here.
            loop.call_later(max(0.0, timeout), self._core.handle_timeout, time.monotonic() + 1e-3)
        return fut

    def abort(self, value: Any = None) -> None:
        """Abort now: the client's ``onClose`` gets an ``Abort`` error carrying ``value``."""
        if self._core.is_closed:
            return
        self._core.abort(stringify(value).encode(), Abort(value))

    # ── placeholder (called by the RPC serializer) ──────────────────────

    def __telefunc_placeholder__(self, scope: Any) -> str:
        """Register with the call's hub, keep the call scope open, return the placeholder."""
        if self._hub is None:
            hub: ChannelHub = scope.hub
            self._hub = hub
            if not self._core.is_shutdown:
                self._release_hold = scope.hold()
            hub.register(self)
        meta: dict[str, Any] = {"channelId": self.id}
        if self.ack:
            meta["ack"] = True
        return PLACEHOLDER_PREFIX + json.dumps(meta, separators=(",", ":"))

    # ── ChannelEvents (called synchronously by the core) ────────────────

    # These ``handle_*`` methods implement ChannelEvents; they are not part of the public API.

    def handle_open(self) -> None:
        self._open_fired = True
        callbacks, self._open_callbacks = self._open_callbacks, []
        for cb in callbacks:
            self._invoke(cb)

    def handle_message(self, payload: bytes, binary: bool) -> None:
        nbytes = len(payload)
        try:
            data: Any = payload if binary else parse(payload.decode())
        except Exception:
            logger.exception("telefunc: could not parse a channel message")
            self._core.consumed(nbytes)
            return
        pending: list[Awaitable[Any]] = []
        for cb in list(self._binary_listeners if binary else self._listeners):
            try:
                result = cb(data)
            except Exception as exc:
                if self._callback_error(exc):
                    return
                continue
            if inspect.isawaitable(result):
                pending.append(result)
        if not pending:
            self._core.consumed(nbytes)
            return

        async def settle() -> None:
            for aw in pending:
                try:
                    await aw
                except Exception as exc:
                    if self._callback_error(exc):
                        return
            self._core.consumed(nbytes)

        _spawn(settle())

    def handle_ack_request(self, seq: int, payload: bytes, binary: bool) -> None:
        _spawn(self._answer(seq, payload, binary))

    async def _answer(self, seq: int, payload: bytes, binary: bool) -> None:
        listeners = list(self._binary_listeners if binary else self._listeners)
        core = self._core
        if not listeners:
            core.reply(seq, AckStatus.ERROR, "No listener registered for ack request", self._now())
            return
        result: Any = None
        try:
            data: Any = payload if binary else parse(payload.decode())
            for cb in listeners:
                result = cb(data)
                if inspect.isawaitable(result):
                    result = await result
            text = stringify(result)
        except Exception as exc:
            if isinstance(exc, ShieldValidationError):
                core.reply(seq, AckStatus.SHIELD_ERROR, str(exc), self._now())
                return
            if self._callback_error(exc):
                core.reply(
                    seq, AckStatus.ABORT, stringify(getattr(exc, "value", None)), self._now()
                )
                return
            core.reply(seq, AckStatus.ERROR, INTERNAL_ERROR, self._now())
            return
        core.reply(seq, AckStatus.OK, text, self._now())

    def handle_ack_result(self, token: Any, status: AckStatus, text: str) -> None:
        fut: asyncio.Future[Any] = token
        if fut.done():
            return
        try:
            if status == AckStatus.OK:
                fut.set_result(parse(text))
            elif status == AckStatus.ABORT:
                fut.set_exception(Abort(parse(text)))
            elif status == AckStatus.SHIELD_ERROR:
                fut.set_exception(ShieldValidationError(text))
            else:
                fut.set_exception(ChannelAckError(text or "Internal client channel error"))
        except Exception as exc:  # an unparsable ack value
            fut.set_exception(exc)

    def handle_send_done(self, token: Any) -> None:
        fut: asyncio.Future[Any] = token
        if not fut.done():
            fut.set_result(None)

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        fut: asyncio.Future[Any] = token
        if not fut.done():
            fut.set_exception(error)

    def handle_credit(self) -> None:
        if not self._core.credit_available:
            return
        waiters, self._credit_waiters = self._credit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def handle_fire_close(self, error: Exception | None) -> None:
        self._close_fired = True
        callbacks, self._close_callbacks = self._close_callbacks, []
        self._open_callbacks = []
        core = self._core
        for cb in callbacks:
            try:
                result = cb(error)
            except Exception:
                logger.exception("telefunc: a channel on_close callback raised")
                continue
            if inspect.isawaitable(result):
                core.hold_close()
                _spawn(self._await_close_callback(result))

    async def _await_close_callback(self, result: Awaitable[Any]) -> None:
        try:
            await result
        except Exception:
            logger.exception("telefunc: a channel on_close callback raised")
        finally:
            self._core.release_close(self._now())

    def handle_shutdown(self, error: Exception | None) -> None:
        if self._close_future is not None and not self._close_future.done():
            self._close_future.set_result(0 if self._core.got_close_ack else 1)
        release, self._release_hold = self._release_hold, None
        if release is not None:
            release()

    def handle_other_frame(self, frame: Frame) -> None:
        """Frames a plain channel ignores (BROADCAST_SUB, PUBLISH_ACK_REQ...); for subclasses."""

    # ── helpers ─────────────────────────────────────────────────────────

    def _callback_error(self, exc: BaseException) -> bool:
        """Abort → abort the channel (returns True); anything else is logged."""
        if isinstance(exc, Abort):
            self.abort(exc.value)
            return True
        logger.error("telefunc: a channel listener raised", exc_info=exc)
        return False

    def _invoke(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            result = callback(*args)
        except Exception as exc:
            self._callback_error(exc)
            return
        if inspect.isawaitable(result):

            async def run() -> None:
                try:
                    await result
                except Exception as exc:
                    self._callback_error(exc)

            _spawn(run())


def _add(listeners: list[Any], callback: Any) -> Callable[[], None]:
    listeners.append(callback)

    def unlisten() -> None:
        if callback in listeners:
            listeners.remove(callback)

    return unlisten
