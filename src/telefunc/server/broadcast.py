"""Keyed publish/subscribe: :class:`BroadcastChannel` (returned to clients) and :class:`Broadcast`.

A ``BroadcastChannel`` is a :class:`~telefunc.server.channel.Channel` bound to a key. Every
publish to a key, by a client or by the server, goes through the broadcast transport, which gives
it the key's next ``seq``; subscribers, the publisher included, receive publishes in that order
as ordinary sequenced frames of their channel (docs/protocol.md §8). The payload is built once
per message and handed to every subscriber in one loop; a subscriber that falls too far behind
is closed as a slow consumer.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypedDict, TypeVar

from telefunc.broadcast.transport import (
    PublishInfo,
    get_broadcast_transport,
    wait_subscribed,
)
from telefunc.config import config
from telefunc.endpoint.channel import mark_retrieved, parse_peer_text, spawn
from telefunc.errors import (
    ChannelClosedError,
    NetworkError,
    ProtocolError,
    ShieldValidationError,
    TelefuncError,
    UsageError,
)
from telefunc.server import observe
from telefunc.server.channel import INTERNAL_ERROR, Channel
from telefunc.server.channel_shield import shield_of
from telefunc.wire.credit import INITIAL_MESSAGES
from telefunc.wire.frames import (
    TAG_BROADCAST_SUB,
    TAG_BROADCAST_UNSUB,
    TAG_PUBLISH,
    TAG_PUBLISH_ACK_REQ,
    TAG_PUBLISH_BINARY,
    TAG_PUBLISH_BINARY_ACK_REQ,
    AckStatus,
    Frame,
)
from telefunc.wire.mux import SLOW_CONSUMER_REASON
from telefunc.wire.placeholders import BROADCAST_PREFIX, encode_json
from telefunc.wire.publish import (
    decode_publish_binary,
    decode_publish_text,
    encode_publish_binary,
    encode_publish_text,
)
from telefunc.wire.serializer import parse, stringify

__all__ = [
    "Broadcast",
    "BroadcastChannel",
    "PublishInfo",
    "PublishReceiptDict",
    "decode_publish_binary",
    "decode_publish_text",
    "encode_publish_binary",
    "encode_publish_text",
]

logger = logging.getLogger("telefunc")

T = TypeVar("T")

#: Yield to the event loop after this many queued publishes handled in a row, so a client that
#: floods publishes through a synchronous transport cannot starve other connections.
_PUBLISH_YIELD_EVERY = 8


# ── receipts ────────────────────────────────────────────────────────────────


class PublishReceiptDict(TypedDict):
    """What ``publish()`` resolves to: where the message landed in the key's order, as a dict.

    The JSON shape a publishing client receives; transports return the same facts as a
    :class:`~telefunc.broadcast.transport.PublishReceipt` dataclass.

    ``timestamp`` is in milliseconds since the epoch (JavaScript's ``Date.now()``); ``meta`` is
    transport-specific (e.g. ``{"delivered": 2, "transport": "in-memory"}``).
    """

    key: str
    seq: int
    timestamp: float
    meta: Any


def _field(obj: Any, name: str) -> Any:
    # Bundled transports return dataclasses; docs/protocol.md §8 also allows a plain
    # ``{seq, timestamp}`` mapping.
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _receipt(key: str, result: Any) -> PublishReceiptDict:
    meta = _field(result, "meta")
    return {
        "key": key,
        "seq": int(_field(result, "seq")),
        "timestamp": _field(result, "timestamp"),
        "meta": dict(meta) if isinstance(meta, Mapping) else meta,
    }


class _WireCache:
    """The PUBLISH payload of the message being fanned out, built once for all its channels.

    A transport calls every listener of a message in one plain loop with the same payload and
    info objects, so remembering the last (payload, info) pair by identity is enough: the first
    subscribed channel builds the bytes (and reads the clock), the others reuse them. A
    transport that hands out fresh objects per listener only loses the sharing, never
    correctness.
    """

    __slots__ = ("info", "now", "payload", "wire")

    def __init__(self) -> None:
        self.info: Any = None
        self.payload: Any = None
        self.wire = b""
        #: The hub clock when the message's first channel got it (its replay buffer time).
        self.now = 0.0

    def fill(self, payload: Any, info: Any, binary: bool, now: float) -> None:
        """Build the payload of the PUBLISH(_BINARY) frames carrying ``payload``."""
        seq = int(_field(info, "seq"))
        timestamp = _field(info, "timestamp")
        self.wire = (
            encode_publish_binary(bytes(payload), seq, timestamp)
            if binary
            else encode_publish_text(payload, seq, timestamp)
        )
        self.info = info
        self.payload = payload
        self.now = now


_wire_cache = _WireCache()


# ── transport access ────────────────────────────────────────────────────────


class _Unsubscribe:
    """Calls a transport's unlisten function once, running it as a task if it is async.

    A slotted object rather than a closure: every subscribed channel holds one per lane for its
    whole life, and a closure with its cells is several times the size.
    """

    __slots__ = ("unlisten",)

    def __init__(self, unlisten: Callable[[], Any]) -> None:
        self.unlisten: Callable[[], Any] | None = unlisten

    def __call__(self) -> None:
        unlisten, self.unlisten = self.unlisten, None
        if unlisten is not None:
            observe.sink.broadcast_subscribed(-1)
            result: Any = unlisten()
            if inspect.isawaitable(result):
                spawn(result)


def _listen(key: str, binary: bool, callback: Callable[[Any, Any], None]) -> Callable[[], None]:
    transport = get_broadcast_transport()
    observe.sink.broadcast_subscribed(1)
    return _Unsubscribe((transport.listen_binary if binary else transport.listen)(key, callback))


async def _publish(key: str, body: str | bytes) -> PublishReceiptDict:
    # str goes to the text lane, bytes to the binary lane.
    transport = get_broadcast_transport()
    observe.sink.broadcast_published(transport)
    result: Any
    if isinstance(body, str):
        result = transport.publish(key, body)
    else:
        result = transport.publish_binary(key, body)
    if inspect.isawaitable(result):
        result = await result
    return _receipt(key, result)


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise UsageError(f"a broadcast key must be a str, not {type(key).__name__}")
    return key


def _run_callback(callback: Callable[..., Any], *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        # An async callback was the application's choice; each call then costs a task.
        async def settle() -> None:
            try:
                await result
            except Exception:
                logger.exception("telefunc: a broadcast subscriber raised")

        spawn(settle())


#: The ACK_RES error a client gets when it publishes on a read-only BroadcastChannel.
READ_ONLY_ERROR = "This BroadcastChannel is read-only: the server does not accept client publishes"


# ── server-side helpers ─────────────────────────────────────────────────────


class Broadcast:
    """Server-side publish/subscribe on a key, without a client channel.

    ``await Broadcast.publish("room:1", {"text": "hi"})`` reaches every subscriber of the key
    (clients holding a :class:`BroadcastChannel` with that key, and server callbacks), in this
    process and — with a shared transport such as Redis — in every other one.
    """

    __slots__ = ()

    @staticmethod
    async def publish(key: str, data: Any) -> PublishReceiptDict:
        """Publish ``data`` (any json-serializer value) to ``key``; returns the receipt."""
        return await _publish(_check_key(key), stringify(data))

    @staticmethod
    async def publish_binary(key: str, data: bytes | bytearray | memoryview) -> PublishReceiptDict:
        """Publish raw bytes to ``key``'s binary subscribers; returns the receipt."""
        return await _publish(_check_key(key), bytes(data))

    @staticmethod
    def subscribe(key: str, callback: Callable[[Any, PublishInfo], Any]) -> Callable[[], None]:
        """Call ``callback(data, info)`` for every publish to ``key``; returns the unsubscriber.

        ``callback`` runs synchronously in delivery order; if it returns an awaitable, that is
        run as a task.
        """

        def deliver(text: str, info: PublishInfo) -> None:
            _run_callback(callback, parse(text), info)

        return _listen(_check_key(key), False, deliver)

    @staticmethod
    def subscribe_binary(
        key: str, callback: Callable[[bytes, PublishInfo], Any]
    ) -> Callable[[], None]:
        """Like :meth:`subscribe`, for binary publishes (``bytes``)."""

        def deliver(data: bytes, info: PublishInfo) -> None:
            _run_callback(callback, data, info)

        return _listen(_check_key(key), True, deliver)


# ── the channel ─────────────────────────────────────────────────────────────


class BroadcastChannel(Channel[T, T], Generic[T]):
    """A channel bound to a broadcast ``key``; see the module docstring.

    ``send``/``listen`` (and their binary forms) raise :class:`~telefunc.errors.UsageError`: use
    :meth:`publish` and :meth:`subscribe`. ``on_open``, ``on_close``, ``close`` and ``abort``
    work as on a :class:`~telefunc.server.channel.Channel`.

    With ``read_only=True`` the client may subscribe but not publish: its ``publish()`` rejects
    with an error and nothing reaches the key. Use it when the server publishes on the clients'
    behalf after checking what they send (a chat whose messages must carry the real author).
    """

    __slots__ = (
        "_binary_subs",
        "_lane_binary",
        "_lane_text",
        "_peer_binary",
        "_peer_text",
        "_pub_queue",
        "_pub_worker",
        "_text_subs",
        "key",
        "read_only",
    )

    def __init__(
        self,
        key: str,
        *,
        read_only: bool = False,
        id: str | None = None,
        buffer_limit: int | None = None,
    ):
        super().__init__(id=id, buffer_limit=buffer_limit)
        #: The broadcast key this channel publishes to and subscribes on.
        self.key: str = _check_key(key)
        #: Whether publishes from the client are refused.
        self.read_only = read_only
        self._peer_text = False
        self._peer_binary = False
        # Server-side subscribers; created by the first one (most channels have none, and the
        # fan-out checks these once per subscriber per publish).
        self._text_subs: list[Callable[[T, PublishInfo], Any]] | None = None
        self._binary_subs: list[Callable[[bytes, PublishInfo], Any]] | None = None
        self._lane_text: Callable[[], None] | None = None
        self._lane_binary: Callable[[], None] | None = None
        # Publishes (from the client or from `publish()`) handled one at a time, in arrival
        # order, by one worker task that exists only while the queue is non-empty. The queue
        # itself exists only then too: an empty deque costs ~700 bytes per subscriber.
        self._pub_queue: deque[tuple[str | bytes, int, asyncio.Future[Any] | None]] | None = None
        self._pub_worker: asyncio.Future[Any] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._core.is_closed else "open"
        return f"<BroadcastChannel {self.id} key={self.key!r} {state}>"

    # ── channel methods that do not apply ───────────────────────────────

    def send(self, data: T, ack: bool | None = None) -> asyncio.Future[Any]:
        """Not available on a broadcast channel: raises ``UsageError`` (use :meth:`publish`)."""
        raise UsageError("`send()` is not available on a BroadcastChannel — use `publish()`.")

    def send_binary(
        self, data: bytes | bytearray | memoryview, ack: bool = False
    ) -> asyncio.Future[Any]:
        """Not available: raises ``UsageError`` (use :meth:`publish_binary`)."""
        raise UsageError(
            "`send_binary()` is not available on a BroadcastChannel — use `publish_binary()`."
        )

    def listen(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Not available: raises ``UsageError`` (use :meth:`subscribe`)."""
        raise UsageError("`listen()` is not available on a BroadcastChannel — use `subscribe()`.")

    def listen_binary(self, callback: Callable[[bytes], Any]) -> Callable[[], None]:
        """Not available: raises ``UsageError`` (use :meth:`subscribe_binary`)."""
        raise UsageError(
            "`listen_binary()` is not available on a BroadcastChannel — use `subscribe_binary()`."
        )

    # ── publish / subscribe ─────────────────────────────────────────────

    def publish(self, data: T) -> asyncio.Future[PublishReceiptDict]:
        """Publish ``data`` to the key; resolves with the receipt ``{key, seq, timestamp, meta}``.

        Starts at once (awaiting is optional); publishes from this channel keep their order.
        Raises :class:`ChannelClosedError` after ``close()``/``abort()``.
        """
        return self._publish_local(stringify(data))

    def publish_binary(
        self, data: bytes | bytearray | memoryview
    ) -> asyncio.Future[PublishReceiptDict]:
        """Publish raw bytes to the key's binary subscribers; resolves with the receipt."""
        return self._publish_local(bytes(data))

    def subscribe(self, callback: Callable[[T, PublishInfo], Any]) -> Callable[[], None]:
        """Call ``callback(data, info)`` for every publish to the key; returns the unsubscriber.

        Raising :class:`~telefunc.errors.Abort` in ``callback`` aborts the channel.
        """
        if self._text_subs is None:
            self._text_subs = []
        return self._add_sub(self._text_subs, callback, False)

    def subscribe_binary(self, callback: Callable[[bytes, PublishInfo], Any]) -> Callable[[], None]:
        """Like :meth:`subscribe`, for binary publishes (``bytes``)."""
        if self._binary_subs is None:
            self._binary_subs = []
        return self._add_sub(self._binary_subs, callback, True)

    def _add_sub(self, subs: list[Any], callback: Any, binary: bool) -> Callable[[], None]:
        subs.append(callback)
        self._sync_lane(binary)

        def unsubscribe() -> None:
            if callback in subs:
                subs.remove(callback)
                self._sync_lane(binary)

        return unsubscribe

    def _publish_local(self, body: str | bytes) -> asyncio.Future[PublishReceiptDict]:
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        fut: asyncio.Future[PublishReceiptDict] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(mark_retrieved)
        self._enqueue(body, 0, fut)
        return fut

    # ── subscription bookkeeping ────────────────────────────────────────

    def _sync_lane(self, binary: bool) -> None:
        """Hold a transport listener exactly while someone (client or server) listens."""
        if binary:
            wanted = (self._peer_binary or bool(self._binary_subs)) and not self._core.is_shutdown
            if wanted and self._lane_binary is None:
                self._lane_binary = _listen(self.key, True, self._deliver_binary)
            elif not wanted and self._lane_binary is not None:
                unsub, self._lane_binary = self._lane_binary, None
                unsub()
        else:
            wanted = (self._peer_text or bool(self._text_subs)) and not self._core.is_shutdown
            if wanted and self._lane_text is None:
                self._lane_text = _listen(self.key, False, self._deliver_text)
            elif not wanted and self._lane_text is not None:
                unsub, self._lane_text = self._lane_text, None
                unsub()

    def _deliver_text(self, text: str, info: PublishInfo) -> None:
        if self._text_subs or not self._peer_text:
            self._deliver(text, info, False)
            return
        # Only the client listens (every subscriber of a fan-out, usually): the PUBLISH goes
        # out with as few calls as possible, as this runs once per subscriber per publish.
        cache = _wire_cache
        if cache.info is not info or cache.payload is not text:
            cache.fill(text, info, False, self._now())
        observe.sink.broadcast_delivered()
        core = self._core
        if core.send_publish(TAG_PUBLISH, cache.wire, cache.now):
            core.fail(NetworkError(SLOW_CONSUMER_REASON))

    def _deliver_binary(self, data: bytes, info: PublishInfo) -> None:
        self._deliver(data, info, True)

    def _deliver(self, payload: Any, info: PublishInfo, binary: bool) -> None:
        """One publish for this channel: server callbacks first, then the client (if subscribed).

        Runs synchronously inside the transport's fan-out loop; the client's copy is an ordinary
        sequenced send (so it is buffered while detached and replayed after a reconnect).
        """
        core = self._core
        if core.is_shutdown:
            return
        observe.sink.broadcast_delivered()
        subs: list[Any] | None = self._binary_subs if binary else self._text_subs
        if subs:
            try:
                data: Any = payload if binary else parse_peer_text(payload, self._max_depth())
            except ValueError:
                subs = []
            for cb in list(subs):
                try:
                    _run_callback(cb, data, info)
                except Exception as exc:
                    if self._callback_error(exc):
                        return
        if self._peer_binary if binary else self._peer_text:
            cache = _wire_cache
            if cache.info is not info or cache.payload is not payload:
                cache.fill(payload, info, binary, self._now())
            tag = TAG_PUBLISH_BINARY if binary else TAG_PUBLISH
            if core.send_publish(tag, cache.wire, cache.now):
                # This write passed the connection's hard limit (or it was cut already): the
                # subscriber stays behind. The channel ends rather than waiting for a reconnect:
                # publishes it missed may have left its replay buffer, and it must not resume
                # with a silent gap.
                core.fail(NetworkError(SLOW_CONSUMER_REASON))

    # ── frames from the client ──────────────────────────────────────────

    def handle_other_frame(self, frame: Frame) -> None:
        """BROADCAST_SUB/UNSUB and PUBLISH(_BINARY)_ACK_REQ from the client."""
        tag = frame.tag
        if tag in (TAG_BROADCAST_SUB, TAG_BROADCAST_UNSUB):
            subscribed = tag == TAG_BROADCAST_SUB and not self._core.is_closed
            binary = frame.flag
            if binary:
                self._peer_binary = subscribed
            else:
                self._peer_text = subscribed
            self._sync_lane(binary)
        elif self.read_only and tag in (TAG_PUBLISH_ACK_REQ, TAG_PUBLISH_BINARY_ACK_REQ):
            self._core.reply(frame.seq, AckStatus.ERROR, READ_ONLY_ERROR, self._now())
        elif tag in (TAG_PUBLISH_ACK_REQ, TAG_PUBLISH_BINARY_ACK_REQ) and self._publish_backlog():
            # Publishes bypass credit; the queue of ones awaiting their receipt is bounded like
            # unanswered ack requests (``max_window_overrun`` initial message windows).
            raise ProtocolError("too many publishes awaiting their receipt")
        elif tag == TAG_PUBLISH_ACK_REQ:
            try:
                text = frame.payload.decode("utf-8")
            except UnicodeDecodeError:
                self._core.reply(frame.seq, AckStatus.ERROR, "publish: not UTF-8", self._now())
                return
            rejected = self._shield_rejects(text)
            if rejected is not None:
                self._core.reply(frame.seq, AckStatus.SHIELD_ERROR, rejected, self._now())
                return
            self._enqueue(text, frame.seq, None)
        elif tag == TAG_PUBLISH_BINARY_ACK_REQ:
            self._enqueue(frame.payload, frame.seq, None)

    def _shield_rejects(self, text: str) -> str | None:
        """Why a client publish fails this channel's declared type, or ``None`` if it passes."""
        if shield_of(self) is None:
            return None
        try:
            self._check_incoming(parse_peer_text(text, self._max_depth()))
        except ShieldValidationError as exc:
            return str(exc)
        except ValueError:  # unparsable (logged): refused like a value of the wrong type
            return "channel message: not a telefunc-serialized value"
        return None

    # ── the publish queue ───────────────────────────────────────────────

    def _publish_backlog(self) -> bool:
        """Whether the client's publishes awaiting a receipt fill their bound."""
        queue = self._pub_queue
        hub = self._hub
        limits = (hub.settings if hub is not None else config).limits.snapshot()
        bound = max(1, limits.max_window_overrun) * INITIAL_MESSAGES
        if queue is None or len(queue) < bound:
            return False
        from_client = sum(1 for entry in queue if entry[2] is None)  # not the server's own
        return from_client >= bound

    def _enqueue(self, body: str | bytes, ack_seq: int, fut: asyncio.Future[Any] | None) -> None:
        # ``body`` is str for the text lane, bytes for the binary lane; ``ack_seq`` is the
        # client's PUBLISH*_ACK_REQ seq to answer, or ``fut`` the server-side caller's future.
        if self._pub_queue is None:
            self._pub_queue = deque()
        self._pub_queue.append((body, ack_seq, fut))
        if self._pub_worker is None:
            # A close waits for the queued publishes to be answered (or for its deadline).
            self._core.hold_close()
            self._pub_worker = spawn(self._drain_publishes())

    async def _drain_publishes(self) -> None:
        queue = self._pub_queue
        assert queue is not None  # created by the _enqueue that started this worker
        core = self._core
        handled = 0
        try:
            while queue:
                body, ack_seq, fut = queue[0]
                try:
                    if self._lane_text is not None or self._lane_binary is not None:
                        # A publisher also receives its own publish: make sure this process's
                        # upstream subscription is live first (asynchronous with Redis).
                        await wait_subscribed(get_broadcast_transport(), self.key)
                    receipt = await _publish(self.key, body)
                except Exception as exc:
                    self._publish_failed(exc, ack_seq, fut)
                else:
                    if fut is not None:
                        if not fut.done():
                            fut.set_result(receipt)
                    else:
                        core.reply(ack_seq, AckStatus.OK, stringify(receipt), self._now())
                finally:
                    queue.popleft()
                handled += 1
                if handled % _PUBLISH_YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        finally:
            self._pub_worker = None
            if not queue and self._pub_queue is queue:
                self._pub_queue = None
            core.release_close(self._now())

    def _publish_failed(
        self, exc: Exception, ack_seq: int, fut: asyncio.Future[Any] | None
    ) -> None:
        if fut is not None:
            if not fut.done():
                fut.set_exception(exc)
            return
        logger.error("telefunc: a client publish to %r failed", self.key, exc_info=exc)
        # A transport error the application raised on purpose (e.g. "broadcast transport
        # unreachable") is safe and useful to show; anything else stays in the server logs.
        message = str(exc) if isinstance(exc, TelefuncError) and str(exc) else INTERNAL_ERROR
        self._core.reply(ack_seq, AckStatus.ERROR, message, self._now())

    # ── ChannelEvents overrides ─────────────────────────────────────────

    def handle_send_done(self, token: Any) -> None:
        """Deliveries carry no token (no future per message); ignore their completion."""
        if token is not None:
            super().handle_send_done(token)

    def handle_send_failed(self, token: Any, error: Exception) -> None:
        """A delivery evicted from the detached buffer is dropped, like any overflowed send."""
        if token is None:
            logger.debug("telefunc: broadcast delivery on %s dropped: %s", self.id, error)
            return
        super().handle_send_failed(token, error)

    def handle_shutdown(self, error: Exception | None) -> None:
        """Drop this channel's subscriptions (and the transport listener, if it was the last)."""
        self._peer_text = self._peer_binary = False
        self._sync_lane(False)
        self._sync_lane(True)
        super().handle_shutdown(error)

    # ── placeholder ─────────────────────────────────────────────────────

    def __telefunc_placeholder__(self, scope: Any) -> str:
        """Register with the call's hub like a channel; the placeholder also carries the key."""
        super().__telefunc_placeholder__(scope)
        meta = {"channelId": self.id, "key": self.key}
        return encode_json(BROADCAST_PREFIX, meta)
