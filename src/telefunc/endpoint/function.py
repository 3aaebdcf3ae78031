"""A function on the other side of an ack channel (docs/protocol.md §6).

Each call sends its arguments as one array with an ack request; the ack carries the return
value. Both ends use it: the server for functions a client passed as arguments, the client for
functions a telefunction returned. Dropping the last reference closes the channel.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar

from telefunc.endpoint.channel import ChannelEndpoint, close_soon
from telefunc.errors import ChannelClosedError

__all__ = ["ChannelFunction"]


class ChannelFunction:
    """``await fn(*args)`` calls the remote function on its ack channel.

    Raises :class:`~telefunc.errors.ChannelClosedError` once the channel is closed and
    :class:`~telefunc.errors.Abort` when the remote function aborts.
    """

    __slots__ = ("__weakref__", "_channel")

    #: The message of the ``ChannelClosedError`` a call on a closed channel raises.
    CLOSED_MESSAGE: ClassVar[str] = "the channel of this function is closed"
    #: The name ``repr`` shows.
    REPR_NAME: ClassVar[str] = "ChannelFunction"

    def __init__(self, channel: ChannelEndpoint[Any, Any]) -> None:
        self._channel = channel
        # Not at interpreter exit: the loop the channel lives on is gone by then.
        finalizer = weakref.finalize(self, close_soon, channel, asyncio.get_running_loop())
        finalizer.atexit = False

    @property
    def channel_id(self) -> str:
        """The id of the ack channel the calls travel on."""
        return self._channel.id

    @property
    def is_closed(self) -> bool:
        """Whether the channel is closed (calls raise ``ChannelClosedError``)."""
        return self._channel.is_closed

    async def __call__(self, *args: Any) -> Any:
        """Call the remote function with ``args``; returns its return value."""
        if self._channel.is_closed:
            raise ChannelClosedError(self.CLOSED_MESSAGE)
        return self._result(await self._channel.send(list(args), ack=True))

    def _result(self, value: Any) -> Any:
        """What a call returns for the ack ``value`` (a hook: the client checks shield errors)."""
        return value

    async def aclose(self) -> None:
        """Close the channel now (later calls raise ``ChannelClosedError``)."""
        if not self._channel.is_closed:
            await self._channel.close()

    def __repr__(self) -> str:
        state = "closed" if self._channel.is_closed else "open"
        return f"<{self.REPR_NAME} {self._channel.id} {state}>"
