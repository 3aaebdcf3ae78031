"""The official telefunc@0.2.23 client reading our streaming responses, for both inline
transports: generators, byte streams, promises, in-band aborts, early close, downloads."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from _stream_values import check_stream_values

APP = Path(__file__).resolve().parent.parent / "apps" / "streaming"
TRANSPORTS = ["binary-inline", "sse-inline"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_official_client_streaming_values(live_server: Any, run_node: Any, transport: str) -> None:
    server = live_server(APP)
    lines = run_node(
        "stream_values.mjs", server.origin, env={"TELEFUNC_STREAM_TRANSPORT": transport}
    )
    results = {line["name"]: line for line in lines}
    for name, line in results.items():
        assert line["ok"], (name, line)

    check_stream_values(results)


DOWNLOAD_SIZE = 50 * 1024 * 1024
MEMORY_BOUND = 8 * 1024 * 1024


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_50mb_download_keeps_server_memory_under_8mb(
    live_server: Any, run_node: Any, tmp_path: Path, transport: str
) -> None:
    path = tmp_path / "big.bin"
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        for i in range(DOWNLOAD_SIZE // len(block)):
            chunk = bytes([i % 256]) + block[1:]
            handle.write(chunk)
            digest.update(chunk)
    server = live_server(APP)
    # tracemalloc sees every Python allocation of this process, the uvicorn thread included
    # (the client runs in Node, another process).
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        [line] = run_node(
            "stream_download.mjs",
            server.origin,
            str(path),
            "big.bin",
            env={"TELEFUNC_STREAM_TRANSPORT": transport},
            timeout=180,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert line["total"] == DOWNLOAD_SIZE
    assert line["sha256"] == digest.hexdigest()
    assert line["name"] == "big.bin" and line["size"] == DOWNLOAD_SIZE
    assert line["type"] == "application/octet-stream"
    assert line["lastModified"] == int(path.stat().st_mtime * 1000)
    growth = peak - baseline
    assert growth < MEMORY_BOUND, f"peak grew by {growth / 1e6:.1f} MB for a 50 MB download"
