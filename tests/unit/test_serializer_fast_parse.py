"""The optional orjson parsing path gives exactly what the pure-Python path gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from telefunc.wire import serializer

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "serializer_golden.json"

EDGE_TEXTS = [
    '"\\ud800"',  # a lone surrogate: orjson refuses it, JSON.parse does not
    '{"a":"\\udfff x"}',
    "1180591620717411303424",  # 2**70: beyond orjson's 64-bit integers
    "-9223372036854775809",
    "1e400",  # beyond float range: Infinity in JSON.parse
    "5e-324",
    "-0",
    "1.0",
    '{"k":1,"k":2}',  # duplicate keys: the last one wins, in the first one's place
    '{"z":1,"a":[true,false,null,"é","\\u003c\\/"]}',
    '"!Date:1970-01-01T00:00:00.005Z"',
    '["!BigInt:12345678901234567890","!!bang"]',
]
BAD_TEXTS = ["{not json", "NaN", "[Infinity]", "", '{"a":1,}']


def _both(text: str | bytes) -> tuple[Any, Any]:
    fast = serializer.parse(text)
    saved = serializer._fast_loads
    serializer._fast_loads = None
    try:
        pure = serializer.parse(text)
    finally:
        serializer._fast_loads = saved
    return fast, pure


@pytest.fixture(autouse=True)
def _needs_orjson() -> None:
    if serializer._fast_loads is None:
        pytest.skip("orjson is not installed (the 'speedups' extra)")


@pytest.mark.parametrize("text", [*json.loads(GOLDEN.read_text()).values(), *EDGE_TEXTS])
def test_fast_and_pure_parse_agree(text: str) -> None:
    fast, pure = _both(text)
    assert repr(fast) == repr(pure)


@pytest.mark.parametrize("text", [*json.loads(GOLDEN.read_text()).values(), *EDGE_TEXTS])
def test_fast_and_pure_parse_of_utf8_bytes_give_what_the_text_gives(text: str) -> None:
    fast, pure = _both(text.encode("utf-8", "surrogatepass"))
    assert repr(fast) == repr(pure) == repr(serializer.parse(text))


@pytest.mark.parametrize("text", BAD_TEXTS)
def test_both_paths_reject_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        serializer.parse(text)
    saved = serializer._fast_loads
    serializer._fast_loads = None
    try:
        with pytest.raises(ValueError):
            serializer.parse(text)
    finally:
        serializer._fast_loads = saved
