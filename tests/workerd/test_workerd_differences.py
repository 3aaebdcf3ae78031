"""The same probe worker (probe/worker.py) on real workerd and on the emulator: what Python sees
of KV, Durable Object storage, SQL rows, headers and hibernatable WebSockets, and input gates.

Expected values are workerd's. Where the emulator differs, its case is a strict xfail naming the
difference (README, "Cloudflare: real workerd and the emulator"): it turns into a failure, to be
unmarked, the day the emulator matches.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from telefunc.testing.edge_server import EdgeServer, build_emulator

PROBE = Path(__file__).resolve().parent / "probe"


async def _websocket_probe(url: str) -> dict[str, Any]:
    """Text and binary echo (the type the object saw), then the object's close code."""
    async with websockets.connect(url) as ws:
        await ws.send("text")
        text_type = await ws.recv()
        await ws.send(b"bytes")
        binary_type = await ws.recv()
        await ws.send("close")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    frame = closed.value.rcvd
    return {
        "ws_text": text_type,
        "ws_binary": binary_type,
        "ws_close": [frame.code, frame.reason] if frame else None,
    }


def _probe(origin: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.get(origin + "/")
        assert r.status_code == 200, r.text
        report: dict[str, Any] = r.json()
        report.update(report.pop("object"))
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.get(origin + "/gates")
        assert r.status_code == 200, r.text
        report.update(r.json())
        report.update(await _websocket_probe(origin.replace("http", "ws", 1) + "/"))
        return report

    return asyncio.run(run())


@pytest.fixture(scope="module")
def on_workerd(origin: str) -> dict[str, Any]:
    # The tier's worker serves the probe under /probe (tests/workerd/app/worker.py).
    return _probe(origin + "/probe")


@pytest.fixture(scope="module")
def on_emulator() -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        emu, _ = build_emulator(PROBE, ["enam"], kv_delay=0.0)
        server = EdgeServer(emu, "127.0.0.1", 0)
        port = await server.start()
        try:
            return await asyncio.to_thread(_probe, f"http://127.0.0.1:{port}")
        finally:
            await server.stop()
            emu.close()

    return asyncio.run(run())


SAME = {
    "var": "hi",  # wrangler.jsonc "vars"
    "kv_roundtrip": "v",
    "kv_short_ttl": "JsException",  # expirationTtl < 60 s is refused by the runtime
    "header_missing": "None",  # Headers.get -> None through the workers SDK
    "id_name": "probe-a",
    "storage_missing": "None",  # undefined -> None
    "storage_int": 41,
    "storage_str": "text",
    # 20 concurrent RPC read-modify-writes: exact when only storage I/O sits between read and
    # write (input gate), all lost but one when a KV read does.
    "gated": list(range(1, 21)),
    "raced_final": 1,
    "ws_text": "str",
    "ws_close": [4001, "probe done"],
}

DIFFERENT = {
    # KV.get of a missing key is JS null: pyodide.ffi.jsnull, not None.
    "kv_missing": ("JsNull", "the emulator's KV.get returns None for a missing key"),
    # A SQL row is a JS object: attribute access works, subscripting raises TypeError.
    "sql_row_attribute": (2, "the emulator's SQL rows are dicts (no attribute access)"),
    "sql_row_item": ("raised TypeError", "the emulator's SQL rows are dicts (subscriptable)"),
    # A binary WebSocket message reaches webSocketMessage as an ArrayBuffer proxy.
    "ws_binary": ("JsProxy", "the emulator hands binary WebSocket messages over as bytes"),
}


def _report(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    report: dict[str, Any] = request.getfixturevalue(f"on_{backend}")
    return report


@pytest.mark.parametrize("backend", ["workerd", "emulator"])
@pytest.mark.parametrize("key", sorted(SAME))
def test_same_on_both(backend: str, key: str, request: pytest.FixtureRequest) -> None:
    assert _report(backend, request)[key] == SAME[key]


def test_kv_same_key_write_rate_deliberately_differs(
    on_workerd: dict[str, Any], on_emulator: dict[str, Any]
) -> None:
    """Production allows one write per second per key; the emulator enforces it (429), local
    workerd's KV does not. The emulator keeps production's limit on purpose."""
    assert on_workerd["kv_rewrite"] == "accepted"
    assert "429" in on_emulator["kv_rewrite"]


@pytest.mark.parametrize("key", sorted(DIFFERENT))
def test_workerd_value(key: str, on_workerd: dict[str, Any]) -> None:
    assert on_workerd[key] == DIFFERENT[key][0]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=r))
        for k, (_, r) in DIFFERENT.items()
    ],
)
def test_emulator_matches_workerd(key: str, on_emulator: dict[str, Any]) -> None:
    assert on_emulator[key] == DIFFERENT[key][0]
