"""The official telefunc@0.2.23 client (Node 20, WebSocket transport) against our channels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

APPS = Path(__file__).resolve().parents[1] / "apps"
WS = {"TELEFUNC_TRANSPORTS": "ws"}


def test_official_client_channels_over_websocket(live_server: Any, run_node: Any) -> None:
    server = live_server(APPS / "channels")
    results = {
        line["name"]: line for line in run_node("channel_ws_basic.mjs", server.origin, env=WS)
    }

    echo = results["echo"]
    assert echo["welcome"] == {"welcome": True}
    assert echo["count"] == 1000 and echo["inOrder"] is True
    assert results["client_close"]["result"] == 0

    ack = results["ack"]
    assert ack["ack"] == 42
    assert ack["noAck"] == "undefined"
    assert ack["fromServer"] == {"client_answered": "client-answer"}

    assert results["binary"] == {"name": "binary", "size": 1024 * 1024, "same": True}

    abort = results["abort"]
    assert abort["error"]["isAbort"] is True
    assert abort["error"]["abortValue"] == {"reason": "bye", "n": 7}
    assert abort["isClosed"] is True

    assert results["server_close"]["clientError"] is None
    assert results["listener_abort"]["ok"] is False
    assert results["listener_abort"]["error"]["isAbort"] is True
    assert results["listener_abort"]["error"]["abortValue"] == {"refused": "x"}

    report = results["report"]["report"]
    assert report["server_close_result"] == 0
    assert report["closer_on_close"] == "None"
