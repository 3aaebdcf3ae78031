"""Telefunctions whose failures are bugs, for the on_bug tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from telefunc import Abort, Channel


def crash() -> None:
    raise RuntimeError("telefunction bug")


async def refuse() -> None:
    raise Abort("not a bug")


async def crashing_listener() -> Channel[Any, Any]:
    """An ack channel whose listener raises on every message."""
    ch: Channel[Any, Any] = Channel(ack=True)

    def listener(msg: Any) -> Any:
        raise ValueError(f"listener bug on {msg!r}")

    ch.listen(listener)
    return ch


async def crashing_stream() -> AsyncIterator[int]:
    yield 1
    raise LookupError("stream bug")


async def crashing_function() -> Any:
    """Returns a function that raises when the client calls it."""

    def explode(n: int) -> int:
        raise ZeroDivisionError(f"function bug {n}")

    return explode
