"""Tests of telefunc.wire.serializer against the real @brillout/json-serializer 0.5.27.

* Golden cases: ``tests/fixtures/serializer_golden.json`` is written by
  ``js/scripts/serializer-fixtures.mjs`` with the npm package; every name has a Python value
  here, and ``stringify`` must match byte for byte while ``parse`` must give the value back.
* Property tests (hypothesis) for round trips.
* A Node cross-check: random values serialized here are parsed and re-stringified by the npm
  package (``js/scripts/serializer-roundtrip.mjs``), which must give the identical text.
"""

from __future__ import annotations

import copy
import enum
import json
import math
import os
import pickle
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telefunc.errors import SerializationError, TelefuncError
from telefunc.wire.serializer import (
    MAX_SAFE_INTEGER,
    UNDEFINED,
    BigInt,
    JsMap,
    JsMapEntries,
    JsRegExp,
    JsSet,
    format_js_number,
    parse,
    stringify,
)

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "js"
GOLDEN = REPO / "tests" / "fixtures" / "serializer_golden.json"
IN_CI = bool(os.environ.get("CI"))


def _require_node() -> None:
    """Skip (or fail in CI) when Node or the pinned json-serializer package is missing."""
    pkg = JS_DIR / "node_modules" / "@brillout" / "json-serializer" / "package.json"
    if shutil.which("node") is None or not pkg.is_file():
        reason = "node or js/node_modules/@brillout/json-serializer is missing (cd js && npm ci)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


# ------------------------------------------------------------------------------------------
# Comparison that knows the Python/JS mapping


