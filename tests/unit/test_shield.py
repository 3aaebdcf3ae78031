"""Tests of the shield: validating telefunction arguments against type hints (HTTP 422).

The whole module uses ``from __future__ import annotations``, so every annotation below is a
string resolved through ``typing.get_type_hints``: forward references are exercised everywhere.
Types referenced by annotations are therefore defined at module level.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import gc
import inspect
import keyword
import re
import string
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Generic, Literal, NewType, NotRequired, Optional, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telefunc.errors import ShieldValidationError, UsageError
from telefunc.server import shield
from telefunc.server.shield import is_valid, validate_call, validate_value
from telefunc.wire import serializer
from telefunc.wire.serializer import UNDEFINED

# --------------------------------------------------------------------------------------------
# Module-level types (annotations are strings and resolve against these globals)
# --------------------------------------------------------------------------------------------


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Author(typing.TypedDict):
    name: str
    email: NotRequired[str]


class Message(typing.TypedDict):
    text: str
    author: Author
    tags: list[str]


class Partial(typing.TypedDict, total=False):
    a: int
    b: typing.Required[str]


class Child(Partial):
    c: float


class MaybeNone(typing.TypedDict):
    x: str | None


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


@dataclasses.dataclass
class Shape:
    name: str
    points: list[Point]
    color: Color = Color.RED
    tags: list[str] = dataclasses.field(default_factory=list)
    computed: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"secret-{self.n}")


T = TypeVar("T")


@dataclasses.dataclass
class Box(Generic[T]):
    item: T


@dataclasses.dataclass
class Tree:
    value: int
    children: list[Tree] = dataclasses.field(default_factory=list)


class Opaque:
    pass


class SelfValidating:
    """Stands in for Channel/File types: validates itself through the hook."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @classmethod
    def __telefunc_validate__(cls, value: Any, path: str) -> SelfValidating:
        if isinstance(value, str) and value.startswith("!ok"):
            return cls(value)
        if value == "value-error":
            raise ValueError("nope")
        raise ShieldValidationError(f"{path}: not a placeholder")


class GenericHooked(Generic[T]):
    @classmethod
    def __telefunc_validate__(cls, value: Any, path: str) -> Any:
        return ("hooked", value, path)


UserId = NewType("UserId", int)
Bounded = TypeVar("Bounded", bound=str)


def later_annotated(p: LaterDefined) -> LaterDefined:
    return p


@dataclasses.dataclass
class LaterDefined:
    v: int


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def reject(func: Callable[..., Any], args: list[Any]) -> str:
    """Assert a call is rejected and return the message."""
    with pytest.raises(ShieldValidationError) as info:
        validate_call(func, args)
    return str(info.value)


def reject_value(value: Any, annotation: Any) -> str:
    with pytest.raises(ShieldValidationError) as info:
        validate_value(value, annotation)
    assert not is_valid(value, annotation)
    return str(info.value)


@pytest.fixture
def undefined() -> Any:
    """The serializer's UNDEFINED: JavaScript's ``undefined`` as the shield receives it."""
    return UNDEFINED


# --------------------------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------------------------


def test_str() -> None:
    assert validate_value("hi", str) == "hi"
    assert reject_value(1, str) == "value: expected str, got int"
    assert reject_value(None, str) == "value: expected str, got None"


def test_int_rejects_bool_and_integral_float() -> None:
    assert validate_value(3, int) == 3
    assert validate_value(10**30, int) == 10**30  # BigInt
    assert reject_value(True, int) == "value: expected int, got bool"
    assert reject_value(3.0, int) == "value: expected int, got float"
    assert reject_value("3", int) == "value: expected int, got str"


def test_float_accepts_int_and_converts() -> None:
    result = validate_value(3, float)
    assert result == 3.0 and type(result) is float
    assert validate_value(2.5, float) == 2.5
    assert validate_value(float("inf"), float) == float("inf")
    assert reject_value(False, float) == "value: expected float, got bool"
    assert reject_value("1.0", float) == "value: expected float, got str"
    assert reject_value(10**400, float) == "value: expected float, got int"


def test_bool_rejects_int() -> None:
    assert validate_value(False, bool) is False
    assert reject_value(1, bool) == "value: expected bool, got int"
    assert reject_value(0, bool) == "value: expected bool, got int"


def test_none() -> None:
    assert validate_value(None, None) is None
    assert validate_value(None, type(None)) is None
    assert reject_value(0, None) == "value: expected None, got int"


def test_bytes() -> None:
    assert validate_value(b"\x01", bytes) == b"\x01"
    converted = validate_value(bytearray(b"ab"), bytes)
    assert converted == b"ab" and type(converted) is bytes
    assert reject_value("ab", bytes) == "value: expected bytes, got str"
    assert reject_value([1, 2], bytes) == "value: expected bytes, got list"


def test_datetime() -> None:
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    assert validate_value(moment, datetime.datetime) is moment
    assert reject_value("1970-01-01T00:00:00Z", datetime.datetime) == (
        "value: expected datetime, got str"
    )


def test_any_object_and_unannotated_accept_anything() -> None:
    sentinel = Opaque()
    assert validate_value(sentinel, Any) is sentinel
    assert validate_value(sentinel, object) is sentinel

    def f(a, b: Any, c: object):  # type: ignore[no-untyped-def]
        return a, b, c

    assert validate_call(f, [1, "x", sentinel]) == ([1, "x", sentinel], {})


