"""Reading type hints the way telefunc needs them, shared by the shield and by codegen.

Both walk the same annotations (one to validate values, one to write TypeScript), so the facts
they must agree on live here: how hints are resolved, which wrappers are mere qualifiers, and
whether a TypedDict key is required.
"""

from __future__ import annotations

import typing
from typing import Any

from telefunc.errors import UsageError

__all__ = ["QUALIFIERS", "TYPE_ALIAS_TYPE", "class_hints", "typeddict_key_required"]

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
