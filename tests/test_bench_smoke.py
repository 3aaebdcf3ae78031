"""Smoke test of bench/burst.py: a tiny burst reaches every subscriber exactly once, in order.

Not a benchmark: it checks only what the burst delivered (no timing), for telefunc and the raw
``websockets`` baseline (python-socketio, an optional bench dependency, is left out).
"""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

from testpaths import IN_CI, REPO

BENCH = REPO / "bench"


def _burst() -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    try:
        import burst  # type: ignore[import-not-found, unused-ignore]
    except Exception as exc:
        if IN_CI:  # CI installs everything the bench needs: a broken bench must not hide
            raise
        pytest.skip(f"bench/burst.py does not import here: {exc!r}")
    module: ModuleType = burst
    return module


@pytest.mark.parametrize("kind", ["telefunc", "websockets"])
def test_small_burst_reaches_every_subscriber_once_in_order(kind: str) -> None:
    burst = _burst()
    result = burst.measure(kind, subscribers=10, messages=20, size=16, client_procs=1)
    assert (result.received, result.lost) == (10 * 20, 0)
    assert (result.duplicates, result.disorder, result.disconnected) == (0, 0, 0)
    assert result.complete == 10