# --------------------------------------------------------------------------------------------
# Argument matching
# --------------------------------------------------------------------------------------------


def onChat(text: str, msg: Message) -> None:
    pass


def test_message_names_function_argument_and_path() -> None:
    message = {"text": "hi", "author": {"name": "bob"}, "tags": []}
    assert reject(onChat, [1, message]) == "onChat() argument 1 (text): expected str, got int"
    assert reject(onChat, ["x", {"text": "hi", "tags": []}]) == (
        "onChat() argument 2 (msg).author: missing key"
    )
    bad_tag = {"text": "hi", "author": {"name": "bob"}, "tags": ["a", 2]}
    assert reject(onChat, ["x", bad_tag]) == (
        "onChat() argument 2 (msg).tags[1]: expected str, got int"
    )
    bad_email = {"text": "hi", "author": {"name": "bob", "email": None}, "tags": []}
    assert reject(onChat, ["x", bad_email]) == (
        "onChat() argument 2 (msg).author.email: expected str, got None"
    )
    assert validate_call(onChat, ["x", message]) == (["x", message], {})


def test_too_many_arguments() -> None:
    def two(a: int, b: int) -> None: ...

    assert reject(two, [1, 2, 3]) == "two() takes 2 arguments, got 3"

    def none() -> None: ...

    assert reject(none, ["x"]) == "none() takes 0 arguments, got 1"


def test_missing_argument_without_default_is_rejected() -> None:
    def f(a: int, b: str) -> None: ...

    assert reject(f, [1]) == "f() argument 2 (b): missing (expected str)"
    assert reject(f, []) == "f() argument 1 (a): missing (expected int)"


def test_missing_argument_takes_default() -> None:
    def f(a: int, b: str = "dflt", c: list[int] | None = None) -> tuple[Any, ...]:
        return a, b, c

    positional, keyword = validate_call(f, [1])
    assert (positional, keyword) == ([1], {})
    assert f(*positional, **keyword) == (1, "dflt", None)


def test_missing_optional_argument_becomes_none() -> None:
    def f(x: str | None) -> None: ...

    def g(x: Optional[int], y: int = 4, z: Literal["a", None] = "a") -> None: ...  # noqa: UP045

    def h(x) -> None: ...  # type: ignore[no-untyped-def]

    assert validate_call(f, []) == ([None], {})
    assert validate_call(g, []) == ([None], {})
    assert validate_call(h, []) == ([None], {})

    # Trailing defaults are left to Python rather than passed explicitly.
    def gap(a: int = 7, b: str | None = None, *, k: int = 0) -> None: ...

    assert validate_call(gap, []) == ([], {})


def test_undefined_argument_counts_as_missing(undefined: Any) -> None:
    def f(a: int = 5, b: int = 0, c: str | None = None) -> tuple[Any, ...]:
        return a, b, c

    positional, _ = validate_call(f, [undefined, 2])
    assert positional == [5, 2]
    assert f(*positional) == (5, 2, None)
    assert validate_call(f, [1, undefined]) == ([1], {})

    def g(a: int, b: str | None) -> None: ...

    assert validate_call(g, [1, undefined]) == ([1, None], {})
    assert reject(g, [undefined, None]) == "g() argument 1 (a): missing (expected int)"

    def h(a: str | None, b: int = 3, c: int | None = None) -> None: ...

    # b's default has to be passed explicitly because c gets an explicit value.
    assert validate_call(h, [undefined, undefined, 4]) == ([None, 3, 4], {})


def test_explicit_undefined_reaches_any_parameters(undefined: Any) -> None:
    def f(a: Any, b, c: object, d: Any = 7, e: Any | None = None) -> None:  # type: ignore[no-untyped-def]
        ...

    positional, _ = validate_call(f, [undefined, undefined, undefined, undefined])
    # Any, unannotated and object receive UNDEFINED itself; a default still wins, as in JS.
    assert positional == [undefined, undefined, undefined]
    # A missing argument (not sent at all) stays None.
    assert validate_call(f, [1]) == ([1, None, None], {})

    def g(a: int | None, b: str | None = None) -> None: ...

    # None-admitting annotations keep turning undefined into None.
    assert validate_call(g, [undefined, undefined]) == ([None], {})


def test_null_is_not_undefined() -> None:
    def f(x: int = 3) -> None: ...

    assert reject(f, [None]) == "f() argument 1 (x): expected int, got None"


def test_var_positional_validates_each_item() -> None:
    def f(first: str, *rest: int) -> None: ...

    assert validate_call(f, ["a", 1, 2]) == (["a", 1, 2], {})
    assert validate_call(f, ["a"]) == (["a"], {})
    assert reject(f, ["a", 1, "2"]) == "f() argument 3 (*rest): expected int, got str"

    def g(*values: float) -> None: ...

    assert validate_call(g, [1, 2.5]) == ([1.0, 2.5], {})


def test_var_keyword_is_ignored() -> None:
    def f(a: int, **options: str) -> None: ...

    assert validate_call(f, [1]) == ([1], {})
    assert reject(f, [1, 2]) == "f() takes 1 argument, got 2"


