"""The official telefunc@0.2.23 client on the SSE duplex transport: every channel scenario of the
WebSocket tests, with the client on ``['sse']``, in its default ``['sse','ws']`` (SSE, then the
upgrade to WebSocket), and with its streaming upload refused (batch POSTs)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sse_helpers import channels_app, refusing_stream_requests

from channel_interop import check_basic_channel_scenario
from telefunc import config


def by_name(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["name"]: line for line in lines if "name" in line}


def test_client_on_sse_only(live_server: Any, run_node: Any) -> None:
    app = channels_app()
    server = live_server(app)
    lines = run_node("channel_ws_basic.mjs", server.origin, env={"TELEFUNC_TRANSPORTS": "sse"})
    check_basic_channel_scenario(by_name(lines))
    assert app.mux.opened.get("sse", 0) >= 1
    assert app.mux.opened.get("ws", 0) == 0 and app.mux.upgrades == 0
    # Streaming upload in use: one stream-request per stream-response, no batch POST at all.
    assert app.kinds["response"] >= 1 and app.kinds["request"] == app.kinds["response"]
    assert app.kinds["batch"] == 0
    assert app.statuses[("response", 200)] == app.kinds["response"]


def test_client_in_its_default_configuration_upgrades(live_server: Any, run_node: Any) -> None:
    app = channels_app()
    server = live_server(app)
    # No TELEFUNC_TRANSPORTS: the client keeps its default ['sse', 'ws'].
    lines = run_node("channel_ws_basic.mjs", server.origin, env={"TELEFUNC_TRANSPORTS": ""})
    check_basic_channel_scenario(by_name(lines))
    assert app.kinds["response"] >= 1  # it started on SSE...
    assert app.mux.opened.get("ws", 0) >= 1 and app.mux.upgrades >= 1  # ...and upgraded


def test_client_with_explicit_sse_ws_upgrades(live_server: Any, run_node: Any) -> None:
    app = channels_app()
    server = live_server(app)
    lines = run_node("channel_ws_basic.mjs", server.origin, env={"TELEFUNC_TRANSPORTS": "sse,ws"})
    check_basic_channel_scenario(by_name(lines))
    assert app.kinds["response"] >= 1 and app.mux.upgrades >= 1


def test_upload_stream_refused_by_the_client_runtime_falls_back_to_batches(
    live_server: Any, run_node: Any
) -> None:
    app = channels_app()
    server = live_server(app)
    env = {"TELEFUNC_TRANSPORTS": "sse", "TELEFUNC_SCENARIO": "channel_ws_basic.mjs"}
    lines = run_node("sse_refuse_upload.mjs", server.origin, env=env)
    check_basic_channel_scenario(by_name(lines))
    assert app.kinds["request"] == 0  # no streaming upload ever reached us
    assert app.kinds["batch"] >= 10 and app.statuses[("batch", 200)] == app.kinds["batch"]


def test_upload_stream_refused_by_the_server_falls_back_to_batches(
    live_server: Any, run_node: Any
) -> None:
    app = channels_app(refusing_stream_requests())
    server = live_server(app)
    lines = run_node("channel_ws_basic.mjs", server.origin, env={"TELEFUNC_TRANSPORTS": "sse"})
    check_basic_channel_scenario(by_name(lines))
    assert app.statuses[("request", 400)] >= 1  # the client tried, was refused...
    assert app.kinds["batch"] >= 10  # ...and used batch POSTs from then on


def runs(seq: list[str]) -> list[tuple[str, int]]:
    return [(k, len(list(g))) for k, g in itertools.groupby(seq)]


@pytest.mark.parametrize("upload", ["stream", "batch"])
def test_upgrade_while_messages_flow_both_ways(
    live_server: Any, run_node: Any, upload: str
) -> None:
    n = 400
    app = channels_app()
    server = live_server(app)
    if upload == "stream":
        lines = run_node("sse_upgrade.mjs", server.origin, str(n), env={"TELEFUNC_TRANSPORTS": ""})
    else:
        env = {"TELEFUNC_TRANSPORTS": "", "TELEFUNC_SCENARIO": "sse_upgrade.mjs"}
        lines = run_node("sse_refuse_upload.mjs", server.origin, str(n), env=env)
        assert app.kinds["request"] == 0 and app.kinds["batch"] >= 1
    result = by_name(lines)["result"]
    report = result["report"]
    assert result["errors"] == []
    assert result["ticks"] == list(range(n))  # server -> client: none lost or duplicated, in order
    assert report["received"] == list(range(n))  # client -> server: the same
    # The channel started on SSE and moved to the WebSocket once, with messages in flight both
    # ways on each side of the switch.
    for key in ("receivedOn", "sentOn"):
        assert [t for t, _ in runs(report[key])] == ["sse", "ws"], runs(report[key])
    assert app.mux.upgrades == 1 and app.mux.opened.get("ws", 0) == 1


def test_server_without_ws_is_not_upgraded(
    live_server: Any, run_node: Any, restore_config: None
) -> None:
    config.channel.transports = ["sse"]
    app = channels_app()
    server = live_server(app)
    lines = run_node("sse_upgrade.mjs", server.origin, "100", env={"TELEFUNC_TRANSPORTS": ""})
    result = by_name(lines)["result"]
    assert result["ticks"] == list(range(100)) and result["report"]["received"] == list(range(100))
    assert set(result["report"]["receivedOn"]) == {"sse"}
    assert app.mux.opened.get("ws", 0) == 0 and app.mux.upgrades == 0
