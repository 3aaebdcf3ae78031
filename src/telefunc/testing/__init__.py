"""A local, in-process emulator of Cloudflare Workers, Durable Objects and KV (CPython).

Python Workers cannot run offline (docs/cloudflare.md §2), so code written for the real runtime
is tested here, under Cloudflare's own ``workers`` SDK: :func:`install` provides what sits
beneath the SDK in production (``js``, ``pyodide.ffi``, ``pyodide.http``, the runtime's private
modules), and an :class:`Emulator` (with a :class:`FakeClock` or a real one) hosts the worker,
its Durable Objects and KV namespaces. APIs that need the runtime's JS module loader are not
emulated. Worker modules load under the startup rules (:mod:`telefunc.testing.startup`).
"""

from __future__ import annotations

import sys
import types
from types import TracebackType
from typing import Any

from . import ffi, js_api, pyodide_http, runtime_modules
from .clock import Clock, FakeClock, RealClock, TimerHandle
from .clone import structured_clone
from .durable_objects import (
    DurableObjectAbort,
    DurableObjectId,
    DurableObjectNamespace,
    DurableObjectState,
    DurableObjectStorage,
    DurableObjectStub,
    ObjectHost,
)
from .ffi import JsException, JsProxy, create_proxy, jsnull, to_js
from .kv import KVNamespace
from .runtime import DEFAULT_COLOS, Counters, Emulator, Env, ExecutionContext
from .web import Headers, ReadableStream, Request, Response, TransformStream
from .websocket import MAX_MESSAGE_BYTES, WebSocket, WebSocketClient, WebSocketPair

__all__ = [
    "DEFAULT_COLOS",
    "MAX_MESSAGE_BYTES",
    "Clock",
    "Counters",
    "DurableObjectAbort",
    "DurableObjectId",
    "DurableObjectNamespace",
    "DurableObjectState",
    "DurableObjectStorage",
    "DurableObjectStub",
    "Emulator",
    "Env",
    "ExecutionContext",
    "FakeClock",
    "Headers",
    "Installed",
    "JsException",
    "JsProxy",
    "KVNamespace",
    "ObjectHost",
    "ReadableStream",
    "RealClock",
    "Request",
    "Response",
    "TimerHandle",
    "TransformStream",
    "WebSocket",
    "WebSocketClient",
    "WebSocketPair",
    "create_proxy",
    "install",
    "jsnull",
    "structured_clone",
    "to_js",
    "uninstall",
]

_STANDINS = (
    "js",
    "pyodide",
    "pyodide.ffi",
    "pyodide.http",
    "_cloudflare_compat_flags",
    "_pyodide_entrypoint_helper",
)
"""What the runtime provides beneath the ``workers`` SDK; the emulator provides these."""

_PYODIDE_VERSION = "0.28.2"
_MODULES: dict[str, types.ModuleType] = {}


def _modules() -> dict[str, types.ModuleType]:
    if not _MODULES:
        pyodide = types.ModuleType("pyodide", "Stand-in for Pyodide (telefunc.testing).")
        pyodide.ffi = ffi  # type: ignore[attr-defined]
        pyodide.http = pyodide_http  # type: ignore[attr-defined]
        pyodide.__version__ = _PYODIDE_VERSION  # type: ignore[attr-defined]
        pyodide.__path__ = []  # a package, so `import pyodide.ffi` resolves
        _MODULES.update(
            {
                "js": js_api,
                "pyodide": pyodide,
                "pyodide.ffi": ffi,
                "pyodide.http": pyodide_http,
                "_cloudflare_compat_flags": runtime_modules.compat_flags_module(),
                "_pyodide_entrypoint_helper": runtime_modules.entrypoint_helper_module(),
            }
        )
    return _MODULES


def _forget_sdk() -> None:
    # The real `workers` package binds the modules beneath it at import: drop it with them.
    for name in [n for n in sys.modules if n == "workers" or n.startswith("workers.")]:
        del sys.modules[name]


class Installed:
    """Handle returned by :func:`install`; as a context manager it uninstalls on exit."""

    def __init__(self, previous: dict[str, Any]) -> None:
        self._previous = previous

    def __enter__(self) -> Installed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def uninstall(self) -> None:
        """Restore whatever ``sys.modules`` held before :func:`install`."""
        for name in _STANDINS:
            old = self._previous.get(name)
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        _forget_sdk()


def install() -> Installed:
    """Provide the runtime beneath the real ``workers`` SDK (``workers-runtime-sdk``).

    Registers ``js``, ``pyodide`` (``.ffi``, ``.http``), ``_cloudflare_compat_flags`` and
    ``_pyodide_entrypoint_helper``; ``import workers`` then loads Cloudflare's own package on top.
    """
    mods = _modules()
    previous = {name: sys.modules.get(name) for name in _STANDINS}
    if any(previous[name] is not None and previous[name] is not mods[name] for name in previous):
        _forget_sdk()
    sys.modules.update(mods)
    return Installed(previous)


def uninstall() -> None:
    """Remove the stand-in modules (if they are ours) and the SDK bound to them."""
    mods = _modules()
    for name in _STANDINS:
        if sys.modules.get(name) is mods[name]:
            sys.modules.pop(name, None)
    _forget_sdk()