def test_keyword_only_parameters() -> None:
    def ok(a: int, *, flag: bool = False) -> None: ...

    assert validate_call(ok, [1]) == ([1], {})

    def broken(a: int, *, flag: bool) -> None: ...

    with pytest.raises(UsageError, match=r"broken\(\).*'flag'"):
        validate_call(broken, [1])


def test_positional_only_parameters() -> None:
    def f(a: int, b: str = "x", /, c: float = 1.0) -> None: ...

    assert validate_call(f, [1, "y", 2]) == ([1, "y", 2.0], {})


def test_conversions_reach_the_call() -> None:
    def f(p: Point, pair: tuple[int, str], c: Color) -> tuple[Any, ...]:
        return p, pair, c

    positional, keyword = validate_call(f, [{"x": 1}, [2, "b"], "green"])
    assert f(*positional, **keyword) == (Point(1, 0), (2, "b"), Color.GREEN)


def test_methods_partials_and_callable_objects() -> None:
    class Service:
        def method(self, a: int) -> int:
            return a

        def __call__(self, b: str) -> str:
            return b

    service = Service()
    assert validate_call(service.method, [1]) == ([1], {})
    assert reject(service.method, ["1"]) == "method() argument 1 (a): expected int, got str"
    assert validate_call(service, ["x"]) == (["x"], {})
    assert reject(service, [1]).endswith("argument 1 (b): expected str, got int")

    def add(a: int, b: int) -> int:
        return a + b

    partial = functools.partial(add, 1)
    assert validate_call(partial, [2]) == ([2], {})
    assert reject(partial, ["2"]) == "add() argument 1 (b): expected int, got str"


def test_decorated_function_with_wraps() -> None:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return wrapper

    @deco
    def f(a: int) -> int:
        return a

    assert validate_call(f, [1]) == ([1], {})
    assert reject(f, ["x"]) == "f() argument 1 (a): expected int, got str"


# --------------------------------------------------------------------------------------------
# Caching
# --------------------------------------------------------------------------------------------


def test_analysis_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = shield._analyse

    def spy(func: Any) -> Any:
        calls.append(func)
        return real(func)

    monkeypatch.setattr(shield, "_analyse", spy)

    def f(a: int) -> None: ...

    for _ in range(5):
        validate_call(f, [1])
    assert calls == [f]

    class K:
        def m(self, a: int) -> None: ...

    obj = K()
    for _ in range(3):
        validate_call(obj.m, [1])  # a new bound-method object every time
    assert len(calls) == 2


def test_unhashable_callable_object_is_analysed_each_time() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, a: int) -> None: ...

    obj = Unhashable()
    assert validate_call(obj, [1]) == ([1], {})
    assert reject(obj, ["1"]).endswith("expected int, got str")


def test_failed_analysis_is_not_cached() -> None:
    def f(a: NotYetDefined) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(UsageError, match=r"f\(\).*NotYetDefined"):
        validate_call(f, [1])
    globals()["NotYetDefined"] = int
    try:
        assert validate_call(f, [1]) == ([1], {})
    finally:
        del globals()["NotYetDefined"]


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


def test_list() -> None:
    assert validate_value([1, 2], list[int]) == [1, 2]
    assert validate_value([1, 2], list[float]) == [1.0, 2.0]
    assert reject_value([1, True], list[int]) == "value[1]: expected int, got bool"
    assert reject_value((1,), list[int]) == "value: expected list[int], got tuple"
    assert reject_value("ab", list[str]) == "value: expected list[str], got str"
    assert validate_value([1, "a", None], list) == [1, "a", None]
    assert validate_value([1, "a"], typing.List) == [1, "a"]  # noqa: UP006


def test_tuple_variadic_converts_list() -> None:
    result = validate_value([1, 2, 3], tuple[int, ...])
    assert result == (1, 2, 3) and type(result) is tuple
    assert validate_value([], tuple[int, ...]) == ()
    assert reject_value([1, "2"], tuple[int, ...]) == "value[1]: expected int, got str"
    assert reject_value({"a": 1}, tuple[int, ...]) == "value: expected tuple[int, ...], got dict"


def test_tuple_fixed() -> None:
    assert validate_value([1, "a", 2], tuple[int, str, float]) == (1, "a", 2.0)
    assert validate_value([], tuple[()]) == ()
    assert reject_value([1, "a"], tuple[int, str, int]) == (
        "value: expected tuple[int, str, int] (3 items), got 2 items"
    )
    assert reject_value([1, 2, 3], tuple[int]) == (
        "value: expected tuple[int] (1 item), got 3 items"
    )
    assert reject_value([1, 2], tuple[int, str]) == "value[1]: expected str, got int"
    assert validate_value([1, "x"], tuple) == (1, "x")


def test_dict() -> None:
    assert validate_value({"a": 1}, dict[str, float]) == {"a": 1.0}
    assert reject_value({"a": "x"}, dict[str, int]) == "value['a']: expected int, got str"
    assert reject_value({1: 1}, dict[str, int]) == "value[1] (key): expected str, got int"
    assert reject_value([("a", 1)], dict[str, int]) == ("value: expected dict[str, int], got list")
    assert validate_value({"a": object}, dict)["a"] is object
    long_key = "k" * 100
    message = reject_value({long_key: "x"}, dict[str, int])
    assert long_key not in message and len(message) < 100


