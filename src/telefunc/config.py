"""Server configuration: ``from telefunc import config``.

Durations are in **seconds** in Python (they travel in milliseconds on the wire); sizes are in
bytes. Every setter validates: unknown keys and negative or non-numeric values raise
:class:`~telefunc.errors.UsageError` at once, naming the key.

    config.channel.reconnect_timeout = 5.0
    config.channel.update(idle_timeout=5.0, ping_interval=2.0)
    config.channel = {"reconnect_timeout": 5.0}     # assigning a mapping updates those keys
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from telefunc.errors import UsageError

__all__ = [
    "BroadcastConfig",
    "ChannelConfig",
    "ChannelSettings",
    "Config",
    "StreamConfig",
    "config",
]

TRANSPORTS = ("sse", "ws")
STREAM_TRANSPORTS = ("binary-inline", "sse-inline", "channel")


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


class ChannelConfig(_Section):
    """``config.channel``: channel timeouts, buffer budgets and transports (seconds, bytes)."""

    _section = "channel"
    __slots__ = ("_settings",)

    def __init__(self) -> None:
        object.__setattr__(self, "_settings", ChannelSettings())

    def snapshot(self) -> ChannelSettings:
        """The current values as an immutable :class:`ChannelSettings`."""
        settings: ChannelSettings = object.__getattribute__(self, "_settings")
        return settings

    def reset(self) -> None:
        """Restore every channel setting to its default."""
        object.__setattr__(self, "_settings", ChannelSettings())

    def __getattr__(self, key: str) -> Any:
        settings = object.__getattribute__(self, "_settings")
        if key in _CHANNEL_FIELDS:
            return getattr(settings, key)
        raise AttributeError(f"config.channel has no setting {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in _CHANNEL_FIELDS:
            raise UsageError(
                f"config.channel has no setting {key!r}; "
                f"known: {', '.join(sorted(_CHANNEL_FIELDS))}"
            )
        if key == "transports":
            value = _check_transports(value)
        else:
            value = _check_number("channel", key, value, integer=_CHANNEL_FIELDS[key] is int)
        object.__setattr__(self, "_settings", replace(self.snapshot(), **{key: value}))

    def update(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Set several keys at once; every key is validated before any is applied."""
        merged = {**(values or {}), **kwargs}
        trial = ChannelConfig()
        object.__setattr__(trial, "_settings", self.snapshot())
        for key, value in merged.items():
            setattr(trial, key, value)
        object.__setattr__(self, "_settings", trial.snapshot())

    def __repr__(self) -> str:
        return f"config.channel({self.snapshot()!r})"


_CHANNEL_FIELDS: dict[str, type] = {
    f.name: (int if f.type in ("int", int) else float) for f in fields(ChannelSettings)
}


def _check_transports(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(t, str) for t in value):
        raise UsageError("config.channel.transports must be a list such as ['sse', 'ws']")
    transports = tuple(value)
    unknown = [t for t in transports if t not in TRANSPORTS]
    if unknown or not transports:
        raise UsageError(f"config.channel.transports: unknown or empty {unknown!r}; use 'sse'/'ws'")
    return transports


class StreamConfig(_Section):
    """``config.stream``: how streaming return values travel (``binary-inline`` by default)."""

    _section = "stream"
    __slots__ = ("_transport",)

    def __init__(self) -> None:
        self._transport = "binary-inline"

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
    """The process-wide telefunc configuration object (``telefunc.config``)."""

    __slots__ = ("_broadcast", "_channel", "_stream", "telefunc_url")

    def __init__(self) -> None:
        self._channel = ChannelConfig()
        self._stream = StreamConfig()
        self._broadcast = BroadcastConfig()
        #: The HTTP path of the telefunc endpoint.
        self.telefunc_url = "/_telefunc"

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
