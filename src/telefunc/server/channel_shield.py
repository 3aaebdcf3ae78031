"""Typed channel data: a returned channel validates what the client sends against the types.

A telefunction annotated ``-> Channel[ClientToServer, ServerToClient]`` or
``-> BroadcastChannel[T]`` gets its returned channel shielded, as the official server does from
the TypeScript types: client messages, answers to the server's acked ``send()`` and broadcast
``publish()`` calls that fail their type are rejected with ``ShieldValidationError`` (or, for an
unacked message, dropped and logged, rate-limited). Passing values are converted as arguments
are. Only the return annotation is read, so only a top-level channel is shielded; binary messages
are never validated. The rules: docs/architecture.md §5.7.
"""

from __future__ import annotations

import contextlib
import typing
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telefunc.endpoint.client_errors import log_client_error
from telefunc.errors import ShieldValidationError
from telefunc.server.hints import channel_message_types
from telefunc.server.shield import validate_value

__all__ = ["ChannelShield", "attach_return_shield", "shield_of"]


@dataclass(frozen=True, slots=True)
class ChannelShield:
    """The declared types of one channel's client data and client acks (``None``: any)."""

    data: Any
    ack: Any

    def check_data(self, value: Any) -> Any:
        """Validate (and convert) one client message; raises ``ShieldValidationError``."""
        if self.data is None:
            return value
        return _check(value, self.data, "channel message")

    def check_ack(self, value: Any) -> Any:
        """Validate (and convert) the client's answer to an acknowledged send."""
        if self.ack is None:
            return value
        return _check(value, self.ack, "channel ack")


def _check(value: Any, annotation: Any, path: str) -> Any:
    try:
        return validate_value(value, annotation, path)
    except ShieldValidationError as exc:
        log_client_error("channel-shield", "telefunc: shield rejected a %s: %s", path, exc)
        raise
    except RecursionError:
        log_client_error("channel-shield", "telefunc: a %s is nested too deeply", path)
        raise ShieldValidationError(f"{path}: nested too deeply to validate") from None


#: Result types that are certainly not channels.
_NOT_CHANNELS: frozenset[type] = frozenset({str, int, float, bool, type(None), dict, list, tuple})
_SHIELDS: weakref.WeakKeyDictionary[Any, ChannelShield] = weakref.WeakKeyDictionary()
#: The weak dictionary's own dict: empty (false) while no channel has a shield, a C-level check
#: (the weak dictionary's ``len`` is Python).
SHIELDED: dict[Any, ChannelShield] = _SHIELDS.data  # type: ignore[attr-defined]
_BY_FUNCTION: weakref.WeakKeyDictionary[Any, ChannelShield | None] = weakref.WeakKeyDictionary()


def _declared(annotation: Any) -> Any:
    """``None`` for an undeclared side (absent, ``Any`` or ``object``), else the annotation."""
    return None if annotation is None or annotation is Any or annotation is object else annotation


def _shield_for(func: Callable[..., Any]) -> ChannelShield | None:
    try:
        return _BY_FUNCTION[func]
    except (KeyError, TypeError):
        pass
    try:
        hint = typing.get_type_hints(func, include_extras=True).get("return")
    except Exception:  # unresolvable hints: the call's own validation reports them
        hint = None
    types = channel_message_types(hint) if hint is not None else None
    shield = None
    if types is not None:
        data, ack = (_declared(tp) for tp in types)
        if data is not None or ack is not None:
            shield = ChannelShield(data, ack)
    with contextlib.suppress(TypeError):  # not weak-referenceable: recompute next time
        _BY_FUNCTION[func] = shield
    return shield


def attach_return_shield(func: Callable[..., Any], result: Any) -> None:
    """Shield ``result`` when it is a channel and ``func``'s return annotation types one."""
    if type(result) in _NOT_CHANNELS:
        return  # runs after every call: skip the import statement for plain results
    from telefunc.server.channel import Channel

    if not isinstance(result, Channel):
        return
    shield = _shield_for(func)
    if shield is not None:
        _SHIELDS[result] = shield


def shield_of(channel: Any) -> ChannelShield | None:
    """The shield attached to ``channel``, if any."""
    # Checked for every message: skip the weak-dictionary lookup while no channel has a shield.
    return _SHIELDS.get(channel) if SHIELDED else None