def test_dict_key_conversion() -> None:
    assert validate_value({"red": 1}, dict[Color, int]) == {Color.RED: 1}
    assert validate_value({1: "a"}, Mapping[Level, str]) == {Level.LOW: "a"}


def test_set_and_frozenset() -> None:
    assert validate_value({1, 2}, set[int]) == {1, 2}
    result = validate_value({1, 2}, frozenset[float])
    assert result == frozenset({1.0, 2.0}) and type(result) is frozenset
    assert reject_value({1, "a"}, set[int]) == "value[*]: expected int, got str"
    assert reject_value([1, 2], set[int]) == "value: expected set[int], got list"
    assert validate_value({"a"}, typing.AbstractSet[str]) == {"a"}


def test_abc_sequence_and_mapping() -> None:
    assert validate_value([1, 2], Sequence[int]) == [1, 2]
    assert validate_value((1, 2), Sequence[int]) == (1, 2)
    assert reject_value("ab", Sequence[str]) == "value: expected Sequence[str], got str"
    assert reject_value([1, "a"], Sequence[int]) == "value[1]: expected int, got str"
    assert validate_value({"a": [1]}, Mapping[str, Sequence[int]]) == {"a": [1]}
    assert reject_value({"a": [1, None]}, Mapping[str, Sequence[int]]) == (
        "value['a'][1]: expected int, got None"
    )
    assert validate_value([1], typing.Iterable[int]) == [1]
    assert reject_value("abc", typing.Iterable[str]) == "value: expected Iterable[str], got str"


def test_deeply_nested_generics() -> None:
    annotation = dict[str, list[tuple[int, dict[str, list[Point | None]]]]]
    value = {"k": [[1, {"p": [{"x": 1}, None]}], [2, {}]]}
    result = validate_value(value, annotation)
    assert result == {"k": [(1, {"p": [Point(1), None]}), (2, {})]}
    bad = {"k": [[1, {"p": [{"x": 1}, {"x": "no"}]}]]}
    assert reject_value(bad, annotation) == "value['k'][0][1]['p'][1].x: expected int, got str"


def test_fast_path_still_reports_the_failing_index() -> None:
    values: list[Any] = [*range(1000), "x"]
    assert reject_value(values, list[int]) == "value[1000]: expected int, got str"
    assert reject_value([*"abc", 1], tuple[str, ...]) == "value[3]: expected str, got int"


# --------------------------------------------------------------------------------------------
# Union / Optional
# --------------------------------------------------------------------------------------------


def test_optional() -> None:
    assert validate_value(None, int | None) is None
    assert validate_value(1, Optional[int]) == 1  # noqa: UP045
    assert reject_value("x", int | None) == "value: expected int, got str"
    # For `X | None` the member's own deeper message is kept.
    assert reject_value({"x": "1"}, Point | None) == "value.x: expected int, got str"


def test_union_first_member_wins_with_conversion() -> None:
    result = validate_value(3, float | int)
    assert result == 3.0 and type(result) is float
    result = validate_value(3, int | float)
    assert result == 3 and type(result) is int
    assert validate_value([1, 2], tuple[int, int] | list[int]) == (1, 2)
    assert validate_value([1, 2, 3], tuple[int, int] | list[int]) == [1, 2, 3]
    assert validate_value({"x": 1}, Point | dict[str, int]) == Point(1)


def test_union_failure_message() -> None:
    assert reject_value(1.5, int | str) == "value: expected int | str, got float"
    assert reject_value(True, typing.Union[int, str, None]) == (  # noqa: UP007
        "value: expected int | str | None, got bool"
    )


def test_undefined_inside_values(undefined: Any) -> None:
    assert validate_value(undefined, int | None) is None
    assert validate_value([undefined], list[str | None]) == [None]
    assert validate_value(undefined, Any) is undefined
    assert reject_value(undefined, int) == "value: expected int, got undefined"
    assert reject_value([undefined], list[str]) == "value[0]: expected str, got undefined"


# --------------------------------------------------------------------------------------------
# Literal
# --------------------------------------------------------------------------------------------


def test_literal_exact_value_and_type() -> None:
    assert validate_value("a", Literal["a", "b"]) == "a"
    assert reject_value("c", Literal["a", "b"]) == (
        "value: expected Literal['a', 'b'], got another str"
    )
    assert validate_value(1, Literal[1]) == 1
    assert reject_value(True, Literal[1]) == "value: expected Literal[1], got bool"
    assert reject_value(1.0, Literal[1]) == "value: expected Literal[1], got float"
    assert reject_value(1, Literal[True]) == "value: expected Literal[True], got int"
    assert validate_value(None, Literal["a", None]) is None


def test_literal_of_enum_members() -> None:
    assert validate_value("red", Literal[Color.RED]) is Color.RED
    assert validate_value(Color.RED, Literal[Color.RED]) is Color.RED
    assert not is_valid("green", Literal[Color.RED])
    assert not is_valid(True, Literal[Level.LOW])


# --------------------------------------------------------------------------------------------
# TypedDict
# --------------------------------------------------------------------------------------------


def test_typeddict_required_and_not_required() -> None:
    assert validate_value({"name": "bob"}, Author) == {"name": "bob"}
    assert validate_value({"name": "bob", "email": "e"}, Author) == {"name": "bob", "email": "e"}
    assert reject_value({}, Author) == "value.name: missing key"
    assert reject_value({"name": "b", "admin": True}, Author) == "value: unexpected key 'admin'"
    assert reject_value(["bob"], Author) == "value: expected Author, got list"


