"""The server-side :class:`Channel`: a bidirectional, ordered, acked, resumable message stream.

Return a ``Channel`` from a telefunction (anywhere in its result) and the client gets the other
end. :class:`~telefunc.wire.channel_state.ChannelCore` owns every protocol decision and
:class:`~telefunc.endpoint.channel.ChannelEndpoint` the asyncio side shared with the Python
client; ``Channel`` adds what is server-specific: registering with the app's hub when it is
serialized into a call's result, holding that call open until the channel ends, and the server's
abort. The data plane is generic over the frame tag (``_send_tag``, ``handle_other_frame``) so a
broadcast channel can extend it.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from telefunc.config import Config, config
from telefunc.endpoint.channel import ChannelEndpoint
from telefunc.errors import Abort, abort_message
from telefunc.server import observe
from telefunc.server.bugs import report_bug
from telefunc.server.channel_shield import SHIELDED, shield_of
from telefunc.server.context import current_scope
from telefunc.wire.channel_state import ChannelCore
from telefunc.wire.ids import random_id
from telefunc.wire.placeholders import CHANNEL_PREFIX, encode_json
from telefunc.wire.serializer import stringify

if TYPE_CHECKING:
    from telefunc.server.hub import ChannelHub

__all__ = ["INTERNAL_ERROR", "Channel"]

ClientToServer = TypeVar("ClientToServer")
ServerToClient = TypeVar("ServerToClient")

#: ACK_RES error text when a server listener raised (the details go to the server's log).
INTERNAL_ERROR = "Internal Server Error — see server logs"

#: The call each returned channel came from, for on_bug reports of its listeners.
_CALL_SCOPES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def bind_call_scope(channel: Channel[Any, Any], scope: Any) -> None:
    """Remember that ``channel`` belongs to the call of ``scope`` (named in on_bug reports)."""
    _CALL_SCOPES[channel] = scope


def _settings_here() -> Config:
    """The settings of the app running the current call, else the global ``config``."""
    scope = current_scope()
    hub = scope.hub if scope is not None else None
    return hub.settings if hub is not None else config


class Channel(
    ChannelEndpoint[ClientToServer, ServerToClient], Generic[ClientToServer, ServerToClient]
):
    """A server-side channel; see the module docstring.

    ``ack=True`` makes every :meth:`send` wait for the client's listener return value (override
    per send with ``ack=False``). ``buffer_limit`` overrides ``config.channel.buffer_limit`` (text
    bytes kept while no client is attached). Its channel settings are those of the app whose
    telefunction creates it (the global ``config`` when created outside a call).
    """

    __slots__ = ("__weakref__", "_hub", "_release_hold")

    LISTENER_ERROR = INTERNAL_ERROR
    PEER_ERROR = "Internal client channel error"

    def __init__(
        self, ack: bool = False, *, id: str | None = None, buffer_limit: int | None = None
    ):
        super().__init__(id if id is not None else random_id(), ack)
        self._core = ChannelCore(
            self.id, _settings_here().channel.snapshot(), self, buffer_limit=buffer_limit
        )
        self._hub: ChannelHub | None = None
        self._release_hold: Callable[[], None] | None = None

    def __class_getitem__(cls, params: Any) -> Any:
        return super().__class_getitem__(params)  # type: ignore[misc]

    def __repr__(self) -> str:
        state = "closed" if self._core.is_closed else "open"
        return f"<Channel {self.id} {state}>"

    @property
    def client(self) -> Channel[ClientToServer, ServerToClient]:
        """The same channel (``return ch.client`` serializes exactly like ``return ch``)."""
        return self

    def _now(self) -> float:
        return self._hub.now() if self._hub is not None else time.monotonic()

    def abort(self, value: Any = None, message: str | None = None) -> None:
        """Abort now: the client's ``onClose`` gets an ``Abort`` error carrying ``value``.

        ``message`` is the message of this side's own ``Abort`` error (what ``on_close``
        callbacks here receive); the wire carries the value only, so the client's error message
        is derived from the value (see :func:`telefunc.errors.abort_message`), as with the
        official server.
        """
        if self._core.is_closed:
            return
        local = Abort(value, message if message is not None else abort_message(value))
        self._core.abort(stringify(value).encode(), local)

    def _close_started(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        if self._hub is None:
            # Never registered: no hub timer wheel drives this channel, so time the close here.
            loop.call_later(max(0.0, timeout), self._core.handle_timeout, time.monotonic() + 1e-3)

    def _send_evicted(self) -> None:
        observe.sink.limit_hit("channel-buffer")

    # ── placeholder (called by the RPC serializer) ──────────────────────

    def __telefunc_placeholder__(self, scope: Any) -> str:
        """Register with the call's hub, keep the call scope open, return the placeholder."""
        if self._hub is None:
            hub: ChannelHub = scope.hub
            self._hub = hub
            if not self._core.is_shutdown:
                self._release_hold = scope.hold()
            bind_call_scope(self, scope)
            hub.register(self)
        meta: dict[str, Any] = {"channelId": self.id}
        if self.ack:
            meta["ack"] = True
        return encode_json(CHANNEL_PREFIX, meta)

    def _check_incoming(self, data: Any) -> Any:
        if not SHIELDED:  # checked for every message: nothing to look up while no shield exists
            return data
        shield = shield_of(self)
        return data if shield is None else shield.check_data(data)

    def _check_ack(self, value: Any) -> Any:
        shield = shield_of(self)
        return value if shield is None else shield.check_ack(value)

    def _listener_raised(self, exc: BaseException) -> None:
        super()._listener_raised(exc)
        report_bug(exc, _CALL_SCOPES.get(self), "channel listener")

    def handle_shutdown(self, error: Exception | None) -> None:
        """The channel is finished: settle ``close()`` and release the call's hold."""
        super().handle_shutdown(error)
        release, self._release_hold = self._release_hold, None
        if release is not None:
            release()
