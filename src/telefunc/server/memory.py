"""Hand freed heap memory back to the operating system after a slow consumer is dropped.

A connection cut for not reading may have held tens of MiB of small frames. Python frees them
when the connection ends, but glibc keeps the freed heap pages mapped, so the process RSS stays
at its peak. :func:`release_freed_memory_soon` calls glibc's ``malloc_trim(0)`` once, a little
later (when the socket's own buffers are gone too), at most once per :data:`MIN_INTERVAL`
seconds; elsewhere (musl, macOS, Pyodide) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from typing import Any

__all__ = ["MIN_INTERVAL", "release_freed_memory_soon"]

#: Seconds between two trims: an attacker who gets cut again and again costs one trim per period.
MIN_INTERVAL = 10.0

_last_scheduled = float("-inf")
_libc: Any = None


def _malloc_trim() -> None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else False
        except OSError:
            _libc = False
    if _libc and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)


def release_freed_memory_soon(delay: float) -> None:
    """Trim the heap ``delay`` seconds from now (rate-limited; needs a running event loop)."""
    global _last_scheduled
    now = time.monotonic()
    if now - _last_scheduled < MIN_INTERVAL:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    _last_scheduled = now
    loop.call_later(delay, _malloc_trim)
