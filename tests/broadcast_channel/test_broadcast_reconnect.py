"""A broadcast subscriber's WebSocket is cut mid-stream by a TCP proxy: after the official client
reconnects it has every publish of the key exactly once, in seq order, including those published
while it was away (buffered on its channel) and its own publishes made meanwhile."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from node_runner import run_node_lines
from tcp_proxy import FaultyProxy
from testpaths import APPS_DIR, IN_CI, node_available

N = 450  # server ticks
M = 25  # client publishes during the ticks


@pytest.mark.skipif(not node_available() and not IN_CI, reason="node missing")
async def test_subscriber_reconnects_and_gets_what_was_published_meanwhile(
    live_server: Any,
) -> None:
    server = live_server(APPS_DIR / "broadcast")
    proxy = FaultyProxy(server.port)
    await proxy.start()
    key = f"ticks-{uuid.uuid4()}"

    try:
        lines = await run_node_lines(
            "broadcast_reconnect.mjs",
            proxy.origin,
            key,
            str(N),
            str(M),
            env={"TELEFUNC_TRANSPORTS": "ws"},
            on_line=proxy.cut_at_midway,
        )
    finally:
        await proxy.close()
    # cut, then reconnected
    assert proxy.cuts >= 1 and proxy.accepted > proxy.accepted_before_cut >= 1
    result = next(line for line in lines if line.get("name") == "result")
    assert result["errors"] == []
    received = result["received"]
    seqs = [seq for seq, _, _ in received]
    # every publish of the key, once, in order: seq 1..N+M+1 with no gap and no duplicate
    assert seqs == list(range(1, N + M + 2))
    assert [i for _, kind, i in received if kind == "tick"] == list(range(N))
    assert [i for _, kind, i in received if kind == "own"] == list(range(-1, M))
    by_seq = {seq: (kind, i) for seq, kind, i in received}
    assert [by_seq[seq] for seq in result["ownSeqs"]] == [("own", i) for i in range(M)]
    # the server really published while the client was detached (buffered deliveries)
    assert result["report"]["published"] == N and result["report"]["while_detached"] > 0
