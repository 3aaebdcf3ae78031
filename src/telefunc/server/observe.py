"""The observation seam: event hooks the server calls, and the sinks that count or log them.

I/O layers call ``observe.sink.<event>(...)`` where something happens. The default :class:`Sink`
does nothing (one lookup and one empty call per event); :func:`enable_stats` installs
:class:`Stats` (plain counters, turned into Prometheus metrics at scrape time by
:mod:`telefunc.asgi.metrics`) and :func:`enable_event_log` adds :class:`EventLog`. Gauges the core
already knows are read from the live hubs (:func:`hubs`) when scraped, not counted here.
**Labels are bounded**: no session id, channel id or client string is ever a key; unknown
telefunctions are :data:`UNKNOWN` and violation reasons map to a fixed kind
(:func:`violation_kind`).
"""

from __future__ import annotations

import bisect
import functools
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from telefunc.broadcast.transport import get_broadcast_transport
from telefunc.endpoint.client_errors import ClientErrorLog
from telefunc.errors import NetworkError
from telefunc.wire.channel_state import RECOVERY_FAILED, TIMEOUT_CONNECT, TIMEOUT_RECONNECT

if TYPE_CHECKING:
    from telefunc.server.channel import Channel
    from telefunc.server.hub import ChannelHub
    from telefunc.wire.mux import ServerConnection

__all__ = [
    "LATENCY_BUCKETS",
    "UNKNOWN",
    "EventLog",
    "Sink",
    "Stats",
    "enable_event_log",
    "enable_stats",
    "hubs",
    "sink",
    "violation_kind",
]

#: The telefunction label of a call that named no registered telefunction.
UNKNOWN = "unknown"
#: Upper bounds (seconds) of the call latency histogram's buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: How many characters of an id a log line shows.
ID_CHARS = 8
#: How many characters of a close reason a log line shows.
REASON_CHARS = 120

#: Free-text violation reasons (from :mod:`telefunc.wire.mux` and the transports) -> kind.
_VIOLATION_KINDS = (
    ("PING", "ping-flood"),
    ("while RECONCILE waits", "pending-overflow"),
    ("RECONCILE:", "reconcile"),
    ("before RECONCILE", "before-reconcile"),
    ("server-only tag", "server-only-tag"),
    ("text message", "text-message"),
    ("record too large", "record-too-large"),
    ("window", "window-overrun"),
    ("internal error", "internal-error"),
    ("tag", "bad-frame"),
    ("frame", "bad-frame"),
)


#: Why the core ended a channel with a NetworkError -> the ``channel.dropped`` kind.
_DROP_KINDS = {
    TIMEOUT_CONNECT: "connect-timeout",
    TIMEOUT_RECONNECT: "reconnect-timeout",
    RECOVERY_FAILED: "recovery-failed",
}


def violation_kind(reason: str) -> str:
    """The fixed kind of a protocol violation, from its (free-text) reason."""
    for needle, kind in _VIOLATION_KINDS:
        if needle in reason:
            return kind
    return "other"


def short_id(value: str | None) -> str:
    """An id shortened for a log line (enough to correlate, not to reuse)."""
    return value[:ID_CHARS] if value else "-"


def _conn_label(conn: ServerConnection) -> str:
    # SSE wires have a client connId; a WebSocket is named by its object for the log's lifetime.
    return short_id(conn.conn_id) if conn.conn_id else f"{id(conn) & 0xFFFFFFFF:08x}"


class Sink:
    """The event interface; every method does nothing (the cost with observation off)."""

    __slots__ = ()

    def call_finished(self, telefunction: str, status: int, seconds: float) -> None:
        """A call answered ``status`` after ``seconds`` (``telefunction``: a registry key)."""

    def connection_opened(self, conn: ServerConnection) -> None:
        """A channel connection (``conn.transport``: ``ws`` or ``sse``) was accepted."""

    def connection_closed(self, conn: ServerConnection, client_code: int | None) -> None:
        """A channel connection ended (``client_code``: the client's close code, if it sent one)."""

    def channel_opened(self, channel: Channel[Any, Any]) -> None:
        """``channel`` was registered."""

    def message_in(self, transport: str, nbytes: int) -> None:
        """A frame of ``nbytes`` arrived."""

    def messages_out(self, transport: str, frames: list[bytes]) -> None:
        """``frames`` were handed to the transport."""

    def protocol_violation(self, reason: str) -> None:
        """A connection was closed for a protocol violation."""

    def limit_hit(self, kind: str) -> None:
        """A client ran into a limit of ``config.limits`` (``kind``: a fixed name)."""

    def broadcast_published(self, transport: object) -> None:
        """A publish went to the broadcast ``transport``."""

    def broadcast_delivered(self) -> None:
        """A publish reached one subscribed channel."""

    def broadcast_subscribed(self, delta: int) -> None:
        """A transport listener was added (+1) or removed (-1)."""

    def redis_gap(self, reason: str) -> None:
        """The Redis transport saw a sequence gap on a key."""


