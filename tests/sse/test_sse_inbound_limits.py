"""The SSE transport queues frames behind a waiting RECONCILE through the same capped queue as
WebSockets: a stream-response body naming a missing channel and then a stream of frames ends
the wire as a protocol violation instead of growing (happy path: tests/wire)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from sse_helpers import channels_app

from telefunc.config import LimitsSettings
from telefunc.wire.frames import Tag, encode_frame, encode_json
from telefunc.wire.framing import length_prefixed

HEADERS = {
    "x-telefunc-request": "sse",
    "content-type": "application/octet-stream",
    "accept": "text/event-stream",
}


async def test_frames_behind_a_waiting_reconcile_end_the_sse_wire(live_server: Any) -> None:
    app = channels_app()
    server = live_server(app)
    reports: list[str] = []
    app.mux.on_client_error = lambda kind, message: reports.append(kind)
    conn_id = str(uuid.uuid4())
    missing = {"id": str(uuid.uuid4()), "ix": 0, "lastSeq": 0, "initial": True}
    flood = [
        encode_frame(Tag.TEXT, 0, seq, b'"x"')
        for seq in range(1, LimitsSettings().max_pending_frames + 50)
    ]
    content = length_prefixed(
        [
            json.dumps({"connId": conn_id, "streamResponse": True}).encode(),
            encode_json(Tag.RECONCILE, {"open": [missing]}),
            *flood,
        ]
    )
    url = f"{server.origin}/_telefunc?_telefunc=sse"
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("POST", url, content=content, headers=HEADERS) as resp,
    ):
        assert resp.status_code == 200
        # The event stream ends well before the 5 s connect_ttl the RECONCILE would wait.
        async with asyncio.timeout(3):
            body = b"".join([chunk async for chunk in resp.aiter_bytes()])
    assert body == b": open\n\n"
    assert reports == ["protocol-violation"]
    assert app.mux.connection_for(conn_id) is None
