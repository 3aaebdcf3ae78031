"""A broadcast subscriber's WebSocket is cut mid-stream by a TCP proxy: after the official client
reconnects it has every publish of the key exactly once, in seq order, including those published
while it was away (buffered on its channel) and its own publishes made meanwhile."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "channels"))
# The TCP proxy that cuts connections is the one of the channel reconnect test.
from test_ws_reconnect import CuttingProxy  # type: ignore[import-not-found,unused-ignore]

APPS = Path(__file__).resolve().parents[1] / "apps"
JS_DIR = Path(__file__).resolve().parents[2] / "js"
INTEROP_DIR = JS_DIR / "interop"
N = 450  # server ticks
M = 25  # client publishes during the ticks


@pytest.mark.skipif(
    not (shutil.which("node") and (JS_DIR / "node_modules" / "telefunc").is_dir())
    and not os.environ.get("CI"),
    reason="node missing",
)
async def test_subscriber_reconnects_and_gets_what_was_published_meanwhile(
    live_server: Any,
) -> None:
    server = live_server(APPS / "broadcast")
    proxy = CuttingProxy(server.port)
    await proxy.start()
    key = f"ticks-{uuid.uuid4()}"
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--conditions=browser",
        "--experimental-websocket",
        "--no-warnings",
        str(INTEROP_DIR / "broadcast_reconnect.mjs"),
        f"http://127.0.0.1:{proxy.port}",
        key,
        str(N),
        str(M),
        cwd=JS_DIR,
        env={**os.environ, "TELEFUNC_TRANSPORTS": "ws"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[dict[str, Any]] = []
    accepted_before_cut = -1
    try:
        async with asyncio.timeout(90):
            while raw := await proc.stdout.readline():
                line = json.loads(raw)
                lines.append(line)
                if line.get("phase") == "midway":
                    accepted_before_cut = proxy.accepted
                    proxy.cut()
            stderr = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proxy.close()
    assert code == 0, stderr
    assert proxy.cuts >= 1 and proxy.accepted > accepted_before_cut >= 1  # cut, then reconnected
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
