"""What each test run went through on the server (e.g. started, finally, on_close), so tests can
observe server-side lifecycles. Shared by the streaming test app's telefunc files; run ids are
unique per test."""

from __future__ import annotations

import asyncio
import weakref

_events: dict[str, list[str]] = {}
# One condition per event loop: this module is imported once per test process, while each live
# server runs on a loop of its own (and an asyncio.Condition belongs to one loop).
_changed: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Condition] = (
    weakref.WeakKeyDictionary()
)


def _condition() -> asyncio.Condition:
    loop = asyncio.get_running_loop()
    condition = _changed.get(loop)
    if condition is None:
        condition = _changed[loop] = asyncio.Condition()
    return condition


async def record(run_id: str, event: str) -> None:
    """Append ``event`` to ``run_id``'s list and wake whoever waits for it."""
    _events.setdefault(run_id, []).append(event)
    async with _condition():
        _condition().notify_all()


async def events_until(run_id: str, until: str, timeout: float) -> list[str]:
    """The events of ``run_id`` once ``until`` happened (or ``timeout`` seconds passed)."""
    condition = _condition()
    try:
        async with condition:
            await asyncio.wait_for(
                condition.wait_for(lambda: until in _events.get(run_id, [])), timeout
            )
    except TimeoutError:
        pass
    return list(_events.get(run_id, []))
