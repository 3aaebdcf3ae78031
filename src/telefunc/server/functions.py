"""Functions across the wire, both ways (docs/protocol.md §6).

A function in a telefunction's result becomes ``!TelefuncFunction:`` on an ack channel: each
client call is shielded against its type hints, runs in the call's context, and answers with
its return value; the closure lives as long as the channel. A function the client passes as an
argument arrives as a :class:`RemoteFunction` (``await fn(*args)``); once its channel is closed a
call raises :class:`~telefunc.errors.ChannelClosedError`, and dropping it closes the channel.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from telefunc.endpoint.function import ChannelFunction
from telefunc.errors import ShieldValidationError
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


class RemoteFunction(ChannelFunction):
    """A function the client passed as an argument: ``await fn(*args)`` calls it remotely.

    Returns the client function's (awaited) return value. Raises
    :class:`~telefunc.errors.ChannelClosedError` once the channel is closed, and
    :class:`~telefunc.errors.Abort` when the client function aborts.
    """

    __slots__ = ()

    CLOSED_MESSAGE = "the client function's channel is closed"
    REPR_NAME = "RemoteFunction"
