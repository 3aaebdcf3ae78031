"""Telefunctions that read uploads chunk by chunk, for the memory tests of
tests/streaming/test_peak_rss.py (the server runs there as its own process)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from telefunc import UploadedFile


async def hash_upload(file: UploadedFile) -> dict[str, Any]:
    """Reads a ``bin`` upload in chunks as they arrive: byte count and SHA-256."""
    digest = hashlib.sha256()
    total = 0
    async for chunk in file.chunks():
        digest.update(chunk)
        total += len(chunk)
    return {"name": file.name, "size": file.size, "total": total, "sha256": digest.hexdigest()}


async def upload_digest_paused(
    stream: AsyncIterator[bytes], pause_after: int, pause_seconds: float, chunk_delay: float
) -> dict[str, Any]:
    """A slow consumer of a client ReadableStream: reads ``pause_after`` bytes, stops reading
    for ``pause_seconds`` (the client keeps pushing meanwhile), then reads the rest slowly,
    ``chunk_delay`` seconds per chunk."""
    digest = hashlib.sha256()
    total = 0
    paused = False
    async for chunk in stream:
        digest.update(chunk)
        total += len(chunk)
        # The delays are the scenario itself (an application slower than the network), not a
        # synchronisation: flow control must hold the client back meanwhile.
        if not paused and total >= pause_after:
            paused = True
            await asyncio.sleep(pause_seconds)
        elif paused and chunk_delay:
            await asyncio.sleep(chunk_delay)
    return {"total": total, "sha256": digest.hexdigest(), "paused": paused}
