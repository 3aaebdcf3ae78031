"""A TCP proxy cuts every connection of the official client mid-stream while both sides send,
on the SSE transport (streaming upload or batch POSTs) and in the default SSE-then-WebSocket
configuration: after the client reconnects nothing is lost or duplicated and order is kept."""

from __future__ import annotations

from typing import Any

import pytest
from sse_helpers import IN_CI, CuttingProxy, channels_app, node_available, run_node_lines

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
    proxy = CuttingProxy(server.port)
    await proxy.start()
    accepted_before_cut = -1
    opened_before_cut: dict[str, int] = {}

    def on_line(line: dict[str, Any]) -> None:
        nonlocal accepted_before_cut, opened_before_cut
        if line.get("phase") == "midway":
            accepted_before_cut = proxy.accepted
            opened_before_cut = dict(app.mux.opened)
            proxy.cut()

    try:
        lines = await run_node_lines(
            script, f"http://127.0.0.1:{proxy.port}", str(N), env=env, on_line=on_line
        )
    finally:
        await proxy.close()
    assert proxy.cuts >= 1  # the wire really was cut mid-stream...
    assert proxy.accepted > accepted_before_cut >= 1  # ...and the client reconnected through us
    # ...opening a new channel wire on the server.
    assert sum(app.mux.opened.values()) > sum(opened_before_cut.values()) >= 1
    result = next(line for line in lines if line.get("name") == "result")
    assert result["ticks"] == list(range(N))  # server -> client: no loss, no duplicate, in order
    assert result["serverGot"] == list(range(N))  # client -> server: the same
    assert result["errors"] == []
    assert app.kinds["response"] >= 1
    if case == "sse-batch":
        assert app.kinds["request"] == 0 and app.kinds["batch"] >= 1
