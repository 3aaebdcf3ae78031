"""Sleeping until the next deadline of a sans-I/O core, on any asyncio loop (Pyodide's included).

The server's hub and the client's connection each run one task that sleeps until the earliest
deadline of their core's timer heap, or until something schedules an earlier one.
"""

from __future__ import annotations

import asyncio

__all__ = ["sleep_or_wake"]


async def sleep_or_wake(wake: asyncio.Event, delay: float) -> None:
    """Return after ``delay`` seconds (``> 0``), or earlier once ``wake`` is set.

    A relative ``call_later``, not ``asyncio.timeout``/``wait_for``: on CPython >= 3.12 those turn
    the delay into an absolute time, check it against the clock, then hand it to ``call_at``, and
    Pyodide's webloop raises ``ValueError("Can't schedule in the past")`` when its clock moved on
    between those readings. That would end the task every deadline rides on.
    """
    alarm = asyncio.get_running_loop().call_later(delay, wake.set)
    try:
        await wake.wait()
    finally:
        alarm.cancel()
