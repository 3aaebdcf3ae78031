"""server.memory: the heap trim after a slow consumer is scheduled once per interval."""

from __future__ import annotations

import asyncio

import pytest

from telefunc.server import memory


async def test_trims_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    trimmed = asyncio.Event()
    calls: list[int] = []

    def fake_trim() -> None:
        calls.append(1)
        trimmed.set()

    monkeypatch.setattr(memory, "_malloc_trim", fake_trim)
    monkeypatch.setattr(memory, "_last_scheduled", float("-inf"))
    memory.release_freed_memory_soon(0.0)
    memory.release_freed_memory_soon(0.0)  # within MIN_INTERVAL: an attacker's repeat is free
    await asyncio.wait_for(trimmed.wait(), 5)
    await asyncio.sleep(0)  # a second scheduled trim would be due by now as well
    assert calls == [1]


def test_the_real_trim_is_harmless() -> None:
    memory._malloc_trim()  # glibc: returns freed pages; elsewhere: nothing
