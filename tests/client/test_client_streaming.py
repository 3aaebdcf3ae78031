"""The Python client receiving streaming values and functions from our server (uvicorn on
127.0.0.1), over each stream transport: binary-inline, sse-inline and channel."""

from __future__ import annotations

import asyncio
import gc
import uuid
from pathlib import Path
from typing import Any

import pytest

from telefunc.client import (
    Abort,
    ChannelClosedError,
    Client,
    RemoteCallError,
    RemoteFile,
    RemoteFunction,
    RemoteGenerator,
    RemotePromise,
    RemoteStream,
    ShieldValidationError,
    TelefuncConnectionError,
)
from telefunc.errors import UsageError

APP = Path(__file__).resolve().parents[1] / "apps" / "streaming"
STREAM = "/stream.telefunc.py"
FUNCTIONS = "/functions.telefunc.py"
TRANSPORTS = ["binary-inline", "sse-inline", "channel"]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def origin(live_server: Any) -> str:
    return str(live_server(APP).origin)


async def collect(gen: Any) -> list[Any]:
    return [item async for item in gen]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_countdown_generator(origin: str, transport: str) -> None:
    async with Client(origin, stream_transport=transport) as c:
        gen = await c.call(STREAM, "countdown", 3)
        assert isinstance(gen, RemoteGenerator)
        assert await collect(gen) == [3, 2, 1, 0]
        # Finished: iterating again yields nothing.
        assert await collect(gen) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_per_call_transport_overrides_the_client_default(origin: str, transport: str) -> None:
    other = "channel" if transport != "channel" else "binary-inline"
    async with Client(origin, stream_transport=other) as c:
        gen = await c.call(STREAM, "countdown", 2, stream_transport=transport)
        assert await collect(gen) == [2, 1, 0]
        # A channel transport needs the client's channel connection; the inline ones do not.
        assert (c.connection is not None) == (transport == "channel")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_empty_generator(origin: str, transport: str) -> None:
    async with Client(origin) as c:
        gen = await c.call(STREAM, "empty", stream_transport=transport)
        assert await collect(gen) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_two_generators_read_in_any_order(origin: str, transport: str) -> None:
    async with Client(origin) as c:
        result = await c.call(STREAM, "two", stream_transport=transport)
        assert result["label"] == "two"
        # The server interleaves them; reading the second one first buffers the first.
        assert await collect(result["squares"]) == [1, 4, 9]
        assert await collect(result["letters"]) == ["a", "b", "c"]
        result = await c.call(STREAM, "two", stream_transport=transport)
        letters, squares = await asyncio.gather(
            collect(result["letters"]), collect(result["squares"])
        )
        assert (letters, squares) == (["a", "b", "c"], [1, 4, 9])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_byte_stream(origin: str, transport: str) -> None:
    size = 5500
    async with Client(origin) as c:
        result = await c.call(STREAM, "byte_stream", size, stream_transport=transport)
        stream = result["stream"]
        assert isinstance(stream, RemoteStream)
        chunks = [chunk async for chunk in stream]
    assert all(isinstance(chunk, bytes) and chunk for chunk in chunks)
    assert b"".join(chunks) == bytes(i % 251 for i in range(size))
    assert result["size"] == size


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_promise(origin: str, transport: str) -> None:
    async with Client(origin) as c:
        result = await c.call(STREAM, "promise", "yes", stream_transport=transport)
        promise = result["promise"]
        assert isinstance(promise, RemotePromise)
        assert await promise == {"resolved": "yes"}
        assert await promise == {"resolved": "yes"}  # awaiting again: the same value


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_abort_mid_stream_carries_its_value(origin: str, transport: str) -> None:
    seen: list[int] = []
    async with Client(origin) as c:
        gen = await c.call(STREAM, "abort_mid", "stop", stream_transport=transport)
        with pytest.raises(Abort) as info:
            async for item in gen:
                seen.append(item)
    assert seen == [1, 2]
    assert info.value.value == {"reason": "stop"}
    assert "abort_mid()" in str(info.value) and STREAM in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bug_mid_stream_hides_the_details(origin: str, transport: str) -> None:
    seen: list[int] = []
    async with Client(origin) as c:
        gen = await c.call(STREAM, "bug_mid", stream_transport=transport)
        with pytest.raises(RemoteCallError) as info:
            async for item in gen:
                seen.append(item)
    assert seen == [1]
    assert "secret" not in str(info.value)
    assert "bug_mid()" in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_early_aclose_runs_the_server_finally(origin: str, transport: str) -> None:
    run_id = str(uuid.uuid4())
    async with Client(origin) as c:
        gen = await c.call(STREAM, "ticker", run_id, stream_transport=transport)
        got = []
        async for item in gen:
            got.append(item)
            if len(got) == 3:
                break
        assert got == [0, 1, 2]
        await gen.aclose()
        events = await c.call(STREAM, "events_of", run_id, "finally", 15.0)
        assert events[:1] == ["started"]
        assert "finally" in events
        # The server's generator really stopped: nothing more comes out.
        assert await collect(gen) == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_file_download_metadata_and_bytes(
    origin: str, transport: str, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 1200  # several chunks
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    async with Client(origin) as c:
        download = await c.call(
            STREAM, "file_download", str(path), "report.bin", stream_transport=transport
        )
        assert isinstance(download, RemoteFile)
        assert download.is_file
        assert download.name == "report.bin"
        assert download.type == "application/octet-stream"
        assert download.size == len(data)
        assert isinstance(download.last_modified, int | float)
        assert abs(download.last_modified - path.stat().st_mtime * 1000) < 2000
        assert await download.read() == data
        assert download.loaded == len(data)

        result = await c.call(STREAM, "blob_download", "hello blob", stream_transport=transport)
        blob = result["blob"]
        assert not blob.is_file and blob.name is None and blob.last_modified is None
        assert (blob.type, blob.size) == ("text/plain", len("hello blob"))
        assert b"".join([chunk async for chunk in blob.chunks()]) == b"hello blob"


async def test_returned_stateful_function(origin: str) -> None:
    async with Client(origin) as c:
        result = await c.call(FUNCTIONS, "counter", 10)
        increment, peek = result["increment"], result["peek"]
        assert isinstance(increment, RemoteFunction)
        assert result["label"] == "counter"
        assert await increment(1) == 11
        assert await increment(5) == 16
        assert await peek() == 16
        # Concurrent calls all land on the same closure.
        assert sorted(await asyncio.gather(*(increment(1) for _ in range(4)))) == [17, 18, 19, 20]
        await increment.aclose()
        assert increment.is_closed
        with pytest.raises(ChannelClosedError):
            await increment(1)
        assert await peek() == 20  # the other function's channel is still open


async def test_returned_function_shield_refusal(origin: str) -> None:
    async with Client(origin) as c:
        double = await c.call(FUNCTIONS, "typed_fn")
        assert await double(21) == 42
        with pytest.raises(ShieldValidationError):
            await double("not an int")
        assert await double(4) == 8  # a refusal does not close the function


async def test_returned_function_abort(origin: str) -> None:
    async with Client(origin) as c:
        fail = (await c.call(FUNCTIONS, "aborting_fn"))["fail"]
        with pytest.raises(Abort) as info:
            await fail("because")
    assert info.value.value == {"why": "because"}


async def test_closing_a_returned_function_releases_the_call(origin: str) -> None:
    run_id = str(uuid.uuid4())
    async with Client(origin) as c:
        ping = (await c.call(FUNCTIONS, "watched", run_id))["ping"]
        assert await ping(1) == 2
        await ping.aclose()
        events = await c.call(FUNCTIONS, "fn_events_of", run_id, "on_close", 15.0)
    assert events == ["ping 1", "on_close"]


async def test_client_closing_ends_an_unread_inline_stream(origin: str) -> None:
    run_id = str(uuid.uuid4())
    async with Client(origin) as observer:
        async with Client(origin) as c:
            gen = await c.call(STREAM, "ticker", run_id)
            assert await gen.__anext__() == 0
        events = await observer.call(STREAM, "events_of", run_id, "finally", 15.0)
    assert "finally" in events
    with pytest.raises(ChannelClosedError):
        await gen.__anext__()


async def test_bad_stream_transport_is_a_usage_error(origin: str) -> None:
    with pytest.raises(UsageError):
        Client(origin, stream_transport="carrier-pigeon")
    async with Client(origin) as c:
        with pytest.raises(UsageError):
            await c.call(STREAM, "countdown", 1, stream_transport="carrier-pigeon")


# ── the inline demultiplexer on its own (no server) ─────────────────────


class FakeResponse:
    """An httpx-like streaming response over fixed chunks, counting the chunks pulled."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.closed = False

    async def aiter_bytes(self) -> Any:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


def frame(index: int, payload: bytes) -> bytes:
    return (1 + len(payload)).to_bytes(4, "big") + bytes((index,)) + payload


async def settle() -> None:
    # Everything here is in memory: a few loop turns let every ready task run.
    for _ in range(20):
        await asyncio.sleep(0)


async def test_demux_pauses_on_a_full_buffer_nobody_reads() -> None:
    from telefunc.client._streaming import CallInfo, InlineDemux

    meta = b'{"ret":["!TelefuncGenerator:{\\"__index\\":0}","!TelefuncStream:{\\"__index\\":1}"]}'
    chunks = [len(meta).to_bytes(4, "big") + meta]
    chunks += [frame(1, b"aaaa") for _ in range(3)]
    chunks += [frame(0, b"7"), frame(0, b""), frame(1, b""), bytes(4)]
    response = FakeResponse(chunks)
    demux, text = await InlineDemux.open(
        response, sse=False, info=CallInfo("/f.telefunc.py", "f"), max_buffer=8
    )
    assert text == meta.decode()
    demux.register(0)
    demux.register(1)
    waiting = asyncio.ensure_future(demux.next_chunk(0))
    await settle()
    # Two frames of index 1 fill its 8-byte buffer: the body is not read any further.
    assert response.pulled == 3 and not waiting.done()
    assert await demux.next_chunk(1) == b"aaaa"
    await settle()
    # Room again: the third frame of index 1 is read, and the buffer is full once more.
    assert response.pulled == 4 and not waiting.done()
    assert await demux.next_chunk(1) == b"aaaa"
    assert await asyncio.wait_for(waiting, 5) == b"7"
    assert await demux.next_chunk(0) is None
    assert [await demux.next_chunk(1) for _ in range(2)] == [b"aaaa", None]
    demux.finish(0)
    demux.finish(1)
    await demux.aclose()
    assert response.closed


async def test_demux_reads_sse_events_split_anywhere() -> None:
    import base64

    from telefunc.client._streaming import CallInfo, InlineDemux

    meta = b'{"ret":"!TelefuncGenerator:{\\"__index\\":0}"}'
    units = [len(meta).to_bytes(4, "big"), meta, frame(0, b"1"), frame(0, b""), bytes(4)]
    text = "".join(
        f"data: {base64.urlsafe_b64encode(u).rstrip(b'=').decode()}\r\n\r\n" for u in units
    ).encode()
    chunks = [text[i : i + 5] for i in range(0, len(text), 5)]
    demux, got = await InlineDemux.open(
        FakeResponse(chunks), sse=True, info=CallInfo("/f.telefunc.py", "f")
    )
    assert got == meta.decode()
    demux.register(0)
    assert await demux.next_chunk(0) == b"1"
    assert await demux.next_chunk(0) is None


async def test_demux_truncated_body_is_a_connection_error() -> None:
    from telefunc.client._streaming import CallInfo, InlineDemux
    from telefunc.errors import TelefuncConnectionError

    meta = b'{"ret":"!TelefuncGenerator:{\\"__index\\":0}"}'
    chunks = [len(meta).to_bytes(4, "big") + meta, frame(0, b"1"), frame(0, b"2")[:3]]
    demux, _ = await InlineDemux.open(
        FakeResponse(chunks), sse=False, info=CallInfo("/f.telefunc.py", "f")
    )
    demux.register(0)
    assert await demux.next_chunk(0) == b"1"
    with pytest.raises(TelefuncConnectionError):
        await demux.next_chunk(0)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_dropping_an_unread_generator_stops_the_server(origin: str, transport: str) -> None:
    run_id = str(uuid.uuid4())
    async with Client(origin) as c:
        result = await c.call(STREAM, "ticker", run_id, stream_transport=transport)
        assert await result.__anext__() == 0
        del result  # the last reference: like the reference client's GC registry, it closes
        gc.collect()
        events = await c.call(STREAM, "events_of", run_id, "finally", 15.0)
    assert "finally" in events


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_may_pause_longer_than_the_request_timeout(
    origin: str, transport: str
) -> None:
    # `timeout` bounds waiting for the answer to start, not the gaps of a streaming body.
    async with Client(origin, stream_transport=transport, timeout=0.3) as c:
        gen = await c.call(STREAM, "paused", 3, 0.6)
        assert await collect(gen) == [0, 1, 2]


async def test_the_request_timeout_still_bounds_a_slow_answer(origin: str) -> None:
    async with Client(origin, timeout=0.3) as c:
        with pytest.raises(TelefuncConnectionError):
            await c.call(STREAM, "slow_answer", 3.0)
