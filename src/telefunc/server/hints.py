"""Reading type hints the way telefunc needs them, shared by the shield and by codegen.

Both walk the same annotations (one to validate values, one to write TypeScript), so the facts
they must agree on live here: how hints are resolved, which wrappers are mere qualifiers, and
whether a TypedDict key is required.
"""

from __future__ import annotations

import collections.abc as cabc
import typing
from typing import Any

from telefunc.errors import UsageError

__all__ = [
    "QUALIFIERS",
    "TYPE_ALIAS_TYPE",
    "channel_message_types",
    "class_hints",
    "typeddict_key_required",
]

#: Wrappers that qualify a hint without changing the type of its values.
QUALIFIERS: frozenset[Any] = frozenset(
    q
    for q in (
        typing.Required,
        typing.NotRequired,
        getattr(typing, "ReadOnly", None),
        typing.Final,
        typing.ClassVar,
    )
    if q is not None
)

#: ``typing.TypeAliasType`` (the ``type X = ...`` statement) where the Python has it.
TYPE_ALIAS_TYPE: Any = getattr(typing, "TypeAliasType", None)


def class_hints(cls: Any) -> dict[str, Any]:
    """The resolved type hints of a class (TypedDict, dataclass), extras kept.

    Raises :class:`UsageError` naming the class when a hint cannot be resolved (an unknown
    forward reference, say): that is a server bug, not a client error.
    """
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # NameError for an unresolvable forward reference, etc.
        raise UsageError(
            f"cannot resolve the type hints of {getattr(cls, '__qualname__', cls)!r} "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def typeddict_key_required(name: str, hint: Any, required_keys: frozenset[str]) -> bool:
    """Whether a TypedDict key is required, given its resolved ``hint``.

    ``Required``/``NotRequired`` on the resolved hint win over ``__required_keys__``, which is
    wrong when the annotations were strings (``from __future__ import annotations``).
    """
    required = name in required_keys
    probe = hint
    while True:
        origin = typing.get_origin(probe)
        if origin is typing.Required:
            required = True
        elif origin is typing.NotRequired:
            required = False
        elif origin is not typing.Annotated and origin not in QUALIFIERS:
            return required
        probe = typing.get_args(probe)[0]


def channel_message_types(tp: Any) -> tuple[Any, Any] | None:
    """What a channel annotation promises about the client's side of the channel.

    For ``Channel[ClientToServer, ServerToClient]`` returns ``(data, ack)``: ``data`` is the type
    of the messages the client sends and ``ack`` the type of the client's answers to the
    server's acknowledged sends. Either side may be a plain type or a handler signature
    ``Callable[[Message], Ack]``, as in the official ``Channel<C2S, S2C>``: the data type is a
    ``Callable``'s parameter, the ack type a ``ServerToClient`` ``Callable``'s return value
    (``Awaitable`` unwrapped); a plain ``ServerToClient`` declares no ack type. For
    ``BroadcastChannel[T]`` returns ``(T, None)``. ``None`` in a slot means "not declared";
    returns ``None`` for anything that is not a parametrized channel.
    """
    from telefunc.server.broadcast import BroadcastChannel
    from telefunc.server.channel import Channel

    while typing.get_origin(tp) is typing.Annotated:
        tp = tp.__origin__
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if not isinstance(origin, type):
        return None
    if issubclass(origin, BroadcastChannel):
        return (args[0], None) if len(args) == 1 else None
    if not issubclass(origin, Channel) or len(args) != 2:
        return None
    client_to_server, server_to_client = args
    return _handler_data(client_to_server), _handler_ack(server_to_client)


def _handler_data(tp: Any) -> Any:
    if typing.get_origin(tp) is _CALLABLE:
        params = typing.get_args(tp)[0]
        return params[0] if isinstance(params, list) and params else None
    return tp


def _handler_ack(tp: Any) -> Any:
    if typing.get_origin(tp) is not _CALLABLE:
        return None
    result = typing.get_args(tp)[-1]
    while typing.get_origin(result) in _AWAITABLES:
        result = typing.get_args(result)[-1]
    return result


_CALLABLE: Any = cabc.Callable
_AWAITABLES: frozenset[Any] = frozenset({cabc.Awaitable, cabc.Coroutine})