def test_typeddict_total_false_and_required() -> None:
    assert validate_value({"b": "x"}, Partial) == {"b": "x"}
    assert validate_value({"b": "x", "a": 1}, Partial) == {"b": "x", "a": 1}
    assert reject_value({"a": 1}, Partial) == "value.b: missing key"


def test_typeddict_inheritance_mixes_totality() -> None:
    assert validate_value({"b": "x", "c": 1}, Child) == {"b": "x", "c": 1.0}
    assert reject_value({"b": "x"}, Child) == "value.c: missing key"


def test_typeddict_required_optional_type_still_requires_key() -> None:
    assert validate_value({"x": None}, MaybeNone) == {"x": None}
    assert reject_value({}, MaybeNone) == "value.x: missing key"


def test_typeddict_undefined_member(undefined: Any) -> None:
    # `{name: "b", email: undefined}` from JS: the optional key counts as absent.
    assert validate_value({"name": "b", "email": undefined}, Author) == {"name": "b"}
    assert validate_value({"x": undefined}, MaybeNone) == {"x": None}
    assert reject_value({"name": undefined}, Author) == "value.name: expected str, got undefined"


def test_typeddict_functional_syntax_and_odd_keys() -> None:
    Odd = typing.TypedDict("Odd", {"my-key": int, "ok": str})
    assert validate_value({"my-key": 1, "ok": "y"}, Odd) == {"my-key": 1, "ok": "y"}
    assert reject_value({"my-key": "1", "ok": "y"}, Odd) == (
        "value['my-key']: expected int, got str"
    )


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


def test_dataclass_from_dict() -> None:
    assert validate_value({"x": 1, "y": 2}, Point) == Point(1, 2)
    assert validate_value({"x": 1}, Point) == Point(1, 0)
    assert reject_value({"y": 1}, Point) == "value.x: missing key"
    assert reject_value({"x": 1, "z": 0}, Point) == "value: unexpected key 'z'"
    assert reject_value({"x": 1.5}, Point) == "value.x: expected int, got float"
    assert reject_value([1, 2], Point) == "value: expected Point, got list"


def test_dataclass_nested_with_factories_and_init_false() -> None:
    shape = validate_value({"name": "tri", "points": [{"x": 1}, {"x": 2, "y": 3}]}, Shape)
    assert shape == Shape("tri", [Point(1), Point(2, 3)])
    assert shape.tags == [] and shape.color is Color.RED
    shape = validate_value({"name": "s", "points": [], "color": "green", "tags": ["t"]}, Shape)
    assert shape.color is Color.GREEN and shape.tags == ["t"]
    assert reject_value({"name": "s", "points": [], "computed": 1}, Shape) == (
        "value: unexpected key 'computed'"
    )
    assert reject_value({"name": "s", "points": [{"x": 1}, {}]}, Shape) == (
        "value.points[1].x: missing key"
    )


def test_dataclass_instance_is_accepted() -> None:
    point = Point(1, 2)
    assert validate_value(point, Point) is point
    assert reject_value(Opaque(), Point) == "value: expected Point, got Opaque"


def test_dataclass_post_init_rejection_is_a_validation_error() -> None:
    assert validate_value({"n": 1}, Positive) == Positive(1)
    message = reject_value({"n": -5}, Positive)
    assert message == "value: Positive(...) rejected the values (ValueError)"
    assert "secret" not in message


def test_dataclass_undefined_field_takes_default(undefined: Any) -> None:
    assert validate_value({"x": 1, "y": undefined}, Point) == Point(1, 0)
    assert reject_value({"x": undefined}, Point) == "value.x: expected int, got undefined"


def test_generic_and_recursive_dataclasses() -> None:
    assert validate_value({"item": 3}, Box[float]) == Box(3.0)
    assert reject_value({"item": "x"}, Box[int]) == "value.item: expected int, got str"
    assert validate_value({"item": "anything"}, Box) == Box("anything")
    tree = validate_value({"value": 1, "children": [{"value": 2}]}, Tree)
    assert tree == Tree(1, [Tree(2)])
    assert reject_value({"value": 1, "children": [{"value": 2, "children": [{}]}]}, Tree) == (
        "value.children[0].children[0].value: missing key"
    )


# --------------------------------------------------------------------------------------------
# Enums
# --------------------------------------------------------------------------------------------


def test_str_enum() -> None:
    assert validate_value("red", Color) is Color.RED
    assert validate_value(Color.GREEN, Color) is Color.GREEN
    assert reject_value("blue", Color) == "value: expected a value of Color (str), got another str"
    assert reject_value(1, Color) == "value: expected a value of Color (str), got int"


def test_int_enum_rejects_bool_and_float() -> None:
    assert validate_value(2, Level) is Level.HIGH
    assert reject_value(True, Level) == "value: expected a value of Level (int), got bool"
    assert reject_value(1.0, Level) == "value: expected a value of Level (int), got float"
    assert reject_value(None, Level) == "value: expected Level, got None"


# --------------------------------------------------------------------------------------------
# Wrappers and other annotation forms
# --------------------------------------------------------------------------------------------