def transport_label(transport: object) -> str:
    """``redis`` for the Redis broadcast transport, ``memory`` for the in-process one."""
    name = type(transport).__name__.lower()
    if "redis" in name:
        return "redis"
    if "memory" in name or "local" in name:
        return "memory"
    return "other"


class Stats(Sink):
    """Plain counters of every event; read by the Prometheus collector at scrape time."""

    __slots__ = (
        "_broadcast_transport",
        "broadcast_deliveries",
        "broadcast_publishes",
        "broadcast_subscriptions",
        "call_latency",
        "calls",
        "channels_opened",
        "connections_closed",
        "connections_open",
        "connections_opened",
        "in_bytes",
        "in_messages",
        "limits_hit",
        "out_bytes",
        "out_messages",
        "protocol_violations",
        "redis_gaps",
    )

    def __init__(self) -> None:
        #: (telefunction, status) -> calls
        self.calls: dict[tuple[str, int], int] = {}
        #: telefunction -> [count per bucket of LATENCY_BUCKETS plus +Inf, sum of seconds]
        self.call_latency: dict[str, tuple[list[int], list[float]]] = {}
        #: transport -> open connections / opened / closed
        self.connections_open: dict[str, int] = {}
        self.connections_opened: dict[str, int] = {}
        self.connections_closed: dict[str, int] = {}
        self.channels_opened = 0
        self.in_messages: dict[str, int] = {}
        self.in_bytes: dict[str, int] = {}
        self.out_messages: dict[str, int] = {}
        self.out_bytes: dict[str, int] = {}
        #: violation kind -> count
        self.protocol_violations: dict[str, int] = {}
        #: limit kind -> count
        self.limits_hit: dict[str, int] = {}
        #: broadcast transport label -> count
        self.broadcast_publishes: dict[str, int] = {}
        self.broadcast_deliveries: dict[str, int] = {}
        self.broadcast_subscriptions = 0
        self.redis_gaps = 0
        #: (the transport last seen, its label): deliveries look it up per message
        self._broadcast_transport: tuple[object, str] = (None, "memory")

    def call_finished(self, telefunction: str, status: int, seconds: float) -> None:
        key = (telefunction, status)
        self.calls[key] = self.calls.get(key, 0) + 1
        latency = self.call_latency.get(telefunction)
        if latency is None:
            latency = self.call_latency[telefunction] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
        buckets, total = latency
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the last one is +Inf
        total[0] += seconds

    def connection_opened(self, conn: ServerConnection) -> None:
        t = conn.transport
        self.connections_open[t] = self.connections_open.get(t, 0) + 1
        self.connections_opened[t] = self.connections_opened.get(t, 0) + 1

    def connection_closed(self, conn: ServerConnection, client_code: int | None) -> None:
        t = conn.transport
        self.connections_open[t] = self.connections_open.get(t, 0) - 1
        self.connections_closed[t] = self.connections_closed.get(t, 0) + 1

    def channel_opened(self, channel: Channel[Any, Any]) -> None:
        self.channels_opened += 1

    def message_in(self, transport: str, nbytes: int) -> None:
        self.in_messages[transport] = self.in_messages.get(transport, 0) + 1
        self.in_bytes[transport] = self.in_bytes.get(transport, 0) + nbytes

    def messages_out(self, transport: str, frames: list[bytes]) -> None:
        self.out_messages[transport] = self.out_messages.get(transport, 0) + len(frames)
        self.out_bytes[transport] = self.out_bytes.get(transport, 0) + sum(map(len, frames))

    def protocol_violation(self, reason: str) -> None:
        kind = violation_kind(reason)
        self.protocol_violations[kind] = self.protocol_violations.get(kind, 0) + 1

    def limit_hit(self, kind: str) -> None:
        self.limits_hit[kind] = self.limits_hit.get(kind, 0) + 1

    def broadcast_published(self, transport: object) -> None:
        label = self._label_of(transport)
        self.broadcast_publishes[label] = self.broadcast_publishes.get(label, 0) + 1

    def broadcast_delivered(self) -> None:
        label = self._label_of(get_broadcast_transport())
        self.broadcast_deliveries[label] = self.broadcast_deliveries.get(label, 0) + 1

    def _label_of(self, transport: object) -> str:
        known = self._broadcast_transport
        if known[0] is not transport:
            known = self._broadcast_transport = (transport, transport_label(transport))
        return known[1]

    def broadcast_subscribed(self, delta: int) -> None:
        self.broadcast_subscriptions += delta

    def redis_gap(self, reason: str) -> None:
        self.redis_gaps += 1


events_logger = logging.getLogger("telefunc.events")


