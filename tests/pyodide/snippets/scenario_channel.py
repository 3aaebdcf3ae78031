"""(e) A Channel returned by a telefunction, driven through a ChannelHub and a fake wire.

This is what a Durable Object does under Pyodide: the hub's single timer task sleeps until the
earliest deadline of the mux (``asyncio.wait_for`` on an Event, i.e. ``loop.call_later``, which
the webloop maps to ``setTimeout``). The scenario checks that deadlines really fire there: a
``close()`` the client never acknowledges resolves 1 after its timeout, and a wire without PINGs
is dropped after the ping deadline.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from telefunc.config import config
from telefunc.server.channel import Channel
from telefunc.server.hub import ChannelHub
from telefunc.server.registry import Registry
from telefunc.server.rpc import handle_call
from telefunc.wire.frames import Tag, decode_frame, encode_frame, encode_json
from telefunc.wire.mux import ServerConnection

#: Upper bound for every wait (a failing run ends instead of hanging).
BOUND = 10.0
CLOSE_TIMEOUT = 0.3
CHANNELS: list[Channel[str, str]] = []


async def chat() -> Channel[str, str]:
    """The telefunction: greets on open and echoes every message."""
    ch: Channel[str, str] = Channel()
    ch.on_open(lambda: ch.send("welcome"))
    ch.listen(lambda msg: ch.send(f"echo: {msg}"))
    CHANNELS.append(ch)
    return ch


class Body:
    """A BodyReader over bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, max_bytes: int = -1) -> bytes:
        size = len(self._data) if max_bytes < 0 else max_bytes
        out, self._data = self._data[:size], self._data[size:]
        return out


class Wire:
    """The test's side of one ServerConnection: collects frames, wakes waiters on output."""

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self.frames: list[bytes] = []
        self.changed = asyncio.Event()
        conn.on_output = self.changed.set

    def pull(self) -> None:
        self.frames.extend(self.conn.data_to_send())

    async def wait_for(self, predicate: Any) -> None:
        """Wait (bounded) until ``predicate(self)`` holds."""

        async def loop() -> None:
            while True:
                self.pull()
                if predicate(self):
                    return
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), BOUND)

    def texts(self) -> list[Any]:
        return [json.loads(decode_frame(f).payload) for f in self.frames if f[0] == Tag.TEXT]

    def tags(self) -> list[int]:
        return [f[0] for f in self.frames]


async def run() -> dict[str, Any]:
    """Register a channel through an RPC call, reconcile, echo, then let the timers fire."""
    config.channel.update(ping_interval=1.0)  # ping deadline = 2 s
    hub = ChannelHub()
    try:
        return await _scenario(hub)
    finally:
        await hub.aclose()
        config.channel.reset()


async def _scenario(hub: ChannelHub) -> dict[str, Any]:
    out: dict[str, Any] = {
        "platform": sys.platform,
        "loop": type(asyncio.get_running_loop()).__name__,
    }
    registry = Registry()
    registry.add("/chat.telefunc.py", chat)
    body = b'{"file":"/chat.telefunc.py","name":"chat","args":[]}'
    response = await handle_call(registry, method="POST", kind="txt", body=Body(body), hub=hub)
    ret = json.loads(response.body)["ret"]
    channel_id = json.loads(ret.removeprefix("!TelefuncChannel:"))["channelId"]
    # The id is a fresh uuid4: masked so both interpreters' outputs compare equal.
    out["rpc"] = [response.status, response.body.decode().replace(channel_id, "<id>")]
    out["registered"] = hub.channel_count
    out["timer_task_running"] = hub._task is not None and not hub._task.done()

    wire = Wire(hub.open_connection())
    reconcile = {"open": [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]}
    wire.conn.receive(encode_json(Tag.RECONCILE, reconcile), hub.now())
    await wire.wait_for(lambda w: Tag.RECONCILED in w.tags() and "welcome" in w.texts())
    reconciled = next(decode_frame(f).json() for f in wire.frames if f[0] == Tag.RECONCILED)
    out["reconciled_open"] = reconciled["open"]
    out["ping_interval_ms"] = reconciled["pingInterval"]

    for seq, text in enumerate(("hello", "wörld"), start=1):
        wire.conn.receive(encode_frame(Tag.TEXT, 0, seq, json.dumps(text).encode()), hub.now())
        wire.conn.receive(encode_frame(Tag.PING), hub.now())
    await wire.wait_for(lambda w: len(w.texts()) >= 3)
    out["texts"] = wire.texts()
    out["pongs"] = wire.tags().count(Tag.PONG)

    # The client never answers CLOSE: only the hub's timer task can resolve close() (with 1).
    channel = CHANNELS[-1]
    started = time.monotonic()
    result = await asyncio.wait_for(channel.close(timeout=CLOSE_TIMEOUT), BOUND)
    out["close_result"] = result
    out["close_waited_enough"] = time.monotonic() - started >= CLOSE_TIMEOUT * 0.9
    wire.pull()
    out["close_frame_sent"] = Tag.CLOSE in wire.tags()
    out["registered_after_close"] = hub.channel_count

    # No more PINGs: the timer task drops the wire after the 2 s ping deadline (code 4000).
    started = time.monotonic()
    await wire.wait_for(lambda w: w.conn.close_request is not None)
    out["ping_timeout_close"] = list(wire.conn.close_request or ())
    out["ping_timeout_after_s"] = round(time.monotonic() - started, 1)
    out["conn_closed"] = wire.conn.closed
    return out
