"""Helpers for the broadcast tests: bounded waits on conditions and message collectors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from telefunc.broadcast.transport import PublishInfo


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Wait until ``predicate()`` holds, re-checking every 10 ms; fail after ``timeout`` s.

    For conditions that have no event to wait on (a counter in Redis, a reconnect).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what or predicate}")
        await asyncio.sleep(0.01)


class Collector:
    """A listener that records ``(payload, seq, timestamp)`` and can be awaited for a count."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, int, float]] = []
        self.infos: list[PublishInfo] = []
        self._targets: list[tuple[int, asyncio.Event]] = []

    def __call__(self, payload: Any, info: PublishInfo) -> None:
        self.items.append((payload, info.seq, info.timestamp))
        self.infos.append(info)
        for count, event in self._targets:
            if len(self.items) >= count:
                event.set()

    @property
    def payloads(self) -> list[Any]:
        """Payloads in arrival order."""
        return [item[0] for item in self.items]

    @property
    def seqs(self) -> list[int]:
        """Seqs in arrival order."""
        return [item[1] for item in self.items]

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Wait (bounded) until at least ``count`` messages arrived."""
        if len(self.items) >= count:
            return
        event = asyncio.Event()
        self._targets.append((count, event))
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            raise AssertionError(
                f"only {len(self.items)} of {count} messages arrived within {timeout}s"
            ) from None
        finally:
            self._targets.remove((count, event))
