"""The Python client sends functions, byte streams and files as arguments, and per-call headers,
over every stream transport and channel transport, against our server."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telefunc.client import Client, File
from telefunc.errors import UsageError

APPS = Path(__file__).resolve().parents[1] / "apps"
ARGS = "/args.telefunc.py"
FUNCTIONS = "/functions.telefunc.py"
STREAM_TRANSPORTS = ["binary-inline", "sse-inline", "channel"]


@pytest.fixture
def origin(live_server: Any) -> str:
    return str(live_server(APPS / "streaming").origin)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize("channels", ["ws", "sse"])
@pytest.mark.parametrize("stream_transport", STREAM_TRANSPORTS)
async def test_stream_function_and_file_in_one_call(
    origin: str, channels: str, stream_transport: str
) -> None:
    async def double(n: int) -> int:
        return n * 2

    async with Client(origin, transports=(channels,), stream_transport=stream_transport) as c:
        result = await c.call(
            ARGS,
            "everything",
            "x",
            chunks(b"he", b"llo"),
            double,
            File(b"file text", name="a.txt", type="text/plain"),
        )
    assert result == {"label": "x", "stream": "hello", "fn": [2, 4], "file": "file text"}


async def test_files_from_a_path_bytes_and_a_file_object(origin: str, tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n1,2\n" * 10_000)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    blob = b"\x00\x01binary"
    handle = io.BytesIO(b"from a file object")
    async with Client(origin) as c:
        described = await c.call(
            ARGS,
            "describe_files",
            path,  # a Path is a file: name and mtime from the file system
            File(blob, type="application/octet-stream"),  # no name: a Blob
            File(handle, name="notes.txt", type="text/plain", last_modified=5),
        )
    assert described == [
        {
            "name": "report.csv",
            "type": "",
            "size": path.stat().st_size,
            "lastModified": 1_700_000_000_000,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        },
        {
            "name": None,
            "type": "application/octet-stream",
            "size": len(blob),
            "lastModified": None,
            "sha256": hashlib.sha256(blob).hexdigest(),
        },
        {
            "name": "notes.txt",
            "type": "text/plain",
            "size": 18,
            "lastModified": 5,
            "sha256": hashlib.sha256(b"from a file object").hexdigest(),
        },
    ]


@pytest.mark.parametrize("channels", ["ws", "sse"])
async def test_large_byte_stream_and_sync_function(origin: str, channels: str) -> None:
    payload = os.urandom(3 * 1024 * 1024)

    async def big() -> AsyncIterator[bytes]:
        for offset in range(0, len(payload), 100_000):
            yield payload[offset : offset + 100_000]

    async with Client(origin, transports=(channels,)) as c:
        digest = await c.call(FUNCTIONS, "upload_digest", big())
        mapped = await c.call(FUNCTIONS, "map_with", [1, 2, 3], lambda n: n + 10)
    assert digest["total"] == len(payload)
    assert digest["sha256"] == hashlib.sha256(payload).hexdigest()
    assert mapped == [11, 12, 13]


async def test_a_stream_yielding_non_bytes_ends_early_and_is_logged(
    origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def wrong() -> AsyncIterator[Any]:
        yield b"ok"
        yield "not bytes"

    async with Client(origin) as c:
        result = await c.call(FUNCTIONS, "upload_text", "label", wrong())
    # The server sees the stream end after what was valid; the client logs why.
    assert result == "label: ok"
    assert any("byte stream argument raised" in r.getMessage() for r in caplog.records)


def test_file_rejects_what_it_cannot_read() -> None:
    with pytest.raises(UsageError):
        File(42)  # type: ignore[arg-type]


async def test_per_call_headers(live_server: Any) -> None:
    server = live_server(APPS / "basic")
    async with Client(server.origin, headers={"cookie": "user=bob"}) as c:
        assert await c.call("/calc.telefunc.py", "whoami") == "bob"
        assert await c.call("/calc.telefunc.py", "whoami", headers={"cookie": "user=ada"}) == "ada"
        assert await c.call("/calc.telefunc.py", "whoami") == "bob"


def test_sync_client_sends_a_file_and_per_call_headers(live_server: Any) -> None:
    from telefunc.client import connect_sync

    streaming = live_server(APPS / "streaming")
    basic = live_server(APPS / "basic")
    with connect_sync(streaming.origin) as c:
        described = c.call(
            ARGS,
            "describe_files",
            File(b"a", name="a.txt"),
            File(b"bb", name="b.txt"),
            File(b"ccc"),
        )
    assert [(d["name"], d["size"]) for d in described] == [("a.txt", 1), ("b.txt", 2), (None, 3)]
    with connect_sync(basic.origin) as c:
        assert c.call("/calc.telefunc.py", "whoami", headers={"cookie": "user=eve"}) == "eve"


@pytest.mark.parametrize("stream_transport", STREAM_TRANSPORTS)
async def test_two_uploads_echoed_at_once_each_keep_their_bytes(
    origin: str, stream_transport: str
) -> None:
    """Both files share one request body; streamed back together, each waits for its turn."""
    first, second = os.urandom(200_000), os.urandom(300_000)
    async with Client(origin, stream_transport=stream_transport) as client:
        echoed = await client.call(
            ARGS, "echo_files", File(first, name="a.bin"), File(second, name="b.bin")
        )
        assert [await f.read() for f in echoed] == [first, second]
        size = await client.call(ARGS, "second_only", File(first), File(second))
        assert size == len(second)
