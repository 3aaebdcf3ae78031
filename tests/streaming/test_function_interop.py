"""Functions across the wire (returned and passed as arguments) and client byte-stream
arguments, with the official telefunc@0.2.23 client (js/interop/function_values.mjs)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parent.parent / "apps" / "streaming"


def test_official_client_functions_and_stream_arguments(live_server: Any, run_node: Any) -> None:
    server = live_server(APP)
    lines = run_node("function_values.mjs", server.origin)
    results = {line["name"]: line for line in lines}
    for name, line in results.items():
        assert line["ok"], (name, line)

    # A returned stateful function: the closure's state survives across calls.
    assert results["counter"]["value"] == {
        "label": "counter",
        "values": [11, 16, 14],
        "peek": 14,
        "isFunction": True,
    }
    # A function argument: the server calls the client's function for each item, in order.
    assert results["map_with"]["value"] == {"result": [10, 20, 30], "seen": [1, 2, 3]}
    assert results["call_after_close"]["value"] == {
        "first": 101,
        "after_close": "ChannelClosedError",
    }

    shield = results["shield"]["value"]
    assert shield["good"] == {"ok": True, "value": 42}
    assert shield["bad"]["ok"] is False
    assert shield["bad"]["error"]["isShieldValidationError"] is True

    aborted = results["abort_fn"]["value"]
    assert aborted["ok"] is False
    assert aborted["error"]["isAbort"] is True
    assert aborted["error"]["abortValue"] == {"why": "because"}

    # on_close waits for the returned function's channel, long after the HTTP call ended.
    watched = results["on_close_after_fn"]["value"]
    assert watched["pinged"] == 2
    assert watched["before"] == ["ping 1"]
    assert watched["after"] == ["ping 1", "on_close"]

    mapped = results["map_watched"]["value"]
    assert mapped["total"] == 14
    assert mapped["events"] == ["returned", "on_close"]

    assert results["upload_text"]["value"] == "got: hello stream"
    small = results["upload_digest_small"]["value"]
    data = bytes(i % 251 for i in range(300000))
    assert small["sha256"] == hashlib.sha256(data).hexdigest()
    assert small["server"] == {"total": 300000, "chunks": 43, "sha256": small["sha256"]}
