"""Garbage-collector settings for a long-running server process (:func:`tune_for_server`).

A server holding thousands of connections keeps 100k+ container objects alive. With CPython's
default thresholds (700, 10, 10) a fan-out promotes the objects that live until their frames are
written (more than 700 per publish to 1,000 subscribers) into the old generation, and every few
seconds a full collection walks every live object, stopping the event loop for 50-300 ms.

:func:`tune_for_server` collects once and freezes what exists after startup (modules, the app,
its registry: no collection walks them again), and raises the young generation's threshold so
the short-lived objects of one fan-out die by reference counting before a collection promotes
them. Cycles are still collected; objects frozen at startup that later become cyclic garbage stay
until :func:`gc.unfreeze` (startup state is meant to live as long as the process).
"""

from __future__ import annotations

import gc

__all__ = ["SERVER_THRESHOLDS", "tune_for_server"]

#: Generation thresholds while serving: a young collection every 50k allocations (CPython's 700
#: suits short scripts), the older ones at CPython's default ratios.
SERVER_THRESHOLDS: tuple[int, int, int] = (50_000, 10, 10)

_tuned = False


def tune_for_server() -> bool:
    """Freeze the startup heap and set :data:`SERVER_THRESHOLDS`; only the first call acts.

    Returns whether this call changed the settings. Process-wide, so meant for the process's
    server startup (``TelefuncApp`` calls it on ASGI lifespan startup).
    """
    global _tuned
    if _tuned:
        return False
    _tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVER_THRESHOLDS)
    return True
