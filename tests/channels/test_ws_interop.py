"""The official telefunc@0.2.23 client (Node 20, WebSocket transport) against our channels."""

from __future__ import annotations

from typing import Any

from channel_interop import check_basic_channel_scenario
from testpaths import APPS_DIR

WS = {"TELEFUNC_TRANSPORTS": "ws"}


def test_official_client_channels_over_websocket(live_server: Any, run_node: Any) -> None:
    server = live_server(APPS_DIR / "channels")
    results = {
        line["name"]: line for line in run_node("channel_ws_basic.mjs", server.origin, env=WS)
    }
    check_basic_channel_scenario(results)
