"""Fixtures for the Cloudflare emulator tests: stand-in modules and an emulator on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from telefunc.testing import Emulator, FakeClock, install

# Production-style code in these tests does `from workers import ...` at import time.
install()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at 2026-01-01."""
    return FakeClock()


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[Emulator]:
    """An emulator with three colos, a 2 s KV delay, on the fake clock."""
    e = Emulator(
        clock=clock,
        colos={
            "LHR": ("weur", "GB", "EU"),
            "IAD": ("enam", "US", "NA"),
            "NRT": ("apac", "JP", "AS"),
        },
        kv_delay=2.0,
    )
    yield e
    e.close()