def test_annotated_newtype_typevar() -> None:
    assert validate_value(1, Annotated[int, "meta"]) == 1
    assert reject_value("1", Annotated[int, "meta"]) == "value: expected int, got str"
    assert validate_value(5, UserId) == 5
    assert reject_value("5", UserId) == "value: expected int, got str"
    assert validate_value("s", Bounded) == "s"
    assert reject_value(1, Bounded) == "value: expected str, got int"
    assert validate_value(object, T) is object

    def f(a: Annotated[list[Annotated[int, "x"]], "y"]) -> None: ...

    assert reject(f, [[1, "2"]]) == "f() argument 1 (a)[1]: expected int, got str"


def test_callable_annotation() -> None:
    assert validate_value(len, Callable[[str], int]) is len
    assert reject_value("len", Callable[[str], int]).startswith("value: expected ")


def test_unknown_class_uses_isinstance() -> None:
    item = Opaque()
    assert validate_value(item, Opaque) is item
    assert reject_value({}, Opaque) == "value: expected Opaque, got dict"
    assert validate_value(datetime.date(2020, 1, 1), datetime.date) == datetime.date(2020, 1, 1)


def test_validation_hook_is_delegated_to() -> None:
    result = validate_value("!ok:1", SelfValidating)
    assert isinstance(result, SelfValidating) and result.raw == "!ok:1"
    assert reject_value("nope", SelfValidating) == "value: not a placeholder"
    assert reject_value("value-error", SelfValidating) == "value: rejected (ValueError)"

    def f(a: int, ch: SelfValidating | None = None) -> None: ...

    assert reject(f, [1, "x"]) == "f() argument 2 (ch): not a placeholder"
    assert validate_value([1], GenericHooked[int]) == ("hooked", [1], "value")


def test_unsupported_or_unresolved_annotations_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        validate_value(1, "int")
    with pytest.raises(UsageError):
        validate_value(1, typing.Never)

    def f(a: DoesNotExist) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(UsageError, match=r"f\(\)"):
        validate_call(f, [1])


def test_forward_reference_defined_after_the_function() -> None:
    positional, _ = validate_call(later_annotated, [{"v": 1}])
    assert positional == [LaterDefined(1)]
    assert reject(later_annotated, [{"v": "1"}]) == (
        "later_annotated() argument 1 (p).v: expected int, got str"
    )


def test_javascript_sets_and_maps() -> None:
    js_set = serializer.JsSet([[1, 2], [3, 4]])  # a Set of arrays: unhashable in Python
    assert validate_value(js_set, set[tuple[int, int]]) == {(1, 2), (3, 4)}
    assert reject_value(js_set, set[list[int]]) == "value[*]: unhashable"
    assert reject_value(js_set, list[list[int]]) == "value: expected list[list[int]], got JsSet"
    assert reject_value({1, 2}, list[int]) == "value: expected list[int], got set"

    entries = serializer.JsMapEntries([([1, 2], "a")])  # a Map with an array key
    assert validate_value(entries, dict[tuple[int, int], str]) == {(1, 2): "a"}
    assert reject_value(entries, dict[list[int], str]) == "value[list] (key): unhashable"
    assert reject_value(entries, list[Any]) == "value: expected list[Any], got JsMapEntries"

    js_map = serializer.JsMap({"x": 1})
    assert validate_value(js_map, dict[str, int]) == {"x": 1}
    assert reject_value(js_map, Point) == "value: expected Point, got JsMap"
    assert reject_value(js_map, Author) == "value: expected Author, got JsMap"


def test_arguments_parsed_by_the_serializer() -> None:

    def onHello(
        name: str, when: datetime.datetime, big: int, seen: set[str], extra: str | None
    ) -> None: ...

    body = serializer.parse(
        '{"args":["Bob","!Date:1970-01-01T00:00:00.005Z","!BigInt:10","!Set:[\\"a\\"]",'
        '"!undefined"]}'
    )
    positional, _ = validate_call(onHello, body["args"])
    assert positional[0] == "Bob"
    assert positional[1] == datetime.datetime(1970, 1, 1, 0, 0, 0, 5000, tzinfo=datetime.UTC)
    assert positional[2] == 10 and positional[3] == {"a"} and positional[4] is None
    assert reject(onHello, body["args"][:2]) == "onHello() argument 3 (big): missing (expected int)"


def test_is_valid() -> None:
    assert is_valid([1, 2], list[int])
    assert not is_valid([1, "2"], list[int])
    assert is_valid({"x": 1}, Point)
    with pytest.raises(UsageError):
        is_valid(1, "int")


# --------------------------------------------------------------------------------------------
# Property-based: generated types with matching values validate; mutated values fail
# --------------------------------------------------------------------------------------------
#
# A schema is a small tree: ("str"|"int"|"float"|"bool"|"none",) leaves and ("list", s),
# ("tuple", [s...]), ("vtuple", s), ("dict", s), ("opt", s), ("td", {k: (s, required)}),
# ("dc", {k: (s, has_default)}), ("lit", values). From it we derive the annotation, a matching
# JSON-like value, the expected converted result, and a deliberately wrong value.

Schema = tuple[Any, ...]
# Keys must be usable as dataclass field names too.
_KEYS = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=5).filter(
    lambda k: not keyword.iskeyword(k) and k != "self"
)
_counter = iter(range(10**9))


