"""The official telefunc@0.2.23 client through ``telefunc dev --edge`` (the emulator behind
uvicorn, the adapter on Durable Objects and KV), with the default transports and WS only: the
scenarios it passes against ``telefunc serve``. Each client picks its colo with
``TELEFUNC_COLO`` (the ``x-telefunc-colo`` header on its HTTP requests)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from node_runner import run_node_lines
from tcp_proxy import FaultyProxy
from telefunc.cloudflare import Telefunc
from telefunc.testing import Emulator
from telefunc.testing.edge_server import EdgeServer, build_emulator, zero_config_worker

APPS = Path(__file__).resolve().parents[1] / "apps"
TRANSPORTS = {"default": {}, "ws-only": {"TELEFUNC_TRANSPORTS": "ws"}}


def _cookie_context(request: Any, env: Any) -> dict[str, Any]:
    cookies = SimpleCookie(request.headers.get("cookie") or "")
    user = cookies.get("user")
    return {"user": user.value if user is not None else "anonymous"}


@asynccontextmanager
async def edge(app: Path, context: Any = None) -> AsyncIterator[tuple[str, Emulator]]:
    """``telefunc dev --edge APP`` in this process: the zero-config worker (or one with
    ``context``), regions weur/enam/apac, KV visible at once, on an ephemeral port."""
    worker = None
    if context is not None:
        worker = zero_config_worker(app)
        worker.telefunc = Telefunc(root=app, context=context)  # type: ignore[attr-defined]
        worker.TelefuncDurableObject = worker.telefunc.TelefuncDurableObject  # type: ignore[attr-defined]
        original = worker.Default

        class Default(original):  # type: ignore[misc,valid-type]
            async def fetch(self, request: Any) -> Any:
                response = await worker.telefunc.serve(  # type: ignore[attr-defined]
                    request=request, env=self.env, ctx=self.ctx
                )
                return response if response is not None else await super().fetch(request)

        worker.Default = Default  # type: ignore[attr-defined]
    emu, _ = build_emulator(app, ["weur", "enam", "apac"], 0.0, worker)
    server = EdgeServer(emu, "127.0.0.1", 0)
    port = await server.start()
    try:
        yield f"http://127.0.0.1:{port}", emu
    finally:
        await server.stop()
        emu.close()


def _shards(emu: Emulator) -> set[str]:
    return {str(h.id.name) for h in emu.hosts() if "-shard-" in str(h.id.name)}


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_calls_aborts_and_errors(run_node: Callable[..., Any], transports: str) -> None:
    async with edge(APPS / "basic", _cookie_context) as (origin, emu):
        env = {**TRANSPORTS[transports], "TELEFUNC_COLO": "NRT"}
        lines = await asyncio.to_thread(run_node, "rpc_basic.mjs", origin, env=env)
        results = {line["name"]: line for line in lines}
        assert results["sum"]["value"] == 5
        assert results["abort"]["error"]["isAbort"] is True
        assert results["abort"]["error"]["abortValue"] == {"reason": "nope"}
        assert "Internal Server Error" in results["bug"]["error"]["message"]
        assert "out of sync" in results["unknown"]["error"]["message"]
        assert results["shield"]["error"]["isShieldValidationError"] is True
        assert results["context"]["value"] == "anonymous"
        assert results["echo"]["ok"] is True, results["echo"]
        assert _shards(emu) == {"telefunc-shard-apac-0"}  # every call on the NRT client's object


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_channel_echo_acks_binary_abort(
    run_node: Callable[..., Any], transports: str
) -> None:
    async with edge(APPS / "channels") as (origin, emu):
        env = {**TRANSPORTS[transports], "TELEFUNC_COLO": "IAD"}
        lines = await asyncio.to_thread(run_node, "channel_ws_basic.mjs", origin, env=env)
        results = {line["name"]: line for line in lines}
        assert results["echo"]["welcome"] == {"welcome": True}
        assert results["echo"]["count"] == 1000 and results["echo"]["inOrder"] is True
        assert results["ack"]["ack"] == 42
        assert results["binary"]["same"] is True
        assert results["abort"]["error"]["isAbort"] is True
        assert _shards(emu) == {"telefunc-shard-enam-0"}
        assert emu.errors == []


async def test_reconnect_through_a_cutting_proxy() -> None:
    n = 400
    async with edge(APPS / "channels") as (origin, emu):
        port = int(origin.rsplit(":", 1)[1])
        proxy = FaultyProxy(port)
        await proxy.start()
        try:
            lines = await run_node_lines(
                "channel_ws_reconnect.mjs",
                proxy.origin,
                str(n),
                env={"TELEFUNC_TRANSPORTS": "ws", "TELEFUNC_COLO": "LHR"},
                on_line=proxy.cut_at_midway,
            )
        finally:
            await proxy.close()
        assert proxy.cuts >= 1 and proxy.accepted > proxy.accepted_before_cut >= 1
        result = next(line for line in lines if line.get("name") == "result")
        assert result["ticks"] == list(range(n))
        assert result["serverGot"] == list(range(n))
        assert result["errors"] == []
        assert _shards(emu) == {"telefunc-shard-weur-0"}  # the reconnect found the same object


@pytest.mark.parametrize("transports", TRANSPORTS)
async def test_broadcast_between_clients_in_two_colos(
    run_node: Callable[..., Any], transports: str
) -> None:
    key = f"room-{uuid.uuid4()}"
    per_client, server_count = 60, 40
    total = 2 * per_client + server_count
    async with edge(APPS / "broadcast") as (origin, emu):

        def node(who: str, colo: str, lead: bool) -> dict[str, Any]:
            lines = run_node(
                "broadcast_pubsub.mjs",
                origin,
                key,
                who,
                str(per_client),
                "2",
                "1" if lead else "0",
                str(server_count),
                str(total),
                env={**TRANSPORTS[transports], "TELEFUNC_COLO": colo},
                timeout=120,
            )
            result: dict[str, Any] = next(line for line in lines if line.get("name") == "result")
            return result

        a, b = await asyncio.gather(
            asyncio.to_thread(node, "a", "LHR", True), asyncio.to_thread(node, "b", "NRT", False)
        )
        assert len(a["received"]) == total and a["received"] == b["received"]
        seqs = [entry[0] for entry in a["received"]]
        assert seqs == sorted(set(seqs))
        shards = _shards(emu)
        assert any("-weur-" in s for s in shards) and any("-apac-" in s for s in shards)
        names = {str(h.id.name) for h in emu.hosts()}
        assert {"telefunc:broadcast:weur:0", "telefunc:broadcast:apac:0"} <= names


async def test_streamed_generator(run_node: Callable[..., Any]) -> None:
    from streaming._stream_values import check_stream_values  # type: ignore[import-not-found]

    async with edge(APPS / "streaming") as (origin, _emu):
        lines = await asyncio.to_thread(
            run_node, "stream_values.mjs", origin, env={"TELEFUNC_COLO": "SIN"}
        )
        results = {line["name"]: line for line in lines}
        for name, line in results.items():
            assert line["ok"], (name, line)
        check_stream_values(results)
