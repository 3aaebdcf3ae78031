"""Channels of the official npm client through the adapter in real workerd: over the object's
hibernatable WebSockets and over SSE, a reconnect through a cutting proxy, and two clients in
one BroadcastChannel room."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

from channel_interop import check_basic_channel_scenario
from node_runner import run_node_lines
from tcp_proxy import FaultyProxy


@pytest.mark.parametrize("transports", ["ws", "sse"])
def test_channel_with_acks(origin: str, run_node: Any, transports: str) -> None:
    lines = run_node("channel_ws_basic.mjs", origin, env={"TELEFUNC_TRANSPORTS": transports})
    check_basic_channel_scenario({line["name"]: line for line in lines})


async def test_reconnect_through_a_cutting_proxy(origin: str) -> None:
    n = 300
    proxy = FaultyProxy(int(urlsplit(origin).port or 80))
    await proxy.start()
    try:
        lines = await run_node_lines(
            "channel_ws_reconnect.mjs",
            proxy.origin,
            str(n),
            env={"TELEFUNC_TRANSPORTS": "ws"},
            on_line=proxy.cut_at_midway,
            timeout=120,
        )
    finally:
        await proxy.close()
    assert proxy.cuts >= 1 and proxy.accepted > proxy.accepted_before_cut >= 1
    result = next(line for line in lines if line.get("name") == "result")
    assert result["ticks"] == list(range(n))
    assert result["serverGot"] == list(range(n))
    assert result["errors"] == []


def test_two_clients_in_one_broadcast_room(origin: str, run_node: Any) -> None:
    key = f"room-{uuid.uuid4()}"
    per_client, server_count = 20, 20
    total = 2 * per_client + server_count

    def node(who: str, lead: bool) -> dict[str, Any]:
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
            env={"TELEFUNC_TRANSPORTS": "ws"},
            timeout=120,
        )
        result: dict[str, Any] = next(line for line in lines if line.get("name") == "result")
        return result

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(node, "a", True), pool.submit(node, "b", False)]
        a, b = (f.result() for f in futures)
    assert len(a["received"]) == total
    assert a["received"] == b["received"]
    got = {(who, i) for _, who, i, _ in a["received"]}
    expected = {(w, i) for w in ("a", "b") for i in range(per_client)}
    expected |= {("server", i) for i in range(server_count)}
    assert got == expected
