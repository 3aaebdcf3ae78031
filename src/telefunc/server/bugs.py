"""``on_bug``: hear about every unexpected server-side error (the kind that answers 500).

The official server's ``onBug(listener)``. A telefunction that raises anything but ``Abort``
(or whose arguments cannot be validated because its signature is unusable), a channel listener
that raises, and a streaming value (async generator, byte stream, file) whose producer raises
are *bugs*: the client gets a fixed "Internal Server Error" and the details go to the log and to
every callback registered here, for Sentry and the like.

A callback is called synchronously, in registration order, with one :class:`Bug`. A callback
that raises is logged and skipped: it never changes the answer the client gets. Slow work
(network reporting) belongs in the callback's own queue or task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Bug", "on_bug", "report_bug"]

logger = logging.getLogger("telefunc")

#: The key of ``CallScope.extras`` naming the telefunction a scope belongs to (``(file, name)``).
TELEFUNCTION_EXTRA = "telefunction"


@dataclass(frozen=True, slots=True)
class Bug:
    """One unexpected server-side error.

    ``error`` is the exception; ``file`` and ``name`` identify the telefunction whose call (or
    whose returned channel or streaming value) failed, ``None`` when unknown; ``context`` is that
    call's context (what ``get_context()`` returned inside it), ``None`` when unknown; ``where``
    says which part failed: ``"telefunction"``, ``"channel listener"``, ``"streaming value"`` or
    ``"context factory"`` (the app's context factory; no telefunction or context then).
    """

    error: BaseException
    file: str | None
    name: str | None
    context: Mapping[str, Any] | None
    where: str


BugCallback = Callable[[Bug], object]

_callbacks: list[BugCallback] = []


def on_bug(callback: BugCallback) -> Callable[[], None]:
    """Call ``callback(bug)`` for every unexpected server error; returns a function that
    unregisters it."""
    _callbacks.append(callback)

    def remove() -> None:
        if callback in _callbacks:
            _callbacks.remove(callback)

    return remove


def report_bug(error: BaseException, scope: Any, where: str) -> None:
    """Hand ``error`` to every ``on_bug`` callback; ``scope`` is the call's ``CallScope`` (or
    ``None``). Never raises."""
    if not _callbacks:
        return
    file: str | None = None
    name: str | None = None
    context: Mapping[str, Any] | None = None
    if scope is not None:
        context = scope.context
        origin = scope.extras.get(TELEFUNCTION_EXTRA)
        if origin is not None:
            file, name = origin
    bug = Bug(error=error, file=file, name=name, context=context, where=where)
    for callback in tuple(_callbacks):
        try:
            callback(bug)
        except Exception:
            logger.exception("telefunc: an on_bug callback raised")
