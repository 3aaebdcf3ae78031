"""The SSE duplex transport at the HTTP level, driven by hand (httpx) against a live server:
event-stream framing and headers, RECONCILED after the body, batch and stream-request POSTs,
``connId`` replacement and the unknown-``connId`` wait, and ``config.channel.transports``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from sse_helpers import HEADERS, EventStream, body, channels_app, url

from telefunc import config
from telefunc.wire.frames import Tag, decode_frame, encode_frame, encode_json
from telefunc.wire.framing import length_prefixed


async def test_stream_response_events_headers_and_reconciled(live_server: Any) -> None:
    server = live_server(channels_app())
    conn_id = str(uuid.uuid4())
    initial = body(
        {"connId": conn_id, "streamResponse": True}, encode_json(Tag.RECONCILE, {"open": []})
    )
    async with httpx.AsyncClient(timeout=10) as client:
        headers = {**HEADERS, "accept": "text/event-stream"}
        async with client.stream("POST", url(server), content=initial, headers=headers) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "text/event-stream"
            assert resp.headers["cache-control"] == "no-cache, no-transform"
            assert resp.headers["x-accel-buffering"] == "no"
            events = EventStream(resp)
            first = await events.next()
            assert events.comments == [": open"]
            assert first is not None and first.tag == Tag.RECONCILED
            settings = first.json()
            assert settings["transports"] == ["sse", "ws"] and settings["open"] == []
            assert settings["sseFlushThrottle"] == 300 and settings["ssePostIdleFlushDelay"] == 50
            # A batch POST: PING answered on the event stream, the POST itself 200 empty.
            batch = await client.post(
                url(server),
                content=body({"connId": conn_id}, encode_frame(Tag.PING)),
                headers=HEADERS,
            )
            assert batch.status_code == 200 and batch.content == b""
            assert (await events.next_tag(Tag.PONG)).tag == Tag.PONG


async def test_stream_request_is_read_incrementally_and_acked(live_server: Any) -> None:
    server = live_server(channels_app())
    conn_id = str(uuid.uuid4())
    upload: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def chunks() -> AsyncIterator[bytes]:
        while (chunk := await upload.get()) is not None:
            yield chunk

    initial = body(
        {"connId": conn_id, "streamResponse": True}, encode_json(Tag.RECONCILE, {"open": []})
    )
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", url(server), content=initial, headers=HEADERS) as resp,
    ):
        events = EventStream(resp)
        await events.next_tag(Tag.RECONCILED)
        await upload.put(
            length_prefixed([json.dumps({"connId": conn_id, "streamRequest": True}).encode()])
        )
        posting = asyncio.ensure_future(client.post(url(server), content=chunks(), headers=HEADERS))
        await events.next_tag(Tag.STREAM_REQUEST_OPEN_ACK)  # sent at once
        for _ in range(3):  # each PING travels alone while the upload stays open
            await upload.put(length_prefixed([encode_frame(Tag.PING)]))
            await events.next_tag(Tag.PONG)
        assert not posting.done()  # no answer while the upload is open...
        await upload.put(None)
        answer = await asyncio.wait_for(posting, 10)  # ...200 empty once it ends
        assert answer.status_code == 200 and answer.content == b""


async def test_same_conn_id_replaces_the_old_stream(live_server: Any) -> None:
    app = channels_app()
    server = live_server(app)
    conn_id = str(uuid.uuid4())
    initial = body(
        {"connId": conn_id, "streamResponse": True}, encode_json(Tag.RECONCILE, {"open": []})
    )
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", url(server), content=initial, headers=HEADERS) as old,
    ):
        old_events = EventStream(old)
        await old_events.next_tag(Tag.RECONCILED)
        async with client.stream("POST", url(server), content=initial, headers=HEADERS) as new:
            new_events = EventStream(new)
            await new_events.next_tag(Tag.RECONCILED)
            assert await old_events.next() is None  # the old stream was ended
    assert app.mux.opened["sse"] == 2


async def test_unknown_conn_id_waits_connect_ttl_then_400(
    live_server: Any, restore_config: None
) -> None:
    config.channel.connect_ttl = 0.3
    server = live_server(channels_app())
    async with httpx.AsyncClient(timeout=10) as client:
        started = time.monotonic()
        answer = await client.post(
            url(server),
            content=body({"connId": "nobody"}, encode_frame(Tag.PING)),
            headers=HEADERS,
        )
        assert answer.status_code == 400
        assert time.monotonic() - started >= 0.3
        for bad in (b"", b"\x00\x00\x00\x02{}", length_prefixed([b'{"connId": ""}'])):
            assert (await client.post(url(server), content=bad, headers=HEADERS)).status_code == 400


async def test_data_post_may_arrive_before_the_stream_response(live_server: Any) -> None:
    app = channels_app()
    server = live_server(app)
    conn_id = str(uuid.uuid4())
    initial = body(
        {"connId": conn_id, "streamResponse": True}, encode_json(Tag.RECONCILE, {"open": []})
    )
    async with httpx.AsyncClient(timeout=10) as client:
        early = asyncio.ensure_future(
            client.post(
                url(server),
                content=body({"connId": conn_id}, encode_frame(Tag.PING)),
                headers=HEADERS,
            )
        )
        # Bounded wait until the POST is on the server, waiting (≤ connect_ttl) for its wire.
        async with asyncio.timeout(5):
            while conn_id not in app.mux._conn_waiters:
                await asyncio.sleep(0.01)
        async with client.stream("POST", url(server), content=initial, headers=HEADERS) as resp:
            events = EventStream(resp)
            await events.next_tag(Tag.PONG)
            assert (await asyncio.wait_for(early, 10)).status_code == 200


async def test_transports_config_decides_what_is_served_and_advertised(
    live_server: Any, restore_config: None
) -> None:
    server = live_server(channels_app())
    ws_url = f"ws://127.0.0.1:{server.port}/_telefunc"
    initial = body(
        {"connId": str(uuid.uuid4()), "streamResponse": True},
        encode_json(Tag.RECONCILE, {"open": []}),
    )
    async with httpx.AsyncClient(timeout=10) as client:
        config.channel.transports = ["sse"]
        async with client.stream("POST", url(server), content=initial, headers=HEADERS) as resp:
            reconciled = await EventStream(resp).next_tag(Tag.RECONCILED)
            assert reconciled.json()["transports"] == ["sse"]
        with pytest.raises(websockets.InvalidStatus):  # an upgrade to WS gets refused
            async with websockets.connect(ws_url):
                pass
        config.channel.transports = ["ws"]
        assert (await client.post(url(server), content=initial, headers=HEADERS)).status_code == 400
        async with websockets.connect(ws_url) as ws:
            await ws.send(encode_json(Tag.RECONCILE, {"open": []}))
            frame = decode_frame(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[arg-type]
            assert frame.tag == Tag.RECONCILED and frame.json()["transports"] == ["ws"]
