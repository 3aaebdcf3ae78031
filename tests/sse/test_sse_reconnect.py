"""A TCP proxy cuts every connection of the official client mid-stream while both sides send,
on the SSE transport (streaming upload or batch POSTs) and in the default SSE-then-WebSocket
configuration: after the client reconnects nothing is lost or duplicated and order is kept."""

from __future__ import annotations

from typing import Any

import pytest
from sse_helpers import channels_app

from node_runner import run_node_lines
from tcp_proxy import FaultyProxy
from testpaths import IN_CI, node_available

N = 600

CASES = {
    "sse-stream": ("channel_ws_reconnect.mjs", {"TELEFUNC_TRANSPORTS": "sse"}),
    "sse-batch": (
        "sse_refuse_upload.mjs",
        {"TELEFUNC_TRANSPORTS": "sse", "TELEFUNC_SCENARIO": "channel_ws_reconnect.mjs"},
    ),
    "default-sse-ws": ("channel_ws_reconnect.mjs", {"TELEFUNC_TRANSPORTS": ""}),
}


@pytest.mark.skipif(not node_available() and not IN_CI, reason="node missing")
@pytest.mark.parametrize("case", list(CASES))
async def test_reconnect_through_a_cutting_proxy(live_server: Any, case: str) -> None:
    script, env = CASES[case]
    app = channels_app()
    server = live_server(app)
    proxy = FaultyProxy(server.port)
    await proxy.start()
    opened_before_cut: dict[str, int] = {}

    def on_line(line: dict[str, Any]) -> None:
        nonlocal opened_before_cut
        if line.get("phase") == "midway":
            opened_before_cut = dict(app.mux.opened)
        proxy.cut_at_midway(line)

    try:
        lines = await run_node_lines(script, proxy.origin, str(N), env=env, on_line=on_line)
    finally:
        await proxy.close()
    assert proxy.cuts >= 1  # the wire really was cut mid-stream...
    # ...and the client reconnected through us
    assert proxy.accepted > proxy.accepted_before_cut >= 1
    # ...opening a new channel wire on the server.
    assert sum(app.mux.opened.values()) > sum(opened_before_cut.values()) >= 1
    result = next(line for line in lines if line.get("name") == "result")
    assert result["ticks"] == list(range(N))  # server -> client: no loss, no duplicate, in order
    assert result["serverGot"] == list(range(N))  # client -> server: the same
    assert result["errors"] == []
    assert app.kinds["response"] >= 1
    if case == "sse-batch":
        assert app.kinds["request"] == 0 and app.kinds["batch"] >= 1
