"""Cross-site protection in the Cloudflare adapter (emulator): the worker's ``serve`` refuses a
foreign ``Origin`` with 403 before KV or any Durable Object is touched, for calls, SSE and
WebSocket upgrades, with or without the bindings; the Durable Object checks again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from telefunc import config, get_context
from telefunc.server.registry import Registry

URL = "https://app.test/_telefunc"
EVIL = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
TRANSFER = json.dumps({"file": "/bank.telefunc.py", "name": "transfer", "args": [5]})


@pytest.fixture
def transfers() -> Iterator[list[Any]]:
    saved = config.allowed_origins
    yield []
    config.allowed_origins = saved


def bank(transfers: list[Any]) -> Registry:
    async def transfer(amount: int) -> str:
        transfers.append((get_context().get("shard"), amount))
        return "done"

    registry = Registry()
    registry.add("/bank.telefunc.py", transfer)
    return registry


@pytest.mark.parametrize("bindings", [True, False])
@pytest.mark.parametrize(
    "headers",
    [EVIL, {"origin": "null"}, {"sec-fetch-site": "cross-site"}, {"origin": "http://app.test"}],
)
async def test_a_cross_site_call_is_refused_before_anything_runs(
    make_edge: Any, transfers: list[Any], bindings: bool, headers: dict[str, str]
) -> None:
    edge = make_edge(bindings=bindings, registry=bank(transfers))
    before = edge.emu.counters.snapshot()
    resp = await edge.emu.fetch(
        URL, method="POST", headers={"content-type": "text/plain", **headers}, body=TRANSFER
    )
    assert resp.status == 403
    assert "cross-site" in await resp.text()
    assert transfers == []
    assert edge.emu.counters.diff(before) == {"requests": 1}  # no KV read, no object reached


async def test_same_origin_allowed_and_originless_calls_run(
    make_edge: Any, transfers: list[Any]
) -> None:
    edge = make_edge(registry=bank(transfers))
    config.allowed_origins = ["http://localhost:5173"]
    for headers in ({"origin": "https://app.test"}, {"origin": "http://localhost:5173"}, {}):
        resp = await edge.emu.fetch(
            URL, method="POST", headers={"content-type": "text/plain", **headers}, body=TRANSFER
        )
        assert (resp.status, await resp.text()) == (200, '{"ret":"done"}')
    assert len(transfers) == 3


async def test_websocket_upgrade_and_sse_from_a_foreign_origin_get_403(
    make_edge: Any, transfers: list[Any]
) -> None:
    edge = make_edge()
    upgrade = {"upgrade": "websocket"}
    refused = await edge.emu.fetch(URL, headers={**upgrade, **EVIL})
    assert refused.status == 403 and refused.webSocket is None
    sse = await edge.emu.fetch(
        URL + "?_telefunc=sse",
        method="POST",
        headers={"x-telefunc-request": "sse", **EVIL},
        body=b"\x00\x00\x00\x02{}",
    )
    assert sse.status == 403
    assert edge.emu.hosts() == []  # no Durable Object was ever created
    accepted = await edge.emu.fetch(URL, headers={**upgrade, "origin": "https://app.test"})
    assert accepted.status == 101 and accepted.webSocket is not None


async def test_the_durable_object_refuses_a_foreign_origin_on_its_own(
    make_edge: Any, transfers: list[Any]
) -> None:
    # A worker that forwards to the object itself, without Telefunc.serve in front.
    edge = make_edge(registry=bank(transfers))
    namespace = edge.emu.namespace("TelefuncDurableObject")
    stub = namespace.get(namespace.idFromName("telefunc-shard-weur-0"))
    request = edge.emu.make_request(
        URL, method="POST", headers={"content-type": "text/plain", **EVIL}, body=TRANSFER
    )
    resp = await stub.fetch(request)
    assert resp.status == 403 and transfers == []
