"""Hostile inbound traffic on a real WebSocket (uvicorn on 127.0.0.1, a hand-written client).

Each attack closes only the attacker's connection with 1002 (or refuses what it asked for) while
a normal call is still answered; the happy path of each sits next to it in tests/wire.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from node_runner import run_node_lines
from telefunc.config import config
from telefunc.wire.frames import HEADER, Tag, decode_frame, encode_frame, encode_json
from testpaths import APPS_DIR, IN_CI, node_available

HEADERS = {"x-telefunc-request": "txt", "content-type": "text/plain"}
FILE = "/chat.telefunc.py"


async def call(origin: str, name: str, args: list[Any] | None = None) -> Any:
    envelope = {"file": FILE, "name": name, "args": args or []}
    async with httpx.AsyncClient(base_url=origin, timeout=20) as client:
        r = await client.post(
            "/_telefunc?_telefunc=txt", content=json.dumps(envelope), headers=HEADERS
        )
    assert r.status_code == 200, r.text
    return json.loads(r.text)["ret"]


async def open_channel(origin: str) -> str:
    """``welcome`` returns a channel that echoes every message; its id."""
    ret = await call(origin, "welcome")
    channel_id: str = json.loads(ret.removeprefix("!TelefuncChannel:"))["channelId"]
    return channel_id


def entry(channel_id: str, ix: int = 0, initial: bool = True) -> dict[str, Any]:
    return {"id": channel_id, "ix": ix, "lastSeq": 0} | ({"initial": True} if initial else {})


async def until(ws: Any, tag: int) -> Any:
    while True:
        frame = decode_frame(await asyncio.wait_for(ws.recv(decode=False), 20))
        if frame.tag == tag:
            return frame


async def close_code(ws: Any) -> int | None:
    """Read until the server closes; its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 20)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


@pytest.fixture
def server(live_server: Any) -> Any:
    return live_server(APPS_DIR / "channels")


async def test_a_client_flooding_past_the_window_is_closed_1002(server: Any) -> None:
    channel_id = await open_channel(server.origin)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc") as ws:
        await ws.send(encode_json(Tag.RECONCILE, {"open": [entry(channel_id)]}))
        await until(ws, Tag.RECONCILED)
        # The echo listener waits for send credit this client never grants: nothing it sends
        # is consumed, and it keeps sending anyway.
        for seq in range(1, 2001):
            await ws.send(encode_frame(Tag.TEXT, 0, seq, b'"flood"'))
        assert await close_code(ws) == 1002
    assert await call(server.origin, "server_report") is not None
    hub = server.app.hub
    for _ in range(200):
        if hub.channel_count == 0:
            break
        await asyncio.sleep(0.05)
    assert hub.channel_count == 0


async def test_frames_queued_behind_a_waiting_reconcile_are_capped(server: Any) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc") as ws:
        never = "00000000-0000-4000-8000-00000000dead"
        await ws.send(encode_json(Tag.RECONCILE, {"open": [entry(never)]}))
        payload = bytes(16 * 1024)
        # Just past the byte cap, then read: a client that kept sending after the server's close
        # frame would be dropped past config.limits.max_after_close without reading that frame.
        frames = config.limits.max_pending_bytes // (HEADER + len(payload)) + 1
        with pytest.raises(ConnectionClosed) as closed:
            for seq in range(1, frames + 1):
                await ws.send(encode_frame(Tag.BINARY, 0, seq, payload))
            await asyncio.wait_for(ws.recv(), 20)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
    assert await call(server.origin, "server_report") is not None


async def test_a_ping_flood_is_closed_1002(server: Any) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc") as ws:
        for _ in range(200):
            await ws.send(encode_frame(Tag.PING))
        assert await close_code(ws) == 1002


async def test_another_client_cannot_attach_a_channel_it_does_not_own(server: Any) -> None:
    channel_id = await open_channel(server.origin)
    url = f"ws://127.0.0.1:{server.port}/_telefunc"
    async with websockets.connect(url) as owner, websockets.connect(url) as intruder:
        await owner.send(encode_json(Tag.RECONCILE, {"open": [entry(channel_id)]}))
        answer = (await until(owner, Tag.RECONCILED)).json()
        assert answer["open"] == [{"ix": 0, "lastSeq": 0}]
        await intruder.send(encode_json(Tag.RECONCILE, {"open": [entry(channel_id, ix=3)]}))
        refused = (await until(intruder, Tag.RECONCILED)).json()
        assert refused["open"] == []
        # The channel still answers its owner, and only its owner.
        await owner.send(encode_frame(Tag.TEXT, 0, 1, b'"hello"'))
        echo = await until(owner, Tag.TEXT)
        assert json.loads(echo.payload) in ({"welcome": True}, "hello")
        # The intruder presents a made-up session id: it ends nothing.
        await intruder.send(
            encode_json(Tag.RECONCILE, {"sessionId": refused["sessionId"] + "x", "open": []})
        )
        await until(intruder, Tag.RECONCILED)
        await owner.send(encode_frame(Tag.TEXT, 0, 2, b'"still"'))
        while json.loads((await until(owner, Tag.TEXT)).payload) != "still":
            pass
    assert server.app.hub.mux.refused_attaches >= 1


async def test_a_second_reconcile_without_session_id_releases_the_old_channels(
    server: Any,
) -> None:
    ids = [await open_channel(server.origin) for _ in range(3)]
    hub = server.app.hub
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc") as ws:
        opened = [entry(cid, ix) for ix, cid in enumerate(ids)]
        await ws.send(encode_json(Tag.RECONCILE, {"open": opened}))
        await until(ws, Tag.RECONCILED)
        assert all(cid in hub.mux.channels for cid in ids)
        await ws.send(encode_json(Tag.RECONCILE, {"open": []}))
        await until(ws, Tag.RECONCILED)
        for _ in range(200):
            if not any(cid in hub.mux.channels for cid in ids):
                break
            await asyncio.sleep(0.05)
        assert not any(cid in hub.mux.channels for cid in ids)
        assert hub.mux.sessions == {}


@pytest.mark.skipif(not node_available() and not IN_CI, reason="node missing")
async def test_the_official_client_fails_a_refused_channel_cleanly(server: Any) -> None:
    name = str(uuid.uuid4())
    ret = await call(server.origin, "shared_channel", [name])
    channel_id = json.loads(ret.removeprefix("!TelefuncChannel:"))["channelId"]
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc") as owner:
        await owner.send(encode_json(Tag.RECONCILE, {"open": [entry(channel_id)]}))
        assert (await until(owner, Tag.RECONCILED)).json()["open"] == [{"ix": 0, "lastSeq": 0}]
        lines = await run_node_lines(
            "channel_refused.mjs", server.origin, name, env={"TELEFUNC_TRANSPORTS": "ws"}
        )
        # The owner still has its channel: its message is echoed to it, not to the intruder.
        await owner.send(encode_frame(Tag.TEXT, 0, 1, b'"owner"'))
        assert json.loads((await until(owner, Tag.TEXT)).payload) == "owner"
    result = next(line for line in lines if line.get("name") == "refused")
    assert result["closed"] != "timeout"
    assert result["closed"]["name"] == "NetworkError"
    assert result["isClosed"] is True and result["sendError"] is not None
    assert result["echo"] == "ping"  # the client's other channel was unaffected
