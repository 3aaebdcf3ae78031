"""SSE POST bodies are bounded record by record: a record's announced length is checked before
any of it is buffered (``config.limits.max_message_size``; 64 KiB for the metadata record), and a
POST that announces a larger one gets the transport's 400 (a violation once the event stream
has started)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sse_helpers import channels_app

from telefunc import config
from telefunc.asgi.http import AsgiBody
from telefunc.errors import RecordTooLarge
from telefunc.server.sse import _Records
from telefunc.wire.frames import Tag, encode_frame, encode_json
from telefunc.wire.framing import b64url_decode, length_prefixed

HEADERS = {"x-telefunc-request": "sse", "content-type": "application/octet-stream"}
HUGE = (256 * 1024 * 1024).to_bytes(4, "big")  # a record that announces 256 MiB


@pytest.fixture
def limits() -> Iterator[Any]:
    yield config.limits
    config.limits.reset()


def endless_body(first: bytes) -> tuple[AsgiBody, list[int]]:
    """An ASGI body that starts with ``first`` and then never ends; counts messages read."""
    reads = [0]

    async def receive() -> dict[str, Any]:
        reads[0] += 1
        body = first if reads[0] == 1 else b"\0" * 65536
        return {"type": "http.request", "body": body, "more_body": True}

    return AsgiBody(receive), reads


@pytest.mark.parametrize("metadata_first", [True, False])
async def test_an_oversized_record_is_refused_from_its_length_prefix(
    limits: Any, metadata_first: bool
) -> None:
    limits.max_message_size = 1024 * 1024
    meta = length_prefixed([json.dumps({"connId": "c"}).encode()])
    body, reads = endless_body((meta if not metadata_first else b"") + HUGE)
    records = _Records(body, limits.max_message_size)
    with pytest.raises(RecordTooLarge):
        while await records.next() is not None:
            pass
    assert reads[0] == 1  # nothing read past the prefix


async def test_metadata_has_its_own_smaller_bound(limits: Any) -> None:
    body, reads = endless_body((100_000).to_bytes(4, "big"))
    with pytest.raises(RecordTooLarge):
        await _Records(body, limits.max_message_size).next()
    assert reads[0] == 1


async def test_frames_up_to_max_message_size_pass(limits: Any) -> None:
    limits.max_message_size = 1000
    data = length_prefixed([b"{}", b"x" * 1000, b"y" * 10])
    sent = [False]

    async def receive() -> dict[str, Any]:
        done, sent[0] = sent[0], True
        return {"type": "http.request", "body": b"" if done else data, "more_body": False}

    records = _Records(AsgiBody(receive), limits.max_message_size)
    got = [r async for r in _iterate(records)]
    assert got == [b"{}", b"x" * 1000, b"y" * 10]


async def _iterate(records: _Records) -> AsyncIterator[bytes]:
    while (record := await records.next()) is not None:
        yield record


async def test_a_batch_post_with_an_oversized_frame_is_400(live_server: Any, limits: Any) -> None:
    limits.max_message_size = 64 * 1024
    server = live_server(channels_app())
    url = f"{server.origin}/_telefunc?_telefunc=sse"
    conn_id = str(uuid.uuid4())
    initial = length_prefixed(
        [
            json.dumps({"connId": conn_id, "streamResponse": True}).encode(),
            encode_json(Tag.RECONCILE, {"open": []}),
        ]
    )

    async def oversized() -> AsyncIterator[bytes]:
        yield length_prefixed([json.dumps({"connId": conn_id}).encode()])
        yield (100 * 1024 * 1024).to_bytes(4, "big")
        for _ in range(3):  # far less than announced: the server must not wait for it
            yield b"\0" * 1024

    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", url, content=initial, headers=HEADERS) as stream,
    ):
        lines = stream.aiter_lines()

        async def next_tag(tag: int) -> None:
            async with asyncio.timeout(10):
                async for line in lines:
                    if line.startswith("data: ") and b64url_decode(line[6:])[0] == tag:
                        return
            raise AssertionError(f"no frame 0x{tag:02x}")

        await next_tag(Tag.RECONCILED)
        r = await client.post(url, content=oversized(), headers=HEADERS)
        assert (r.status_code, r.content) == (400, b"")
        ok = await client.post(  # the wire lives on
            url,
            content=length_prefixed(
                [json.dumps({"connId": conn_id}).encode(), encode_frame(Tag.PING)]
            ),
            headers=HEADERS,
        )
        assert ok.status_code == 200
        await next_tag(Tag.PONG)


async def test_oversized_records_on_a_stream_request_and_a_stream_response(
    live_server: Any, limits: Any
) -> None:
    """The stream-request's answer is 400; the stream-response (already 200) ends its wire as a
    protocol violation."""
    limits.max_message_size = 64 * 1024
    app = channels_app()
    server = live_server(app)
    url = f"{server.origin}/_telefunc?_telefunc=sse"
    conn_id = str(uuid.uuid4())
    upload: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def chunks() -> AsyncIterator[bytes]:
        while (chunk := await upload.get()) is not None:
            yield chunk

    initial = length_prefixed(
        [
            json.dumps({"connId": conn_id, "streamResponse": True}).encode(),
            encode_json(Tag.RECONCILE, {"open": []}),
        ]
    )
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("POST", url, content=initial, headers=HEADERS) as stream:
            lines = stream.aiter_lines()
            async with asyncio.timeout(10):
                async for line in lines:
                    if line.startswith("data: ") and b64url_decode(line[6:])[0] == Tag.RECONCILED:
                        break
            meta = json.dumps({"connId": conn_id, "streamRequest": True}).encode()
            await upload.put(length_prefixed([meta]))
            posting = asyncio.ensure_future(client.post(url, content=chunks(), headers=HEADERS))
            await upload.put(HUGE)
            await upload.put(None)  # httpx reads the answer once its upload ended
            answer = await asyncio.wait_for(posting, 10)
            assert (answer.status_code, answer.content) == (400, b"")

        violating = initial + (100 * 1024 * 1024).to_bytes(4, "big") + b"\0" * 1024
        async with client.stream("POST", url, content=violating, headers=HEADERS) as stream:
            assert stream.status_code == 200
            async with asyncio.timeout(10):
                rest = [line async for line in stream.aiter_lines()]
            # The stream ended (the wire was closed as a violation), with no RECONCILED sent.
            tags = [b64url_decode(line[6:])[0] for line in rest if line.startswith("data: ")]
            assert Tag.RECONCILED not in tags
