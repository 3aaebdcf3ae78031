"""A TCP proxy cuts the official client's WebSocket mid-stream while both sides send: after the
client reconnects, nothing is lost, nothing duplicated, order is kept."""

from __future__ import annotations

from typing import Any

import pytest

from node_runner import run_node_lines
from tcp_proxy import FaultyProxy
from testpaths import APPS_DIR, IN_CI, node_available

N = 600


@pytest.mark.skipif(not node_available() and not IN_CI, reason="node missing")
async def test_reconnect_through_a_cutting_proxy(live_server: Any) -> None:
    server = live_server(APPS_DIR / "channels")
    proxy = FaultyProxy(server.port)
    await proxy.start()
    try:
        lines = await run_node_lines(
            "channel_ws_reconnect.mjs",
            proxy.origin,
            str(N),
            env={"TELEFUNC_TRANSPORTS": "ws"},
            on_line=proxy.cut_at_midway,
        )
    finally:
        await proxy.close()
    assert proxy.cuts >= 1  # the WebSocket really was cut mid-stream...
    # ...and the client reconnected through us
    assert proxy.accepted > proxy.accepted_before_cut >= 1
    result = next(line for line in lines if line.get("name") == "result")
    assert result["ticks"] == list(range(N))  # server -> client: no loss, no duplicate, in order
    assert result["serverGot"] == list(range(N))  # client -> server: the same
    assert result["errors"] == []
