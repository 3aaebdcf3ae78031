"""Clocks for the emulator: the real wall clock, and a fake one tests drive by hand.

Every timed behaviour of the emulator (KV propagation and TTLs, the 1 write/s limit, alarms,
hibernation after 10 s, eviction after 70 s, ``js.setTimeout``) goes through a :class:`Clock`.
With :class:`FakeClock` nothing waits in real time: ``await clock.advance(10)`` moves time
forward, fires every timer due on the way in order, and lets the event loop run what those timers
woke before returning.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

from telefunc.errors import UsageError

__all__ = ["Clock", "FakeClock", "RealClock", "TimerHandle"]


class TimerHandle:
    """A scheduled callback; :meth:`cancel` stops it from running."""

    __slots__ = ("_cancelled", "_inner", "when")

    def __init__(self, when: float, inner: asyncio.TimerHandle | None = None) -> None:
        self.when = when
        self._inner = inner
        self._cancelled = False

    def cancel(self) -> None:
        """Cancel the callback (no effect once it ran)."""
        self._cancelled = True
        if self._inner is not None:
            self._inner.cancel()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled


class Clock:
    """Interface of a clock: epoch time, timers and sleeping."""

    def now(self) -> float:
        """Seconds since the epoch."""
        raise NotImplementedError

    def now_ms(self) -> int:
        """Milliseconds since the epoch (``Date.now()``)."""
        return int(self.now() * 1000)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds of this clock."""
        raise NotImplementedError

    async def sleep(self, delay: float) -> None:
        """Sleep ``delay`` seconds of this clock."""
        raise NotImplementedError

    async def advance(self, seconds: float) -> None:
        """Move time forward (only a :class:`FakeClock` can)."""
        raise UsageError("only a FakeClock can be advanced")


class RealClock(Clock):
    """The wall clock, with timers on the running asyncio loop."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """``loop.call_later`` on the running loop."""
        loop = asyncio.get_running_loop()
        inner = loop.call_later(max(0.0, delay), callback, *args)
        return TimerHandle(self.now() + delay, inner)

    async def sleep(self, delay: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(0.0, delay))


class FakeClock(Clock):
    """A clock that only moves when :meth:`advance` (or :meth:`set`) is awaited.

    ``start`` is the initial epoch time in seconds (2026-01-01T00:00:00Z by default).
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = float(start)
        self._heap: list[tuple[float, int, TimerHandle, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """The current fake time."""
        return self._now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Schedule ``callback`` at ``now + delay`` fake seconds."""
        when = self._now + max(0.0, delay)
        handle = TimerHandle(when)
        heapq.heappush(self._heap, (when, next(self._seq), handle, callback, args))
        return handle

    async def sleep(self, delay: float) -> None:
        """Suspend until the clock has been advanced past ``now + delay``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        handle = self.call_later(delay, wake)
        try:
            await fut
        finally:
            handle.cancel()

    def pending_timers(self) -> int:
        """How many timers are scheduled and not cancelled."""
        return sum(1 for entry in self._heap if not entry[2].cancelled)

    def next_timer(self) -> float | None:
        """When the next live timer is due, or ``None``."""
        for when, _, handle, _, _ in sorted(self._heap):
            if not handle.cancelled:
                return when
        return None

    async def advance(self, seconds: float) -> None:
        """Move ``seconds`` forward, firing due timers in time order.

        After each timer (and at the end) the event loop runs until it has nothing ready, so
        whatever the timers woke (an alarm handler, a hibernation) has happened on return.
        """
        if seconds < 0:
            raise UsageError("a clock cannot go backwards")
        await self.set(self._now + seconds)

    async def set(self, when: float) -> None:
        """Advance to the absolute time ``when``."""
        target = max(self._now, when)
        await settle()
        while self._heap and self._heap[0][0] <= target:
            at, _, handle, callback, args = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            self._now = max(self._now, at)
            handle._cancelled = True  # ran; a later cancel() is a no-op
            callback(*args)
            await settle()
        self._now = target
        await settle()


async def settle(max_rounds: int = 10_000) -> None:
    """Let the running loop work off everything that is ready now (no real waiting).

    Yields until the loop's ready queue stays empty for a few rounds; tasks waiting on real I/O
    or on timers are not waited for.
    """
    loop = asyncio.get_running_loop()
    quiet = 0
    for _ in range(max_rounds):
        await asyncio.sleep(0)
        ready = getattr(loop, "_ready", None)
        if ready is None:
            quiet += 1
            if quiet >= 50:
                return
        elif len(ready) == 0:
            quiet += 1
            if quiet >= 3:
                return
        else:
            quiet = 0
