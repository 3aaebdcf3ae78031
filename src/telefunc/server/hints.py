"""Reading type hints the way telefunc needs them, shared by the shield and by codegen.

Both walk the same annotations (one to validate values, one to write TypeScript), so the facts
they must agree on live here: how hints are resolved, which wrappers are mere qualifiers, what
counts as "any", whether an annotation admits ``None`` (an argument the client may leave out),
and whether a TypedDict key is required.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import types
import typing
from typing import Any

from telefunc.errors import UsageError

__all__ = [
    "NONE_TYPES",
    "QUALIFIERS",
    "TYPE_ALIAS_TYPE",
    "UNION_ORIGINS",
    "admits_none",
    "channel_message_types",
    "class_hints",
    "is_any",
    "strip",
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

#: Annotations that accept any value (an unannotated parameter's is ``inspect.Parameter.empty``).
_ANY_LIKE: frozenset[Any] = frozenset({Any, object, inspect.Parameter.empty})
#: The two spellings of the ``None`` annotation.
NONE_TYPES: frozenset[Any] = frozenset({None, type(None)})
#: Origins of ``Union[...]`` and of ``X | Y``.
UNION_ORIGINS: frozenset[Any] = frozenset({typing.Union, types.UnionType})


def strip(tp: Any, *, resolve_names: bool = True) -> Any:
    """``tp`` without the wrappers that do not change which values it accepts.

    Always removed: ``Annotated``, qualifiers (``Required``, ``Final``, ...; a bare qualifier is
    kept, and neither side supports it) and ``NewType``. With ``resolve_names`` (what the shield
    validates against) also type aliases (``type X = ...``), TypeVars (their bound or
    constraints, else ``Any``) and ``LiteralString`` (``str``); codegen passes ``False`` to
    keep those names in the TypeScript it writes.
    """
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = tp.__origin__
        elif origin in QUALIFIERS:
            args = typing.get_args(tp)
            tp = args[0] if args else Any
        elif isinstance(tp, typing.NewType):
            tp = tp.__supertype__
        elif not resolve_names:
            return tp
        elif tp is typing.LiteralString:
            return str
        elif TYPE_ALIAS_TYPE is not None and isinstance(tp, TYPE_ALIAS_TYPE):
            tp = tp.__value__
        elif isinstance(tp, typing.TypeVar):
            if tp.__bound__ is not None:
                tp = tp.__bound__
            elif tp.__constraints__:
                tp = typing.Union[tp.__constraints__]  # noqa: UP007 - built from a tuple
            else:
                return Any
        else:
            return tp


def is_any(tp: Any) -> bool:
    """Whether the (stripped) annotation ``tp`` accepts any value."""
    try:
        return tp in _ANY_LIKE
    except TypeError:  # unhashable annotation: certainly not Any
        return False


def admits_none(tp: Any) -> bool:
    """Whether ``tp`` accepts ``None``: the shield passes ``None`` for such an argument when the
    client leaves it out, so codegen makes it optional.
    """
    tp = strip(tp)
    if is_any(tp) or tp is None or tp is type(None):
        return True
    origin = typing.get_origin(tp)
    if origin in UNION_ORIGINS:
        return any(admits_none(member) for member in typing.get_args(tp))
    if origin is typing.Literal:
        return any(arg is None for arg in typing.get_args(tp))
    return False


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
