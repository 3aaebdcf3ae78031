"""The server's garbage-collector settings: startup heap frozen, young threshold raised, once."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telefunc.asgi import TelefuncApp
from telefunc.server import gc_tuning
from telefunc.server.registry import Registry


@pytest.fixture
def fresh_gc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Untuned module state; the process's thresholds and frozen heap restored afterwards."""
    thresholds = gc.get_threshold()
    monkeypatch.setattr(gc_tuning, "_tuned", False)
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_for_server_freezes_the_heap_and_sets_the_thresholds(fresh_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    assert gc.get_freeze_count() == 0
    assert gc_tuning.tune_for_server() is True
    assert gc.get_threshold() == gc_tuning.SERVER_THRESHOLDS
    assert gc.get_freeze_count() > 1000  # modules, functions, this test's own objects


def test_only_the_first_call_acts(fresh_gc: None) -> None:
    assert gc_tuning.tune_for_server() is True
    gc.set_threshold(700, 10, 10)
    assert gc_tuning.tune_for_server() is False
    assert gc.get_threshold() == (700, 10, 10)


def test_cycles_made_after_startup_are_still_collected(fresh_gc: None) -> None:
    gc_tuning.tune_for_server()

    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    freed: list[str] = []

    weakref.finalize(a, freed.append, "a")
    del a, b
    gc.collect()
    assert freed == ["a"]


async def _lifespan_startup(app: TelefuncApp) -> None:
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_the_app_tunes_on_lifespan_startup(fresh_gc: None, tmp_path: Path) -> None:
    gc.set_threshold(700, 10, 10)
    await _lifespan_startup(TelefuncApp(registry=Registry()))
    assert gc.get_threshold() == gc_tuning.SERVER_THRESHOLDS
    assert gc.get_freeze_count() > 0


async def test_tune_gc_false_leaves_the_collector_alone(fresh_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    await _lifespan_startup(TelefuncApp(registry=Registry(), tune_gc=False))
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
