"""Call arguments that are not plain values: functions, byte streams and files.

As the official client sends them (docs/protocol.md §6): a callable travels as
``!TelefuncFunction:`` on an acknowledged channel (one acked message per server call, answered
with its awaited result); an async iterable of ``bytes`` as ``!TelefuncStream:`` on a channel of
its own, then closed; a :class:`File` (or a ``pathlib.Path``) makes the request a ``bin`` request
carrying ``!TelefuncFile:`` / ``!TelefuncBlob:`` placeholders. Channels are created before the
HTTP request, so they work whatever the call's stream transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from telefunc.errors import ChannelClosedError, UsageError
from telefunc.wire.framing import length_prefixed
from telefunc.wire.placeholders import (
    BLOB_PREFIX,
    FILE_PREFIX,
    FUNCTION_PREFIX,
    STREAM_PREFIX,
    encode_json,
)

if TYPE_CHECKING:
    from telefunc.client._channel import Channel

__all__ = ["File", "RequestArguments"]

logger = logging.getLogger("telefunc.client")

_DATA_TAG = b"\x00"
_CHUNK = 64 * 1024


class File:
    """A file argument: ``File("report.pdf")``, ``File(b"...", name="a.txt", type="text/plain")``
    or ``File(open_file, name=..., type=...)``.

    ``source`` is a path (``str`` or ``os.PathLike``), ``bytes`` or a binary file object
    (readable; seekable to learn its size, else read into memory). ``name`` defaults to the
    path's or file object's base name; without a name the server receives a ``Blob``. ``type``
    is the MIME type (``""`` by default, as a browser sends for unknown files);
    ``last_modified`` is in milliseconds since the epoch (the file's mtime for a path).
    """

    __slots__ = ("_data", "_path", "_stream", "last_modified", "name", "size", "type")

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes],
        *,
        name: str | None = None,
        type: str = "",
        last_modified: int | None = None,
    ) -> None:
        self._data: bytes | None = None
        self._path: Path | None = None
        self._stream: IO[bytes] | None = None
        self.type = type
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            stat = path.stat()
            self._path = path
            self.size = stat.st_size
            default_name: str | None = path.name
            default_mtime = int(stat.st_mtime * 1000)
        elif isinstance(source, bytes | bytearray | memoryview):
            self._data = bytes(source)
            self.size = len(self._data)
            default_name = None
            default_mtime = 0
        elif hasattr(source, "read"):
            self._stream = source
            default_name = os.path.basename(str(getattr(source, "name", ""))) or None
            default_mtime = 0
            try:
                start = source.tell()
                self.size = source.seek(0, os.SEEK_END) - start
                source.seek(start)
            except (OSError, AttributeError, ValueError):  # not seekable: read it now
                self._data = source.read()
                self._stream = None
                self.size = len(self._data)
        else:
            raise UsageError(
                f"File() takes a path, bytes or a binary file object, got {type_name(source)}"
            )
        self.name = name if name is not None else default_name
        self.last_modified = last_modified if last_modified is not None else default_mtime

    def __repr__(self) -> str:
        return f"<telefunc.client.File {self.name!r} {self.size} bytes>"

    def chunks(self) -> AsyncIterator[bytes]:
        """The file's bytes, exactly :attr:`size` of them, in chunks."""
        return _read_chunks(self)


def type_name(value: Any) -> str:
    return type(value).__name__


async def _read_chunks(file: File) -> AsyncIterator[bytes]:
    remaining = file.size
    if file._data is not None:
        for offset in range(0, remaining, _CHUNK):
            yield file._data[offset : offset + _CHUNK]
        return
    handle: IO[bytes]
    opened = file._path is not None
    handle = file._path.open("rb") if file._path is not None else file._stream  # type: ignore[assignment]
    try:
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                raise UsageError(f"{file!r} ended {remaining} bytes early")
            remaining -= len(chunk)
            yield chunk
            await asyncio.sleep(0)  # reading is blocking; let the loop breathe between chunks
    finally:
        if opened:
            handle.close()


def _is_function(value: Any) -> bool:
    return callable(value) and not isinstance(value, type) and not hasattr(value, "__aiter__")


class RequestArguments:
    """The replacer for one call's arguments; collects its files and the channels it opened.

    ``open_channel(ack)`` creates a client channel with a fresh id on the client's connection.
    """

    def __init__(self, open_channel: Callable[[str, bool], Channel[Any, Any]]) -> None:
        self._open_channel = open_channel
        self.files: list[File] = []
        self.channels: list[Channel[Any, Any]] = []
        self.pumps: list[tuple[Channel[Any, Any], AsyncIterable[Any]]] = []

    def replace(self, value: Any) -> str | None:
        if isinstance(value, Path):
            value = File(value)
        if isinstance(value, File):
            index = len(self.files)
            self.files.append(value)
            if value.name is None:
                meta: dict[str, Any] = {"index": index, "size": value.size, "type": value.type}
                return encode_json(BLOB_PREFIX, meta)
            meta = {
                "index": index,
                "name": value.name,
                "size": value.size,
                "type": value.type,
                "lastModified": value.last_modified,
            }
            return encode_json(FILE_PREFIX, meta)
        if hasattr(value, "__aiter__"):
            channel = self._channel(ack=False)
            self.pumps.append((channel, value))
            return encode_json(STREAM_PREFIX, {"channelId": channel.id})
        if _is_function(value):
            channel = self._channel(ack=True)
            fn = value

            def call(args: Any) -> Any:
                return fn(*args) if isinstance(args, list) else fn(args)

            channel.listen(call)
            return encode_json(FUNCTION_PREFIX, {"channelId": channel.id})
        return None

    def _channel(self, *, ack: bool) -> Channel[Any, Any]:
        channel = self._open_channel(str(uuid.uuid4()), ack)
        self.channels.append(channel)
        return channel

    def start_pumps(self, spawn: Callable[[Any], asyncio.Task[None]]) -> None:
        """Start pumping every byte stream argument to its channel."""
        for channel, source in self.pumps:
            spawn(pump(channel, source))
        self.pumps = []

    def abandon(self) -> None:
        """The call failed before its arguments were used: close what they opened."""
        for channel in self.channels:
            if not channel.is_closed:
                channel.close()

    def bin_body(self, metadata: str) -> tuple[AsyncIterator[bytes], int]:
        """The ``bin`` request body for ``metadata`` and the files, and its length."""
        meta = metadata.encode()
        length = 4 + len(meta) + sum(file.size for file in self.files)
        return _bin_chunks(meta, self.files), length


async def _bin_chunks(meta: bytes, files: list[File]) -> AsyncIterator[bytes]:
    yield length_prefixed([meta])
    for file in files:
        async for chunk in file.chunks():
            yield chunk


async def pump(channel: Channel[Any, Any], source: AsyncIterable[Any]) -> None:
    """Send ``source``'s byte chunks as ``0x00``-tagged binary frames, then close ``channel``."""
    opened = asyncio.Event()
    channel.on_open(opened.set)
    channel.on_close(lambda _error: opened.set())
    iterator = aiter(source)
    try:
        await opened.wait()
        while not channel.is_closed:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                break
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise UsageError(f"a byte stream argument yielded {type_name(chunk)}, not bytes")
            if chunk:
                await channel.send_binary(_DATA_TAG + bytes(chunk))
    except ChannelClosedError:
        pass  # the server stopped reading
    except Exception:
        # The stream itself failed: the server's reader sees the channel end early.
        logger.exception("telefunc: a byte stream argument raised")
        channel.abort()
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None and inspect.iscoroutinefunction(close):
            with contextlib.suppress(Exception):
                await close()
        if not channel.is_closed:
            channel.close()
