"""Decoding of inline streaming bodies (binary-inline and sse-inline) for the tests."""

from __future__ import annotations

import base64
import json
from typing import Any


def sse_to_binary(data: bytes) -> bytes:
    """The bytes carried by ``data: <base64url>`` events."""
    out = b""
    for event in data.split(b"\n\n"):
        if not event:
            continue
        assert event.startswith(b"data: "), event
        payload = event[len(b"data: ") :]
        assert b"=" not in payload
        out += base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    return out


def parse_frames(data: bytes) -> tuple[str, list[tuple[Any, ...]]]:
    """(metadata, frames): ``(index, payload)``, then ``("end",)`` or ``("error", payload)``."""
    meta_len = int.from_bytes(data[:4], "big")
    meta = data[4 : 4 + meta_len].decode()
    pos = 4 + meta_len
    frames: list[tuple[Any, ...]] = []
    while True:
        n = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if n == 0:
            frames.append(("end",))
            break
        if n == 0xFFFFFFFF:
            m = int.from_bytes(data[pos : pos + 4], "big")
            frames.append(("error", json.loads(data[pos + 4 : pos + 4 + m])))
            pos += 4 + m
            break
        frames.append((data[pos], data[pos + 1 : pos + n]))
        pos += n
    assert pos == len(data), "bytes after the end of the body"
    return meta, frames