def same(a: Any, b: Any, *, strict: bool = False) -> bool:
    """Deep equality for serializer values.

    NaN equals NaN; sets compare as multisets of ``same`` elements. With ``strict`` the exact
    Python types must match and dict / JsSet / JsMapEntries order must match too; without it,
    int/float of equal value match and JsSet/set, dict/JsMap/JsMapEntries are interchangeable
    when they hold the same entries.
    """
    if strict and type(a) is not type(b):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, BigInt) or isinstance(b, BigInt):
        return isinstance(a, BigInt) and isinstance(b, BigInt) and int(a) == int(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b
    if isinstance(a, set | frozenset | JsSet) and isinstance(b, set | frozenset | JsSet):
        if strict and isinstance(a, JsSet):
            return len(a) == len(b) and all(
                same(x, y, strict=True) for x, y in zip(a, b, strict=False)
            )
        return _same_multiset(list(a), list(b), strict)
    if _is_map(a) and _is_map(b):
        ea, eb = _entries(a), _entries(b)
        if strict:
            return len(ea) == len(eb) and all(
                same(ka, kb, strict=True) and same(va, vb, strict=True)
                for (ka, va), (kb, vb) in zip(ea, eb, strict=True)
            )
        return _same_multiset(ea, eb, strict)
    if type(a) is dict and type(b) is dict:
        if strict and list(a) != list(b):
            return False
        return a.keys() == b.keys() and all(same(a[k], b[k], strict=strict) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if strict and type(a) is not type(b):
            return False
        return len(a) == len(b) and all(
            same(x, y, strict=strict) for x, y in zip(a, b, strict=False)
        )
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, bytes | bytearray | memoryview):
        return isinstance(b, bytes | bytearray | memoryview) and bytes(a) == bytes(b)
    return type(a) is type(b) and bool(a == b)


def _is_map(v: Any) -> bool:
    return isinstance(v, JsMap | JsMapEntries) or (
        type(v) is dict and any(not isinstance(k, str) for k in v)
    )


def _entries(v: Any) -> list[Any]:
    return list(v) if isinstance(v, JsMapEntries) else list(v.items())


def _same_multiset(a: list[Any], b: list[Any], strict: bool) -> bool:
    if len(a) != len(b):
        return False
    rest = list(b)
    for x in a:
        for i, y in enumerate(rest):
            if same(x, y, strict=strict):
                del rest[i]
                break
        else:
            return False
    return True


# ------------------------------------------------------------------------------------------
# Golden cases: name -> Python value, or (stringify input, what parse returns)


def _utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


class Marker:
    """Stand-in for a telefunc streaming value that the replacer turns into a placeholder."""

    def __init__(self, ident: str) -> None:
        self.ident = ident


def placeholder_replacer(value: Any) -> str | None:
    if isinstance(value, Marker):
        return "!TelefuncChannel:" + json.dumps({"channelId": value.ident}, separators=(",", ":"))
    return None


CONTROL_CHARS = "".join(chr(c) for c in range(0x20)) + "\x7f\u2028\u2029\u0085"

CASES: dict[str, Any] = {
    "null": None,
    "undefined": UNDEFINED,
    "true": True,
    "false": False,
    "int_zero": 0,
    "int_negative": -42,
    "int_max_safe": MAX_SAFE_INTEGER,
    "int_min_safe": -MAX_SAFE_INTEGER,
    "float_simple": 3.14,
    "float_negative": -0.1,
    "float_negative_zero": (-0.0, 0),
    "float_integral": (1.0, 1),
    "float_1e21": 1e21,
    "float_1e20": 1e20,
    "float_1e16": 1e16,
    "float_2_53": 2.0**53,
    "float_2_60": 2.0**60,
    "float_1e_7": 1e-7,
    "float_1e_6": 1e-6,
    "float_1_5e_5": 1.5e-5,
    "float_1_23e_18": 1.23e-18,
    "float_min_subnormal": 5e-324,
    "float_max": 1.7976931348623157e308,
    "float_neg_big_exp": -1.2345e100,
    "nan": math.nan,
    "infinity": math.inf,
    "negative_infinity": -math.inf,
    "bigint_zero": BigInt(0),
    "bigint_small": BigInt(10),
    "bigint_above_safe": (2**53, BigInt(2**53)),
    "bigint_negative_huge": (
        -123456789012345678901234567890,
        BigInt(-123456789012345678901234567890),
    ),
    "string_empty": "",
    "string_plain": "hello world",
    "string_bang": "!bang",
    "string_bang_only": "!",
    "string_double_bang": "!!x",
    "string_undefined_lookalike": "!undefined",
    "string_date_lookalike": "!Date:1970-01-01T00:00:00.000Z",
    "string_html": "</script><script>alert(1)</script>",
    "string_slashes": "a/b//c\\/d",
    "string_quotes_backslash": 'say "hi" \\ \\\\ back',
    "string_unicode": "héllo wörld ✓ 日本語 😀 \u00a0",
    "string_lone_surrogates": "\ud800 x \udfff y \udbff",
    "string_control_chars": CONTROL_CHARS,
    "date_epoch": _utc(1970, 1, 1),
    "date_ms": _utc(2024, 2, 29, 13, 45, 7, 89_000),
    "date_before_epoch": _utc(1969, 12, 31, 23, 59, 59, 999_000),
    "date_year_1": _utc(1, 1, 1),
    "date_year_9999": _utc(9999, 12, 31, 23, 59, 59, 999_000),
    "uint8array_empty": b"",
    "uint8array_1": b"\xff",
    "uint8array_2": (bytearray(b"\xfb\xff"), b"\xfb\xff"),
    "uint8array_3": (memoryview(b"\x01\x02\x03"), b"\x01\x02\x03"),
    "uint8array_4": b"\x00\x00\x00\x00",
    "uint8array_all_bytes": bytes(range(256)),
    "regexp_simple": JsRegExp("a+", "g"),
    "regexp_all_flags": JsRegExp("x", "dgimsuy"),
    "regexp_slash": (re.compile("a/b"), JsRegExp("a\\/b")),
    "regexp_empty": (re.compile(""), JsRegExp("(?:)")),
    "regexp_class": (re.compile(r"[/\]]+</x>", re.I), JsRegExp(r"[/\]]+<\/x>", "i")),
    "map_empty": JsMap(),
    "map_int_keys": ({1: "a", 2: "b"}, JsMap({1: "a", 2: "b"})),
    "map_string_keys": JsMap({"a": 1, "!b": "!c"}),
    "map_object_key": JsMapEntries([({"a": 1}, "x"), ([1, 2], "y")]),
    "map_colliding_keys": JsMapEntries([(1, "one"), (True, "yes")]),
    "map_nested": JsMap({"outer": JsMap({"inner": JsMap({1: 'say "<hi>" \\ /'})})}),
    "map_undefined_value": JsMap({UNDEFINED: UNDEFINED}),
    "set_empty": (set(), set()),
    "set_single": ({"x"}, {"x"}),
    "set_mixed": (JsSet([1, "a", None]), {1, "a", None}),
    "set_unhashable": JsSet([[1], [1], {"a": 1}]),
    "set_colliding": JsSet([True, 1]),
    "set_of_sets": (JsSet([frozenset([1]), {"</script>"}]), JsSet([{1}, {"</script>"}])),
    "nested_map_in_set_in_object": {"outer": JsSet([JsMap({"k": {"</x>"}}), 2])},
    "object_empty": {},
    "object_key_order": (
        {"b": 1, "a": 2, "10": 3, "2": 4, "-1": 5, "01": 6, "4294967295": 7, "4294967294": 8},
        {"2": 4, "10": 3, "4294967294": 8, "b": 1, "a": 2, "-1": 5, "01": 6, "4294967295": 7},
    ),
    "object_undefined_value": {"a": UNDEFINED, "b": 1},
    "object_bang_and_html_keys": {"!k": "!v", "</script>": "a/b"},
    "array_empty": ([], []),
    "array_with_undefined": ((1, UNDEFINED, None), [1, UNDEFINED, None]),
    "array_nested": [[[]], [1, [2, [3]]]],
    "telefunc_mixed_response": {
        "ret": {
            "msg": "Hello Bob",
            "u": UNDEFINED,
            "d": _utc(1970, 1, 1),
            "big": BigInt(10),
            "s": "!bang",
            "m": JsMap({1: "a"}),
            "set": {1},
            "nan": math.nan,
            "inf": -math.inf,
            "re": JsRegExp("a+", "g"),
            "bytes": b"\x01\x02\x03",
        }
    },
    "replacer_placeholder": (
        {"ch": Marker("c1"), "s": "!x", "inner": {1: Marker("c2")}},
        {
            "ch": '!TelefuncChannel:{"channelId":"c1"}',
            "s": "!x",
            "inner": JsMap({1: '!TelefuncChannel:{"channelId":"c2"}'}),
        },
    ),
    "no_script_safe": {"html": "</script>", "m": JsMap({"a/b": "<"})},
}

OPTIONS: dict[str, dict[str, Any]] = {
    "replacer_placeholder": {"replacer": placeholder_replacer},
    "no_script_safe": {"script_safe": False},
}
# Parsing a placeholder must not revive it as a "!"-string: telefunc's reviver claims it.
PARSE_OPTIONS: dict[str, dict[str, Any]] = {
    "replacer_placeholder": {
        "reviver": lambda s: (True, s) if s.startswith("!TelefuncChannel:") else (False, None)
    },
}


def _case(name: str) -> tuple[Any, Any]:
    value = CASES[name]
    return value if isinstance(value, tuple) and len(value) == 2 else (value, value)


@pytest.fixture(scope="module")
def golden() -> dict[str, str]:
    data: dict[str, str] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


def test_golden_covers_every_case(golden: dict[str, str]) -> None:
    assert sorted(golden) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stringify_matches_golden(name: str, golden: dict[str, str]) -> None:
    value, _ = _case(name)
    assert stringify(value, **OPTIONS.get(name, {})) == golden[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_parse_golden(name: str, golden: dict[str, str]) -> None:
    _, expected = _case(name)
    got = parse(golden[name], **PARSE_OPTIONS.get(name, {}))
    assert same(got, expected, strict=True), f"{got!r} != {expected!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_text_round_trip(name: str, golden: dict[str, str]) -> None:
    """stringify(parse(t)) == t for texts the JS side produced (sets: up to element order)."""
    text = golden[name]

    def keep_placeholders(v: Any) -> str | None:
        return v if isinstance(v, str) and v.startswith("!TelefuncChannel:") else None

    again = stringify(
        parse(text, **PARSE_OPTIONS.get(name, {})),
        replacer=keep_placeholders,
        script_safe=name != "no_script_safe",
    )
    if name == "set_mixed":  # a plain Python set has no insertion order
        assert same(parse(again), parse(text), strict=True)
    else:
        assert again == text


def test_golden_fixture_is_up_to_date(tmp_path: Path) -> None:
    """Re-running the Node script must reproduce the committed fixture exactly."""
    _require_node()
    out = tmp_path / "golden.json"
    proc = subprocess.run(
        ["node", "scripts/serializer-fixtures.mjs", str(out)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == GOLDEN.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------
# Behaviour details


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (100.0, "100"),
        (123456789.125, "123456789.125"),
        (1e-4, "0.0001"),
        (1.5e-6, "0.0000015"),
        (1e-6, "0.000001"),
        (9.999e-7, "9.999e-7"),
        (1e15 + 0.5, "1000000000000000.5"),
        (1.2345e16, "12345000000000000"),
        (1e21, "1e+21"),
        (-1e21, "-1e+21"),
        (1.5e21, "1.5e+21"),
        (2.5e-300, "2.5e-300"),
        (-5e-324, "-5e-324"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),
        (0.30000000000000004, "0.30000000000000004"),
    ],
)
def test_format_js_number(value: float, text: str) -> None:
    assert format_js_number(value) == text
    assert float(text) == value


def test_undefined_sentinel() -> None:
    assert not UNDEFINED
    assert repr(UNDEFINED) == "UNDEFINED"
    assert UNDEFINED is not None
    assert copy.deepcopy(UNDEFINED) is UNDEFINED
    assert pickle.loads(pickle.dumps(UNDEFINED)) is UNDEFINED


def test_bigint_type() -> None:
    assert str(BigInt(5)) == "5"
    assert repr(BigInt(5)) == "BigInt(5)"
    assert stringify(BigInt(5)) == '"!BigInt:5"'
    assert stringify(5) == "5"
    assert stringify(MAX_SAFE_INTEGER + 1) == '"!BigInt:9007199254740992"'
    assert stringify(-MAX_SAFE_INTEGER - 1) == '"!BigInt:-9007199254740992"'
    assert type(parse('"!BigInt:5"')) is BigInt


def test_int_subclasses_serialize_as_numbers() -> None:
    class Color(enum.IntEnum):
        RED = 1

    assert stringify(Color.RED) == "1"
    assert stringify([True, False]) == "[true,false]"


def test_dict_with_only_str_keys_is_object_jsmap_is_map() -> None:
    assert stringify({"a": 1}) == '{"a":1}'
    assert stringify(JsMap({"a": 1})) == '"!Map:[[\\"a\\",1]]"'
    assert stringify({"a": 1, 2: 3}) == '"!Map:[[\\"a\\",1],[2,3]]"'
    assert stringify(JsMapEntries([([1], 2)])) == '"!Map:[[[1],2]]"'


def test_unhashable_and_colliding_set_elements_parse_to_jsset() -> None:
    assert parse(stringify(JsSet([[1], [1]]))) == JsSet([[1], [1]])
    got = parse('"!Set:[true,1]"')
    assert type(got) is JsSet
    assert [type(x) for x in got] == [bool, int]
    assert type(parse('"!Set:[1,2]"')) is set


def test_jsset_and_entries_dedupe_like_javascript() -> None:
    """new Set()/new Map() semantics: primitives by SameValueZero, objects by identity."""
    shared = [1]
    items = [1, 1.0, BigInt(1), math.nan, math.nan, 0, -0.0, [1], [1], shared, shared]
    assert stringify(JsSet(items)) == '"!Set:[1,\\"!BigInt:1\\",\\"!NaN\\",0,[1],[1],[1]]"'
    entries = JsMapEntries([(1, "a"), (2, "b"), (1.0, "c")])
    assert stringify(entries) == '"!Map:[[1,\\"c\\"],[2,\\"b\\"]]"'


def test_colliding_map_keys_parse_to_entries() -> None:
    got = parse('"!Map:[[1,\\"a\\"],[true,\\"b\\"]]"')
    assert type(got) is JsMapEntries
    assert got == [(1, "a"), (True, "b")]
    assert parse('"!Map:[[[1],2]]"') == JsMapEntries([([1], 2)])


def test_dates() -> None:
    naive = datetime(2020, 5, 17, 10, 0, 0, 123_999)
    assert stringify(naive) == '"!Date:2020-05-17T10:00:00.123Z"'
    plus_two = datetime(2020, 5, 17, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert stringify(plus_two) == '"!Date:2020-05-17T10:00:00.000Z"'
    got = parse('"!Date:2020-05-17T10:00:00.123Z"')
    assert got == datetime(2020, 5, 17, 10, 0, 0, 123_000, tzinfo=UTC)
    assert got.utcoffset() == timedelta(0)
    # A date-only text (JS new Date() accepts it too) is midnight UTC.
    assert parse('"!Date:2020-05-17"') == datetime(2020, 5, 17, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse('"!Date:+275760-09-13T00:00:00.000Z"')


def test_regexp_from_pattern() -> None:
    assert JsRegExp.from_pattern(re.compile("a/b", re.M | re.S | re.I)) == JsRegExp("a\\/b", "ims")
    assert JsRegExp.from_pattern(re.compile("[/]\\/x\n")) == JsRegExp("[/]\\/x\\n")
    with pytest.raises(SerializationError, match="VERBOSE"):
        stringify({"r": re.compile("a", re.X)})
    assert str(JsRegExp("a+", "g")) == "/a+/g"
    assert parse('"!RegExp:/a/b/c/gi"') == JsRegExp("a/b/c", "gi")


def test_replacer_sees_every_value_and_its_output_is_not_escaped() -> None:
    seen: list[Any] = []

    def replacer(v: Any) -> str | None:
        seen.append(v)
        return "!raw" if v == "swap" else None

    text = stringify({"k": ["swap", {"x"}], "m": {1: "swap"}}, replacer=replacer)
    assert text == (
        '{"k":["!raw","!Set:[\\"x\\"]"],"m":"!Map:[[1,\\"!raw\\"]]"}'.replace("/", "\\/")
    )
    assert "x" in seen and 1 in seen  # Set items and Map keys go through it too


def test_replacer_must_return_str_or_none() -> None:
    with pytest.raises(TypeError):
        stringify(1, replacer=lambda v: 5)  # type: ignore[arg-type,return-value]


def test_reviver_runs_first_also_inside_maps() -> None:
    calls: list[str] = []

    def reviver(s: str) -> tuple[bool, Any]:
        calls.append(s)
        return (True, "X") if s.startswith("!Tele") else (False, None)

    text = '{"a":"!Tele:1","m":"!Map:[[1,\\"!Tele:2\\"]]","s":"!!bang"}'
    assert parse(text, reviver=reviver) == {"a": "X", "m": JsMap({1: "X"}), "s": "!bang"}
    assert calls == ["!Tele:1", '!Map:[[1,"!Tele:2"]]', "!Tele:2", "!!bang"]


def test_script_safe_only_affects_escaping() -> None:
    value = {"s": "</script>", "m": JsMap({"/": JsSet(["<"])})}
    safe = stringify(value)
    raw = stringify(value, script_safe=False)
    assert "<" not in safe and safe.count("/") == safe.count("\\/") > 0
    assert same(parse(safe), parse(raw), strict=True)
    assert safe == raw.replace("<", "\\u003c").replace("/", "\\/")


def test_paired_surrogates_are_one_character_like_utf16() -> None:
    assert stringify("\ud83d\ude00") == '"😀"'
    assert stringify("\ude00\ud83d") == '"\\ude00\\ud83d"'


def test_large_integer_literals_parse_as_numbers() -> None:
    got = parse("[9007199254740993, -1e400, 12.5, 7]")
    assert got[0] == 9007199254740992.0 and type(got[0]) is float
    assert got[1] == -math.inf
    assert type(got[3]) is int
    assert type(parse("12345678901234567890")) is float


@pytest.mark.parametrize("bad", ["NaN", "[Infinity]", "{", "'a'", '"!Uint8Array:A"'])
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse(bad)


def test_error_names_the_path_and_type() -> None:
    with pytest.raises(SerializationError) as info:
        stringify({"ret": {"user": {"callback": len}}})
    assert str(info.value) == (
        "cannot serialize ret.user.callback because it's a function "
        "(builtins.builtin_function_or_method)"
    )
    assert info.value.path == ("ret", "user", "callback")

    class Opaque:
        pass

    with pytest.raises(SerializationError, match=r"ret\[1\]\[\"a b\"\] .*Opaque"):
        stringify({"ret": [0, {"a b": Opaque()}]})
    with pytest.raises(SerializationError, match=r"cannot serialize value because it's a class"):
        stringify(Opaque)
    with pytest.raises(SerializationError, match=r"m<Map value for 1>"):
        stringify({"m": {1: lambda: 0}})
    assert issubclass(SerializationError, TypeError)
    assert issubclass(SerializationError, TelefuncError)


def test_cycles_and_depth_are_serialization_errors() -> None:
    loop: list[Any] = []
    loop.append({"x": loop})
    with pytest.raises(SerializationError, match=r"\[0\]\.x because it's a circular reference"):
        stringify(loop)
    shared = [1]
    assert stringify([shared, shared]) == "[[1],[1]]"  # repeated, not circular: fine
    deep: list[Any] = []
    cur = deep
    for _ in range(10_000):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    with pytest.raises(SerializationError, match="nested too deeply"):
        stringify(deep)


# ------------------------------------------------------------------------------------------
# Property tests


def _not_int_like(x: float) -> bool:
    """Integral floats in the safe range come back as int (same value); keep types exact."""
    return not (math.isfinite(x) and x.is_integer() and abs(x) <= MAX_SAFE_INTEGER)


_ODD_CHARS = ["\ud800", "\udbff", "\udc00", "\udfff", "!", "<", "/", "\\", '"', "\n", "\x00"]
_ODD_CHARS += ["\u2028", "é", "😀", "a", "\x7f"]


def _no_surrogate_pair(s: str) -> bool:
    return not re.search("[\ud800-\udbff][\udc00-\udfff]", s)


texts = st.one_of(
    st.text(),
    st.lists(st.sampled_from(_ODD_CHARS)).map("".join).filter(_no_surrogate_pair),
    st.text().map(lambda s: "!" + s),
)
dates = st.datetimes(timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)
finite_or_not = st.floats().filter(_not_int_like)
hashable_leaves = st.one_of(
    st.none(),
    st.just(UNDEFINED),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.integers().map(BigInt),
    st.floats(allow_nan=False).filter(_not_int_like),
    texts,
    dates,
    st.binary(max_size=20),
    st.builds(JsRegExp, texts, st.text(alphabet="dgimsuy", max_size=4)),
)
leaves = st.one_of(hashable_leaves, finite_or_not)


def values(set_size: int) -> st.SearchStrategy[Any]:
    """Values in the image of ``parse``; plain sets hold at most ``set_size`` elements."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(texts, children, max_size=4),
            st.dictionaries(hashable_leaves, children, max_size=3).map(JsMap),
            st.lists(st.tuples(st.lists(children, max_size=2), children), max_size=3).map(
                JsMapEntries
            ),
            st.sets(hashable_leaves, max_size=set_size),
            st.lists(st.lists(children, max_size=2), min_size=1, max_size=3).map(JsSet),
        ),
        max_leaves=20,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values(set_size=5), st.booleans())
def test_property_parse_inverts_stringify(value: Any, script_safe: bool) -> None:
    assert same(parse(stringify(value, script_safe=script_safe)), value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values(set_size=1))
def test_property_text_is_stable(value: Any) -> None:
    text = stringify(value)
    assert stringify(parse(text)) == text
    json.loads(text)  # always plain, valid JSON
    assert text.isascii() or re.search("[\ud800-\udfff]", text) is None


# ------------------------------------------------------------------------------------------
# Node cross-check: the npm parser + stringifier must give our text back unchanged


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    leaf_makers: list[Callable[[], Any]] = [
        lambda: None,
        lambda: UNDEFINED,
        lambda: rng.random() < 0.5,
        lambda: rng.randint(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
        lambda: rng.choice([0, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**53, 2**64, -(2**70)]),
        lambda: BigInt(rng.randint(-(10**30), 10**30)),
        lambda: rng.uniform(-1, 1) * 10 ** rng.randint(-330, 310),
        lambda: rng.choice([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e21, 1e-7, 2.0**60]),
        lambda: "".join(rng.choice([*_ODD_CHARS, "x", "y", " "]) for _ in range(rng.randint(0, 8))),
        lambda: "!" + rng.choice(["", "undefined", "Date:x", "Map:[]", "!", "NaN"]),
        lambda: (
            datetime(1, 1, 1, tzinfo=UTC)
            + timedelta(milliseconds=rng.randint(0, 315_537_897_599_999))
        ),
        lambda: rng.randbytes(rng.randint(0, 10)),
        lambda: JsRegExp(
            rng.choice(["a+", "a\\/b", "[/]", "(?:)", "\\d{2,}", "<\\/x>"]),
            rng.choice(["", "g", "gi", "dgimsuy"]),
        ),
    ]
    if depth >= 3 or rng.random() < 0.45:
        return rng.choice(leaf_makers)()
    n = rng.randint(0, 4)
    kind = rng.randrange(6)
    if kind == 0:
        return [_random_value(rng, depth + 1) for _ in range(n)]
    if kind == 1:
        keys = ["a", "b", "0", "7", "10", "01", "-1", "!k", "</k>", "4294967295", "é"]
        return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(n)}
    if kind == 2:
        return {rng.randint(0, 9): _random_value(rng, depth + 1) for _ in range(n)}
    if kind == 3:
        return {"x" * rng.randint(0, 3) + str(rng.randint(0, 99)) for _ in range(n)}
    if kind == 4:
        return JsSet([_random_value(rng, depth + 1) for _ in range(n)])
    return JsMapEntries(
        [([_random_value(rng, depth + 1)], _random_value(rng, depth + 1)) for _ in range(n)]
    )


def test_node_parses_and_restringifies_identically() -> None:
    _require_node()
    rng = random.Random(20240229)
    texts_out = [stringify(_random_value(rng)) for _ in range(200)]
    texts_out += [stringify(v) for v in (_case(n)[0] for n in CASES) if not _uses_options(v)]
    stdin = "".join(json.dumps(t) + "\n" for t in texts_out)
    proc = subprocess.run(
        ["node", "scripts/serializer-roundtrip.mjs"],
        cwd=JS_DIR,
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.split("\n") if line]
    assert len(results) == len(texts_out)
    mismatches = [
        (ours, res) for ours, res in zip(texts_out, results, strict=True) if res.get("ok") != ours
    ]
    assert not mismatches, mismatches[:5]


def _uses_options(value: Any) -> bool:
    try:
        stringify(value)
    except SerializationError:
        return True
    return False


def test_dataclasses_and_enums_travel_as_their_fields_and_values() -> None:
    import dataclasses
    import enum

    class Mood(enum.Enum):
        HAPPY = "happy"

    @dataclasses.dataclass
    class Note:
        text: str
        mood: Mood
        tags: list[str]

    text = stringify({"note": Note("hi/<", Mood.HAPPY, ["a"])})
    assert text == '{"note":{"text":"hi\\/\\u003c","mood":"happy","tags":["a"]}}'
    assert parse(text) == {"note": {"text": "hi/<", "mood": "happy", "tags": ["a"]}}


# --- reused encoders and walks (the per-call closures are cached) ---------------------------


def test_a_failed_stringify_leaves_no_state_for_the_next_call() -> None:
    shared: list[Any] = [1]
    circular: list[Any] = [shared]
    circular.append(circular)
    for _ in range(20):  # more calls than encoders are kept idle
        with pytest.raises(SerializationError, match="circular"):
            stringify(circular)
        # the same inner list twice is not a cycle, whichever encoder the call gets
        assert stringify([shared, shared, {"a": shared}]) == '[[1],[1],{"a":[1]}]'


def test_stringify_called_from_inside_stringify_gets_its_own_encoder() -> None:
    nested: list[str] = []

    class Offset(tzinfo):
        def utcoffset(self, dt: datetime | None) -> timedelta:
            # user code running while the outer call is inside `root`: encoding `root` again
            # is not a cycle (a shared encoder would think so)
            if not nested:
                nested.append("running")
                nested.append(stringify(root))
            return timedelta(0)

    root = [{"at": datetime(2024, 1, 2, tzinfo=Offset())}]
    expected = '[{"at":"!Date:2024-01-02T00:00:00.000Z"}]'
    assert stringify(root) == expected
    assert nested == ["running", expected]


def test_parse_depth_bounds_are_kept_apart_by_the_cached_walks() -> None:
    text = "[[[1]]]"
    assert parse(text, max_depth=3) == [[[1]]]
    with pytest.raises(ValueError, match="deeper than 2"):
        parse(text, max_depth=2)
    assert parse(text, max_depth=3) == [[[1]]]


def test_a_reviver_and_a_replacer_may_call_parse_and_stringify_again() -> None:
    def reviver(s: str) -> tuple[bool, Any]:
        if s.startswith("!inner:"):
            return True, parse(s[7:], reviver=reviver, max_depth=4)
        return False, None

    text = '["!inner:[1,\\"!inner:[2]\\"]"]'
    assert parse(text, reviver=reviver, max_depth=4) == [[1, [2]]]

    def replacer(v: Any) -> str | None:
        return "=" + stringify({"n": [v]}) if isinstance(v, int) else None

    assert stringify([1, [2]], replacer=replacer) == '["={\\"n\\":[1]}",["={\\"n\\":[2]}"]]'
