"""Byte-stream framing helpers shared by the HTTP transports (SSE duplex, binary-inline), sans-I/O.

* ``[u32 BE length][body]`` length prefixes: :func:`encode_u32_be`, :func:`length_prefixed`, and
  :class:`LengthPrefixedReader`, an incremental reader fed arbitrary chunks.
* :func:`b64url_encode` / :func:`b64url_decode`: base64url without padding, as SSE ``data:`` lines
  carry frames.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable

from telefunc.errors import ProtocolError, RecordTooLarge

__all__ = [
    "LengthPrefixedReader",
    "b64url_decode",
    "b64url_encode",
    "decode_u32_be",
    "encode_u32_be",
    "length_prefixed",
]

_U32_BE = struct.Struct(">I")


def encode_u32_be(n: int) -> bytes:
    """``n`` as 4 big-endian bytes."""
    return _U32_BE.pack(n)


def decode_u32_be(buf: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Read a big-endian u32 at ``offset``."""
    value: int = _U32_BE.unpack_from(buf, offset)[0]
    return value


def length_prefixed(bodies: Iterable[bytes]) -> bytes:
    """Concatenate ``[u32 BE len][body]`` for every body."""
    out = bytearray()
    for body in bodies:
        out += _U32_BE.pack(len(body))
        out += body
    return bytes(out)


class LengthPrefixedReader:
    """Incrementally split a byte stream of ``[u32 BE len][body]`` records.

    Feed chunks as they arrive with :meth:`feed`; it returns every body completed by that chunk.
    ``max_body`` bounds a single record, checked as soon as its length prefix arrives, so a
    hostile length cannot make us buffer gigabytes (:class:`RecordTooLarge`; the records complete
    before it are still returned, and the error is raised by the next :meth:`feed` and kept in
    :attr:`error`). ``max_first_body`` gives the first record its own bound (a metadata record
    that leads the stream).
    """

    __slots__ = ("_buf", "_first", "_max_body", "_max_first_body", "error")

    def __init__(
        self, max_body: int = 256 * 1024 * 1024, *, max_first_body: int | None = None
    ) -> None:
        self._buf = bytearray()
        self._max_body = max_body
        self._max_first_body = max_body if max_first_body is None else max_first_body
        self._first = True
        #: The oversized record that stopped this reader, once one arrived.
        self.error: RecordTooLarge | None = None

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Append ``chunk`` and return the complete bodies now available, in order."""
        if self.error is not None:
            raise self.error
        buf = self._buf
        buf += chunk
        out: list[bytes] = []
        pos = 0
        while len(buf) - pos >= 4:
            size = _U32_BE.unpack_from(buf, pos)[0]
            if size > (self._max_first_body if self._first else self._max_body):
                self.error = RecordTooLarge(f"length-prefixed record too large ({size} bytes)")
                self._buf = bytearray()
                if out:
                    return out
                raise self.error
            if len(buf) - pos - 4 < size:
                break
            out.append(bytes(buf[pos + 4 : pos + 4 + size]))
            self._first = False
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete record."""
        return len(self._buf)


def b64url_encode(data: bytes) -> str:
    """base64url without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise ProtocolError("invalid base64url") from exc
