"""Streaming responses over real HTTP (uvicorn on 127.0.0.1): headers, exact bytes, both
inline transports, in-band errors, and cancellation when the client disconnects."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _stream_frames import parse_frames, sse_to_binary

from telefunc import config

APP = Path(__file__).resolve().parent.parent / "apps" / "streaming"
FILE = "/stream.telefunc.py"
URL = "/_telefunc?_telefunc=txt"
HEADERS = {"x-telefunc-request": "txt", "content-type": "text/plain"}


def envelope(name: str, args: list[Any], transport: str | None = None) -> str:
    body: dict[str, Any] = {"file": FILE, "name": name, "args": args}
    if transport is not None:
        body["stream"] = {"transport": transport}
    return json.dumps(body)


@pytest.fixture
def server(live_server: Any) -> Any:
    return live_server(APP)


@pytest.fixture
async def client(server: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as c:
        yield c


@pytest.fixture
def restore_stream_config() -> Iterator[None]:
    before = config.stream.transport
    yield
    config.stream.transport = before


async def test_countdown_binary_inline_exact_bytes_and_headers(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=envelope("countdown", [3]), headers=HEADERS)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["cache-control"] == "no-cache, no-transform"
    assert r.headers["x-accel-buffering"] == "no"
    assert "content-length" not in r.headers
    expected = bytes.fromhex("0000002c") + b'{"ret":"!TelefuncGenerator:{\\"__index\\":0}"}'
    for digit in b"3210":
        expected += bytes.fromhex("0000000200") + bytes((digit,))
    expected += bytes.fromhex("000000010000000000")
    assert r.content == expected


async def test_sse_inline_chosen_by_the_envelope(client: httpx.AsyncClient) -> None:
    binary = await client.post(URL, content=envelope("two", []), headers=HEADERS)
    r = await client.post(URL, content=envelope("two", [], "sse-inline"), headers=HEADERS)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["cache-control"] == "no-cache, no-transform"
    decoded = sse_to_binary(r.content)
    assert decoded == binary.content
    meta, frames = parse_frames(decoded)
    assert json.loads(meta)["ret"]["label"] == "two"
    assert sorted(f for f in frames if f[0] == 0) == sorted(
        [(0, b'"a"'), (0, b'"b"'), (0, b'"c"'), (0, b"")]
    )
    assert [f[1] for f in frames if f[0] == 1] == [b"1", b"4", b"9", b""]


async def test_config_stream_transport_is_the_default(
    client: httpx.AsyncClient, restore_stream_config: None
) -> None:
    config.stream.transport = "sse-inline"
    r = await client.post(URL, content=envelope("countdown", [0]), headers=HEADERS)
    assert r.headers["content-type"] == "text/event-stream"
    r = await client.post(URL, content=envelope("countdown", [0], "binary-inline"), headers=HEADERS)
    assert r.headers["content-type"] == "application/octet-stream"


async def test_channel_transport_answers_text_with_a_channel_id(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=envelope("countdown", [1], "channel"), headers=HEADERS)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    ret = json.loads(r.text)["ret"]
    prefix = "!TelefuncGenerator:"
    assert ret.startswith(prefix)
    meta = json.loads(ret[len(prefix) :])
    assert list(meta) == ["channelId"]
    uuid.UUID(meta["channelId"])


async def test_abort_mid_stream_is_in_band_with_status_200(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=envelope("abort_mid", ["stop/now"]), headers=HEADERS)
    assert r.status_code == 200
    _, frames = parse_frames(r.content)
    assert frames == [
        (0, b"1"),
        (0, b"2"),
        ("error", {"type": "abort", "abortValue": {"reason": "stop/now"}}),
    ]
    assert r.content.endswith(b'{"type":"abort","abortValue":{"reason":"stop\\/now"}}')


async def test_a_bug_mid_stream_is_a_logged_bug_frame(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="telefunc"):
        r = await client.post(URL, content=envelope("bug_mid", []), headers=HEADERS)
    assert r.status_code == 200
    _, frames = parse_frames(r.content)
    assert frames == [(0, b"1"), ("error", {"type": "bug"})]
    assert b"secret" not in r.content
    assert any("secret detail" in str(rec.exc_info) for rec in caplog.records)


async def test_byte_stream_and_promise(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=envelope("byte_stream", [2500]), headers=HEADERS)
    meta, frames = parse_frames(r.content)
    assert json.loads(meta)["ret"] == {"stream": '!TelefuncStream:{"__index":0}', "size": 2500}
    assert b"".join(f[1] for f in frames[:-1]) == bytes(i % 251 for i in range(2500))
    r = await client.post(URL, content=envelope("promise", ["yes"]), headers=HEADERS)
    _, frames = parse_frames(r.content)
    assert frames == [(0, b'{"resolved":"yes"}'), (0, b""), ("end",)]


@pytest.mark.parametrize("transport", ["binary-inline", "sse-inline"])
async def test_client_disconnect_runs_the_generator_finally_then_on_close(
    server: Any, transport: str
) -> None:
    run_id = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as c:
        request = c.build_request(
            "POST", URL, content=envelope("ticker", [run_id], transport), headers=HEADERS
        )
        response = await c.send(request, stream=True)
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > 200:  # several items went through
                break
        await response.aclose()  # unfinished body: the connection is closed
    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as c:
        r = await c.post(
            URL, content=envelope("events_of", [run_id, "on_close", 10]), headers=HEADERS
        )
    assert r.json()["ret"][:3] == ["started", "finally", "on_close"]
