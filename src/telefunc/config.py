"""Server configuration: ``from telefunc import config``, or a :class:`Config` of one app.

Durations are in **seconds** (milliseconds on the wire); sizes are in bytes. Every setter
validates: unknown keys and negative or non-numeric values raise
:class:`~telefunc.errors.UsageError` at once, naming the key. ``config`` is the process-wide
default; an app given its own :class:`Config` (``settings=...``) reads only that one
(``config.copy()`` starts one from the global values). An app reads its ``Config`` live: a change
applies to what starts after it (the next request, connection or channel). Every setting: the
README's "Settings" section.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from telefunc.errors import UsageError
from telefunc.wire.placeholders import BINARY_INLINE, STREAM_TRANSPORTS

__all__ = [
    "BroadcastConfig",
    "ChannelConfig",
    "ChannelSettings",
    "Config",
    "LimitsConfig",
    "LimitsSettings",
    "StreamConfig",
    "config",
]

TRANSPORTS = ("sse", "ws")


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """An immutable snapshot of ``config.channel``, handed to the sans-I/O core.

    All durations in seconds, sizes in bytes. Defaults are telefunc@0.2.23's.
    """

    reconnect_timeout: float = 60.0
    idle_timeout: float = 60.0
    ping_interval: float = 5.0
    connect_ttl: float = 5.0
    buffer_limit: int = 512 * 1024
    buffer_limit_binary: int = 2 * 1024 * 1024
    server_replay_buffer: int = 256 * 1024
    server_replay_buffer_binary: int = 2 * 1024 * 1024
    client_replay_buffer: int = 1024 * 1024
    client_replay_buffer_binary: int = 2 * 1024 * 1024
    sse_flush_throttle: float = 0.3
    sse_post_idle_flush_delay: float = 0.05
    transports: tuple[str, ...] = TRANSPORTS

    @property
    def ping_deadline(self) -> float:
        """How long the server waits for a PING before dropping a connection (2x the interval)."""
        return 2 * max(self.ping_interval, 1.0)

    @property
    def server_replay_max_age(self) -> float:
        """Maximum age of a server replay entry: ``2*ping_interval + reconnect_timeout + 1s``."""
        return 2 * self.ping_interval + self.reconnect_timeout + 1.0

    def reconciled_settings(self) -> dict[str, Any]:
        """The settings fields of a RECONCILED frame, in milliseconds as the wire wants them."""
        return {
            "reconnectTimeout": _ms(self.reconnect_timeout),
            "idleTimeout": _ms(self.idle_timeout),
            "pingInterval": _ms(max(self.ping_interval, 1.0)),
            "clientReplayBuffer": self.client_replay_buffer,
            "clientReplayBufferBinary": self.client_replay_buffer_binary,
            "sseFlushThrottle": _ms(self.sse_flush_throttle),
            "ssePostIdleFlushDelay": _ms(self.sse_post_idle_flush_delay),
            "transports": list(self.transports),
        }


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _check_number(section: str, key: str, value: Any, *, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"config.{section}.{key} must be a number, got {type(value).__name__}")
    if math.isnan(value) or value < 0:
        raise UsageError(f"config.{section}.{key} must be a non-negative number, got {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise UsageError(
                f"config.{section}.{key} is a size in bytes: a whole number, got {value!r}"
            )
        return int(value)
    return float(value)


class _Section:
    """Base of a validating, mutable configuration section."""

    _section: ClassVar[str]

    def update(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Set several keys at once; every key is validated before any is applied."""
        merged = {**(values or {}), **kwargs}
        for key in merged:
            if key.startswith("_") or not hasattr(type(self), key):
                raise UsageError(f"config.{self._section} has no setting {key!r}")
        for key, value in merged.items():
            setattr(self, key, value)


