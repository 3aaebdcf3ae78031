"""Backpressure of client byte-stream arguments: a 50 MB ReadableStream upload (official
telefunc@0.2.23 client, js/interop/stream_upload.mjs) keeps the server's memory bounded."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parent.parent / "apps" / "streaming"
UPLOAD_MB = 50
MEMORY_BOUND = 16 * 1024 * 1024


def test_50mb_upload_keeps_server_memory_under_16mb(live_server: Any, run_node: Any) -> None:
    server = live_server(APP)
    # tracemalloc sees every Python allocation of this process, the uvicorn thread included
    # (the client runs in Node, another process).
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        [line] = run_node("stream_upload.mjs", server.origin, str(UPLOAD_MB), timeout=240)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = UPLOAD_MB * 1024 * 1024
    assert line["total"] == size
    assert line["server"]["total"] == size
    assert line["server"]["sha256"] == line["sha256"]
    growth = peak - baseline
    print(f"peak growth {growth / 1e6:.2f} MB for a {UPLOAD_MB} MB upload")
    assert growth < MEMORY_BOUND, f"peak grew by {growth / 1e6:.1f} MB for a 50 MB upload"