def _leaf() -> st.SearchStrategy[Schema]:
    return st.sampled_from([("str",), ("int",), ("float",), ("bool",), ("none",)]) | st.builds(
        lambda values: ("lit", tuple(values)),
        st.lists(st.one_of(st.text(max_size=3), st.integers(-3, 3)), min_size=1, max_size=3),
    )


def _extend(children: st.SearchStrategy[Schema]) -> st.SearchStrategy[Schema]:
    fields = st.dictionaries(_KEYS, st.tuples(children, st.booleans()), min_size=1, max_size=4)
    return st.one_of(
        st.tuples(st.just("list"), children),
        st.tuples(st.just("vtuple"), children),
        st.tuples(st.just("tuple"), st.lists(children, min_size=1, max_size=3)),
        st.tuples(st.just("dict"), children),
        st.tuples(st.just("opt"), children.filter(lambda s: s[0] not in ("none", "opt"))),
        st.tuples(st.just("td"), fields),
        st.tuples(st.just("dc"), fields),
    )


schemas = st.recursive(_leaf(), _extend, max_leaves=8)
_SCALARS = {"str": str, "int": int, "float": float, "bool": bool, "none": type(None)}


def annotation_of(schema: Schema) -> Any:
    kind = schema[0]
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "lit":
        return typing.cast(Any, Literal)[schema[1]]
    if kind == "list":
        return list[annotation_of(schema[1])]  # type: ignore[misc]
    if kind == "vtuple":
        return tuple[annotation_of(schema[1]), ...]  # type: ignore[misc]
    if kind == "tuple":
        return typing.cast(Any, tuple)[tuple(annotation_of(s) for s in schema[1])]
    if kind == "dict":
        return dict[str, annotation_of(schema[1])]  # type: ignore[misc]
    if kind == "opt":
        return annotation_of(schema[1]) | None
    if kind == "td":
        name = f"TD{next(_counter)}"
        items = {
            k: annotation_of(s) if required else NotRequired[annotation_of(s)]
            for k, (s, required) in schema[1].items()
        }
        return typing.TypedDict(name, items)  # type: ignore[operator]
    if kind == "dc":
        specs: list[Any] = []
        for key, (s, has_default) in schema[1].items():
            ann = annotation_of(s)
            if has_default:
                specs.append((key, ann, dataclasses.field(default=None)))
            else:
                specs.append((key, ann))
        # Fields with defaults must follow the others.
        specs.sort(key=lambda spec: len(spec) == 3)
        return dataclasses.make_dataclass(f"DC{next(_counter)}", specs)
    raise AssertionError(kind)


@st.composite
def value_of(draw: st.DrawFn, schema: Schema, annotation: Any) -> tuple[Any, Any]:
    """A matching JSON-like value and the converted value the shield should return."""
    kind = schema[0]
    if kind == "str":
        v: Any = draw(st.text(max_size=5))
        return v, v
    if kind == "int":
        v = draw(st.integers())
        return v, v
    if kind == "float":
        v = draw(st.integers(-(10**6), 10**6) | st.floats(allow_nan=False))
        return v, float(v)
    if kind == "bool":
        v = draw(st.booleans())
        return v, v
    if kind == "none":
        return None, None
    if kind == "lit":
        v = draw(st.sampled_from(schema[1]))
        return v, v
    if kind in ("list", "vtuple"):
        (item_ann,) = typing.get_args(annotation)[:1]
        pairs = draw(st.lists(value_of(schema[1], item_ann), max_size=4))
        raw = [p[0] for p in pairs]
        converted = [p[1] for p in pairs]
        return raw, converted if kind == "list" else tuple(converted)
    if kind == "tuple":
        anns = typing.get_args(annotation)
        pairs = [draw(value_of(s, a)) for s, a in zip(schema[1], anns, strict=True)]
        return [p[0] for p in pairs], tuple(p[1] for p in pairs)
    if kind == "dict":
        item_ann = typing.get_args(annotation)[1]
        entries = draw(st.dictionaries(_KEYS, value_of(schema[1], item_ann), max_size=3))
        return {k: p[0] for k, p in entries.items()}, {k: p[1] for k, p in entries.items()}
    if kind == "opt":
        inner_ann = typing.get_args(annotation)[0]
        if draw(st.booleans()):
            return None, None
        return draw(value_of(schema[1], inner_ann))
    if kind in ("td", "dc"):
        hints = typing.get_type_hints(annotation, include_extras=False)
        raw_obj: dict[str, Any] = {}
        conv_obj: dict[str, Any] = {}
        for key, (s, flag) in schema[1].items():
            optional = flag if kind == "dc" else not flag
            if optional and draw(st.booleans()):
                continue
            raw_v, conv_v = draw(value_of(s, hints[key]))
            raw_obj[key], conv_obj[key] = raw_v, conv_v
        if kind == "td":
            return raw_obj, conv_obj
        return raw_obj, annotation(**conv_obj)
    raise AssertionError(kind)


class _Alien:
    """A value no generated annotation accepts."""


_WRONG = {
    # None is never used as the wrong value: under `X | None` it would be right.
    "str": [1, b"x", _Alien()],
    "int": [True, 1.5, "1", _Alien()],
    "float": ["x", True, _Alien()],
    "bool": [1, 0, "true", _Alien()],
    "none": [0, False, "", _Alien()],
    "lit": [_Alien(), 2.5],
}


