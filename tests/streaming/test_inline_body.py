"""The inline streaming body, without HTTP: exact bytes (docs/protocol.md §6), multiplexing, errors,
cancellation and backpressure."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _stream_frames import parse_frames

from telefunc.errors import Abort, UsageError
from telefunc.server.context import CallScope, get_context
from telefunc.server.download import download
from telefunc.server.streaming import (
    MAX_STREAMS,
    ByteStream,
    InlineBody,
    StreamCollector,
    resolve_transport,
)
from telefunc.wire.framing import InlineBodyEncoder, sse_event
from telefunc.wire.serializer import stringify


def body_for(
    result: Any, transport: str = "binary-inline", scope: CallScope | None = None
) -> InlineBody:
    collector = StreamCollector()
    text = stringify({"ret": result}, replacer=collector.replacer())
    assert collector.producers, "the result holds no streaming value"
    return InlineBody(text, collector.producers, transport=transport, scope=scope)


async def read_all(body: InlineBody) -> bytes:
    parts = []
    try:
        async for chunk in body:
            parts.append(chunk)
    finally:
        await body.aclose()
    return b"".join(parts)


async def countdown(start: int) -> AsyncIterator[int]:
    for i in range(start, -1, -1):
        yield i


async def test_countdown_matches_the_observed_bytes_of_spec_6() -> None:
    data = await read_all(body_for(countdown(3)))
    expected = bytes.fromhex("0000002c") + b'{"ret":"!TelefuncGenerator:{\\"__index\\":0}"}'
    for digit in b"3210":
        expected += bytes.fromhex("0000000200") + bytes((digit,))
    expected += bytes.fromhex("0000000100") + bytes.fromhex("00000000")
    assert data == expected


async def test_abort_mid_stream_matches_the_observed_bytes_of_spec_6() -> None:
    async def gen() -> AsyncIterator[int]:
        yield 1
        raise Abort("stop")

    data = await read_all(body_for(gen()))
    tail = bytes.fromhex("ffffffff00000024") + b'{"type":"abort","abortValue":"stop"}'
    assert data.endswith(bytes.fromhex("000000020031") + tail)


def test_frame_helpers() -> None:
    frames = InlineBodyEncoder(sse=False)
    assert frames.header("{}") == b"\x00\x00\x00\x02{}"
    assert frames.chunk(7, b"ab") == b"\x00\x00\x00\x03\x07ab"
    assert frames.done(255) == b"\x00\x00\x00\x01\xff"
    assert frames.end() == b"\x00\x00\x00\x00"
    assert frames.error(b"xy") == b"\xff\xff\xff\xff\x00\x00\x00\x02xy"
    with pytest.raises(ValueError):
        frames.chunk(0, b"")
    # base64url without padding, as the client decodes it
    assert sse_event(b"\xfb\xff") == b"data: -_8\n\n"


async def test_sse_inline_is_the_same_bytes_cut_into_events() -> None:
    binary = await read_all(body_for(countdown(2)))
    sse = await read_all(body_for(countdown(2), transport="sse-inline"))
    events = sse.split(b"\n\n")
    assert events[-1] == b""
    decoded = b""
    for event in events[:-1]:
        assert event.startswith(b"data: ")
        payload = event[len(b"data: ") :]
        assert b"=" not in payload
        decoded += base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    assert decoded == binary
    # the u32 header and the metadata are separate events, as the JS server sends them
    assert base64.urlsafe_b64decode(events[0][6:] + b"==") == b"\x00\x00\x00\x2c"


async def test_an_empty_generator_is_done_at_once() -> None:
    async def empty() -> AsyncIterator[int]:
        return
        yield

    meta, frames = parse_frames(await read_all(body_for({"g": empty()})))
    assert meta == '{"ret":{"g":"!TelefuncGenerator:{\\"__index\\":0}"}}'
    assert frames == [(0, b""), ("end",)]


async def test_two_generators_are_multiplexed_and_interleave() -> None:
    # b waits for a's first item: a strictly sequential body would deadlock.
    first = asyncio.Event()

    async def a() -> AsyncIterator[str]:
        yield "a1"
        first.set()
        yield "a2"

    async def b() -> AsyncIterator[str]:
        await first.wait()
        yield "b1"

    meta, frames = parse_frames(await asyncio.wait_for(read_all(body_for([a(), b()])), 10))
    assert '"!TelefuncGenerator:{\\"__index\\":0}"' in meta
    assert '"!TelefuncGenerator:{\\"__index\\":1}"' in meta
    by_index: dict[int, list[bytes]] = {0: [], 1: []}
    for frame in frames[:-1]:
        by_index[frame[0]].append(frame[1])
    assert by_index == {0: [b'"a1"', b'"a2"', b""], 1: [b'"b1"', b""]}
    assert frames[-1] == ("end",)


async def test_the_same_generator_twice_gets_one_placeholder() -> None:
    gen = countdown(0)
    meta, frames = parse_frames(await read_all(body_for({"x": gen, "y": gen})))
    assert meta.count('"!TelefuncGenerator:{\\"__index\\":0}"') == 2
    assert frames == [(0, b"0"), (0, b""), ("end",)]


async def test_byte_stream_promise_and_downloads() -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"he"
        yield b""  # skipped: an empty payload would mean "done"
        yield bytearray(b"llo")

    async def later() -> dict[str, int]:
        return {"n": 1}

    result = {
        "s": ByteStream(parts()),
        "p": later(),
        "f": download(b"abc", name="a.txt", type="text/plain", last_modified=7),
        "b": download([b"x", b"y"]),
    }
    meta, frames = parse_frames(await read_all(body_for(result)))
    ret = json.loads(meta)["ret"]
    assert ret["s"] == '!TelefuncStream:{"__index":0}'
    assert ret["p"] == '!TelefuncPromise:{"__index":1}'
    assert ret["f"] == (
        '!TelefuncFileDownload:{"__index":2,"name":"a.txt","type":"text/plain",'
        '"lastModified":7,"size":3}'
    )
    assert ret["b"] == '!TelefuncBlobDownload:{"__index":3,"type":""}'
    assert "text\\/plain" in meta  # htmlScriptSafe escaping of the whole text
    got: dict[int, bytes] = {}
    for frame in frames[:-1]:
        got[frame[0]] = got.get(frame[0], b"") + frame[1]
    assert got == {0: b"hello", 1: b'{"n":1}', 2: b"abc", 3: b"xy"}


async def test_download_of_a_path(tmp_path: Any) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n" * 100_000)
    value = download(path)
    prefix, meta, _ = value.__telefunc_stream__()
    assert prefix == "!TelefuncFileDownload:"
    assert meta["name"] == "report.csv" and meta["type"] == "text/csv"
    assert meta["size"] == 400_000 and isinstance(meta["lastModified"], int)
    _, frames = parse_frames(await read_all(body_for(value)))
    assert b"".join(f[1] for f in frames[:-1]) == path.read_bytes()
    with pytest.raises(UsageError):
        download(tmp_path / "missing.bin")


async def test_a_bug_mid_stream_is_a_bug_frame_and_stops_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    other_stopped = asyncio.Event()

    async def forever() -> AsyncIterator[int]:
        try:
            while True:
                await asyncio.Event().wait()
                yield 1
        finally:
            other_stopped.set()

    async def broken() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("secret detail")

    data = await asyncio.wait_for(read_all(body_for([forever(), broken()])), 10)
    _, frames = parse_frames(data)
    assert frames[-1] == ("error", {"type": "bug"})
    assert b"secret" not in data
    assert other_stopped.is_set()
    assert any("secret detail" in str(r.exc_info) for r in caplog.records)


async def test_an_unserializable_abort_value_is_a_bug() -> None:
    async def gen() -> AsyncIterator[int]:
        raise Abort(object())
        yield

    _, frames = parse_frames(await read_all(body_for(gen())))
    assert frames == [("error", {"type": "bug"})]


async def test_aclose_runs_the_generator_finally_and_releases_the_scope() -> None:
    scope = CallScope(None, {"user": "ann"})
    events: list[str] = []
    scope.on_close(lambda: events.append("on_close"))

    async def ticker() -> AsyncIterator[int]:
        try:
            n = 0
            while True:
                events.append(f"user={get_context()['user']}")
                yield n
                n += 1
        finally:
            events.append("finally")

    body = body_for(ticker(), scope=scope)
    scope.finish_request()  # the request is answered; the stream still holds the scope
    assert events == []
    iterator = aiter(body)
    await anext(iterator)  # header
    assert (await anext(iterator))[4:] == b"\x000"
    assert (await anext(iterator))[4:] == b"\x001"
    assert not scope.signal.aborted
    await body.aclose()
    assert events[-2:] == ["finally", "on_close"]
    assert events[0] == "user=ann"
    assert scope.signal.aborted


async def test_the_next_item_is_produced_only_after_the_previous_was_written() -> None:
    produced: list[int] = []

    async def gen() -> AsyncIterator[int]:
        for i in range(5):
            produced.append(i)
            yield i

    body = body_for(gen())
    iterator = aiter(body)
    await anext(iterator)  # header
    await anext(iterator)  # item 0, not yet "written"
    for _ in range(20):  # let the producer task run as far as it can
        await asyncio.sleep(0)
    assert produced == [0]
    await anext(iterator)
    for _ in range(20):
        await asyncio.sleep(0)
    assert produced == [0, 1]
    await body.aclose()


async def test_a_body_never_started_closes_its_coroutines() -> None:
    async def never() -> int:
        return 1

    coroutine = never()
    body = body_for(coroutine)
    await body.aclose()
    assert coroutine.cr_frame is None  # closed, so no "never awaited" warning


def test_at_most_256_streaming_values() -> None:
    collector = StreamCollector()
    gens = [countdown(0) for _ in range(MAX_STREAMS)]
    stringify(gens, replacer=collector.replacer())
    assert len(collector.producers) == MAX_STREAMS
    collector = StreamCollector()
    with pytest.raises(UsageError):
        stringify([*gens, countdown(0)], replacer=collector.replacer())


def test_transport_resolution(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve_transport("sse-inline", "binary-inline") == "sse-inline"
    assert resolve_transport("bogus", "sse-inline") == "sse-inline"
    assert resolve_transport(None, "binary-inline") == "binary-inline"
    assert resolve_transport("channel", "binary-inline") == "binary-inline"
