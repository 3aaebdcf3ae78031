"""Cross-site protection of the SSE transport: every SSE POST from a foreign ``Origin`` gets 403
before its body is read (no connection is opened); same-origin and Origin-less ones stream."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from sse_helpers import channels_app

from telefunc.wire.frames import Tag, encode_json
from telefunc.wire.framing import length_prefixed

HEADERS = {"x-telefunc-request": "sse", "content-type": "application/octet-stream"}


def opening(conn_id: str) -> bytes:
    meta = json.dumps({"connId": conn_id, "streamResponse": True}).encode()
    return length_prefixed([meta, encode_json(Tag.RECONCILE, {"open": []})])


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
    ],
)
async def test_a_foreign_sse_post_is_refused(live_server: Any, headers: dict[str, str]) -> None:
    app = channels_app()
    server = live_server(app)
    conn_id = str(uuid.uuid4())
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"{server.origin}/_telefunc?_telefunc=sse",
            content=opening(conn_id),
            headers={**HEADERS, **headers},
        )
    assert r.status_code == 403
    assert app.kinds == {}  # refused before the metadata record was read
    assert conn_id not in app.mux.connections_by_conn_id


@pytest.mark.parametrize("same_origin", [True, False])
async def test_same_origin_and_originless_sse_posts_stream(
    live_server: Any, same_origin: bool
) -> None:
    app = channels_app()
    server = live_server(app)
    headers = {**HEADERS, "origin": server.origin} if same_origin else HEADERS
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream(
            "POST",
            f"{server.origin}/_telefunc?_telefunc=sse",
            content=opening(str(uuid.uuid4())),
            headers=headers,
        ) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        async for line in resp.aiter_lines():
            assert line == ": open"
            break
    assert app.kinds["response"] == 1
