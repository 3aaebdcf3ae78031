"""A streamed generator (and the other streaming values) read by the official npm client from
the adapter in real workerd."""

from __future__ import annotations

from typing import Any

import pytest

from streaming._stream_values import check_stream_values


@pytest.mark.parametrize("transport", ["binary-inline", "sse-inline"])
def test_streamed_values(origin: str, run_node: Any, transport: str) -> None:
    lines = run_node("stream_values.mjs", origin, env={"TELEFUNC_STREAM_TRANSPORT": transport})
    results = {line["name"]: line for line in lines}
    for name, line in results.items():
        assert line["ok"], (name, line)
    check_stream_values(results)