@st.composite
def mutated(draw: st.DrawFn, schema: Schema, raw: Any) -> Any:
    """Return ``raw`` with one part made wrong for ``schema`` (never accepted)."""
    kind = schema[0]
    if kind in _WRONG:
        return draw(st.sampled_from(_WRONG[kind]))
    if kind == "opt":
        if raw is None:
            return _Alien()
        return draw(mutated(schema[1], raw))
    options: list[str] = ["alien"]
    if kind in ("list", "vtuple") and raw:
        options.append("item")
    if kind == "tuple":
        options += ["item", "length"]
    if kind == "dict" and raw:
        options.append("item")
    if kind in ("td", "dc"):
        options.append("extra")
        if raw:
            options.append("field")
        if (
            any(not opt for _, opt in schema[1].values())
            if kind == "dc"
            else any(required for _, required in schema[1].values())
        ):
            options.append("drop")
    how = draw(st.sampled_from(options))
    if how == "alien":
        return _Alien()
    if how == "length":
        return [*raw, 0]
    if how == "item" and kind in ("list", "vtuple", "tuple"):
        index = draw(st.integers(0, len(raw) - 1))
        child = schema[1] if kind != "tuple" else schema[1][index]
        copy = list(raw)
        copy[index] = draw(mutated(child, raw[index]))
        return copy
    if how == "item":  # dict
        key = draw(st.sampled_from(sorted(raw)))
        return {**raw, key: draw(mutated(schema[1], raw[key]))}
    if how == "extra":
        return {**raw, "EXTRA-KEY": 1}
    if how == "field":
        key = draw(st.sampled_from(sorted(raw)))
        return {**raw, key: draw(mutated(schema[1][key][0], raw[key]))}
    # drop a required key
    required = [k for k, (_, flag) in schema[1].items() if (not flag if kind == "dc" else flag)]
    key = draw(st.sampled_from(required))
    return {k: v for k, v in raw.items() if k != key}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_values_validate(data: st.DataObject) -> None:
    schema = data.draw(schemas)
    annotation = annotation_of(schema)
    raw, expected = data.draw(value_of(schema, annotation))
    result = validate_value(raw, annotation)
    assert result == expected
    assert type(result) is type(expected)
    assert is_valid(raw, annotation)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_values_fail(data: st.DataObject) -> None:
    schema = data.draw(schemas)
    annotation = annotation_of(schema)
    raw, _ = data.draw(value_of(schema, annotation))
    wrong = data.draw(mutated(schema, raw))
    with pytest.raises(ShieldValidationError) as info:
        validate_value(wrong, annotation)
    assert str(info.value).startswith("value")
    assert not is_valid(wrong, annotation)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_generated_arguments_validate_through_validate_call(data: st.DataObject) -> None:
    schemas_drawn = data.draw(st.lists(schemas, min_size=1, max_size=3))
    annotations = [annotation_of(s) for s in schemas_drawn]

    def telefunction(*args: Any) -> None: ...

    # Give the function real, resolved parameter annotations.
    params = [
        inspect.Parameter(f"p{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=ann)
        for i, ann in enumerate(annotations)
    ]
    telefunction.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    telefunction.__annotations__ = {f"p{i}": ann for i, ann in enumerate(annotations)}
    pairs = [data.draw(value_of(s, a)) for s, a in zip(schemas_drawn, annotations, strict=True)]
    positional, keyword = validate_call(telefunction, [p[0] for p in pairs])
    assert positional == [p[1] for p in pairs] and keyword == {}
    index = data.draw(st.integers(0, len(pairs) - 1))
    args = [p[0] for p in pairs]
    args[index] = data.draw(mutated(schemas_drawn[index], args[index]))
    message = reject(telefunction, args)
    assert message.startswith(f"telefunction() argument {index + 1} (p{index})")


# --- the all-exact fast path and the plan cache ------------------------------------------------


def exact_params(a: int, b: str, c: Any, d: float) -> None:
    pass


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([True, "s", 1, 1.5], "argument 1 (a): expected int, got bool"),
        ([1, b"s", 1, 1.5], "argument 2 (b): expected str"),
        ([1, "s", 1, UNDEFINED], "argument 4 (d): missing"),
        ([1, "s", 1, 1.5, 9], "takes 4 arguments, got 5"),
    ],
)
def test_a_call_of_exact_scalars_that_does_not_match_is_still_refused(
    args: list[Any], message: str
) -> None:
    with pytest.raises(ShieldValidationError, match=re.escape(message)):
        validate_call(exact_params, args)


def test_a_call_of_exact_scalars_passes_as_it_is() -> None:
    args = [1, "s", object(), 2.5]
    positional, keyword = validate_call(exact_params, args)
    assert positional == args and positional is not args
    assert keyword == {}
    # A missing trailing argument still goes by Python's default, through the full path.
    assert validate_call(with_default, [1]) == ([1], {})


def with_default(a: int, b: int = 5) -> None:
    pass


def test_the_plan_cache_forgets_a_collected_function() -> None:
    namespace: dict[str, Any] = {}
    exec("def temporary(x: int) -> None: pass", namespace)
    func = namespace.pop("temporary")
    key = id(func)
    validate_call(func, [1])
    assert key in shield._PLANS_BY_ID
    del func
    gc.collect()
    assert key not in shield._PLANS_BY_ID
