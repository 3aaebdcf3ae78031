"""The call endpoint's bounds on hostile bodies (``config.limits``): size (413), placeholders,
depth, file metadata and malformed paths (400/404), each pushed past its limit; and every
refusal logs one rate-limited line, never a traceback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from telefunc import config
from telefunc.asgi import TelefuncApp
from telefunc.asgi.http import AsgiBody
from telefunc.endpoint.client_errors import ClientErrorLog
from telefunc.server import rpc
from testpaths import APPS_DIR

BASIC = APPS_DIR / "basic"
TXT = "/_telefunc?_telefunc=txt"
BIN = "/_telefunc?_telefunc=bin"
TXT_HEADERS = {"x-telefunc-request": "txt", "content-type": "text/plain"}
BIN_HEADERS = {"x-telefunc-request": "bin", "content-type": "application/octet-stream"}
MALFORMED = (400, "Malformed Telefunc Request")
TOO_LARGE = (413, "Content Too Large")


@pytest.fixture
def limits() -> Iterator[Any]:
    """``config.limits``, put back to its defaults afterwards."""
    yield config.limits
    config.limits.reset()


@pytest.fixture
def client_log(monkeypatch: pytest.MonkeyPatch) -> ClientErrorLog:
    """A fresh rate limiter for the call endpoint, so each test sees its own first line."""
    log = ClientErrorLog()
    monkeypatch.setattr(rpc, "log_client_error", log)
    return log


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = TelefuncApp(BASIC)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=20
    ) as c:
        yield c


def call(name: str, args: list[Any], file: str = "/calc.telefunc.py") -> str:
    return json.dumps({"file": file, "name": name, "args": args})


def bin_body(name: str, args: list[Any], files: list[bytes]) -> bytes:
    meta = json.dumps({"file": "/files.telefunc.py", "name": name, "args": args}).encode()
    return len(meta).to_bytes(4, "big") + meta + b"".join(files)


def file_placeholder(index: int, size: int, name: str = "f.txt") -> str:
    meta = {"index": index, "name": name, "size": size, "type": "text/plain", "lastModified": 1}
    return "!TelefuncFile:" + json.dumps(meta)


def stream_placeholder(channel_id: str) -> str:
    return "!TelefuncStream:" + json.dumps({"channelId": channel_id})


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# -- body size --------------------------------------------------------------------------------


async def test_an_announced_body_over_max_body_size_is_413_before_reading(
    live_server: Any, limits: Any, client_log: ClientErrorLog, caplog: pytest.LogCaptureFixture
) -> None:
    limits.max_body_size = 64 * 1024
    server = live_server(BASIC)
    padding = "x" * (200 * 1024)
    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as c:
        with caplog.at_level(logging.WARNING):
            big = await c.post(TXT, content=call("echo", [padding]), headers=TXT_HEADERS)
            small = await c.post(TXT, content=call("echo", ["x" * 1000]), headers=TXT_HEADERS)
    assert (big.status_code, big.text) == TOO_LARGE
    assert small.status_code == 200
    lines = [r for r in caplog.records if r.name == "telefunc.client_errors"]
    assert len(lines) == 1 and "body-too-large" in lines[0].getMessage()
    no_tracebacks(caplog)


async def test_a_chunked_body_is_refused_at_the_limit_without_reading_further(
    limits: Any,
) -> None:
    """A chunked body that never ends: the server stops after the limit plus one chunk."""
    limits.max_body_size = 100_000
    chunk = b"[" * 10_000
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/_telefunc",
        "query_string": b"_telefunc=txt",
        "headers": [(b"x-telefunc-request", b"txt")],
    }
    await TelefuncApp(BASIC)(scope, receive, send)
    assert sent[0]["status"] == 413 and sent[1]["body"] == b"Content Too Large"
    assert received == 100_000 // len(chunk) + 1


async def test_an_upload_may_exceed_max_body_size_up_to_max_upload_size(
    live_server: Any, limits: Any
) -> None:
    limits.update(max_body_size=64 * 1024, max_upload_size=512 * 1024)
    server = live_server(BASIC)
    text = b"a" * (300 * 1024)
    ok = bin_body("upload_text", [file_placeholder(0, len(text))], [text])
    over = b"a" * (600 * 1024)
    too_big = bin_body("upload_text", [file_placeholder(0, len(over))], [over])

    async def chunked(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 16 * 1024):
            yield data[i : i + 16 * 1024]

    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as c:
        accepted = await c.post(BIN, content=ok, headers=BIN_HEADERS)
        announced = await c.post(BIN, content=too_big, headers=BIN_HEADERS)
        streamed = await c.post(BIN, content=chunked(too_big), headers=BIN_HEADERS)
    assert accepted.status_code == 200
    assert json.loads(accepted.text)["ret"]["size"] == len(text)
    assert (announced.status_code, announced.text) == TOO_LARGE  # Content-Length
    assert (streamed.status_code, streamed.text) == TOO_LARGE  # the file's announced size


async def test_upload_metadata_over_max_body_size_is_413(client: Any, limits: Any) -> None:
    limits.max_body_size = 1024
    body = (10_000_000).to_bytes(4, "big") + b"{"  # announces 10 MB of metadata

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    r = await client.post(BIN, content=chunks(), headers=BIN_HEADERS)
    assert (r.status_code, r.text) == TOO_LARGE


async def test_the_transport_free_endpoint_bounds_uploads_too() -> None:
    """The body guard stops within one chunk past the limit; ``handle_call`` (what every
    adapter uses) refuses an upload over ``max_upload_size`` before its telefunction runs."""
    from telefunc.errors import BodyTooLarge
    from telefunc.server.registry import Registry
    from telefunc.server.request_body import BoundedBody

    class Reader:
        def __init__(self, data: bytes) -> None:
            self.data = data

        async def read(self, max_bytes: int = -1) -> bytes:
            n = len(self.data) if max_bytes < 0 else max_bytes
            out, self.data = self.data[:n], self.data[n:]
            return out

    payload = b"z" * 200_000
    body = BoundedBody(Reader(bin_body("upload_text", [], []) + payload), 100_000)
    with pytest.raises(BodyTooLarge):
        while await body.read(65536):
            pass
    assert body.received <= 100_000 + 65536

    async def upload_text(file: Any) -> int:
        return len(await file.read())

    registry = Registry()
    registry.add("/files.telefunc.py", upload_text)
    data = bin_body("upload_text", [file_placeholder(0, len(payload))], [payload])
    response = await rpc.handle_call(
        registry, method="POST", kind="bin", body=Reader(data), context={}
    )
    assert (response.status, response.body) == (200, b'{"ret":200000}')
    config.limits.max_upload_size = 100_000
    try:
        response = await rpc.handle_call(
            registry, method="POST", kind="bin", body=Reader(data), context={}
        )
    finally:
        config.limits.reset()
    assert (response.status, response.body.decode()) == TOO_LARGE


async def test_an_invalid_content_length_is_malformed(client: Any) -> None:
    # httpx computes Content-Length itself; a raw ASGI scope carries the bad one.
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/_telefunc",
        "query_string": b"",
        "headers": [(b"content-length", b"-5")],
    }
    await TelefuncApp(BASIC)(scope, receive, send)
    assert (sent[0]["status"], sent[1]["body"]) == (400, b"Malformed Telefunc Request")


# -- linear buffering -------------------------------------------------------------------------


@pytest.mark.parametrize("read_size", [-1, 1, 7, 65536, 10**9])
async def test_asgi_body_hands_out_every_byte_in_order(read_size: int) -> None:
    data = bytes(range(256)) * 1000
    pieces = [data[i : i + 3001] for i in range(0, len(data), 3001)]
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    queue = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(queue)

    body = AsgiBody(receive)
    got = []
    while chunk := await body.read(read_size):
        assert read_size < 0 or len(chunk) <= read_size
        got.append(chunk)
    assert b"".join(got) == data


# -- placeholders -----------------------------------------------------------------------------


async def test_more_placeholders_than_max_placeholders_is_400(
    client: Any, limits: Any, client_log: ClientErrorLog, caplog: pytest.LogCaptureFixture
) -> None:
    limits.max_placeholders = 50
    args = [[stream_placeholder(f"s{i}") for i in range(51)], 0]
    at_limit = [[stream_placeholder(f"t{i}") for i in range(50)], 0]
    with caplog.at_level(logging.WARNING):
        over = await client.post(TXT, content=call("add", args), headers=TXT_HEADERS)
        ok = await client.post(TXT, content=call("add", at_limit), headers=TXT_HEADERS)
    assert (over.status_code, over.text) == MALFORMED
    assert ok.status_code == 422  # parsed (50 placeholders), then refused by the shield
    no_tracebacks(caplog)


async def test_many_distinct_placeholders_parse_and_duplicates_are_400(
    client: Any, limits: Any
) -> None:
    # 20,000 placeholders froze the server 8 s with an O(n^2) duplicate check; now linear.
    limits.max_placeholders = 20_000
    many = [[stream_placeholder(f"c{i}") for i in range(20_000)], 0]
    r = await client.post(TXT, content=call("add", many), headers=TXT_HEADERS)
    assert r.status_code == 422
    twice = [[stream_placeholder("same"), stream_placeholder("same")], 0]
    r = await client.post(TXT, content=call("add", twice), headers=TXT_HEADERS)
    assert (r.status_code, r.text) == MALFORMED


# -- depth ------------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [129, 990, 5000, 400_000])
async def test_nesting_deeper_than_max_depth_is_400_without_a_traceback(
    client: Any, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    text = '{"file":"/calc.telefunc.py","name":"echo","args":[' + nested(depth - 2) + "]}"
    with caplog.at_level(logging.WARNING):
        r = await client.post(TXT, content=text, headers=TXT_HEADERS)
    assert (r.status_code, r.text) == MALFORMED
    no_tracebacks(caplog)


async def test_nesting_up_to_max_depth_is_served(client: Any, limits: Any) -> None:
    text = '{"file":"/calc.telefunc.py","name":"echo","args":[' + nested(126) + "]}"
    r = await client.post(TXT, content=text, headers=TXT_HEADERS)
    assert r.status_code == 200 and r.text == '{"ret":' + nested(126) + "}"
    limits.max_depth = 20
    r = await client.post(TXT, content=text, headers=TXT_HEADERS)
    assert (r.status_code, r.text) == MALFORMED


async def test_nesting_through_maps_and_sets_counts_too(client: Any, limits: Any) -> None:
    from telefunc.wire.serializer import JsMap, JsSet, stringify

    value: Any = 1
    for _ in range(2):  # each level: the Map's entries, the entry, the list: 3 levels
        value = JsSet([JsMap({"k": [value]})])  # and the Set's array: 4 levels in all
    text = stringify({"file": "/calc.telefunc.py", "name": "echo", "args": [value]})
    limits.max_depth = 10  # the envelope and args are 2 more: 10 in all
    r = await client.post(TXT, content=text, headers=TXT_HEADERS)
    assert r.status_code == 200
    limits.max_depth = 9
    r = await client.post(TXT, content=text, headers=TXT_HEADERS)
    assert (r.status_code, r.text) == MALFORMED


# -- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta",
    [
        "{}",
        "[]",
        '"x"',
        "not json",
        '{"index":0}',
        '{"index":"0","size":1}',
        '{"index":0,"size":-1}',
        '{"index":-1,"size":1}',
        '{"index":1e400,"size":1}',
        '{"index":0,"size":1.5}',
        '{"index":true,"size":1}',
        '{"index":1000000000,"size":0}',
        "[" * 100_000,
    ],
)
async def test_bad_file_metadata_is_400(
    client: Any, meta: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = bin_body("upload_text", ["!TelefuncFile:" + meta], [b"x"])
    with caplog.at_level(logging.WARNING):
        r = await client.post(BIN, content=body, headers=BIN_HEADERS)
    assert (r.status_code, r.text) == MALFORMED
    no_tracebacks(caplog)


async def test_a_file_announced_twice_with_two_sizes_is_400(client: Any) -> None:
    args = [file_placeholder(0, 1), file_placeholder(0, 2)]
    body = bin_body("describe_upload", ["x", *args], [b"xy"])
    r = await client.post(BIN, content=body, headers=BIN_HEADERS)
    assert (r.status_code, r.text) == MALFORMED


async def test_a_file_body_cut_short_while_the_telefunction_reads_is_400(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = bin_body("upload_text", [file_placeholder(0, 1000)], [b"only a few bytes"])
    with caplog.at_level(logging.WARNING):
        r = await client.post(BIN, content=body, headers=BIN_HEADERS)
    assert (r.status_code, r.text) == MALFORMED
    no_tracebacks(caplog)


@pytest.mark.parametrize(
    "path", ["/%00", "/index.html%00.txt", "/a%00b/c", "/" + "a" * 5000, "/%ff%fe", "/%ED%A0%80"]
)
async def test_odd_static_paths_are_404(
    client: Any, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        r = await client.get(path)
    assert r.status_code == 404
    no_tracebacks(caplog)


async def test_malformed_lines_are_rate_limited(
    client: Any, client_log: ClientErrorLog, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(20):
            r = await client.post(TXT, content="{not json", headers=TXT_HEADERS)
            assert r.status_code == 400
    assert len(caplog.records) == 1
    assert "[malformed-body]" in caplog.records[0].getMessage()


async def test_an_upload_cut_short_while_it_streams_back_logs_no_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response has started when the file's bytes run out: the body ends with the
    protocol's error frame, and the log has one line, no traceback."""
    from telefunc.server import streaming

    monkeypatch.setattr(streaming, "log_client_error", ClientErrorLog())
    app = TelefuncApp(APPS_DIR / "streaming")
    meta = json.dumps(
        {
            "file": "/stream.telefunc.py",
            "name": "echo_file",
            "args": ["x", file_placeholder(0, 10**6)],
        }
    ).encode()
    body = len(meta).to_bytes(4, "big") + meta + b"only a few bytes"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        with caplog.at_level(logging.WARNING):
            r = await c.post(BIN, content=body, headers=BIN_HEADERS)
    assert r.status_code == 200
    assert r.content.endswith(b'{"type":"bug"}')  # the in-band error frame ends the body
    no_tracebacks(caplog)
    assert any("malformed-body" in rec.getMessage() for rec in caplog.records)
