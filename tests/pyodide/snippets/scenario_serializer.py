"""(b) The json-serializer codec on a value holding every special type.

The same :func:`run` executes under CPython (in the test) and under Pyodide (in the driver);
the test compares the two outputs.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from telefunc.wire.serializer import (
    UNDEFINED,
    BigInt,
    JsMap,
    JsMapEntries,
    JsRegExp,
    JsSet,
    parse,
    stringify,
)


def build_value() -> dict[str, Any]:
    """A value with every type of the codec's mapping table, nested."""
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    return {
        "none": None,
        "undefined": UNDEFINED,
        "bools": [True, False],
        "ints": [0, -1, 2**53 - 1, -(2**53 - 1)],
        "bigints": [2**53, -(2**70), BigInt(5)],
        "floats": [1.0, 0.1, -0.0, 1e21, 1.5e-7, 123456789.125],
        "specials": [math.nan, math.inf, -math.inf],
        "strings": ["plain", "!bang", "!!double", "</script>", "a/b", "\u2028\u00e9\U0001f600"],
        "controls": '\x00\x1f\t\n"\\',
        "date": when,
        "naive_date": datetime(1999, 12, 31, 23, 59, 59),
        "bytes": b"\x00\xff\xfe binary",
        "bytearray": bytearray(b"ab"),
        "set": {3},
        "frozenset": frozenset({"x"}),
        "jsset": JsSet([1, [2], "!s"]),
        "map": {1: "one", "2": "two", None: "null-key"},
        "jsmap": JsMap({"k": {"nested": UNDEFINED}}),
        "map_entries": JsMapEntries([([1], "list-key"), ({"a": 1}, "object-key")]),
        "regexp": JsRegExp("a/b+", "gi"),
        "pattern": re.compile(r"^x.y$", re.IGNORECASE | re.MULTILINE),
        "array_index_keys": {"b": 1, "10": 2, "2": 3, "a": 4},
        "nested": {"!key": [{"deep": [UNDEFINED, None, math.nan, b"", datetime(1970, 1, 1)]}]},
    }


def run() -> dict[str, Any]:
    """Stringify the value, parse it back and stringify again (the round trip is lossless)."""
    text = stringify(build_value())
    again = stringify(parse(text))
    return {"text": text, "roundtrip": again, "parsed_types": _types(parse(text))}


def _types(value: Any) -> Any:
    """The Python type names of a parsed value, recursively (compared across interpreters)."""
    if isinstance(value, dict):
        return {"__type__": type(value).__name__, **{str(k): _types(v) for k, v in value.items()}}
    if isinstance(value, list):
        return [type(value).__name__, *[_types(v) for v in value]]
    return type(value).__name__
