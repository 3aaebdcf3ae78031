"""The expected results of js/interop/channel_ws_basic.mjs, the official client's channel
scenarios, shared by the WebSocket and SSE transport tests (import as ``channel_interop``;
tests/ is on ``sys.path`` through the rootdir conftest)."""

from __future__ import annotations

from typing import Any

__all__ = ["check_basic_channel_scenario"]


def check_basic_channel_scenario(results: dict[str, dict[str, Any]]) -> None:
    """Assert what channel_ws_basic.mjs printed (its lines by ``name``), whatever the transport:
    echo in order, acks both ways, a binary message, aborts, server and client closes."""
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
