"""A local, in-process emulator of Cloudflare Workers, Durable Objects and KV (CPython).

Python Workers cannot run offline (workerd downloads a pinned Pyodide bundle, see
cloudflare.md §2), so code written for the real runtime is tested here::

    from telefunc.testing import Emulator, FakeClock, install

    install()                      # registers stand-in `workers`, `js`, `pyodide.ffi` modules
    from workers import DurableObject, Response, WorkerEntrypoint

    emu = Emulator(clock=FakeClock(), kv_delay=2.0)
    emu.durable_object("COUNTER", Counter)
    emu.kv("KV")
    emu.set_worker(Default)
    resp = await emu.fetch("https://app.test/", colo="NRT")
    await emu.clock.advance(10)    # hibernation, alarms, KV propagation happen on the way

``install()`` also works as a context manager that removes the stand-ins on exit.
"""

from __future__ import annotations

import sys
import types
from types import TracebackType
from typing import Any

from . import ffi, js_api, workers_api
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

_STANDINS = ("workers", "js", "pyodide", "pyodide.ffi")


def _modules() -> dict[str, types.ModuleType]:
    pyodide = types.ModuleType("pyodide", "Stand-in for Pyodide (telefunc.testing).")
    pyodide.ffi = ffi  # type: ignore[attr-defined]
    pyodide.__path__ = []  # a package, so `import pyodide.ffi` resolves
    return {"workers": workers_api, "js": js_api, "pyodide": pyodide, "pyodide.ffi": ffi}


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


def install() -> Installed:
    """Register the stand-in ``workers``, ``js``, ``pyodide`` and ``pyodide.ffi`` modules."""
    previous = {name: sys.modules.get(name) for name in _STANDINS}
    sys.modules.update(_modules())
    return Installed(previous)


def uninstall() -> None:
    """Remove the stand-in modules (if they are ours)."""
    mods = _modules()
    for name in _STANDINS:
        current = sys.modules.get(name)
        if current is not None and (current is mods[name] or name == "pyodide"):
            sys.modules.pop(name, None)
