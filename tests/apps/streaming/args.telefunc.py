"""Telefunctions taking what the Python client now sends as arguments: files, byte streams,
and functions."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from telefunc import UploadedFile


async def describe_files(first: UploadedFile, second: UploadedFile, third: UploadedFile) -> Any:
    """Name, type, size, last-modified and SHA-256 of each uploaded file, in order."""
    out = []
    for file in (first, second, third):
        data = await file.read()
        out.append(
            {
                "name": file.name,
                "type": file.type,
                "size": file.size,
                "lastModified": file.last_modified,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return out


async def everything(
    label: str,
    stream: AsyncIterator[bytes],
    fn: Callable[[int], Awaitable[Any]],
    file: UploadedFile,
) -> dict[str, Any]:
    """A byte stream, a function and a file in one call."""
    data = b"".join([chunk async for chunk in stream])
    return {
        "label": label,
        "stream": data.decode(),
        "fn": [await fn(1), await fn(2)],
        "file": await file.text(),
    }


async def echo_files(first: UploadedFile, second: UploadedFile) -> list[UploadedFile]:
    """Both uploads, returned unread: the response streams them back at the same time."""
    return [first, second]


async def second_only(first: UploadedFile, second: UploadedFile) -> int:
    """Reads only the later file: the earlier one, never asked for, is skipped."""
    return len(await second.read())
