"""The client-side :class:`Channel`: the other end of a server's ``Channel``.

It mirrors the server API with the directions flipped: :meth:`Channel.send` goes to the server's
listeners, :meth:`Channel.listen` receives what the server sends. Every protocol decision lives in
:class:`~telefunc.wire.client_mux.ClientChannelCore`; this class turns its synchronous events into
futures and listener calls and serializes values with the json-serializer codec. All methods must
be called on the event loop that runs the client.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from telefunc.errors import Abort, ChannelClosedError, ShieldValidationError, UsageError
from telefunc.wire.channel_state import SendResult
from telefunc.wire.client_mux import ChannelServerError
from telefunc.wire.frames import AckStatus, Frame, Tag
from telefunc.wire.serializer import parse, stringify

if TYPE_CHECKING:
    from telefunc.client._connection import Connection
    from telefunc.wire.client_mux import ClientChannelCore

__all__ = ["BroadcastChannel", "Channel", "PublishInfo"]

logger = logging.getLogger("telefunc.client")

ServerToClient = TypeVar("ServerToClient")
ClientToServer = TypeVar("ClientToServer")
T = TypeVar("T")

CLIENT_LISTENER_ERROR = "Internal client channel error — see client logs"
NO_LISTENER = "No listener registered for ack request"

_background: set[asyncio.Future[Any]] = set()


def _spawn(awaitable: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(awaitable)
    _background.add(task)
    task.add_done_callback(_background.discard)


def _mark_retrieved(fut: asyncio.Future[Any]) -> None:
    # An un-awaited failed send is not an "exception was never retrieved" error (JS: .catch()).
    if not fut.cancelled():
        fut.exception()


class Channel(Generic[ServerToClient, ClientToServer]):
    """A channel a telefunction returned; created by the client when it revives the result.

    ``ack`` is the server's channel default: when true, :meth:`send` waits for the server
    listener's return value unless ``ack=False`` is passed.
    """

    def __init__(self, connection: Connection, channel_id: str, ack: bool = False) -> None:
        self.id = channel_id
        self.ack = ack
        self._connection = connection
        self._listeners: list[Callable[[Any], Any]] = []
        self._binary_listeners: list[Callable[[bytes], Any]] = []
        self._open_callbacks: list[Callable[[], Any]] = []
        self._close_callbacks: list[Callable[[Exception | None], Any]] = []
        self._open_fired = False
        self._close_fired = False
        self._close_error: Exception | None = None
        self._credit_waiters: list[asyncio.Future[None]] = []
        self._close_future: asyncio.Future[int] | None = None
        self._done: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._core: ClientChannelCore = connection.attach_channel(self)

    def __repr__(self) -> str:
        return f"<telefunc.client.Channel {self.id} {'closed' if self.is_closed else 'open'}>"

    # ── state ───────────────────────────────────────────────────────────

    @property
    def is_closed(self) -> bool:
        """``True`` once ``close()``/``abort()`` was called or the channel ended."""
        return self._core.is_closed

    @property
    def close_error(self) -> Exception | None:
        """Why the channel ended (``None``: cleanly, or not yet)."""
        return self._close_error

    async def wait_closed(self) -> Exception | None:
        """Wait until the channel has ended; returns its error (``None`` for a clean close)."""
        return await asyncio.shield(self._done)

    # ── sending ─────────────────────────────────────────────────────────

    def send(self, data: ClientToServer, ack: bool | None = None) -> asyncio.Future[Any]:
        """Send ``data`` (any json-serializer value) to the server's listeners.

        Returns an awaitable that resolves once send credit allows the next send or, for an
        acknowledged send (``ack=True``, or the channel default unless ``ack=False``), with the
        server listener's return value. Raises :class:`ChannelClosedError` at once after
        ``close()``/``abort()``.
        """
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        needs_ack = ack is not False and (ack is True or self.ack)
        payload = stringify(data).encode()
        return self._send_tag(Tag.TEXT_ACK_REQ if needs_ack else Tag.TEXT, payload)

    def send_binary(
        self, data: bytes | bytearray | memoryview, ack: bool = False
    ) -> asyncio.Future[Any]:
        """Send raw bytes; acknowledged only with ``ack=True`` (the channel default is ignored)."""
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        return self._send_tag(Tag.BINARY_ACK_REQ if ack else Tag.BINARY, bytes(data))

    def _send_tag(self, tag: int, payload: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_mark_retrieved)
        result = self._core.send(tag, payload, self._connection.now(), fut)
        if result is SendResult.SENT:
            fut.set_result(None)
        elif result is SendResult.WAIT_CREDIT:
            self._credit_waiters.append(fut)
        return fut

    # ── listening ───────────────────────────────────────────────────────

    def listen(self, callback: Callable[[ServerToClient], Any]) -> Callable[[], None]:
        """Call ``callback(data)`` for each text message; returns a function that unlistens.

        ``callback`` may be async; its (awaited) return value answers an acknowledged send (the
        last listener's wins). Raising :class:`~telefunc.errors.Abort` aborts the channel.
        """
        return _add(self._listeners, callback)

    def listen_binary(self, callback: Callable[[bytes], Any]) -> Callable[[], None]:
        """Like :meth:`listen`, for binary messages (``bytes``)."""
        return _add(self._binary_listeners, callback)

    def on_open(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` once the server confirmed the channel (at once if it has)."""
        if self._open_fired:
            self._invoke(callback)
        else:
            self._open_callbacks.append(callback)

    def on_close(self, callback: Callable[[Exception | None], Any]) -> None:
        """Call ``callback(err)`` when the channel ends; ``err`` is ``None`` for a clean close,
        an :class:`~telefunc.errors.Abort` carrying the server's value after a server abort, a
        :class:`~telefunc.errors.NetworkError` when the server could not be reached again."""
        if self._close_fired:
            self._invoke(callback, self._close_error)
        else:
            self._close_callbacks.append(callback)

    # ── closing ─────────────────────────────────────────────────────────

    def close(self, timeout: float = 5.0) -> asyncio.Future[int]:
        """Close gracefully; resolves 0 if the server acknowledged, 1 if ``timeout`` ran out."""
        loop = asyncio.get_running_loop()
        if self._close_future is None:
            self._close_future = loop.create_future()
        fut = self._close_future
        if self._core.is_shutdown:
            if not fut.done():
                fut.set_result(0 if self._core.got_close_ack else 1)
            return fut
        self._core.close(timeout, self._connection.now())
        return fut

    def abort(self, value: Any = None) -> None:
        """Abort now: the server's ``on_close`` gets an error; ours gets ``Abort(value)``."""
        if self._core.is_closed:
            return
        self._core.abort_local(Abort(value))

    # ── ChannelEvents (called synchronously by the core) ────────────────

    def handle_open(self) -> None:
        """The server confirmed the channel for the first time."""
        self._open_fired = True
        callbacks, self._open_callbacks = self._open_callbacks, []
        for cb in callbacks:
            self._invoke(cb)

    def handle_message(self, payload: bytes, binary: bool) -> None:
        """A fire-and-forget message arrived."""
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
        """An acknowledged message arrived: answer with the last listener's return value."""
        _spawn(self._answer(seq, payload, binary))

    async def _answer(self, seq: int, payload: bytes, binary: bool) -> None:
        listeners = list(self._binary_listeners if binary else self._listeners)
        core = self._core
        now = self._connection.now
        if not listeners:
            core.reply(seq, AckStatus.ERROR, NO_LISTENER, now())
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
            if self._callback_error(exc):
                return
            core.reply(seq, AckStatus.ERROR, CLIENT_LISTENER_ERROR, now())
            return
        core.reply(seq, AckStatus.OK, text, now())

    def handle_ack_result(self, token: Any, status: AckStatus, text: str) -> None:
        """The server answered one of our acknowledged sends."""
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
                fut.set_exception(ChannelServerError(text or "Internal Server Error"))
        except Exception as exc:  # an unparsable ack value
            fut.set_exception(exc)

    def handle_send_done(self, token: Any) -> None:
        """A send buffered while detached went out."""
        fut: asyncio.Future[Any] = token
        if not fut.done():
            fut.set_result(None)

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        """A send will never complete."""
        fut: asyncio.Future[Any] = token
        if not fut.done():
            fut.set_exception(error)

    def handle_credit(self) -> None:
        """Send credit is back (or the channel ended): wake waiting senders."""
        if not self._core.credit_available:
            return
        waiters, self._credit_waiters = self._credit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def handle_fire_close(self, error: Exception | None) -> None:
        """Run the ``on_close`` callbacks; async ones hold the close until they finish."""
        self._close_fired = True
        self._close_error = error
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
            self._core.release_close(self._connection.now())

    def handle_shutdown(self, error: Exception | None) -> None:
        """The channel is finished."""
        self._close_error = error
        if self._close_future is not None and not self._close_future.done():
            self._close_future.set_result(0 if self._core.got_close_ack else 1)
        if not self._done.done():
            self._done.set_result(error)

    def handle_other_frame(self, frame: Frame) -> None:
        """Frames a plain channel ignores (PUBLISH...); for subclasses."""

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


_PUBLISH_BINARY_INFO = struct.Struct("<Id")


class PublishInfo(TypedDict):
    """Where a delivered publish sits in its key's order."""

    key: str
    seq: int
    #: Milliseconds since the epoch (JavaScript's ``Date.now()`` on the publishing server).
    timestamp: float


class BroadcastChannel(Channel[T, T], Generic[T]):
    """A broadcast channel a telefunction returned: publish to its :attr:`key`, subscribe to it.

    Every publish to the key (from any client, or from the server) reaches every subscriber in
    the key's order (``info["seq"]`` grows), the publisher included. ``send``/``listen`` and
    their binary forms are not available on a broadcast channel.
    """

    def __init__(self, connection: Connection, channel_id: str, key: str) -> None:
        self.key = key
        self._subscribers: list[Callable[[Any, PublishInfo], Any]] = []
        self._binary_subscribers: list[Callable[[bytes, PublishInfo], Any]] = []
        super().__init__(connection, channel_id, ack=False)

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<telefunc.client.BroadcastChannel {self.key!r} {self.id} {state}>"

    def send(self, data: T, ack: bool | None = None) -> asyncio.Future[Any]:
        """Not available: use :meth:`publish`."""
        raise UsageError("BroadcastChannel has no send(): use publish()")

    def send_binary(
        self, data: bytes | bytearray | memoryview, ack: bool = False
    ) -> asyncio.Future[Any]:
        """Not available: use :meth:`publish_binary`."""
        raise UsageError("BroadcastChannel has no send_binary(): use publish_binary()")

    def listen(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Not available: use :meth:`subscribe`."""
        raise UsageError("BroadcastChannel has no listen(): use subscribe()")

    def listen_binary(self, callback: Callable[[bytes], Any]) -> Callable[[], None]:
        """Not available: use :meth:`subscribe_binary`."""
        raise UsageError("BroadcastChannel has no listen_binary(): use subscribe_binary()")

    def publish(self, data: T) -> asyncio.Future[Any]:
        """Publish ``data`` to the key; resolves with ``{key, seq, timestamp, meta}``."""
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        return self._send_tag(Tag.PUBLISH_ACK_REQ, stringify(data).encode())

    def publish_binary(self, data: bytes | bytearray | memoryview) -> asyncio.Future[Any]:
        """Publish raw bytes to the key; resolves with the receipt."""
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        return self._send_tag(Tag.PUBLISH_BINARY_ACK_REQ, bytes(data))

    def subscribe(self, callback: Callable[[T, PublishInfo], Any]) -> Callable[[], None]:
        """Call ``callback(data, info)`` for every publish to the key; returns an unsubscribe.

        The first subscriber makes the server start forwarding (BROADCAST_SUB); publishes made
        before that are not delivered.
        """
        return self._add_subscriber(self._subscribers, callback, binary=False)

    def subscribe_binary(self, callback: Callable[[bytes, PublishInfo], Any]) -> Callable[[], None]:
        """Like :meth:`subscribe`, for binary publishes."""
        return self._add_subscriber(self._binary_subscribers, callback, binary=True)

    def _add_subscriber(
        self, subs: list[Any], callback: Any, *, binary: bool
    ) -> Callable[[], None]:
        flag = bytes((1 if binary else 0,))
        if not subs:
            self._core.send_ctrl(Tag.BROADCAST_SUB, flag)
        subs.append(callback)

        def unsubscribe() -> None:
            if callback in subs:
                subs.remove(callback)
                if not subs:
                    self._core.send_ctrl(Tag.BROADCAST_UNSUB, flag)

        return unsubscribe

    def handle_other_frame(self, frame: Frame) -> None:
        """PUBLISH / PUBLISH_BINARY deliveries."""
        try:
            if frame.tag == Tag.PUBLISH:
                head, _, body = frame.payload.partition(b"\n")
                seq_text, _, ts_text = head.partition(b",")
                info = PublishInfo(key=self.key, seq=int(seq_text), timestamp=_number(ts_text))
                data: Any = parse(body.decode())
                subs: list[Any] = list(self._subscribers)
            elif frame.tag == Tag.PUBLISH_BINARY:
                seq, timestamp = _PUBLISH_BINARY_INFO.unpack_from(frame.payload)
                info = PublishInfo(key=self.key, seq=seq, timestamp=_number(timestamp))
                data = frame.payload[_PUBLISH_BINARY_INFO.size :]
                subs = list(self._binary_subscribers)
            else:
                return
        except (ValueError, struct.error):
            logger.exception("telefunc: could not decode a broadcast delivery")
            return
        for cb in subs:
            self._invoke(cb, data, info)


def _number(value: bytes | float) -> float:
    number = float(value)
    return int(number) if number.is_integer() else number