class EventLog(Sink):
    """One structured line per connection, violation, limit and gap event, on ``telefunc.events``.

    Each line is ``event=<name> key=value ...`` with stable keys; the same keys are attached to
    the record as ``record.event`` / ``record.fields`` for the JSON formatter
    (:class:`telefunc.logformat.JsonFormatter`). Ids are shortened, no payload is logged, and
    client-triggered events (violations, limits) are rate-limited per kind.
    """

    __slots__ = ("_limited", "_log", "_writer")

    def __init__(self, log: logging.Logger = events_logger) -> None:
        self._log = log
        self._writer = _FieldsWriter(log)
        self._limited = ClientErrorLog(log=cast(logging.Logger, self._writer))

    def _emit_limited(self, event: str, kind: str, **more: str) -> None:
        fields = {"kind": kind, **more}
        self._writer.extra = {"event": event, "fields": fields}
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        self._limited(f"{event}:{kind}", "event=%s %s", event, text)

    def _emit(self, level: int, event: str, **fields: Any) -> None:
        if not self._log.isEnabledFor(level):
            return
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        self._log.log(level, "event=%s %s", event, text, extra={"event": event, "fields": fields})

    def connection_opened(self, conn: ServerConnection) -> None:
        self._emit(
            logging.INFO,
            "connection.opened",
            transport=conn.transport,
            conn=_conn_label(conn),
        )

    def connection_closed(self, conn: ServerConnection, client_code: int | None) -> None:
        code, reason = conn.close_request or (client_code, "")
        self._emit(
            logging.INFO,
            "connection.closed",
            transport=conn.transport,
            conn=_conn_label(conn),
            session=short_id(conn.session_id),
            code=code if code is not None else 1006,
            by="server" if conn.close_request else "client",
            reason=repr(reason[:REASON_CHARS]),
        )

    def channel_opened(self, channel: Channel[Any, Any]) -> None:
        channel.on_close(functools.partial(self._channel_closed, channel.id))

    def _channel_closed(self, channel_id: str, error: Exception | None) -> None:
        # Dropped by the server: the client never came, stayed away, or came back without it.
        # A client can make many of these (open channels, never connect): rate-limited per kind.
        if isinstance(error, NetworkError):
            kind = _DROP_KINDS.get(str(error), "network-error")
            self._emit_limited("channel.dropped", kind, channel=short_id(channel_id))

    def protocol_violation(self, reason: str) -> None:
        self._emit_limited("protocol.violation", violation_kind(reason))

    def limit_hit(self, kind: str) -> None:
        self._emit_limited("limit.hit", kind)

    def redis_gap(self, reason: str) -> None:
        self._emit(logging.WARNING, "redis.gap", reason=repr(reason[:REASON_CHARS]))


class _FieldsWriter:
    """The logger a :class:`ClientErrorLog` writes through, adding the event's fields."""

    __slots__ = ("extra", "log")

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.extra: dict[str, Any] = {}

    def warning(self, message: str, *args: object) -> None:
        self.log.warning(message, *args, extra=self.extra)


class _Tee:
    """Several sinks at once: each event method calls that method of every sink."""

    def __init__(self, *sinks: Sink) -> None:
        for name in _EVENTS:
            methods = tuple(getattr(sink, name) for sink in sinks)
            setattr(self, name, _fan_out(methods))


def _fan_out(methods: tuple[Callable[..., None], ...]) -> Callable[..., None]:
    def fan_out(*args: Any) -> None:
        for method in methods:
            method(*args)

    return fan_out


_EVENTS = tuple(name for name in vars(Sink) if not name.startswith("_"))


#: The sink every hook calls; replaced by :func:`enable_stats` / :func:`enable_event_log`.
sink: Sink = Sink()
#: Whether :data:`sink` does anything: a hot path may skip building an event's arguments.
observing = False
_stats: Stats | None = None
_event_log: EventLog | None = None
_hubs: weakref.WeakSet[ChannelHub] = weakref.WeakSet()


def _install() -> None:
    global sink, observing
    active: list[Sink] = [s for s in (_stats, _event_log) if s is not None]
    sink = active[0] if len(active) == 1 else cast(Sink, _Tee(*active)) if active else Sink()
    observing = bool(active)


def enable_stats() -> Stats:
    """Count every event from now on (idempotent); returns the process's :class:`Stats`."""
    global _stats
    if _stats is None:
        _stats = Stats()
        _install()
    return _stats


def enable_event_log() -> EventLog:
    """Log connection, violation, limit and gap events from now on (idempotent)."""
    global _event_log
    if _event_log is None:
        _event_log = EventLog()
        _install()
    return _event_log


def reset() -> None:
    """Back to the no-op sink, and forget the hubs seen so far (tests: each starts from zero,
    whatever apps earlier tests left alive)."""
    global _stats, _event_log
    _stats = _event_log = None
    _hubs.clear()
    _install()


def track_hub(hub: ChannelHub) -> None:
    """Remember ``hub`` (weakly) so its gauges are read at scrape time."""
    _hubs.add(hub)


def hubs() -> Iterator[ChannelHub]:
    """Every live hub of this process."""
    return iter(list(_hubs))
