"""Telefunctions passing functions and byte streams across the wire (tests/streaming,
js/interop/function_values.mjs, js/interop/stream_upload.mjs)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from streaming_events import events_until, record

from telefunc import Abort, ChannelClosedError, get_context


async def fn_events_of(run_id: str, until: str, timeout: float) -> list[str]:
    """The events of ``run_id`` once ``until`` happened (or ``timeout`` seconds passed)."""
    return await events_until(run_id, until, timeout)


async def counter(start: int) -> dict[str, Any]:
    """A stateful returned function: its closure survives across calls."""
    count = start

    async def increment(by: int) -> int:
        nonlocal count
        count += by
        return count

    def peek() -> int:  # a plain (sync) function works too
        return count

    return {"increment": increment, "peek": peek, "label": "counter"}


async def map_with(items: list[int], fn: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """Calls the client's function for each item, in order."""
    return [await fn(item) for item in items]


async def call_after_close(fn: Callable[[int], Awaitable[Any]]) -> dict[str, Any]:
    """Calls the client's function, closes its channel, then calls it again."""
    first = await fn(1)
    await fn.aclose()  # type: ignore[attr-defined]
    try:
        await fn(2)
    except ChannelClosedError:
        return {"first": first, "after_close": "ChannelClosedError"}
    return {"first": first, "after_close": "no error"}


async def typed_fn() -> Callable[[int], Awaitable[int]]:
    """A returned function whose arguments the shield checks."""

    async def double(x: int) -> int:
        return 2 * x

    return double


async def aborting_fn() -> dict[str, Any]:
    async def fail(reason: str) -> None:
        raise Abort({"why": reason})

    return {"fail": fail}


async def watched(run_id: str) -> dict[str, Any]:
    """Returns a function; on_close must wait until the client closed its channel."""

    async def closed() -> None:
        await record(run_id, "on_close")

    get_context().on_close(closed)

    async def ping(n: int) -> int:
        await record(run_id, f"ping {n}")
        return n + 1

    return {"ping": ping}


async def upload_digest(stream: AsyncIterator[bytes]) -> dict[str, Any]:
    """Consumes a client ReadableStream: byte count, chunk count and SHA-256."""
    digest = hashlib.sha256()
    total = chunks = 0
    async for chunk in stream:
        digest.update(chunk)
        total += len(chunk)
        chunks += 1
    return {"total": total, "chunks": chunks, "sha256": digest.hexdigest()}


async def upload_text(label: str, stream: AsyncIterator[bytes]) -> str:
    data = b"".join([chunk async for chunk in stream])
    return f"{label}: {data.decode()}"


async def map_watched(run_id: str, items: list[int], fn: Callable[[int], Awaitable[Any]]) -> int:
    """Calls the client's function; on_close fires once its channel closed after the return
    (dropping the last reference to a function argument closes its channel)."""

    async def closed() -> None:
        await record(run_id, "on_close")

    get_context().on_close(closed)
    total = 0
    for item in items:
        total += await fn(item)
    await record(run_id, "returned")
    return total
