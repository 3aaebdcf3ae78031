"""Context variables that tell emulated APIs where they are running (which object, which colo)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .durable_objects import ObjectHost
    from .runtime import Emulator

current_host: ContextVar[ObjectHost | None] = ContextVar("telefunc_do_host", default=None)
"""The Durable Object whose code is running (``None`` in a stateless worker or a test)."""

current_colo: ContextVar[str | None] = ContextVar("telefunc_colo", default=None)
"""The colo the running code is in (a request's colo, or the object's home colo)."""

gate_exempt: ContextVar[bool] = ContextVar("telefunc_gate_exempt", default=False)
"""True inside ``blockConcurrencyWhile``: its own awaits must not wait for the closed gate."""

current_emulator: ContextVar[Emulator | None] = ContextVar("telefunc_emulator", default=None)
"""The emulator serving the running code."""

_default: list[Any] = []


def set_default_emulator(emu: Emulator | None) -> None:
    """Make ``emu`` the emulator used when no context says otherwise (e.g. ``js.Date.now()``)."""
    _default.clear()
    if emu is not None:
        _default.append(emu)


def get_emulator() -> Emulator | None:
    """The emulator of the running code, else the default one."""
    emu = current_emulator.get()
    if emu is not None:
        return emu
    return _default[0] if _default else None


async def reenter_gate() -> None:
    """Wait until the current object's input gate is open again.

    Called at the end of every non-storage I/O (KV, fetch, other objects): its completion is an
    event, and the real runtime holds events while the gate is closed (docs/cloudflare.md §3).
    """
    host = current_host.get()
    if host is not None and not gate_exempt.get():
        await host.gate.wait_open()
