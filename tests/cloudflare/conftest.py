"""Fixtures of the Cloudflare adapter tests: the emulator on a fake clock with the adapter's worker.

``make_edge(**options)`` builds an emulator (colos in weur, enam, apac plus two colos only the
continent fallback can place) running a worker around ``telefunc.cloudflare.Telefunc(**options)``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from telefunc.testing import Emulator, FakeClock, WebSocketClient, install
from telefunc.testing.startup import worker_startup
from telefunc.wire.frames import Frame, Tag, decode_frame, encode_frame, encode_json

install()  # `workers`, `js`, `pyodide.ffi` stand-ins: the adapter imports them lazily

from workers import WorkerEntrypoint  # type: ignore[import-not-found]  # noqa: E402

from telefunc.cloudflare import Telefunc  # noqa: E402

APP = Path(__file__).resolve().parent / "app"

COLOS: dict[str, tuple[str, str | None, str | None]] = {
    "LHR": ("weur", "GB", "EU"),
    "IAD": ("enam", "US", "NA"),
    "NRT": ("apac", "JP", "AS"),
    "SJC": ("wnam", "US", "NA"),
    "SYD": ("oc", "AU", "OC"),
    "WAW": ("eeur", "PL", "EU"),
    # Not in the colo table: placed by continent (Africa -> weur, Asia -> apac) or the fallback.
    "ZZA": ("weur", "NG", "AF"),
    "ZZB": ("apac", "IN", "AS"),
    "ZZC": ("weur", None, None),
}


def shard_context(request: Any, env: Any) -> dict[str, Any]:
    """The context of the test app: which object and region ran the call."""
    return {
        "shard": request.headers.get("x-telefunc-shard"),
        "region": request.headers.get("x-telefunc-broadcast-bucket"),
    }


class Edge:
    """An emulator running the adapter, plus the adapter itself and client-side helpers."""

    def __init__(self, emu: Emulator, telefunc: Telefunc, wait_until: list[Any]) -> None:
        self.emu = emu
        self.telefunc = telefunc
        #: Every awaitable the worker handed to ``ctx.waitUntil``.
        self.wait_until = wait_until

    @property
    def clock(self) -> FakeClock:
        clock = self.emu.clock
        assert isinstance(clock, FakeClock)
        return clock

    async def call(
        self,
        name: str,
        args: list[Any] | None = None,
        *,
        colo: str = "LHR",
        token: str | None = None,
        query_token: bool = False,
    ) -> tuple[int, str | None, Any]:
        """POST one call of ``/cf.telefunc.py``; ``(status, x-telefunc-session, body JSON)``."""
        url = "https://app.test/_telefunc"
        headers = {"content-type": "text/plain"}
        if token is not None:
            if query_token:
                url += f"?session={token}"
            else:
                headers["x-telefunc-session"] = token
        body = json.dumps({"file": "/cf.telefunc.py", "name": name, "args": args or []})
        resp = await self.emu.fetch(url, colo=colo, method="POST", headers=headers, body=body)
        text = await resp.text()
        return resp.status, resp.headers.get("x-telefunc-session"), json.loads(text)

    async def connect(self, *, colo: str, token: str | None) -> ChannelClient:
        """Open a channel WebSocket for session ``token`` at ``colo``."""
        return await ChannelClient.connect(self, colo=colo, token=token)

    async def open_channel(self, *, colo: str = "LHR", token: str | None = None) -> Any:
        """Call ``echo`` and attach its channel over a WebSocket: a :class:`ChannelClient`."""
        status, token, body = await self.call("echo", colo=colo, token=token)
        assert status == 200, body
        channel_id = json.loads(body["ret"][len(PLACEHOLDER) :])["channelId"]
        client = await ChannelClient.connect(self, colo=colo, token=token)
        await client.reconcile([{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}])
        client.channel_id = channel_id
        return client


PLACEHOLDER = "!TelefuncChannel:"


class ChannelClient:
    """A minimal channel client over the emulator's WebSocketPair (what the JS client does)."""

    def __init__(self, edge: Edge, ws: WebSocketClient, token: str | None) -> None:
        self.edge = edge
        self.ws = ws
        self.token = token
        self.session_id: str | None = None
        self.channel_id = ""
        self.seq = 0
        self.received: list[Frame] = []

    @classmethod
    async def connect(cls, edge: Edge, *, colo: str, token: str | None) -> ChannelClient:
        headers = {"upgrade": "websocket"}
        if token is not None:
            headers["x-telefunc-session"] = token
        resp = await edge.emu.fetch("https://app.test/_telefunc", colo=colo, headers=headers)
        assert resp.status == 101, resp.status
        assert resp.webSocket is not None
        return cls(edge, WebSocketClient(resp.webSocket), token)

    async def next_frame(self, tag: int | None = None) -> Frame:
        """The next frame (of ``tag``), skipping BDP pings and windows."""
        while True:
            data = await self.ws.receive()
            assert isinstance(data, bytes)
            frame = decode_frame(data)
            self.received.append(frame)
            if tag is None or frame.tag == tag:
                return frame

    async def reconcile(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Send RECONCILE (with the current session id); the RECONCILED payload."""
        payload: dict[str, Any] = {"open": entries}
        if self.session_id is not None:
            payload["sessionId"] = self.session_id
        self.ws.send(encode_json(Tag.RECONCILE, payload))
        reconciled = (await self.next_frame(Tag.RECONCILED)).json()
        self.session_id = reconciled["sessionId"]
        result: dict[str, Any] = reconciled
        return result

    def ping(self) -> None:
        """A heartbeat PING."""
        self.ws.send(encode_frame(Tag.PING))

    async def echo(self, value: Any) -> Any:
        """Send ``value`` on channel 0 and return the next text message."""
        self.seq += 1
        self.ws.send(encode_frame(Tag.TEXT, 0, self.seq, json.dumps(value).encode()))
        return json.loads((await self.next_frame(Tag.TEXT)).payload)


class _RecordingContext:
    """Wraps ``ctx`` to record what the worker hands to ``waitUntil``."""

    def __init__(self, ctx: Any, log: list[Any]) -> None:
        self._ctx = ctx
        self._log = log

    def waitUntil(self, aw: Any) -> None:
        # As strict as the runtime: a Promise-like (here an asyncio Future), never a coroutine.
        if not isinstance(aw, asyncio.Future):
            raise TypeError(f"waitUntil: not a Promise: {type(aw).__name__}")
        self._log.append(aw)
        self._ctx.waitUntil(aw)


def make_worker(telefunc: Telefunc, log: list[Any] | None = None) -> type[Any]:
    """A ``Default`` entrypoint around ``telefunc.serve`` (``waitUntil`` calls go to ``log``)."""

    class Default(WorkerEntrypoint):
        async def fetch(self, request: Any) -> Any:
            from workers import Response

            ctx = self.ctx if log is None else _RecordingContext(self.ctx, log)
            response = await telefunc.serve(request=request, env=self.env, ctx=ctx)
            return response if response is not None else Response("Not found", status=404)

    return Default


@pytest.fixture
async def make_edge() -> AsyncIterator[Callable[..., Edge]]:
    """Factory ``make_edge(bindings=True, kv_delay=2.0, **telefunc_options) -> Edge``."""
    made: list[Emulator] = []

    def make(*, bindings: bool = True, kv_delay: float = 2.0, **options: Any) -> Edge:
        options.setdefault("context", shard_context)
        options.setdefault("root", APP)
        with worker_startup():  # what a worker module does at its top level, under its rules
            telefunc = Telefunc(**options)
            object_class = telefunc.TelefuncDurableObject
        emu = Emulator(clock=FakeClock(), colos=COLOS, kv_delay=kv_delay)
        if bindings:
            emu.durable_object(
                options.get("binding_name", "TelefuncDurableObject"),
                object_class,
            )
            emu.kv(options.get("kv_binding_name", "TelefuncKV"))
        log: list[Any] = []
        emu.set_worker(make_worker(telefunc, log))
        made.append(emu)
        return Edge(emu, telefunc, log)

    yield make
    for emu in made:
        emu.close()
