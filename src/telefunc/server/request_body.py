"""A call's request body read under a byte limit, and the errors a bad body raises.

:class:`BoundedBody` wraps an adapter's :class:`~telefunc.server.files.BodyReader`: it asks the
adapter for one chunk at a time and raises :class:`BodyTooLarge` as soon as more than ``limit``
bytes arrived, so an over-large body (announced or chunked) is refused after holding at most
``limit`` bytes plus one chunk. A body that breaks its own framing raises :class:`MalformedBody`.
The call endpoint answers the first with 413 and the second with the protocol's 400.
"""

from __future__ import annotations

from typing import Protocol

from telefunc.errors import BodyTooLarge, MalformedBody

__all__ = [
    "CHUNK",
    "BodyReader",
    "BoundedBody",
    "parse_content_length",
]

#: The most asked of the adapter's reader in one go.
CHUNK = 64 * 1024


class BodyReader(Protocol):
    """An HTTP request body read incrementally."""

    async def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` bytes (everything left when negative); ``b""`` at the end."""
        ...


def parse_content_length(value: str | None) -> int | None:
    """The ``Content-Length`` header as a number; ``None`` when absent.

    Raises :class:`MalformedBody` unless it is a plain decimal number.
    """
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise MalformedBody("invalid Content-Length header")
    return int(text)


class BoundedBody:
    """A :class:`BodyReader` that refuses to deliver more than ``limit`` bytes in total."""

    __slots__ = ("_limit", "_reader", "received")

    def __init__(self, reader: BodyReader, limit: int) -> None:
        self._reader = reader
        self._limit = limit
        #: Bytes delivered so far.
        self.received = 0

    @property
    def limit(self) -> int:
        """The most bytes this body may hold."""
        return self._limit

    async def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` bytes (all that is left when negative, chunk by chunk).

        Raises :class:`BodyTooLarge` once the body goes past the limit (and on every read after).
        """
        if max_bytes >= 0:
            return await self._read_some(max_bytes)
        reader, limit = self._reader, self._limit
        if self.received > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        parts: list[bytes] = []
        while chunk := await reader.read(CHUNK):
            self.received += len(chunk)
            if self.received > limit:
                raise BodyTooLarge(f"request body over {limit} bytes")
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _read_some(self, max_bytes: int) -> bytes:
        if self.received > self._limit:
            raise BodyTooLarge(f"request body over {self._limit} bytes")
        chunk = await self._reader.read(min(max_bytes, CHUNK))
        self.received += len(chunk)
        if self.received > self._limit:
            raise BodyTooLarge(f"request body over {self._limit} bytes")
        return chunk
