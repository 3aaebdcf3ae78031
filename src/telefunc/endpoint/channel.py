"""The asyncio face of a channel, shared by the server :class:`~telefunc.server.channel.Channel`
and the client :class:`telefunc.client.Channel` (so it imports neither side).

:class:`~telefunc.wire.channel_state.ChannelCore` owns every protocol decision and reports what
happens through synchronous ``handle_*`` calls (its ``ChannelEvents``). :class:`ChannelEndpoint`
turns those into futures and listener calls, the same way on both sides of the wire; the two
sides differ only in their clock, how they abort, the error texts they send, and what happens
when the channel is finished — the hooks a subclass provides.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from telefunc.config import LimitsConfig, config
from telefunc.endpoint.client_errors import log_client_error
from telefunc.errors import (
    Abort,
    ChannelClosedError,
    ChannelOverflowError,
    ChannelRemoteError,
    ShieldValidationError,
)
from telefunc.wire.channel_state import NO_LISTENER, ChannelCore, SendResult
from telefunc.wire.frames import (
    TAG_BINARY,
    TAG_BINARY_ACK_REQ,
    TAG_TEXT,
    TAG_TEXT_ACK_REQ,
    AckStatus,
    Frame,
)
from telefunc.wire.serializer import parse, stringify

__all__ = [
    "ChannelEndpoint",
    "add_listener",
    "close_soon",
    "mark_retrieved",
    "parse_peer_text",
    "spawn",
]

logger = logging.getLogger("telefunc")

Incoming = TypeVar("Incoming")
Outgoing = TypeVar("Outgoing")

_background: set[asyncio.Future[Any]] = set()

#: A send that completes at once (credit left, connection not congested) still gives other tasks
#: a turn every this many such sends: ``await ch.send(x)`` in a loop on a peer that grants huge
#: credit would otherwise never yield to the event loop.
SEND_YIELD_EVERY = 16
_sends_since_yield = 0


def spawn(awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
    """Run ``awaitable`` as a task that is kept referenced until it finishes."""
    task = asyncio.ensure_future(awaitable)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _resolve(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)


def mark_retrieved(fut: asyncio.Future[Any]) -> None:
    """Done-callback: an un-awaited failed send is not an "exception never retrieved" error.

    Like the JavaScript client's ``ret.catch(() => {})``.
    """
    if not fut.cancelled():
        fut.exception()


def close_soon(channel: ChannelEndpoint[Any, Any], loop: asyncio.AbstractEventLoop) -> None:
    """Close ``channel`` on ``loop`` from any thread (a finalizer may run outside the loop)."""

    def close() -> None:
        if not channel.is_closed:
            channel.close()

    try:
        if asyncio.get_running_loop() is loop:
            close()
            return
    except RuntimeError:
        pass
    if not loop.is_closed():
        loop.call_soon_threadsafe(close)


def add_listener(listeners: list[Any], callback: Any) -> Callable[[], None]:
    """Append ``callback``; returns the function that removes it again."""
    listeners.append(callback)

    def unlisten() -> None:
        if callback in listeners:
            listeners.remove(callback)

    return unlisten


def parse_peer_text(text: str | bytes, max_depth: int) -> Any:
    """A text message from the other side (or its UTF-8 bytes), parsed within ``max_depth``
    (``limits.max_depth``).

    Raises ``ValueError`` for malformed input (logged once per interval, never a traceback:
    the other side may be hostile).
    """
    try:
        return parse(text, max_depth=max_depth)
    except ValueError as exc:
        log_malformed_message(exc)
        raise


def log_malformed_message(exc: ValueError) -> None:
    """The one log line (rate-limited) for a peer's text message that does not parse."""
    log_client_error(
        "malformed-channel-message", "telefunc: dropped a channel message: %s", str(exc)[:200]
    )


class _Settle(NamedTuple):
    """A message whose listeners returned awaitables: consumed once they settle."""

    pending: list[Awaitable[Any]]
    nbytes: int


class _Answer(NamedTuple):
    """An ack request, answered with its listeners' return value."""

    seq: int
    payload: bytes
    binary: bool


