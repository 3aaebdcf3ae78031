"""Per-call context: ``get_context()`` and the scope that tracks what a call spawned.

A call's *scope* lives as long as the HTTP request **and** everything it spawned (channels,
streams, functions). Each of those takes a *hold* on the scope and releases it when it finishes;
when the last hold goes, the context's ``on_close`` callbacks run and its ``signal`` fires.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from telefunc.errors import UsageError

__all__ = ["CURRENT_SCOPE", "AbortSignal", "CallScope", "Context", "get_context"]

logger = logging.getLogger("telefunc")

CloseCallback = Callable[[], Awaitable[None] | None]


class AbortSignal:
    """Fires once when the call and everything it spawned are finished (like a JS AbortSignal)."""

    __slots__ = ("_callbacks", "_event", "aborted")

    def __init__(self) -> None:
        self.aborted = False
        self._event: asyncio.Event | None = None
        # ``None`` until a listener is added: a scope kept alive by an idle channel should not
        # pay for an empty list.
        self._callbacks: list[Callable[[], None]] | None = None

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the signal fires (at once if it already has)."""
        if self.aborted:
            callback()
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    async def wait(self) -> None:
        """Wait until the signal fires."""
        if self.aborted:
            return
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()

    def _fire(self) -> None:
        if self.aborted:
            return
        self.aborted = True
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks or (), None
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("telefunc: a signal listener raised")


class Context(dict[str, Any]):
    """What ``get_context()`` returns: the app's context values plus ``on_close`` and ``signal``.

    Values are read as items (``ctx["user"]``) or attributes (``ctx.user``).
    """

    __slots__ = ("_scope",)

    def __init__(self, values: Mapping[str, Any], scope: CallScope) -> None:
        super().__init__(values)
        self._scope = scope

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the telefunc context has no value {name!r}") from None

    @property
    def signal(self) -> AbortSignal:
        """Fires when the call and every channel, stream and function it spawned are finished."""
        return self._scope.signal

    def on_close(self, callback: CloseCallback) -> None:
        """Run ``callback`` (sync or async) once the call and all it spawned are finished."""
        self._scope.on_close(callback)


class CallScope:
    """The lifetime of one telefunction call, shared with what the call spawns.

    ``hub`` is the app's channel hub (so a returned ``Channel`` can register itself when it is
    serialized). ``hold()`` keeps the scope open until the returned release is called.
    """

    __slots__ = ("_callbacks", "_context", "_holds", "_signal", "_values", "extras", "hub")

    def __init__(self, hub: Any, values: Mapping[str, Any] | None = None) -> None:
        self.hub = hub
        self._holds = 1  # the request itself; released by finish_request()
        self._callbacks: list[CloseCallback] | None = None  # created by the first on_close
        # The context and the signal are built when first asked for: most calls use neither.
        self._values = values
        self._context: Context | None = None
        self._signal: AbortSignal | None = None
        #: Free slots for transports (e.g. the session token on Cloudflare).
        self.extras: dict[str, Any] = {}

    @property
    def context(self) -> Context:
        """What ``get_context()`` returns for this call."""
        context = self._context
        if context is None:
            context = self._context = Context(self._values or {}, self)
            self._values = None
        return context

    @property
    def signal(self) -> AbortSignal:
        """Fires once the call and everything it spawned are finished."""
        signal = self._signal
        if signal is None:
            signal = self._signal = AbortSignal()
            if self._holds <= 0:
                signal._fire()
        return signal

    def hold(self) -> Callable[[], None]:
        """Take a hold on the scope; call the returned function (once) to release it."""
        if self._holds <= 0:
            raise UsageError("this telefunction call has already finished")
        self._holds += 1
        return _Hold(self)

    def finish_request(self) -> None:
        """Release the request's own hold, once its response has been produced."""
        self._release()

    def on_close(self, callback: CloseCallback) -> None:
        """See :meth:`Context.on_close`."""
        if self._holds <= 0:
            _run_callback(callback)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def _release(self) -> None:
        self._holds -= 1
        if self._holds != 0:
            return
        if self._signal is not None:
            self._signal._fire()
        callbacks, self._callbacks = self._callbacks or (), None
        for callback in callbacks:
            _run_callback(callback)


class _Hold:
    """The release function :meth:`CallScope.hold` returns; releases its hold once.

    A slotted object rather than a closure: every channel of a call keeps one for its whole
    life, and a closure with its cells is about four times the size.
    """

    __slots__ = ("scope",)

    def __init__(self, scope: CallScope) -> None:
        self.scope: CallScope | None = scope

    def __call__(self) -> None:
        scope, self.scope = self.scope, None
        if scope is not None:
            scope._release()


_background: set[asyncio.Task[Any]] = set()


def _run_callback(callback: CloseCallback) -> None:
    try:
        result = callback()
    except Exception:
        logger.exception("telefunc: an on_close callback raised")
        return
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)
        _background.add(task)
        task.add_done_callback(_finish_background)


def _finish_background(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("telefunc: an on_close callback raised", exc_info=task.exception())


_current_scope: ContextVar[CallScope | None] = ContextVar("telefunc_call_scope", default=None)
#: The variable :func:`set_scope` sets, for a hot path that sets and resets it inline.
CURRENT_SCOPE: ContextVar[CallScope | None] = _current_scope


def get_context() -> Context:
    """The context of the telefunction call being executed.

    It holds what the app's ``context`` factory built from the request (for example the current
    user), plus ``on_close(callback)`` and ``signal``. Raises :class:`UsageError` outside a call.
    """
    scope = _current_scope.get()
    if scope is None:
        raise UsageError("get_context() can only be called while a telefunction is running")
    return scope.context


def current_scope() -> CallScope | None:
    """The running call's scope, or ``None`` outside a call (for telefunc's own objects)."""
    return _current_scope.get()


def set_scope(scope: CallScope | None) -> Any:
    """Make ``scope`` current; returns a token for :func:`reset_scope`."""
    return _current_scope.set(scope)


def reset_scope(token: Any) -> None:
    """Undo :func:`set_scope`."""
    _current_scope.reset(token)