class _SettingsSection(_Section):
    """A section backed by an immutable settings dataclass, swapped whole on every change."""

    __slots__ = ("_settings",)
    _defaults: ClassVar[type]
    _fields: ClassVar[dict[str, type]]

    def __init__(self) -> None:
        object.__setattr__(self, "_settings", self._defaults())

    def reset(self) -> None:
        """Restore every setting of this section to its default."""
        object.__setattr__(self, "_settings", self._defaults())

    def __getattr__(self, key: str) -> Any:
        settings = object.__getattribute__(self, "_settings")
        if key in type(self)._fields:
            return getattr(settings, key)
        raise AttributeError(f"config.{self._section} has no setting {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        known = type(self)._fields
        if key not in known:
            snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
            hint = (
                f" (the JS name; in Python it is {snake!r}, durations in seconds, not ms)"
                if snake in known
                else ""
            )
            raise UsageError(
                f"config.{self._section} has no setting {key!r}{hint}; "
                f"known: {', '.join(sorted(known))}"
            )
        value = self._check(key, value)
        settings = object.__getattribute__(self, "_settings")
        object.__setattr__(self, "_settings", replace(settings, **{key: value}))

    def _check(self, key: str, value: Any) -> Any:
        return _check_number(self._section, key, value, integer=type(self)._fields[key] is int)

    def update(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Set several keys at once; every key is validated before any is applied."""
        merged = {**(values or {}), **kwargs}
        trial = type(self)()
        object.__setattr__(trial, "_settings", object.__getattribute__(self, "_settings"))
        for key, value in merged.items():
            setattr(trial, key, value)
        object.__setattr__(self, "_settings", object.__getattribute__(trial, "_settings"))

    def __repr__(self) -> str:
        return f"config.{self._section}({object.__getattribute__(self, '_settings')!r})"


def _field_types(settings: type) -> dict[str, type]:
    """Each field's kind: ``int`` (a whole number) or ``float``; other types check themselves."""
    return {f.name: (int if f.type in ("int", int) else float) for f in fields(settings)}


class ChannelConfig(_SettingsSection):
    """``config.channel``: channel timeouts, buffer budgets and transports (seconds, bytes)."""

    _section = "channel"
    _defaults = ChannelSettings
    __slots__ = ()
    _settings: ChannelSettings

    def snapshot(self) -> ChannelSettings:
        """The current values as an immutable :class:`ChannelSettings`."""
        return self._settings  # a slot: found without __getattr__

    def _check(self, key: str, value: Any) -> Any:
        if key == "transports":
            return _check_transports(value)
        return super()._check(key, value)


ChannelConfig._fields = _field_types(ChannelSettings)
_CHANNEL_FIELDS = ChannelConfig._fields


@dataclass(frozen=True, slots=True)
class LimitsSettings:
    """An immutable snapshot of ``config.limits``: what one client can make the server hold or do.

    Sizes in bytes, counts as whole numbers, rates per second. Every limit is per connection or
    per request unless its name says otherwise; exceeding one answers the protocol's error (413,
    400, a 1002/1008/1009 close, :class:`~telefunc.errors.ChannelOverflowError`), never a 500.
    """

    #: Largest request body of a call (``application/json``/``text/plain``), else 413.
    max_body_size: int = 1024 * 1024
    #: Largest body of a streamed ``bin`` (file) upload, else 413; read as it streams, not held.
    max_upload_size: int = 256 * 1024 * 1024
    #: Most stream/file/function placeholders in one call's arguments, else 400.
    max_placeholders: int = 1000
    #: Deepest nesting of arrays/objects in one serialized value, else 400.
    max_depth: int = 128
    #: Largest single WebSocket message, SSE record or channel frame from a client (1009 / 400).
    max_message_size: int = 8 * 1024 * 1024
    #: Bytes queued towards one connection and not yet flushed (channel sends, broadcast,
    #: pongs, ack replies): past it channel sends wait in their channel's buffer; past twice
    #: it the connection is closed with 4002 (slow consumer).
    max_connection_buffer: int = 16 * 1024 * 1024
    #: Frames a connection may queue while its RECONCILE waits for a channel to register (more
    #: close it with 1002); also the records an SSE connection's waiting POSTs read ahead (see
    #: ``max_waiting_posts``; past it they stop reading until their turn).
    max_pending_frames: int = 256
    #: Bytes of those queued frames, and of those read-ahead bodies.
    max_pending_bytes: int = 1024 * 1024
    #: SSE data POSTs (batch, stream-request) of one connection waiting for an earlier one to be
    #: processed: their frames are fed in arrival order, one body after the other. One more is
    #: a protocol violation (the connection ends as with 1002, the POST gets 400). The official
    #: client has at most two waiting (a ping POST during a batch, a batch behind the upload it
    #: gave up on). ``0`` counts as ``1``.
    max_waiting_posts: int = 8
    #: Entries (channels) in one RECONCILE frame.
    max_reconcile_entries: int = 1024
    #: Channels one session may have attached at once.
    max_channels_per_session: int = 1024
    #: Telefunc PING frames per second per connection, with a burst of twice that; more is a
    #: protocol violation (1002). ``0`` turns the limit off. (WebSocket-level pings are bounded
    #: by ``max_connection_buffer``: unread pongs count against it.)
    max_pings_per_second: float = 10.0
    #: Bytes of one request head (request line and headers) ``telefunc serve`` reads before it
    #: answers 400 and closes (uvicorn's h11 limit, and our httptools protocol's).
    max_request_head: int = 16 * 1024
    #: Bytes a WebSocket client may still send after the server's close frame (its own close
    #: frame, data already in flight); past it the socket is dropped instead of parsed.
    max_after_close: int = 64 * 1024
    #: Concurrent HTTP connections + WebSockets ``telefunc serve`` accepts (uvicorn
    #: ``limit_concurrency``; past it new requests get 503).
    max_concurrency: int = 10000
    #: Receive windows a client may overrun a channel by: received-but-unprocessed messages (and
    #: ack requests) of one channel above this many times the window the server advertised
    #: (``WINDOW``/``MSG_WINDOW``, plus one ``max_message_size`` of bytes) close the connection
    #: with 1002. An awaiting sender stays within about 2.5 windows; the official client's
    #: un-awaited ``send()`` ("skip await") is the one legitimate way past one window. The same
    #: multiple of the initial 100-message window bounds a broadcast channel's client publishes
    #: awaiting their receipt. ``0`` counts as ``1``.
    max_window_overrun: int = 4


class LimitsConfig(_SettingsSection):
    """``config.limits``: the bounds on client input and per-connection memory (see
    :class:`LimitsSettings` for each key and its default)."""

    _section = "limits"
    _defaults = LimitsSettings
    __slots__ = ()
    _settings: LimitsSettings

    def snapshot(self) -> LimitsSettings:
        """The current values as an immutable :class:`LimitsSettings`."""
        return self._settings  # a slot: found without __getattr__


LimitsConfig._fields = _field_types(LimitsSettings)


def _check_transports(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(t, str) for t in value):
        raise UsageError("config.channel.transports must be a list such as ['sse', 'ws']")
    transports = tuple(value)
    unknown = [t for t in transports if t not in TRANSPORTS]
    if unknown or not transports:
        raise UsageError(f"config.channel.transports: unknown or empty {unknown!r}; use 'sse'/'ws'")
    return transports


def _check_origins(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(o, str) for o in value):
        raise UsageError(
            "config.allowed_origins must be a list of origins such as ['http://localhost:5173']"
        )
    origins = []
    for origin in value:
        normalized = origin.rstrip("/").lower()
        scheme, sep, rest = normalized.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
            raise UsageError(
                f"config.allowed_origins: {origin!r} is not an origin; "
                "use scheme://host[:port], e.g. 'http://localhost:5173'"
            )
        origins.append(normalized)
    return tuple(origins)


class StreamConfig(_Section):
    """``config.stream``: how streaming return values travel (``binary-inline`` by default)."""

    _section = "stream"
    __slots__ = ("_transport",)

    def __init__(self) -> None:
        self._transport: str = BINARY_INLINE

    @property
    def transport(self) -> str:
        """``binary-inline`` (default), ``sse-inline`` or ``channel``."""
        return self._transport

    @transport.setter
    def transport(self, value: str) -> None:
        if value not in STREAM_TRANSPORTS:
            raise UsageError(f"config.stream.transport must be one of {STREAM_TRANSPORTS}")
        self._transport = value


class BroadcastConfig(_Section):
    """``config.broadcast``: the broadcast transport (in-memory unless set, e.g. Redis)."""

    _section = "broadcast"
    __slots__ = ("transport",)

    def __init__(self) -> None:
        self.transport: Any = None


class Config:
    """Telefunc settings: the process-wide ``telefunc.config``, or one app's own (see above)."""

    __slots__ = (
        "_allowed_origins",
        "_broadcast",
        "_channel",
        "_limits",
        "_refuse_stream_requests",
        "_stream",
        "telefunc_url",
    )

    def __init__(self) -> None:
        self._channel = ChannelConfig()
        self._stream = StreamConfig()
        self._broadcast = BroadcastConfig()
        self._limits = LimitsConfig()
        self._allowed_origins: tuple[str, ...] = ()
        self._refuse_stream_requests = False
        #: The HTTP path of the telefunc endpoint.
        self.telefunc_url = "/_telefunc"

    def copy(self) -> Config:
        """A new, independent ``Config`` with the same values (the broadcast transport is shared).

        ``settings = config.copy()`` then changing ``settings`` leaves ``config`` as it is.
        """
        other = Config()
        object.__setattr__(other._channel, "_settings", self._channel.snapshot())
        object.__setattr__(other._limits, "_settings", self._limits.snapshot())
        other._stream._transport = self._stream.transport
        other._broadcast.transport = self._broadcast.transport
        other._allowed_origins = self._allowed_origins
        other._refuse_stream_requests = self._refuse_stream_requests
        other.telefunc_url = self.telefunc_url
        return other

    @property
    def limits(self) -> LimitsConfig:
        """Limits on client input and per-connection memory; assign a mapping to update keys."""
        return self._limits

    @limits.setter
    def limits(self, values: Mapping[str, Any]) -> None:
        self._limits.update(values)

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """Foreign origins (``scheme://host[:port]``) whose pages may call telefunctions.

        A browser request whose ``Origin`` is neither the request's own origin nor listed here
        is refused with 403 (cross-site protection). Empty by default: same-origin only.
        """
        return self._allowed_origins

    @allowed_origins.setter
    def allowed_origins(self, origins: Any) -> None:
        self._allowed_origins = _check_origins(origins)

    @property
    def refuse_stream_requests(self) -> bool:
        """Answer SSE stream-request POSTs 400 at once, so clients send batch POSTs instead.

        For deployments behind a proxy that buffers request bodies (a streamed upload would
        never arrive). ``False`` by default.
        """
        return self._refuse_stream_requests

    @refuse_stream_requests.setter
    def refuse_stream_requests(self, value: Any) -> None:
        if not isinstance(value, bool):
            raise UsageError(
                f"config.refuse_stream_requests must be True or False, got {type(value).__name__}"
            )
        self._refuse_stream_requests = value

    @property
    def channel(self) -> ChannelConfig:
        """Channel settings; assign a mapping to update several keys."""
        return self._channel

    @channel.setter
    def channel(self, values: Mapping[str, Any]) -> None:
        self._channel.update(values)

    @property
    def stream(self) -> StreamConfig:
        """Streaming-response settings."""
        return self._stream

    @property
    def broadcast(self) -> BroadcastConfig:
        """Broadcast settings."""
        return self._broadcast


#: The process-wide configuration.
config = Config()
