"""The ``channel`` stream transport and request channels on the raw wire (uvicorn on 127.0.0.1,
a hand-written WebSocket client): exact frames, cancellation, upload backpressure frames."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from typing import Any

import httpx
import websockets

from telefunc.wire.frames import Tag, decode_frame, encode_frame, encode_json, encode_u32_frame

APP = Path(__file__).resolve().parent.parent / "apps" / "streaming"
HEADERS = {"x-telefunc-request": "txt", "content-type": "text/plain"}


def body(file: str, name: str, args: list[Any], transport: str | None = None) -> str:
    envelope: dict[str, Any] = {"file": file, "name": name, "args": args}
    if transport is not None:
        envelope["stream"] = {"transport": transport}
    return json.dumps(envelope)


async def reconcile(ws: Any, channel_id: str) -> None:
    await ws.send(
        encode_json(
            Tag.RECONCILE, {"open": [{"id": channel_id, "ix": 1, "lastSeq": 0, "initial": True}]}
        )
    )


async def frames_until(ws: Any, tag: int) -> list[Any]:
    seen = []
    while True:
        frame = decode_frame(await ws.recv(decode=False))
        seen.append(frame)
        if frame.tag == tag:
            return seen


async def test_countdown_is_pumped_as_tagged_binary_frames(live_server: Any) -> None:
    server = live_server(APP)
    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as client:
        r = await client.post(
            "/_telefunc?_telefunc=txt",
            content=body("/stream.telefunc.py", "countdown", [2], "channel"),
            headers=HEADERS,
        )
    ret = json.loads(r.text)["ret"]
    channel_id = json.loads(ret.removeprefix("!TelefuncGenerator:"))["channelId"]
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc") as ws:
        await reconcile(ws, channel_id)
        seen = await frames_until(ws, Tag.CLOSE)
        data = [(f.seq, f.payload) for f in seen if f.tag == Tag.BINARY]
        assert data == [(1, b"\x002"), (2, b"\x001"), (3, b"\x000")]
        assert struct.unpack("<I", seen[-1].payload) == (5000,)
        assert seen[-1].ix == 1
        await ws.send(encode_frame(Tag.CLOSE_ACK, 1))


async def test_abort_mid_stream_sends_an_error_frame_then_close(live_server: Any) -> None:
    server = live_server(APP)
    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as client:
        r = await client.post(
            "/_telefunc?_telefunc=txt",
            content=body("/stream.telefunc.py", "abort_mid", ["x"], "channel"),
            headers=HEADERS,
        )
    channel_id = json.loads(json.loads(r.text)["ret"].split(":", 1)[1])["channelId"]
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc") as ws:
        await reconcile(ws, channel_id)
        seen = await frames_until(ws, Tag.CLOSE)
        payloads = [f.payload for f in seen if f.tag == Tag.BINARY]
        assert payloads[:2] == [b"\x001", b"\x002"]
        assert payloads[2][:1] == b"\x01"
        assert json.loads(payloads[2][1:]) == {"type": "abort", "abortValue": {"reason": "x"}}


async def test_upload_credit_is_regranted_and_close_ends_the_stream(live_server: Any) -> None:
    """A stream argument's channel (registered under the client's id, RECONCILE first): the
    server re-grants message credit as the telefunction consumes; CLOSE ends the iterator."""
    server = live_server(APP)
    channel_id = "5f0e7c1e-0000-4000-8000-000000000001"
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc") as ws:
        await reconcile(ws, channel_id)
        async with httpx.AsyncClient(base_url=server.origin, timeout=20) as client:
            call = asyncio.ensure_future(
                client.post(
                    "/_telefunc?_telefunc=txt",
                    content=body(
                        "/functions.telefunc.py",
                        "upload_digest",
                        [f"!TelefuncStream:{json.dumps({'channelId': channel_id})}"],
                    ),
                    headers=HEADERS,
                )
            )
            await frames_until(ws, Tag.RECONCILED)
            # 100 messages exhaust the initial message credit; the server re-grants it as the
            # telefunction consumes them (each grant is the room left: window minus backlog, so
            # the whole window is back once everything was consumed).
            for seq in range(1, 101):
                await ws.send(encode_frame(Tag.BINARY, 1, seq, b"\x00" + bytes([seq]) * 10))
            grants: list[int] = []
            while not grants or grants[-1] < 100:
                window = await asyncio.wait_for(frames_until(ws, Tag.MSG_WINDOW), 20)
                grants.append(struct.unpack("<I", window[-1].payload)[0])
            assert all(0 < grant <= 100 for grant in grants), grants
            await ws.send(encode_u32_frame(Tag.CLOSE, 1, 5000))
            response = await call
    result = json.loads(response.text)["ret"]
    assert result["total"] == 1000 and result["chunks"] == 100
