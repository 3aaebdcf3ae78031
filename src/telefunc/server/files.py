"""Files sent by the client with the ``bin`` request kind, read lazily from the request body.

The body is ``[u32 BE metadata length][metadata JSON][file 0 bytes][file 1 bytes]…``. The
metadata's arguments hold ``!TelefuncFile:{…}`` / ``!TelefuncBlob:{…}`` placeholders that revive
into :class:`UploadedFile` objects. Their bytes follow the metadata in index order, so reading
file *n* first skips whatever of files *0…n-1* was not read: nothing is buffered beyond one
chunk, which keeps a large upload's memory bounded.

Everything the client announces is checked before it is read: the metadata length against
``max_metadata`` and the files' sizes against ``max_upload`` (:class:`BodyTooLarge`, 413), and
file placeholders must carry a whole ``index`` below ``max_files`` and a whole ``size``
(:class:`MalformedBody`, 400).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from telefunc.errors import BodyTooLarge, MalformedBody, ProtocolError, RecordTooLarge
from telefunc.server.request_body import BodyReader
from telefunc.wire.framing import LengthPrefixedReader
from telefunc.wire.placeholders import BLOB_PREFIX, FILE_PREFIX

__all__ = ["BodyReader", "FileBody", "UploadedFile"]

CHUNK = 64 * 1024


class FileBody:
    """Cuts a ``bin`` request body into its metadata and its files, in order.

    ``max_metadata`` bounds the metadata JSON, ``max_upload`` the whole body (header, metadata
    and every announced file), ``max_files`` the file indices.
    """

    def __init__(
        self,
        reader: BodyReader,
        *,
        max_metadata: int = 1024 * 1024,
        max_upload: int = 256 * 1024 * 1024,
        max_files: int = 1000,
    ) -> None:
        self._reader = reader
        self._pending = b""
        self._next_index = 0  # index of the file whose bytes come next in the stream
        self._sizes: dict[int, int] = {}
        #: Files whose chunks() was taken: a later file waits for them instead of skipping them.
        self._claimed: set[int] = set()
        #: Set (and replaced) each time the stream moves past a file.
        self._advanced: asyncio.Event | None = None
        self._max_metadata = max_metadata
        self._max_upload = max_upload
        self._max_files = max_files
        self._announced = 0  # header + metadata + the sizes of the distinct files so far

    async def read_metadata(self) -> str:
        """The metadata JSON text that precedes the files."""
        # Bounded by both limits as soon as its length prefix arrives, before it is buffered.
        records = LengthPrefixedReader(min(self._max_metadata, max(0, self._max_upload - 4)))
        try:
            while (metadata := records.next_record()) is None:
                chunk = await self._reader.read(CHUNK)
                if not chunk:
                    raise MalformedBody("request body ended before the announced length")
                records.receive_data(chunk)
        except RecordTooLarge as exc:
            if exc.size > self._max_metadata:
                raise BodyTooLarge(f"upload metadata of {exc.size} bytes") from None
            raise BodyTooLarge(f"upload of more than {self._max_upload} bytes") from None
        self._announce(4 + len(metadata))
        self._pending = records.take_unparsed()
        return metadata.decode("utf-8")

    def _announce(self, size: int) -> None:
        self._announced += size
        if self._announced > self._max_upload:
            raise BodyTooLarge(f"upload of more than {self._max_upload} bytes")

    def revivers(self) -> dict[str, Callable[[str], UploadedFile]]:
        """The placeholder handlers of this body: file and blob metadata become uploads."""
        return {FILE_PREFIX: self._revive_file, BLOB_PREFIX: self._revive_blob}

    def _revive_file(self, meta_text: str) -> UploadedFile:
        return self._revive(meta_text, is_blob=False)

    def _revive_blob(self, meta_text: str) -> UploadedFile:
        return self._revive(meta_text, is_blob=True)

    def _revive(self, meta_text: str, *, is_blob: bool) -> UploadedFile:
        meta = _file_metadata(meta_text)
        index, size = meta["index"], meta["size"]
        if not 0 <= index < self._max_files:
            raise MalformedBody(f"file index {index} out of range")
        known = self._sizes.get(index)
        if known is None:
            self._announce(size)
            self._sizes[index] = size
        elif known != size:
            raise MalformedBody(f"file {index} announced with two sizes")
        name = meta.get("name", "")
        kind = meta.get("type", "")
        return UploadedFile(
            self,
            index=index,
            size=size,
            name=None if is_blob else (name if isinstance(name, str) else str(name)),
            type=kind if isinstance(kind, str) else str(kind),
            last_modified=meta.get("lastModified"),
        )

    def _claim(self, index: int) -> AsyncIterator[bytes]:
        """The chunks of file ``index``; from now on a later file waits for it to be read."""
        self._claimed.add(index)
        return self._chunks(index)

    async def _chunks(self, index: int) -> AsyncIterator[bytes]:
        # Files share one body, in index order: several may be read at once (a result echoing
        # two uploads streams both), so each waits for its turn. An earlier file someone took
        # chunks() of is waited for; one nobody asked for is skipped.
        while True:
            if index < self._next_index:
                raise ProtocolError(
                    f"file {index} was already read (files are read once, in order)"
                )
            if self._next_index == index:
                break
            if self._next_index in self._claimed:
                if self._advanced is None:
                    self._advanced = asyncio.Event()
                await self._advanced.wait()
            else:
                await self._skip_current()
        remaining = self._sizes[index]
        try:
            while remaining > 0:
                chunk = await self._take(min(remaining, CHUNK))
                remaining -= len(chunk)
                yield chunk
        finally:
            # Left early (the reader stopped): skip the rest, so later files can be read.
            with contextlib.suppress(Exception):
                await self._discard(remaining)
            self._advance()

    def _advance(self) -> None:
        self._next_index += 1
        advanced, self._advanced = self._advanced, None
        if advanced is not None:
            advanced.set()

    async def _take(self, n: int) -> bytes:
        if not self._pending:
            self._pending = await self._reader.read(CHUNK)
            if not self._pending:
                raise MalformedBody("request body ended in the middle of a file")
        chunk, self._pending = self._pending[:n], self._pending[n:]
        return chunk

    async def _skip_current(self) -> None:
        await self._discard(self._sizes.get(self._next_index, 0))
        self._advance()

    async def _discard(self, size: int) -> None:
        """Read past ``size`` bytes of the body."""
        while size > 0:
            size -= len(await self._take(min(size, CHUNK)))


def _file_metadata(text: str) -> dict[str, Any]:
    """The JSON after ``!TelefuncFile:``: an object with whole, non-negative index and size."""
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody("file placeholder metadata is not JSON") from exc
    if not isinstance(meta, dict):
        raise MalformedBody("file placeholder metadata is not an object")
    for key in ("index", "size"):
        value = meta.get(key)
        if type(value) is not int or value < 0:
            raise MalformedBody(f"file placeholder {key} is not a whole number")
    return meta


class UploadedFile:
    """A file (or blob) argument sent by the client.

    ``name`` is ``None`` for a ``Blob``. The bytes are read once: ``await f.read()``,
    ``await f.text()`` or ``async for chunk in f.chunks()``. Files arrive in the order the client
    sent them: reading a later file first skips an earlier one nobody took ``chunks()`` of, and
    waits for one that is being read.
    """

    __slots__ = ("_body", "_consumed", "index", "last_modified", "name", "size", "type")

    def __init__(
        self,
        body: FileBody,
        *,
        index: int,
        size: int,
        name: str | None,
        type: str,
        last_modified: Any,
    ) -> None:
        self._body = body
        self._consumed = False
        self.index = index
        self.size = size
        self.name = name
        self.type = type
        self.last_modified = last_modified

    def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive; can be iterated once."""
        if self._consumed:
            raise ProtocolError(f"file {self.name or self.index!r} was already read")
        self._consumed = True
        return self._body._claim(self.index)

    async def read(self) -> bytes:
        """All of the file's bytes."""
        return b"".join([chunk async for chunk in self.chunks()])

    async def text(self, encoding: str = "utf-8") -> str:
        """The file decoded as text."""
        return (await self.read()).decode(encoding)

    def __repr__(self) -> str:
        return f"UploadedFile(name={self.name!r}, type={self.type!r}, size={self.size})"
