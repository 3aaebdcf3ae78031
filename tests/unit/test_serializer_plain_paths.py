"""The plain-data shortcuts of ``stringify``/``parse`` give exactly what the full paths give.

``stringify`` writes a lone scalar directly and plain containers through orjson (when
installed); ``parse`` skips its reviving walk for text with no ``!``, no long integer and few
brackets. Each is compared with the full path on generated values, and on the inputs that
must leave the shortcut (``!`` strings, escaped ``!``, unsafe integers, floats, digit keys,
lone surrogates, deep nesting).
"""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telefunc.wire import serializer
from telefunc.wire.serializer import UNDEFINED, BigInt, JsSet, parse, stringify


def _full_stringify(value: Any, **kwargs: Any) -> str:
    """``stringify`` through the pure encoder only (no orjson, no scalar shortcut)."""
    saved = serializer._fast_dumps
    serializer._fast_dumps = None
    try:
        # A replacer that never replaces keeps the shortcuts off.
        return stringify(value, replacer=lambda v: None, **kwargs)
    finally:
        serializer._fast_dumps = saved


def _walk(text: str) -> Any:
    """``parse`` through the reviving walk only."""
    walk, _slot = serializer._make_reviver(serializer.UNBOUNDED_DEPTH)
    return walk(serializer._loads(text), 0)


_keys = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["0", "1", "10", "01", "!k", "-1", "a1", "4294967295", ""]),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.sampled_from([2**53 - 1, -(2**53 - 1), 2**53, -(2**53), 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["!", "!x", "!!", "<script>", "a/b", "\u2028", "\ud800", "\x7f", "\x1f"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_values, st.booleans())
def test_stringify_shortcuts_match_the_full_encoder(value: Any, script_safe: bool) -> None:
    try:
        expected = _full_stringify(value, script_safe=script_safe)
    except serializer.SerializationError:
        with pytest.raises(serializer.SerializationError):
            stringify(value, script_safe=script_safe)
        return
    assert stringify(value, script_safe=script_safe) == expected


@settings(max_examples=300, deadline=None)
@given(_values)
def test_parse_shortcut_matches_the_walk(value: Any) -> None:
    try:
        text = stringify(value)
    except serializer.SerializationError:
        return
    assert repr(parse(text)) == repr(_walk(text))


@pytest.mark.parametrize(
    "value",
    [
        {"ret": "!bang"},
        {"ret": ["ok", "!x"]},
        {"!key": 1},  # keys are never escaped
        {"ret": 2**53},
        {"ret": -(2**53)},
        {"ret": 1.0},
        {"ret": 1e21},
        {"ret": math.nan},
        {"2": "a", "1": "b", "x": "c"},  # JavaScript puts array-index keys first
        {1: "a"},  # a non-str key makes a Map
        {"ret": "\ud800"},  # orjson refuses lone surrogates
        {"ret": True, "n": None, "t": (1, 2)},
        {"ret": [{"a": [{"b": []}]}]},
    ],
)
def test_values_leaving_the_shortcut_serialize_as_before(value: Any) -> None:
    assert stringify(value) == _full_stringify(value)


def test_a_circular_value_still_fails() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(serializer.SerializationError, match="circular"):
        stringify({"ret": value})


class Color(enum.IntEnum):
    RED = 1


def test_replace_plain_false_asks_only_about_values_that_are_not_plain_data() -> None:
    seen: list[Any] = []

    def replacer(value: Any) -> str | None:
        seen.append(value)
        return "!Custom:x" if value is UNDEFINED else None

    value = {"a": [1, "s", None, True, 1.5], "b": Color.RED, "c": UNDEFINED, "d": {2, 3}}
    text = stringify(value, replacer=replacer, replace_plain=False)
    assert text == stringify(value, replacer=replacer)  # same text as when asked about all
    seen.clear()
    stringify(value, replacer=replacer, replace_plain=False)
    assert seen == [Color.RED, UNDEFINED, {2, 3}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"\\u0021undefined"', UNDEFINED),  # an escaped "!" is revived like a plain one
        ('["\\u0021BigInt:5"]', [BigInt(5)]),
        ("[9007199254740993]", [9007199254740992.0]),  # beyond 2**53: a (rounded) number
        ('{"a":12345678901234567}', {"a": 12345678901234568.0}),
        ('"!Set:[1,2]"', {1, 2}),
        ('"!Set:[1,true]"', JsSet([1, True])),
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "utf8"])
def test_parse_leaves_the_shortcut_when_it_must(text: str, expected: Any, as_bytes: bool) -> None:
    result = parse(text.encode() if as_bytes else text)
    assert repr(result) == repr(expected)


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "utf8"])
def test_parse_depth_limit_holds_on_both_paths(as_bytes: bool) -> None:
    def given(text: str) -> str | bytes:
        return text.encode() if as_bytes else text

    assert parse(given("[[1]]"), max_depth=2) == [[1]]
    with pytest.raises(ValueError, match="deeper"):
        parse(given("[[[1]]]"), max_depth=2)
    with pytest.raises(ValueError, match="deeper"):
        parse(given('{"a":{"b":[1]}}'), max_depth=2)
    with pytest.raises(ValueError, match="deeper"):
        parse(given('[{"a":[1]}]'), max_depth=2)  # "[" and "{" count together
    # Brackets inside strings only send the text the slow way; the result is the same.
    assert parse(given('["[[[[", "{{{{"]'), max_depth=1) == ["[[[[", "{{{{"]


@pytest.mark.parametrize(
    "text", ['"héllo ✓"', '{"a":[1,"\\u0021x",{"b":null}]}', '"!Date:1970-01-01T00:00:00.005Z"']
)
def test_utf8_bytes_parse_like_their_text(text: str) -> None:
    assert repr(parse(text.encode())) == repr(parse(text))


@pytest.mark.parametrize(
    "data",
    [b'"\xff"', b'["!x\xc3"]', '"x"'.encode("utf-16")],
    ids=["invalid-utf8", "invalid-utf8-slow-path", "utf16-not-guessed"],
)
def test_bytes_that_are_not_utf8_are_malformed(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse(data)


def test_parse_calls_the_reviver_for_an_escaped_bang() -> None:
    calls: list[str] = []

    def reviver(text: str) -> tuple[bool, Any]:
        calls.append(text)
        return True, "revived"

    assert parse('{"a":"\\u0021TelefuncFunction:{}"}', reviver=reviver) == {"a": "revived"}
    assert calls == ["!TelefuncFunction:{}"]
