"""1,000 clients (distinct cookies, sessions, channels, hostile names) add no series."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from telefunc.asgi import TelefuncApp
from telefunc.asgi import metrics as metrics_module
from telefunc.asgi.metrics import render
from telefunc.client import Client
from telefunc.server import observe
from testpaths import APPS_DIR

HEADERS = {"x-telefunc-request": "txt", "content-type": "text/plain"}


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    observe.reset()
    metrics_module._registry = None
    yield
    observe.reset()
    metrics_module._registry = None


def series() -> int:
    return sum(1 for line in render().decode().splitlines() if line and not line.startswith("#"))


async def clients(app: TelefuncApp, n: int, offset: int) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for i in range(offset, offset + n):
            http.cookies.set("user", f"user-{i}")
            for file, name, args in (
                ("/calc.telefunc.py", "add", [i, 1]),
                ("/calc.telefunc.py", "whoami", []),
                ("/calc.telefunc.py", "refuse", [f"reason-{i}"]),
                ("/calc.telefunc.py", "add", [f"x{i}", 1]),
                (f"/hostile-{i}.telefunc.py", f"name-{i}", []),  # not in the registry
            ):
                body = json.dumps({"file": file, "name": name, "args": args})
                await http.post("/_telefunc", content=body, headers=HEADERS)


async def channel_clients(origin: str, n: int) -> None:
    for _ in range(n):
        async with Client(origin, transports=("ws",)) as c:
            ch = await c.call("/chat.telefunc.py", "welcome")
            await ch.send("hi")
            ch.close()


async def test_series_stay_constant_with_1000_clients(live_server: Any) -> None:
    observe.enable_stats()
    app = TelefuncApp(APPS_DIR / "basic", metrics=True)
    chat = live_server(APPS_DIR / "channels")
    await clients(app, 5, 0)
    await channel_clients(chat.origin, 2)
    warm = series()
    await clients(app, 1000, 5)
    await channel_clients(chat.origin, 20)
    assert observe._stats is not None
    assert sum(observe._stats.calls.values()) == 5 * 1005 + 22  # every call was counted
    assert series() == warm
