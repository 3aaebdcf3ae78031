"""Telefunctions returning streaming values (tests/streaming, js/interop/stream_*.mjs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from streaming_events import events_until, record

from telefunc import Abort, UploadedFile, get_context
from telefunc.server.download import download
from telefunc.server.streaming import ByteStream


async def countdown(start: int) -> AsyncIterator[int]:
    for i in range(start, -1, -1):
        yield i


async def empty() -> AsyncIterator[int]:
    return
    yield


async def two() -> dict[str, Any]:
    async def letters() -> AsyncIterator[str]:
        for letter in "abc":
            yield letter

    async def squares() -> AsyncIterator[int]:
        for i in range(1, 4):
            yield i * i

    return {"letters": letters(), "squares": squares(), "label": "two"}


async def byte_stream(size: int) -> dict[str, Any]:
    async def chunks() -> AsyncIterator[bytes]:
        sent = 0
        while sent < size:
            n = min(1000, size - sent)
            yield bytes((sent + i) % 251 for i in range(n))
            sent += n

    return {"stream": ByteStream(chunks()), "size": size}


async def promise(value: str) -> dict[str, Any]:
    async def later() -> dict[str, str]:
        await asyncio.sleep(0)
        return {"resolved": value}

    return {"promise": later()}


async def abort_mid(value: str) -> AsyncIterator[int]:
    yield 1
    yield 2
    raise Abort({"reason": value})


async def bug_mid() -> AsyncIterator[int]:
    yield 1
    raise RuntimeError("secret detail of a streaming bug")


async def ticker(run_id: str) -> AsyncIterator[int]:
    """Counts forever until the client stops reading; records its finally and on_close."""
    context = get_context()

    async def closed() -> None:
        await record(run_id, "on_close")

    context.on_close(closed)
    await record(run_id, "started")
    try:
        n = 0
        while True:
            yield n
            n += 1
    finally:
        await record(run_id, "finally")


async def events_of(run_id: str, until: str, timeout: float) -> list[str]:
    """The events of ``run_id`` once ``until`` happened (or ``timeout`` seconds passed)."""
    return await events_until(run_id, until, timeout)


async def file_download(path: str, name: str) -> Any:
    return download(path, name=name, type="application/octet-stream")


async def blob_download(text: str) -> Any:
    return {"blob": download(text.encode(), type="text/plain")}


async def echo_file(label: str, file: UploadedFile) -> dict[str, Any]:
    """Sends an uploaded file straight back; its bytes are read from the request body lazily,
    while the response is already streaming."""
    return {"label": label, "file": file}


async def paused(count: int, pause: float) -> AsyncIterator[int]:
    """Yields ``count`` items with ``pause`` seconds between them (a slow producer)."""
    for i in range(count):
        if i:
            await asyncio.sleep(pause)
        yield i


async def slow_answer(delay: float) -> str:
    """Answers after ``delay`` seconds."""
    await asyncio.sleep(delay)
    return "late"
