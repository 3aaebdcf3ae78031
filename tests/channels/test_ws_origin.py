"""Cross-site protection of the channel WebSocket: a foreign ``Origin`` is refused with 403 during
the handshake (before accept, so no connection is opened); same-origin, allowed and Origin-less
upgrades are accepted. Real uvicorn, the ``websockets`` client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from telefunc import config
from telefunc.asgi import TelefuncApp
from telefunc.wire.frames import Tag, decode_frame, encode_json
from testpaths import APPS_DIR


class CountingApp:
    """The channels test app, counting the WebSocket handshakes it accepts."""

    def __init__(self) -> None:
        self.app = TelefuncApp(APPS_DIR / "channels")
        self.opened = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.accept":
                self.opened += 1
            await send(message)

        await self.app(scope, receive, counting_send)


@pytest.fixture
def server(live_server: Any) -> Iterator[tuple[CountingApp, Any]]:
    saved = config.allowed_origins
    app = CountingApp()
    yield app, live_server(app)
    config.allowed_origins = saved


async def reconciled(ws: Any) -> None:
    await ws.send(encode_json(Tag.RECONCILE, {"open": []}))
    frame = decode_frame(await asyncio.wait_for(ws.recv(), 10))
    assert frame.tag == Tag.RECONCILED


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
    ],
)
async def test_a_foreign_upgrade_is_refused_with_403(
    server: tuple[CountingApp, Any], headers: dict[str, str]
) -> None:
    app, live = server
    url = f"ws://127.0.0.1:{live.port}/_telefunc"
    origin = headers.pop("origin", None)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            url,
            origin=origin,  # type: ignore[arg-type]
            additional_headers=headers,
            open_timeout=10,
        ):
            pass
    assert refused.value.response.status_code == 403
    assert app.opened == 0


async def test_same_origin_allowed_and_originless_upgrades_are_accepted(
    server: tuple[CountingApp, Any],
) -> None:
    app, live = server
    url = f"ws://127.0.0.1:{live.port}/_telefunc"
    config.allowed_origins = ["http://localhost:5173"]
    for origin in (live.origin, "http://localhost:5173", None):
        async with websockets.connect(url, origin=origin, open_timeout=10) as ws:  # type: ignore[arg-type]
            await reconciled(ws)
    assert app.opened == 3
