"""``download(...)``: return a file or a byte stream that the client reads lazily.

    async def get_report() -> Download:
        return download("reports/2024.pdf", type="application/pdf")

A path, ``bytes``, an uploaded file or a byte iterable becomes telefunc's ``FileDownload`` on
the client (``BlobDownload`` without a ``name``). The bytes travel in the streaming response
body, read only as fast as the client takes them, so a large file never sits in memory.
"""

from __future__ import annotations

import asyncio
import builtins
import mimetypes
import os
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Final

from telefunc.errors import UsageError
from telefunc.server.files import UploadedFile
from telefunc.server.streaming import ChunkOpener, iter_bytes
from telefunc.wire.placeholders import BLOB_DOWNLOAD_PREFIX, FILE_DOWNLOAD_PREFIX

__all__ = ["BlobDownload", "Download", "FileDownload", "download"]

CHUNK: Final = 256 * 1024
# Pyodide (Cloudflare Python Workers) has no threads: files are read inline there.
_CAN_USE_THREADS = sys.platform != "emscripten"


class Download:
    """A value returned by :func:`download`; only meaningful as (part of) a telefunction result."""

    __slots__ = ("_open", "size", "type")

    def __init__(self, open: ChunkOpener, *, type: str, size: int | None) -> None:
        self._open = open
        self.type = type
        self.size = size

    def _sized(self, meta: dict[str, Any]) -> dict[str, Any]:
        if self.size is not None and self.size >= 0:
            meta["size"] = self.size
        return meta


class FileDownload(Download):
    """A download with a file name: the client gets a ``FileDownload`` (a lazy ``File``)."""

    __slots__ = ("last_modified", "name")

    def __init__(
        self, open: ChunkOpener, *, name: str, type: str, size: int | None, last_modified: int
    ) -> None:
        super().__init__(open, type=type, size=size)
        self.name = name
        self.last_modified = last_modified

    def __telefunc_stream__(self) -> tuple[str, dict[str, Any], ChunkOpener]:
        """The ``!TelefuncFileDownload:`` placeholder (name, type, lastModified, size)."""
        meta = {"name": self.name, "type": self.type, "lastModified": self.last_modified}
        return FILE_DOWNLOAD_PREFIX, self._sized(meta), self._open

    def __repr__(self) -> str:
        return f"FileDownload(name={self.name!r}, type={self.type!r}, size={self.size})"


class BlobDownload(Download):
    """A download without a name: the client gets a ``BlobDownload`` (a lazy ``Blob``)."""

    __slots__ = ()

    def __telefunc_stream__(self) -> tuple[str, dict[str, Any], ChunkOpener]:
        """The ``!TelefuncBlobDownload:`` placeholder (type, size)."""
        return BLOB_DOWNLOAD_PREFIX, self._sized({"type": self.type}), self._open

    def __repr__(self) -> str:
        return f"BlobDownload(type={self.type!r}, size={self.size})"


def _now_ms() -> int:
    return int(time.time() * 1000)


def download(
    source: str
    | os.PathLike[str]
    | bytes
    | bytearray
    | memoryview
    | UploadedFile
    | AsyncIterable[bytes]
    | Iterable[bytes],
    *,
    name: str | None = None,
    type: str | None = None,
    size: int | None = None,
    last_modified: int | None = None,
) -> FileDownload | BlobDownload:
    """Wrap ``source`` so that the client receives it as a streamed download.

    ``source`` is a file path (``str`` or ``PathLike``; name, size, type and modification time
    default to the file's), ``bytes``, an :class:`UploadedFile`, or an iterable of ``bytes``
    chunks (async or not). With a ``name`` the client gets a ``FileDownload``, without one a
    ``BlobDownload`` (a path always has a name). ``type`` is the MIME type (``""`` unknown);
    ``size`` in bytes lets the client report progress and check completeness;
    ``last_modified`` is in milliseconds since the epoch (now by default).
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            stat = path.stat()
        except OSError as exc:
            raise UsageError(f"download(): cannot read {str(path)!r}: {exc}") from exc
        if not path.is_file():
            raise UsageError(f"download(): {str(path)!r} is not a file")
        guessed = mimetypes.guess_type(path.name)[0] or ""
        return FileDownload(
            lambda: _file_chunks(path),
            name=name if name is not None else path.name,
            type=type if type is not None else guessed,
            size=size if size is not None else stat.st_size,
            last_modified=last_modified if last_modified is not None else int(stat.st_mtime * 1000),
        )
    opener: ChunkOpener
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        opener = lambda: _bytes_chunks(data)  # noqa: E731
        size = len(data) if size is None else size
    elif isinstance(source, UploadedFile):
        opener = source.chunks
        size = source.size if size is None else size
        type = source.type if type is None else type
        name = source.name if name is None else name
        if last_modified is None and isinstance(source.last_modified, int | float):
            last_modified = int(source.last_modified)
    elif isinstance(source, AsyncIterable | Iterable) and not isinstance(source, str):
        iterable = source
        opener = lambda: iter_bytes(iterable)  # noqa: E731
    else:
        raise UsageError(f"download() cannot send a {builtins.type(source).__name__}")
    if name is not None:
        return FileDownload(
            opener,
            name=name,
            type=type or "",
            size=size,
            last_modified=last_modified if last_modified is not None else _now_ms(),
        )
    return BlobDownload(opener, type=type or "", size=size)


async def _bytes_chunks(data: bytes) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield bytes(view[start : start + CHUNK])


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    # Opened only when the body starts streaming, closed when it stops (also on cancel).
    with path.open("rb") as handle:
        while True:
            if _CAN_USE_THREADS:
                chunk = await asyncio.to_thread(handle.read, CHUNK)
            else:
                chunk = handle.read(CHUNK)
            if not chunk:
                return
            yield chunk