def _discard(items: deque[_Settle | _Answer]) -> None:
    """Drop what an aborted channel will never settle (closing un-awaited coroutines)."""
    for item in items:
        if isinstance(item, _Settle):
            for aw in item.pending:
                if inspect.iscoroutine(aw):
                    aw.close()
    items.clear()


class _Inbox:
    """What one channel's listeners still have to settle, and the one task settling it."""

    __slots__ = ("items", "task")

    def __init__(self) -> None:
        self.items: deque[_Settle | _Answer] = deque()
        self.task: asyncio.Future[Any] | None = None

    @property
    def busy(self) -> bool:
        """Whether the task runs (what arrives now queues behind it)."""
        return self.task is not None


class ChannelEndpoint(Generic[Incoming, Outgoing]):
    """One end of a channel: send, listen, acks, open/close callbacks over a ``ChannelCore``.

    ``Incoming`` is what the peer sends (what listeners receive), ``Outgoing`` what this end
    sends. Subclasses set :attr:`_core` and provide :meth:`_now` and :meth:`abort`.
    """

    __slots__ = (
        "_binary_listeners",
        "_close_callbacks",
        "_close_error",
        "_close_fired",
        "_close_future",
        "_core",
        "_credit_waiters",
        "_inbox",
        "_limits",
        "_listeners",
        "_open_callbacks",
        "_open_fired",
        "ack",
        "id",
    )

    #: ACK_RES error text sent back when one of this end's listeners raised.
    LISTENER_ERROR: ClassVar[str]
    #: Message of the :class:`ChannelRemoteError` when the peer's ERROR reply carries no text.
    PEER_ERROR: ClassVar[str]

    _core: ChannelCore

    def __init__(self, channel_id: str, ack: bool) -> None:
        self.id: str = channel_id
        self.ack: bool = ack
        self._listeners: list[Callable[[Any], Any]] = []
        self._binary_listeners: list[Callable[[bytes], Any]] = []
        # Created on first use (``None`` until then): most channels never register an open or
        # close callback nor wait for credit, and every empty list costs 56 bytes per channel.
        self._open_callbacks: list[Callable[[], Any]] | None = None
        self._close_callbacks: list[Callable[[Exception | None], Any]] | None = None
        self._open_fired = False
        self._close_fired = False
        self._close_error: Exception | None = None
        self._credit_waiters: list[asyncio.Future[None]] | None = None
        self._close_future: asyncio.Future[int] | None = None
        #: Messages waiting for an async listener before them (``None`` until one had to wait).
        self._inbox: _Inbox | None = None
        #: The limits this end's input is held to (a server channel takes its app's, live).
        self._limits: LimitsConfig = config.limits

    # ── hooks ───────────────────────────────────────────────────────────

    def _now(self) -> float:
        """The clock the core's deadlines are measured on."""
        raise NotImplementedError

    def abort(self, value: Any = None) -> None:
        """Abort the channel now with ``value``."""
        raise NotImplementedError

    def _close_started(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Called once a graceful close has begun (a hook for channels no timer drives)."""

    def _max_depth(self) -> int:
        """The deepest nesting a text message from the peer may have."""
        return self._limits.snapshot().max_depth

    def _send_evicted(self) -> None:
        """A send was evicted from this end's full buffer (the server counts it in its metrics)."""

    # ── public state ────────────────────────────────────────────────────

    @property
    def is_closed(self) -> bool:
        """``True`` once ``close()``/``abort()`` was called or the channel ended."""
        return self._core.is_closed

    # ── sending ─────────────────────────────────────────────────────────

    def send(self, data: Outgoing, ack: bool | None = None) -> asyncio.Future[Any]:
        """Send ``data`` (any json-serializer value) to the peer's listeners.

        Returns an awaitable: it resolves once send credit allows the next send, or — for an
        acknowledged send (``ack=True``, or the channel's default unless ``ack=False``) — with
        the peer listener's return value. Raises :class:`ChannelClosedError` at once after
        ``close()``/``abort()``. A message evicted from a full buffer fails with
        :class:`~telefunc.errors.ChannelOverflowError`.
        """
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        needs_ack = ack is not False and (ack is True or self.ack)
        payload = stringify(data).encode()
        return self._send_tag(TAG_TEXT_ACK_REQ if needs_ack else TAG_TEXT, payload)

    def send_binary(
        self, data: bytes | bytearray | memoryview, ack: bool = False
    ) -> asyncio.Future[Any]:
        """Send raw bytes; acknowledged only with ``ack=True`` (the channel default is ignored)."""
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        return self._send_tag(TAG_BINARY_ACK_REQ if ack else TAG_BINARY, bytes(data))

    def _send_tag(self, tag: int, payload: bytes) -> asyncio.Future[Any]:
        """Send one data frame of any data tag; the generic path subclasses reuse."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        result = self._core.send(tag, payload, self._now(), fut)
        if result is not SendResult.SENT:
            # It may fail later (overflow, close); a SENT one only ever resolves with None, and
            # skipping the callback spares a loop callback per send.
            fut.add_done_callback(mark_retrieved)
        if result is SendResult.SENT:
            global _sends_since_yield
            _sends_since_yield += 1
            if _sends_since_yield >= SEND_YIELD_EVERY:
                _sends_since_yield = 0
                # Resolved on the next loop iteration: the awaiting sender yields once.
                fut.get_loop().call_soon(_resolve, fut)
            else:
                fut.set_result(None)
        elif result is SendResult.WAIT_CREDIT:
            if self._credit_waiters is None:
                self._credit_waiters = []
            self._credit_waiters.append(fut)
        return fut

    # ── listening ───────────────────────────────────────────────────────

    def listen(self, callback: Callable[[Incoming], Any]) -> Callable[[], None]:
        """Call ``callback(data)`` for every text message; returns a function that unlistens.

        ``callback`` may be async. Its (awaited) return value answers an acknowledged send (the
        last listener's wins). Raising :class:`~telefunc.errors.Abort` aborts the channel.
        """
        return add_listener(self._listeners, callback)

    def listen_binary(self, callback: Callable[[bytes], Any]) -> Callable[[], None]:
        """Like :meth:`listen`, for binary messages (``bytes``)."""
        return add_listener(self._binary_listeners, callback)

    def on_open(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` when the channel opens (at once if it already has)."""
        if self._open_fired:
            self._invoke(callback)
        elif self._open_callbacks is None:
            self._open_callbacks = [callback]
        else:
            self._open_callbacks.append(callback)

    def on_close(self, callback: Callable[[Exception | None], Any]) -> None:
        """Call ``callback(err)`` when the channel closes (``err`` is ``None`` for a clean close).

        After an abort ``err`` is an :class:`~telefunc.errors.Abort` carrying the value; after
        the peer stayed away too long, a :class:`~telefunc.errors.NetworkError`. An async
        callback is awaited before a graceful close completes.
        """
        if self._close_fired:
            self._invoke(callback, self._close_error)
        elif self._close_callbacks is None:
            self._close_callbacks = [callback]
        else:
            self._close_callbacks.append(callback)

    # ── closing ─────────────────────────────────────────────────────────

    def close(self, timeout: float = 5.0) -> asyncio.Future[int]:
        """Close gracefully; resolves 0 if the peer acknowledged, 1 if ``timeout`` ran out.

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
        if not self._core.is_shutdown:
            self._close_started(loop, timeout)
        return fut

    # ── ChannelEvents (called synchronously by the core; not public API) ──

    def handle_open(self) -> None:
        """The peer attached for the first time: run the ``on_open`` callbacks."""
        self._open_fired = True
        callbacks, self._open_callbacks = self._open_callbacks or (), None
        for cb in callbacks:
            self._invoke(cb)

    def handle_message(self, payload: bytes, binary: bool) -> None:
        """A fire-and-forget message: run the listeners, then count it as consumed (credit).

        The listeners are called at once, in arrival order (like the official client, whose
        async listeners start synchronously). What they return to await goes to this channel's
        inbox, where one task settles it in order and only then consumes the message: credit
        comes back once the listeners are done, so a slow listener slows the sender, and the
        inbox is bounded by the receive window the connection enforces (never one task per
        message). A future that is already settled (``channel.send(...)`` while credit remains)
        has nothing to wait for: with the inbox idle, the message is consumed at once.
        """
        nbytes = len(payload)
        if binary:
            data: Any = payload
        else:
            # parse_peer_text, inline (the hot path of every text message)
            try:
                data = parse(payload, max_depth=self._limits.snapshot().max_depth)
            except ValueError as exc:
                log_malformed_message(exc)
                self._consume_in_order(nbytes)
                return
            try:
                data = self._check_incoming(data)
            except ShieldValidationError:  # dropped (and logged), but its credit is consumed
                self._consume_in_order(nbytes)
                return
        pending: list[Awaitable[Any]] | None = None
        inbox = self._inbox
        idle = inbox is None or inbox.task is None
        for cb in (self._binary_listeners if binary else self._listeners)[:]:
            try:
                result = cb(data)
                if result is None:
                    continue
                if (
                    idle
                    and isinstance(result, asyncio.Future)
                    and result.done()
                    and not result.cancelled()
                ):
                    # Already settled (typically a listener returning ``channel.send(...)``):
                    # nothing to wait for, so no inbox task for this message.
                    result.result()  # raises what the listener's future failed with
                    continue
            except Exception as exc:
                if self._callback_error(exc):
                    return
                continue
            if inspect.isawaitable(result):
                if pending is None:
                    pending = []
                pending.append(result)
        if pending:
            self._inbox_push(_Settle(pending, nbytes))
        elif idle:
            self._core.consumed(nbytes)
        else:
            self._consume_in_order(nbytes)

    def _consume_in_order(self, nbytes: int) -> None:
        """Consume now, unless earlier messages still wait in the inbox (credit stays ordered)."""
        inbox = self._inbox
        if inbox is not None and inbox.busy:
            inbox.items.append(_Settle([], nbytes))
        else:
            self._core.consumed(nbytes)

    def handle_ack_request(self, seq: int, payload: bytes, binary: bool) -> None:
        """An acknowledged message: answer with the last listener's return value.

        Answered by the inbox task, in order with the other messages' listeners.
        """
        self._inbox_push(_Answer(seq, payload, binary))

    def _inbox_push(self, item: _Settle | _Answer) -> None:
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = _Inbox()
        inbox.items.append(item)
        if not inbox.busy:
            inbox.task = spawn(self._drain(inbox))

    async def _drain(self, inbox: _Inbox) -> None:
        """The inbox task: settle every queued message and answer every ack request, in order."""
        items = inbox.items
        try:
            while items:
                item = items.popleft()
                if isinstance(item, _Answer):
                    await self._answer(item.seq, item.payload, item.binary)
                    continue
                for aw in item.pending:
                    try:
                        await aw
                    except Exception as exc:
                        if self._callback_error(exc):
                            _discard(items)
                            return
                self._core.consumed(item.nbytes)
        finally:
            inbox.task = None
            if self._core.is_shutdown:
                self._release_callbacks()

    async def _answer(self, seq: int, payload: bytes, binary: bool) -> None:
        listeners = list(self._binary_listeners if binary else self._listeners)
        core = self._core
        if not listeners:
            core.reply(seq, AckStatus.ERROR, NO_LISTENER, self._now())
            return
        result: Any = None
        try:
            data: Any = payload if binary else parse_peer_text(payload, self._max_depth())
        except ValueError:
            core.reply(seq, AckStatus.ERROR, self.LISTENER_ERROR, self._now())
            return
        try:
            if not binary:
                data = self._check_incoming(data)
            for cb in listeners:
                result = cb(data)
                if inspect.isawaitable(result):
                    result = await result
            text = stringify(result)
        except ShieldValidationError as exc:
            core.reply(seq, AckStatus.SHIELD_ERROR, str(exc), self._now())
        except Abort as abort:
            # The sender's await rejects with the Abort (and its value), then the channel aborts.
            core.reply(seq, AckStatus.ABORT, stringify(abort.value), self._now())
            self.abort(abort.value)
        except Exception as exc:
            self._listener_raised(exc)
            core.reply(seq, AckStatus.ERROR, self.LISTENER_ERROR, self._now())
        else:
            core.reply(seq, AckStatus.OK, text, self._now())

    def handle_ack_result(self, token: Any, status: AckStatus, text: str) -> None:
        """The peer answered one of our acknowledged sends."""
        fut: asyncio.Future[Any] = token
        if fut.done():
            return
        try:
            if status == AckStatus.OK:
                fut.set_result(self._check_ack(parse(text)))
            elif status == AckStatus.ABORT:
                fut.set_exception(Abort(parse(text)))
            elif status == AckStatus.SHIELD_ERROR:
                fut.set_exception(ShieldValidationError(text))
            else:
                fut.set_exception(ChannelRemoteError(text or self.PEER_ERROR))
        except Exception as exc:  # an unparsable ack value
            fut.set_exception(exc)

    def handle_send_done(self, token: Any) -> None:
        """A send that waited (buffered while detached) went out."""
        fut: asyncio.Future[Any] = token
        if not fut.done():
            fut.set_result(None)

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        """A send will never complete (evicted, or the channel ended)."""
        if isinstance(error, ChannelOverflowError):
            self._send_evicted()
        fut: asyncio.Future[Any] = token
        if not fut.done():
            fut.set_exception(error)

    def handle_credit(self) -> None:
        """Send credit is back (or the channel ended): wake the waiting senders."""
        if not self._core.credit_available:
            return
        waiters, self._credit_waiters = self._credit_waiters or (), None
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def handle_fire_close(self, error: Exception | None) -> None:
        """Run the ``on_close`` callbacks; async ones hold the close until they finish."""
        self._close_fired = True
        self._close_error = error
        callbacks, self._close_callbacks = self._close_callbacks or (), None
        self._open_callbacks = None
        core = self._core
        for cb in callbacks:
            try:
                result = cb(error)
            except Exception:
                logger.exception("telefunc: a channel on_close callback raised")
                continue
            if inspect.isawaitable(result):
                core.hold_close()
                spawn(self._await_close_callback(result))

    async def _await_close_callback(self, result: Awaitable[Any]) -> None:
        try:
            await result
        except Exception:
            logger.exception("telefunc: a channel on_close callback raised")
        finally:
            self._core.release_close(self._now())

    def handle_shutdown(self, error: Exception | None) -> None:
        """The channel is finished: settle ``close()``, and let go of the callbacks."""
        if self._close_future is not None and not self._close_future.done():
            self._close_future.set_result(0 if self._core.got_close_ack else 1)
        inbox = self._inbox
        if inbox is None or not inbox.busy:
            self._release_callbacks()

    def _release_callbacks(self) -> None:
        """Drop listeners and callbacks of a finished channel: none runs again, and they
        typically close over the channel (``ch.listen(lambda m: ch.send(m))``), a cycle that
        would otherwise keep it until a full garbage collection."""
        self._listeners = []
        self._binary_listeners = []
        self._open_callbacks = self._close_callbacks = None

    def handle_other_frame(self, frame: Frame) -> None:
        """Frames a plain channel ignores (broadcast frames); for subclasses."""

    # ── helpers ─────────────────────────────────────────────────────────

    def _callback_error(self, exc: BaseException) -> bool:
        """``Abort`` aborts the channel (returns True); anything else is logged."""
        if isinstance(exc, Abort):
            self.abort(exc.value)
            return True
        self._listener_raised(exc)
        return False

    def _check_incoming(self, data: Any) -> Any:
        """Validate a text message from the peer (raise ``ShieldValidationError``); a hook."""
        return data

    def _check_ack(self, value: Any) -> Any:
        """Validate the peer's answer to an acknowledged send; a hook."""
        return value

    def _listener_raised(self, exc: BaseException) -> None:
        """A listener or callback of this end raised something other than ``Abort``."""
        logger.error("telefunc: a channel listener raised", exc_info=exc)

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

            spawn(run())
