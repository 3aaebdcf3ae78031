"""The ``channel`` stream transport with the official telefunc@0.2.23 client: every scenario
of js/interop/stream_values.mjs (countdown, empty, two generators, byte stream, promise, abort
and bug mid-stream, early break and ``close(gen)`` running the server's ``finally``, an echoed
file, a download), each streaming value pumped over its own channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _stream_values import check_stream_values

APP = Path(__file__).resolve().parent.parent / "apps" / "streaming"


def test_official_client_streaming_values_over_channels(live_server: Any, run_node: Any) -> None:
    server = live_server(APP)
    lines = run_node("stream_values_channel.mjs", server.origin)
    results = {line["name"]: line for line in lines}
    for name, line in results.items():
        assert line["ok"], (name, line)

    # Every response but one was the plain-text form: the streaming values travelled on
    # channels. The echoed upload (read from its request's body, which ends with the HTTP
    # exchange) is the exception: it is sent inline.
    content_types = results["content_types"]["value"]
    assert len(content_types) >= 12
    inline = [ct for ct in content_types if not ct.startswith("text/plain")]
    assert inline == ["application/octet-stream"], content_types

    check_stream_values(results)
