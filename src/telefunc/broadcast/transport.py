"""The broadcast transport contract (docs/protocol.md §8), its in-memory default, and helpers.

Every transport (:class:`InMemoryBroadcast` here, ``telefunc.broadcast.redis``, the Durable
Object's) keeps per-key order with a monotonic ``seq``, one upstream subscription per key per
process (:class:`BroadcastFanout` does the bookkeeping), synchronous listener calls with no task
per message, and a bounded-time :class:`BroadcastTransportError` when its broker is unreachable.
:func:`set_scoped_broadcast_transport` installs one for the current context (a Durable Object,
an app with its own settings);
:func:`get_broadcast_transport` prefers it to ``config.broadcast.transport``. Standard library
only: this module imports under Pyodide.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from telefunc.config import config
from telefunc.errors import BroadcastTransportError, UsageError

__all__ = [
    "BroadcastFanout",
    "BroadcastGap",
    "BroadcastTransport",
    "InMemoryBroadcast",
    "PublishInfo",
    "PublishReceipt",
    "SeqTracker",
    "get_broadcast_transport",
    "reset_default_broadcast_transport",
    "reset_scoped_broadcast_transport",
    "resolve_broadcast_transport",
    "set_scoped_broadcast_transport",
    "wait_subscribed",
]

logger = logging.getLogger("telefunc.broadcast")

T = TypeVar("T")

#: A text listener: ``callback(text, info)``.
TextCallback = Callable[[str, "PublishInfo"], None]
#: A binary listener: ``callback(data, info)``.
BinaryCallback = Callable[[bytes, "PublishInfo"], None]


@dataclass(frozen=True, slots=True)
class PublishInfo:
    """What a listener learns about a message besides its payload.

    ``timestamp`` is in milliseconds since the epoch, like JavaScript's ``Date.now()``; the
    bundled transports give whole milliseconds (an ``int`` at runtime) so it formats exactly as
    the JS server's on the wire.
    """

    key: str
    seq: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class PublishReceipt:
    """The result of a publish: where the message landed in its key's order.

    ``meta`` is transport-specific (do not mutate it): the in-memory transport gives
    ``{"delivered": <listeners reached>, "transport": "in-memory"}``; Redis gives
    ``{"delivered": <processes subscribed>, "transport": "redis", "epoch": ...}``.
    """

    key: str
    seq: int
    timestamp: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def info(self) -> PublishInfo:
        """The :class:`PublishInfo` listeners received (or will receive) for this message."""
        return PublishInfo(self.key, self.seq, self.timestamp)

    def to_json(self) -> dict[str, Any]:
        """The body of the ACK_RES a publishing client receives: ``{key, seq, timestamp, meta}``."""
        return {"key": self.key, "seq": self.seq, "timestamp": self.timestamp, "meta": self.meta}


@dataclass(frozen=True, slots=True)
class BroadcastGap:
    """A break in a key's sequence seen by one process: messages may have been lost.

    ``reason`` is ``"skipped"`` (``got_seq`` > ``expected_seq``: messages were missed, e.g.
    during a reconnect), ``"backwards"`` (``got_seq`` < ``expected_seq`` in the same counter
    epoch; should not happen) or ``"reset"`` (the broker's counter for the key was lost and
    started again, e.g. an unpersisted Redis restart; ``got_seq`` may be anything).
    """

    key: str
    expected_seq: int
    got_seq: int
    reason: Literal["skipped", "backwards", "reset"]


@runtime_checkable
class BroadcastTransport(Protocol):
    """What ``config.broadcast.transport`` must provide (docs/protocol.md §8).

    See the module docstring for the ordering, fan-out and callback rules.
    """

    async def publish(self, key: str, text: str) -> PublishReceipt:
        """Publish ``text`` (already serialized) to every listener of ``key``, in every process."""
        ...

    async def publish_binary(self, key: str, data: bytes) -> PublishReceipt:
        """Publish raw bytes on the binary lane of ``key``."""
        ...

    def listen(self, key: str, callback: TextCallback) -> Callable[[], None]:
        """Call ``callback(text, info)`` for each text publish to ``key``; returns unsubscribe."""
        ...

    def listen_binary(self, key: str, callback: BinaryCallback) -> Callable[[], None]:
        """Call ``callback(data, info)`` for each binary publish to ``key``; returns unsubscribe."""
        ...

    async def aclose(self) -> None:
        """Release connections and tasks; publishing afterwards raises."""
        ...


class _Listener(Generic[T]):
    """One registration; a separate object so the same callable can be registered twice."""

    __slots__ = ("active", "callback")

    def __init__(self, callback: Callable[[T, PublishInfo], None]) -> None:
        self.callback = callback
        self.active = True


class _Lane(Generic[T]):
    """The listeners of one key on one lane, in registration order.

    Adding appends and removing only marks the listener inactive (the list is compacted once
    half of it is inactive), so N subscribers joining or leaving cost O(N) in all, not O(N²).
    Delivery iterates :meth:`snapshot`, a tuple rebuilt only after a change.
    """

    __slots__ = ("_snapshot", "inactive", "listeners")

    def __init__(self) -> None:
        self.listeners: list[_Listener[T]] = []
        #: Inactive listeners still in :attr:`listeners`.
        self.inactive = 0
        self._snapshot: tuple[_Listener[T], ...] | None = None

    def __len__(self) -> int:
        return len(self.listeners) - self.inactive

    def add(self, listener: _Listener[T]) -> None:
        self.listeners.append(listener)
        self._snapshot = None

    def remove(self, listener: _Listener[T]) -> None:
        """Forget ``listener``, which its unsubscribe just marked inactive."""
        self.inactive += 1
        if self.inactive * 2 > len(self.listeners):
            self.listeners = [x for x in self.listeners if x.active]
            self.inactive = 0
            self._snapshot = None

    def snapshot(self) -> tuple[_Listener[T], ...]:
        """The listeners to call for a message (inactive ones are skipped by the caller)."""
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = tuple(self.listeners)
        return snapshot


class BroadcastFanout:
    """Per-process listener bookkeeping for a transport: two lanes, per-key, ordered delivery.

    ``on_first(key)`` runs when a key gets its first listener on either lane (open the upstream
    subscription), ``on_last(key)`` when its last listener leaves (drop it). Delivery is
    non-reentrant: a message delivered while another delivery is running (a listener that
    publishes in-memory) is queued and delivered right after, so every listener sees one order.
    """

    __slots__ = ("_binary", "_delivering", "_on_first", "_on_last", "_pending", "_text")

    def __init__(
        self,
        on_first: Callable[[str], None] | None = None,
        on_last: Callable[[str], None] | None = None,
    ) -> None:
        # Only keys with at least one active listener have a lane.
        self._text: dict[str, _Lane[str]] = {}
        self._binary: dict[str, _Lane[bytes]] = {}
        self._on_first = on_first
        self._on_last = on_last
        self._delivering = False
        self._pending: deque[tuple[tuple[_Listener[Any], ...], Any, PublishInfo]] = deque()

    def add_text(self, key: str, callback: TextCallback) -> Callable[[], None]:
        """Register a text listener; returns its idempotent unsubscribe function."""
        return self._add(self._text, key, callback)

    def add_binary(self, key: str, callback: BinaryCallback) -> Callable[[], None]:
        """Register a binary listener; returns its idempotent unsubscribe function."""
        return self._add(self._binary, key, callback)

    def _add(
        self,
        lanes: dict[str, _Lane[T]],
        key: str,
        callback: Callable[[T, PublishInfo], None],
    ) -> Callable[[], None]:
        if not isinstance(key, str):
            raise UsageError(f"a broadcast key must be a str, got {type(key).__name__}")
        first = not self.has_listeners(key)
        listener: _Listener[T] = _Listener(callback)
        lane = lanes.get(key)
        if lane is None:
            lane = lanes[key] = _Lane()
        lane.add(listener)
        if first and self._on_first is not None:
            self._on_first(key)

        def unsubscribe() -> None:
            if not listener.active:
                return
            listener.active = False
            current = lanes.get(key)
            if current is None:
                return
            current.remove(listener)
            if not current:
                del lanes[key]
                if not self.has_listeners(key) and self._on_last is not None:
                    self._on_last(key)

        return unsubscribe

    def has_listeners(self, key: str) -> bool:
        """Whether ``key`` has at least one listener on either lane."""
        return key in self._text or key in self._binary

    def count(self, key: str) -> int:
        """Number of listeners of ``key`` on both lanes."""
        text, binary = self._text.get(key), self._binary.get(key)
        return (len(text) if text is not None else 0) + (len(binary) if binary is not None else 0)

    @property
    def keys(self) -> frozenset[str]:
        """Keys with at least one listener (the keys that need an upstream subscription)."""
        return frozenset(self._text) | frozenset(self._binary)

    def deliver_text(self, key: str, text: str, info: PublishInfo) -> int:
        """Hand ``text`` to every text listener of ``key``; returns how many were reached."""
        return self._deliver(self._text.get(key), text, info)

    def deliver_binary(self, key: str, data: bytes, info: PublishInfo) -> int:
        """Hand ``data`` to every binary listener of ``key``; returns how many were reached."""
        return self._deliver(self._binary.get(key), data, info)

    def _deliver(self, lane: _Lane[Any] | None, payload: Any, info: PublishInfo) -> int:
        if lane is None:
            return 0
        reached = len(lane)
        listeners = lane.snapshot()
        if self._delivering:
            self._pending.append((listeners, payload, info))
            return reached
        self._delivering = True
        try:
            self._call_all(listeners, payload, info)
            while self._pending:
                self._call_all(*self._pending.popleft())
        finally:
            self._delivering = False
        return reached

    @staticmethod
    def _call_all(listeners: tuple[_Listener[Any], ...], payload: Any, info: PublishInfo) -> None:
        for listener in listeners:
            if not listener.active:  # unsubscribed since the snapshot was taken
                continue
            try:
                listener.callback(payload, info)
            except Exception:
                logger.exception("a broadcast listener of key %r raised", info.key)


class SeqTracker:
    """Checks each key's sequence as one process receives it and reports breaks.

    ``observe`` returns a :class:`BroadcastGap` when ``seq`` is not the previous one plus one
    (or the counter ``epoch`` changed), else ``None``. Text and binary messages of a key must
    both be observed since they share the counter. ``forget(key)`` drops the state when the
    process stops listening to the key, so a later subscription starts fresh.
    """

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state: dict[str, tuple[int, str]] = {}

    def observe(self, key: str, seq: int, epoch: str = "") -> BroadcastGap | None:
        """Record ``seq`` for ``key``; a gap report when the sequence broke."""
        previous = self._state.get(key)
        self._state[key] = (seq, epoch)
        if previous is None:
            return None
        last, last_epoch = previous
        if epoch != last_epoch:
            return BroadcastGap(key, last + 1, seq, "reset")
        if seq == last + 1:
            return None
        return BroadcastGap(key, last + 1, seq, "skipped" if seq > last else "backwards")

    def last(self, key: str) -> int | None:
        """The last ``seq`` observed for ``key``, if any."""
        state = self._state.get(key)
        return None if state is None else state[0]

    def forget(self, key: str) -> None:
        """Drop what is known about ``key``."""
        self._state.pop(key, None)


def _now_ms() -> int:
    # Whole milliseconds, as Date.now(): the value goes on the wire as a JS number.
    return time.time_ns() // 1_000_000


class InMemoryBroadcast:
    """The default transport: broadcast within this process only (docs/protocol.md §8).

    Per-key counter from 1 shared by both lanes, ``timestamp`` = now in ms, meta
    ``{"delivered": <listeners reached>, "transport": "in-memory"}``. A publish is delivered
    synchronously, before ``publish`` returns, except when made from inside a listener: then it
    is delivered right after the current message (order comes first).
    """

    __slots__ = ("_closed", "_fanout", "_seqs")

    def __init__(self) -> None:
        self._fanout = BroadcastFanout()
        self._seqs: dict[str, int] = {}
        self._closed = False

    @property
    def fanout(self) -> BroadcastFanout:
        """The listener registry (for inspection and tests)."""
        return self._fanout

    async def publish(self, key: str, text: str) -> PublishReceipt:
        """Publish ``text`` to the listeners of ``key`` in this process."""
        return self.publish_nowait(key, text)

    async def publish_binary(self, key: str, data: bytes) -> PublishReceipt:
        """Publish ``data`` to the binary listeners of ``key`` in this process."""
        return self.publish_binary_nowait(key, data)

    def publish_nowait(self, key: str, text: str) -> PublishReceipt:
        """Synchronous :meth:`publish` (the in-memory transport never waits)."""
        info = self._next(key)
        delivered = self._fanout.deliver_text(key, text, info)
        return PublishReceipt(key, info.seq, info.timestamp, self._meta(delivered))

    def publish_binary_nowait(self, key: str, data: bytes) -> PublishReceipt:
        """Synchronous :meth:`publish_binary`."""
        info = self._next(key)
        delivered = self._fanout.deliver_binary(key, bytes(data), info)
        return PublishReceipt(key, info.seq, info.timestamp, self._meta(delivered))

    def _next(self, key: str) -> PublishInfo:
        if self._closed:
            raise BroadcastTransportError("the in-memory broadcast transport is closed")
        if not isinstance(key, str):
            raise UsageError(f"a broadcast key must be a str, got {type(key).__name__}")
        seq = self._seqs.get(key, 0) + 1
        self._seqs[key] = seq
        return PublishInfo(key, seq, _now_ms())

    @staticmethod
    def _meta(delivered: int) -> dict[str, Any]:
        return {"delivered": delivered, "transport": "in-memory"}

    def listen(self, key: str, callback: TextCallback) -> Callable[[], None]:
        """Listen to text publishes of ``key``; returns unsubscribe."""
        return self._fanout.add_text(key, callback)

    def listen_binary(self, key: str, callback: BinaryCallback) -> Callable[[], None]:
        """Listen to binary publishes of ``key``; returns unsubscribe."""
        return self._fanout.add_binary(key, callback)

    async def wait_subscribed(self, key: str) -> None:
        """Nothing to wait for in memory: listeners are live as soon as they are added."""

    async def aclose(self) -> None:
        """Refuse further publishes."""
        self._closed = True


_default: InMemoryBroadcast | None = None

_scoped: ContextVar[BroadcastTransport | None] = ContextVar(
    "telefunc_broadcast_transport", default=None
)


def set_scoped_broadcast_transport(
    transport: BroadcastTransport | None,
) -> Token[BroadcastTransport | None]:
    """Make ``transport`` the one :func:`get_broadcast_transport` returns in this context.

    Returns the token for :func:`reset_scoped_broadcast_transport`. ``None`` removes the scope.
    """
    return _scoped.set(transport)


def reset_scoped_broadcast_transport(token: Token[BroadcastTransport | None]) -> None:
    """Undo :func:`set_scoped_broadcast_transport`."""
    _scoped.reset(token)


def get_broadcast_transport() -> BroadcastTransport:
    """The scoped transport if one is set, else ``config.broadcast.transport``, else in-memory.

    See :func:`set_scoped_broadcast_transport` for the scoped one (an app with its own settings
    scopes its ``broadcast.transport`` around each of its requests).
    """
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    return resolve_broadcast_transport(config.broadcast.transport)


def resolve_broadcast_transport(configured: Any) -> BroadcastTransport:
    """``configured`` (a ``broadcast.transport`` setting) checked, or the in-memory default."""
    global _default
    if configured is not None:
        if not isinstance(configured, BroadcastTransport):
            raise UsageError(
                "config.broadcast.transport must provide publish, publish_binary, listen, "
                f"listen_binary and aclose; got {type(configured).__name__}"
            )
        return configured
    if _default is None:
        _default = InMemoryBroadcast()
    return _default


def reset_default_broadcast_transport() -> None:
    """Forget the process-wide in-memory transport (tests)."""
    global _default
    _default = None


async def wait_subscribed(transport: BroadcastTransport, key: str) -> None:
    """Wait until publishes to ``key`` reach this process's listeners, if the transport says so.

    Transports whose upstream subscription is asynchronous (Redis) implement
    ``wait_subscribed(key)``; for others this returns at once.
    """
    method: Callable[[str], Awaitable[None]] | None = getattr(transport, "wait_subscribed", None)
    if method is not None:
        await method(key)
