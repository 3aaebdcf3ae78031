"""Telefunctions that send and receive one value of every placeholder kind
(tests/wire/test_placeholders.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from telefunc import BroadcastChannel, ByteStream, Channel, UploadedFile, download


async def every_kind(upload: UploadedFile) -> dict[str, Any]:
    """One value of each placeholder kind; the upload (a file or a blob) is echoed back.

    (One upload per call: two echoed uploads of one request are read concurrently from the
    request body, which fails at random, a known bug of server/files.py.)
    """

    async def generator() -> AsyncIterator[int]:
        yield 1

    async def chunks() -> AsyncIterator[bytes]:
        yield b"abc"

    async def promise() -> str:
        await asyncio.sleep(0)
        return "resolved"

    async def function(n: int) -> int:
        return n + 1

    return {
        "upload": upload,
        "file_download": download(b"xyz", name="x.txt", type="text/plain"),
        "blob_download": download(b"xyz", type="text/plain"),
        "stream": ByteStream(chunks()),
        "generator": generator(),
        "promise": promise(),
        "channel": Channel(),
        "function": function,
        "broadcast": BroadcastChannel(key="placeholders"),
    }


async def argument_kinds(
    file: UploadedFile,
    blob: UploadedFile,
    stream: AsyncIterator[bytes],
    fn: Callable[[int], Awaitable[int]],
) -> dict[str, Any]:
    """What each client→server placeholder revived as, read through."""
    data = b"".join([chunk async for chunk in stream])
    return {
        "file": [type(file).__name__, file.name, await file.read()],
        "blob": [type(blob).__name__, blob.name, await blob.read()],
        "stream": data,
        "fn": await fn(41),
    }
