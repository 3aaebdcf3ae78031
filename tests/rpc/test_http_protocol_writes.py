"""``TelefuncHttpToolsProtocol`` writes a response's head together with its first body bytes.

uvicorn's own protocol class runs with a transport that records every write (the write
pattern is what is under test, and a socket does not show it). A complete response is one
write; a head the app does not follow with a body before yielding to the event loop is written
then, on its own (a stream's headers are never held back); what is written is uvicorn's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from telefunc.asgi.http_protocol import TelefuncHttpToolsProtocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _protocol(app: Any) -> tuple[TelefuncHttpToolsProtocol, RecordingTransport]:
    config = uvicorn.Config(app, http=TelefuncHttpToolsProtocol, lifespan="off", log_level="error")
    config.load()
    protocol = TelefuncHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


def _request(path: str = "/", method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


async def _until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)  # a loop turn: the request's task runs in these
    raise AssertionError("condition not reached")


async def _complete_app(scope: Any, receive: Any, send: Any) -> None:
    body = scope["path"].encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_a_complete_response_is_one_write() -> None:
    protocol, transport = _protocol(_complete_app)
    protocol.data_received(_request("/hello"))
    await _until(lambda: transport.writes)
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    head, body = transport.writes[0].split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 6" in head
    assert body == b"/hello"


async def test_pipelined_requests_are_answered_in_order_one_write_each() -> None:
    protocol, transport = _protocol(_complete_app)
    protocol.data_received(_request("/a") + _request("/b") + _request("/c"))
    await _until(lambda: len(transport.writes) == 3)
    assert [w.rsplit(b"\r\n\r\n", 1)[1] for w in transport.writes] == [b"/a", b"/b", b"/c"]


async def test_a_connection_close_response_is_written_before_the_close() -> None:
    protocol, transport = _protocol(_complete_app)
    protocol.data_received(_request("/bye", extra="Connection: close\r\n"))
    await _until(lambda: transport.closed)
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"\r\n\r\n/bye")


async def test_a_head_request_gets_its_head() -> None:
    protocol, transport = _protocol(_complete_app)
    protocol.data_received(_request("/h", method="HEAD"))
    await _until(lambda: transport.writes)
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n")  # no body for HEAD


async def test_a_stream_head_is_written_before_its_first_chunk_is_ready() -> None:
    chunk_ready = asyncio.Event()

    async def streaming_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await chunk_ready.wait()
        await send({"type": "http.response.body", "body": b"late", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    protocol, transport = _protocol(streaming_app)
    protocol.data_received(_request())
    await _until(lambda: transport.writes)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in transport.writes[0]
    assert transport.writes[0].endswith(b"\r\n\r\n")
    chunk_ready.set()
    await _until(lambda: len(transport.writes) == 3)
    assert transport.writes[1:] == [b"4\r\nlate\r\n", b"0\r\n\r\n"]


async def test_a_large_body_follows_its_head_in_the_same_write() -> None:
    body = b"x" * (1 << 20)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    protocol, transport = _protocol(app)
    protocol.data_received(_request())
    await _until(lambda: transport.writes)
    assert len(transport.writes) == 1  # writelines: one call
    assert transport.writes[0].endswith(b"\r\n\r\n" + body)


async def test_a_held_head_is_dropped_once_the_client_is_gone() -> None:
    proceed = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await proceed.wait()

    protocol, transport = _protocol(app)
    protocol.data_received(_request())
    await _until(lambda: protocol.cycle is not None and protocol.cycle.response_started)
    # The head is held until the loop turns; the connection is lost first (the transport is
    # closed by then, as asyncio's are before `connection_lost`).
    transport.close()
    protocol.connection_lost(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.writes == []
    proceed.set()


@pytest.mark.parametrize("path", ["/x"])
async def test_the_protocol_still_bounds_the_request_head(path: str) -> None:
    protocol, transport = _protocol(_complete_app)
    protocol.data_received(b"GET " + path.encode() + b" HTTP/1.1\r\nX-Long: " + b"a" * 70000)
    assert transport.closed
    assert transport.writes[0].startswith(b"HTTP/1.1 400 ")


async def test_a_request_expecting_100_continue_gets_it_before_its_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        body = message["body"]
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    protocol, transport = _protocol(app)
    protocol.data_received(
        _request(method="POST", extra="Expect: 100-continue\r\nContent-Length: 4\r\n")
    )
    await _until(lambda: transport.writes)
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    protocol.data_received(b"ping")
    await _until(lambda: len(transport.writes) == 3)
    assert transport.writes[1].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[2] == b"ping"
