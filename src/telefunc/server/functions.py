"""Functions across the wire, both ways (docs/protocol.md §6).

A function in a telefunction's result becomes ``!TelefuncFunction:`` on an ack channel: each
client call is shielded against its type hints, runs in the call's context, and answers with
its return value; the closure lives as long as the channel. A function the client passes as an
argument arrives as a :class:`RemoteFunction` (``await fn(*args)``); once its channel is closed a
call raises :class:`~telefunc.errors.ChannelClosedError`, and dropping it closes the channel.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any

from telefunc.endpoint.channel import close_soon
from telefunc.errors import ChannelClosedError, ShieldValidationError
from telefunc.server.channel import Channel, bind_call_scope
from telefunc.server.context import CallScope, reset_scope, set_scope
from telefunc.server.shield import validate_call
from telefunc.server.stream_channel import ResponseAbort
from telefunc.wire.placeholders import FN_SHIELD_ERROR_KEY, FUNCTION_PREFIX, encode_json

__all__ = ["RemoteFunction", "expose_function", "is_function"]

logger = logging.getLogger("telefunc")


def is_function(value: Any) -> bool:
    """Whether ``value`` travels as a function: anything callable except classes."""
    return callable(value) and not isinstance(value, type)


def expose_function(
    fn: Callable[..., Any],
    *,
    scope: CallScope,
    response_abort: ResponseAbort | None = None,
    where: str = "a telefunction",
) -> tuple[str, Channel[Any, Any]]:
    """Put ``fn`` on a new ack channel registered with the call's hub.

    Returns the placeholder and the channel. The call's scope is held until the channel
    closes; a response-wide abort aborts it.
    """
    channel: Channel[Any, Any] = Channel(ack=True)
    bind_call_scope(channel, scope)
    scope.hub.register(channel)
    release = scope.hold()
    channel.on_close(lambda _error: release())
    if response_abort is not None:
        response_abort.on_abort(lambda error: channel.abort(error.value))
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__

    async def answer(args: Any) -> Any:
        if not isinstance(args, list):
            logger.warning(
                "telefunc: a call of %s (returned by %s) without an argument list", name, where
            )
            return {FN_SHIELD_ERROR_KEY: True}
        token = set_scope(scope)
        try:
            try:
                positional, keyword = validate_call(fn, args)
            except ShieldValidationError as exc:
                logger.warning(
                    "telefunc: shield rejected a call of %s (returned by %s): %s", name, where, exc
                )
                return {FN_SHIELD_ERROR_KEY: True}
            result = fn(*positional, **keyword)
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            reset_scope(token)

    channel.listen(answer)
    return encode_json(FUNCTION_PREFIX, {"channelId": channel.id}), channel


class RemoteFunction:
    """A function the client passed as an argument: ``await fn(*args)`` calls it remotely.

    Returns the client function's (awaited) return value. Raises
    :class:`~telefunc.errors.ChannelClosedError` once the channel is closed, and
    :class:`~telefunc.errors.Abort` when the client function aborts.
    """

    __slots__ = ("__weakref__", "_channel")

    def __init__(self, channel: Channel[Any, Any]) -> None:
        self._channel = channel
        weakref.finalize(self, close_soon, channel, asyncio.get_running_loop())

    @property
    def channel_id(self) -> str:
        """The id of the ack channel the calls travel on."""
        return self._channel.id

    @property
    def is_closed(self) -> bool:
        """``True`` once the channel is closed: calls raise ``ChannelClosedError``."""
        return self._channel.is_closed

    async def __call__(self, *args: Any) -> Any:
        """Call the client function with ``args``; returns its return value."""
        if self._channel.is_closed:
            raise ChannelClosedError("the client function's channel is closed")
        return await self._channel.send(list(args), ack=True)

    async def aclose(self) -> None:
        """Close the channel now (later calls raise ``ChannelClosedError``)."""
        if not self._channel.is_closed:
            await self._channel.close()

    def __repr__(self) -> str:
        state = "closed" if self._channel.is_closed else "open"
        return f"<RemoteFunction {self._channel.id} {state}>"
