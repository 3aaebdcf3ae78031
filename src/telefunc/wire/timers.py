"""One deadline heap for many protocol objects, sans-I/O.

Channels and connections each have at most one pending deadline (``next_deadline()``). Instead of
one ``call_later`` per object (or per frame), they all share one :class:`Timers` heap per hub; the
I/O layer sleeps until :meth:`Timers.next_deadline` and then calls :meth:`Timers.run_due` with the
current time. Entries are invalidated lazily: rescheduling an object just pushes a new entry, and a
popped entry whose time no longer matches the object's ``_timer_at`` is skipped.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Protocol

__all__ = ["TimerTarget", "Timers"]


class TimerTarget(Protocol):
    """An object with one deadline: it stores it in ``_timer_at`` and handles it when due."""

    _timer_at: float | None

    def handle_timeout(self, now: float) -> None:
        """Called by :meth:`Timers.run_due` once ``now >= _timer_at``."""


class Timers:
    """A lazily invalidated min-heap of ``(when, order, target)``."""

    __slots__ = ("_counter", "_heap", "on_earlier")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerTarget]] = []
        self._counter = itertools.count()
        #: Called when a deadline earlier than every other one is scheduled, so the I/O layer
        #: can wake up and sleep for less.
        self.on_earlier: Callable[[], None] | None = None

    def schedule(self, target: TimerTarget, when: float | None) -> None:
        """Set ``target``'s single deadline (``None`` cancels it)."""
        if target._timer_at == when:
            return
        target._timer_at = when
        if when is None:
            return
        earliest = self.next_deadline()
        heapq.heappush(self._heap, (when, next(self._counter), target))
        if (earliest is None or when < earliest) and self.on_earlier is not None:
            self.on_earlier()

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or ``None``."""
        heap = self._heap
        while heap and heap[0][2]._timer_at != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def run_due(self, now: float) -> None:
        """Fire every target whose deadline is ``<= now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, target = heapq.heappop(heap)
            if target._timer_at != when:
                continue
            target._timer_at = None
            target.handle_timeout(now)

    def __len__(self) -> int:
        return len(self._heap)
