"""The frames of one SSE wire are fed in the order its data POSTs arrived, whatever order their
bodies complete in, and within bounds (live uvicorn, hand-driven clients; the official client's
fallback to batch POSTs is tests/sse/test_sse_interop.py).

A POST that arrives while an earlier one of its wire is still being read waits for it; the
official client's upload it gives up on (refused, or unacknowledged) is still read to its end
before the batch POSTs that follow it. Waiting POSTs read ahead within ``max_pending_bytes`` /
``max_pending_frames`` and at most ``max_waiting_posts`` of them may wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpx
import pytest
from sse_helpers import HEADERS, EventStream, body, channels_app, refusing_stream_requests, url

from telefunc import config
from telefunc.server import sse as sse_core
from telefunc.wire.frames import Tag, encode_frame, encode_json, encode_u32_frame
from telefunc.wire.framing import length_prefixed

FILE = "/chat.telefunc.py"


class BodyWatch:
    """Wraps the app: ``whole[name]`` is set once the app has read the whole body of the request
    sent with the header ``x-test-post: <name>`` (the server runs in another thread)."""

    def __init__(self, app: Any, names: Iterable[str]) -> None:
        self.app = app
        self.whole = {name: threading.Event() for name in names}

    @property
    def mux(self) -> Any:
        return self.app.app.hub.mux

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = dict(scope.get("headers", [])).get(b"x-test-post")
        if scope["type"] != "http" or name is None:
            await self.app(scope, receive, send)
            return
        done = self.whole[name.decode()]

        async def watching() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                done.set()
            return message

        await self.app(scope, watching, send)


async def whole_body(watch: BodyWatch, name: str) -> None:
    assert await asyncio.to_thread(watch.whole[name].wait, 10), f"POST {name} never arrived"


def text(seq: int, value: Any) -> bytes:
    return encode_frame(Tag.TEXT, 0, seq, json.dumps(value).encode())


async def queue_body(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await queue.get()) is not None:
        yield chunk


async def next_echo(events: EventStream) -> Any:
    return json.loads((await events.next_tag(Tag.TEXT)).payload)


@contextlib.asynccontextmanager
async def echo_wire(client: httpx.AsyncClient, server: Any) -> AsyncIterator[tuple[str, Any]]:
    """An SSE wire carrying one ``welcome`` channel (it echoes every message) as ix 0, its
    welcome already read: ``(connId, events)``."""
    envelope = {"file": FILE, "name": "welcome", "args": []}
    answer = await client.post(
        f"{server.origin}/_telefunc?_telefunc=txt",
        content=json.dumps(envelope),
        headers={"x-telefunc-request": "txt", "content-type": "text/plain"},
    )
    ret = json.loads(answer.text)["ret"]
    channel_id = json.loads(ret.removeprefix("!TelefuncChannel:"))["channelId"]
    conn_id = str(uuid.uuid4())
    entry = {"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}
    initial = body(
        {"connId": conn_id, "streamResponse": True}, encode_json(Tag.RECONCILE, {"open": [entry]})
    )
    async with client.stream("POST", url(server), content=initial, headers=HEADERS) as resp:
        events = EventStream(resp)
        seen: list[Any] = []
        while len(seen) < 2:  # the welcome (sent on open) and RECONCILED, in either order
            frame = await events.next()
            assert frame is not None
            if frame.tag == Tag.RECONCILED:
                seen.append("reconciled")
            elif frame.tag == Tag.TEXT:
                seen.append(json.loads(frame.payload))
        assert "reconciled" in seen and {"welcome": True} in seen
        yield conn_id, events


async def test_a_later_batch_completing_first_waits_for_the_earlier_one(live_server: Any) -> None:
    watch = BodyWatch(channels_app(), ["later"])
    server = live_server(watch)
    async with httpx.AsyncClient(timeout=10) as client, echo_wire(client, server) as wire:
        conn_id, events = wire
        earlier_body: asyncio.Queue[bytes | None] = asyncio.Queue()
        earlier = asyncio.ensure_future(
            client.post(url(server), content=queue_body(earlier_body), headers=HEADERS)
        )
        earlier_body.put_nowait(body({"connId": conn_id}, encode_frame(Tag.PING)))
        await events.next_tag(Tag.PONG)  # the earlier batch is being fed; its body stays open
        later = asyncio.ensure_future(
            client.post(
                url(server),
                content=body({"connId": conn_id}, text(2, "two")),
                headers={**HEADERS, "x-test-post": "later"},
            )
        )
        await whole_body(watch, "later")  # the later body is complete on the server...
        assert not later.done()  # ...and waits for the earlier one
        earlier_body.put_nowait(length_prefixed([text(1, "one")]))
        earlier_body.put_nowait(None)
        assert (await earlier).status_code == 200
        assert (await later).status_code == 200
        # Fed in arrival order: the older message was not taken for a replay and dropped.
        assert [await next_echo(events), await next_echo(events)] == ["one", "two"]


class RawUpload:
    """A chunked POST written by hand: its answer can be read while its body is still open."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawUpload:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /_telefunc?_telefunc=sse HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"x-telefunc-request: sse\r\ncontent-type: application/octet-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self.writer.drain()

    async def end(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    async def status(self) -> int:
        line = await asyncio.wait_for(self.reader.readline(), 10)
        return int(line.split()[1])

    def close(self) -> None:
        self.writer.close()


async def test_a_refused_upload_is_answered_at_once_and_still_fed_before_later_batches(
    live_server: Any,
) -> None:
    watch = BodyWatch(channels_app(refusing_stream_requests()), ["batch"])
    server = live_server(watch)
    async with httpx.AsyncClient(timeout=10) as client, echo_wire(client, server) as wire:
        conn_id, events = wire
        upload = await RawUpload.open(server.port)
        try:
            meta = {"connId": conn_id, "streamRequest": True}
            await upload.send(length_prefixed([json.dumps(meta).encode()]))
            assert await upload.status() == 400  # at once: the client falls back now...
            # ...but what it pushed into the upload before it saw the answer still counts.
            await upload.send(length_prefixed([text(1, "one")]))
            assert await next_echo(events) == "one"
            batch = asyncio.ensure_future(
                client.post(
                    url(server),
                    content=body({"connId": conn_id}, text(3, "three")),
                    headers={**HEADERS, "x-test-post": "batch"},
                )
            )
            await whole_body(watch, "batch")
            assert not batch.done()  # behind the upload until the client ends it
            await upload.send(length_prefixed([text(2, "two")]))  # the upload's tail
            await upload.end()
            assert (await batch).status_code == 200
        finally:
            upload.close()
        assert [await next_echo(events), await next_echo(events)] == ["two", "three"]


@pytest.fixture
def restore_limits() -> Iterator[None]:
    saved = config.limits.snapshot()
    yield
    config.limits.reset()
    config.limits.update({f.name: getattr(saved, f.name) for f in dataclasses.fields(saved)})


async def hold_the_turn(
    client: httpx.AsyncClient, server: Any, conn_id: str, events: EventStream
) -> tuple[asyncio.Queue[bytes | None], asyncio.Future[httpx.Response]]:
    """A batch POST that is being fed and whose body stays open until ``None`` is queued."""
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
    posting = asyncio.ensure_future(
        client.post(url(server), content=queue_body(chunks), headers=HEADERS)
    )
    chunks.put_nowait(body({"connId": conn_id}, encode_frame(Tag.PING)))
    await events.next_tag(Tag.PONG)
    return chunks, posting


@pytest.mark.parametrize("limit", ["max_pending_bytes", "max_pending_frames"])
async def test_a_waiting_post_reads_ahead_only_within_the_limits(
    live_server: Any, restore_limits: None, limit: str
) -> None:
    config.limits.update({limit: 16 if limit == "max_pending_frames" else 64 * 1024})
    cap = getattr(config.limits, limit)
    # Well past the limit plus one read, for a channel index nobody uses (ignored once fed):
    # 1 MiB, or 40,000 tiny records.
    if limit == "max_pending_bytes":
        frames = [encode_frame(Tag.BINARY, 9, seq, bytes(8192)) for seq in range(1, 129)]
    else:
        frames = [encode_u32_frame(Tag.WINDOW, 9, 1) for _ in range(40_000)]
    watch = BodyWatch(channels_app(), ["big"])
    server = live_server(watch)
    async with httpx.AsyncClient(timeout=20) as client, echo_wire(client, server) as wire:
        conn_id, events = wire
        earlier_body, earlier = await hold_the_turn(client, server, conn_id, events)
        big = asyncio.ensure_future(
            client.post(
                url(server),
                content=body({"connId": conn_id}, *frames),
                headers={**HEADERS, "x-test-post": "big"},
            )
        )
        sse_wire = watch.mux.connection_for(conn_id).io
        read_ahead = "read_ahead_bytes" if limit == "max_pending_bytes" else "read_ahead_frames"
        async with asyncio.timeout(10):  # bounded wait until the waiting POST reached the limit
            while getattr(sse_wire, read_ahead) < cap:
                await asyncio.sleep(0.01)
        # A round trip through the server's event loop: the waiting POST does not read on.
        assert (await client.get(f"{server.origin}/nothing-here")).status_code == 404
        assert not watch.whole["big"].is_set()
        assert getattr(sse_wire, read_ahead) <= cap + sse_core._READ_CHUNK
        earlier_body.put_nowait(None)
        assert (await earlier).status_code == 200
        assert (await big).status_code == 200  # then read and fed whole
        assert sse_wire.read_ahead_bytes == 0 and sse_wire.read_ahead_frames == 0
        await client.post(
            url(server), content=body({"connId": conn_id}, text(1, "after")), headers=HEADERS
        )
        assert await next_echo(events) == "after"  # the wire lives on


async def test_more_waiting_posts_than_the_limit_end_the_wire(
    live_server: Any, restore_limits: None
) -> None:
    config.limits.max_waiting_posts = 2
    watch = BodyWatch(channels_app(), ["w0", "w1"])
    server = live_server(watch)
    reports: list[str] = []
    watch.mux.on_client_error = lambda kind, message: reports.append(kind)
    async with httpx.AsyncClient(timeout=10) as client, echo_wire(client, server) as wire:
        conn_id, events = wire
        earlier_body, earlier = await hold_the_turn(client, server, conn_id, events)
        waiting = []
        for i in range(2):
            waiting.append(
                asyncio.ensure_future(
                    client.post(
                        url(server),
                        content=body({"connId": conn_id}, text(1 + i, i)),
                        headers={**HEADERS, "x-test-post": f"w{i}"},
                    )
                )
            )
            await whole_body(watch, f"w{i}")
        one_more = await client.post(
            url(server), content=body({"connId": conn_id}, text(3, 2)), headers=HEADERS
        )
        assert one_more.status_code == 400
        assert await events.next() is None  # the event stream ended
        assert reports == ["protocol-violation"]
        assert [(await w).status_code for w in waiting] == [400, 400]  # never fed
        earlier_body.put_nowait(None)
        await earlier
    assert watch.mux.connection_for(conn_id) is None


async def test_a_waiting_post_with_an_oversized_record_stops_reading_and_is_400(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiting POST that announces a record over ``max_message_size`` stops reading ahead at
    once (no loop re-raising the error until its turn) and, when its turn comes, answers 400
    after feeding the records before the oversized one."""
    fills = 0
    real_fill = sse_core._Records.fill

    async def counting_fill(self: Any) -> int:
        nonlocal fills
        if self.oversized:
            fills += 1
        return await real_fill(self)

    monkeypatch.setattr(sse_core._Records, "fill", counting_fill)
    config.limits.max_pings_per_second = 0  # PINGs pace this test
    try:
        await _oversized_while_waiting(live_server)
    finally:
        config.limits.reset()
    assert fills <= 2  # one refusal while reading ahead at most, one when its turn came


async def _oversized_while_waiting(live_server: Any) -> None:
    watch = BodyWatch(channels_app(), ["later"])
    server = live_server(watch)
    huge = (256 * 1024 * 1024).to_bytes(4, "big")
    async with httpx.AsyncClient(timeout=10) as client, echo_wire(client, server) as wire:
        conn_id, events = wire
        earlier_body: asyncio.Queue[bytes | None] = asyncio.Queue()
        earlier = asyncio.ensure_future(
            client.post(url(server), content=queue_body(earlier_body), headers=HEADERS)
        )
        earlier_body.put_nowait(body({"connId": conn_id}, encode_frame(Tag.PING)))
        await events.next_tag(Tag.PONG)
        later = asyncio.ensure_future(
            client.post(
                url(server),
                content=body({"connId": conn_id}, text(2, "two")) + huge + b"x" * 1024,
                headers={**HEADERS, "x-test-post": "later"},
            )
        )
        await whole_body(watch, "later")
        for _ in range(20):  # real time passes on the server while the later POST waits
            earlier_body.put_nowait(length_prefixed([encode_frame(Tag.PING)]))
            await events.next_tag(Tag.PONG)
        assert not later.done()
        earlier_body.put_nowait(length_prefixed([text(1, "one")]))
        earlier_body.put_nowait(None)
        assert (await earlier).status_code == 200
        assert (await later).status_code == 400
        assert [await next_echo(events), await next_echo(events)] == ["one", "two"]
