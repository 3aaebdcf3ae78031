"""A byte-compatible port of ``@brillout/json-serializer`` 0.5.27, as telefunc@0.2.23 ships it.

:func:`stringify` produces, for the Python equivalent of a JavaScript value, exactly the text the
npm ``stringify()`` produces; :func:`parse` accepts everything the npm side produces and returns
values that serialize back to the same text (``JsSet``, ``JsMap``, ``JsMapEntries`` where a plain
Python type would lose information). Anything else raises :class:`SerializationError`; malformed
text raises ``ValueError``. The format and the Python/JavaScript mapping: docs/protocol.md §3.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import json.encoder
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from telefunc.errors import SerializationError

__all__ = [
    "MAX_SAFE_INTEGER",
    "UNDEFINED",
    "BigInt",
    "JsMap",
    "JsMapEntries",
    "JsRegExp",
    "JsSet",
    "UndefinedType",
    "format_js_number",
    "parse",
    "stringify",
]

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""``Number.MAX_SAFE_INTEGER``: the largest int sent as a JSON number rather than a bigint."""

Replacer = Callable[[Any], str | None]
Reviver = Callable[[str], tuple[bool, Any]]


class UndefinedType(enum.Enum):
    """The type of :data:`UNDEFINED` (an enum so the singleton survives copy and pickle)."""

    UNDEFINED = "UNDEFINED"

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = UndefinedType.UNDEFINED
"""JavaScript ``undefined``; falsy, distinct from ``None`` (which is ``null``)."""


class BigInt(int):
    """An ``int`` that always serializes as a JavaScript bigint (``"!BigInt:<digits>"``)."""

    def __repr__(self) -> str:
        return f"BigInt({int.__repr__(self)})"

    # int has no own __str__, so without this str() would use the __repr__ above.
    __str__ = int.__repr__


class JsMap(dict[Any, Any]):
    """A ``dict`` that always serializes as a JavaScript ``Map``, even with only ``str`` keys."""

    def __repr__(self) -> str:
        return f"JsMap({dict.__repr__(self)})"


class JsMapEntries(list[tuple[Any, Any]]):
    """A JavaScript ``Map`` as an ordered list of ``(key, value)`` tuples.

    :func:`parse` returns this instead of a :class:`JsMap` when the Map cannot be a ``dict``
    without losing information (an unhashable key such as an array or object, or keys that are
    distinct in JavaScript but equal in Python, like ``1`` and ``true``).
    """

    def __repr__(self) -> str:
        return f"JsMapEntries({list.__repr__(self)})"


class JsSet(list[Any]):
    """A JavaScript ``Set`` as an ordered list of its elements.

    :func:`parse` returns this instead of a ``set`` when a ``set`` would lose information
    (unhashable elements, or elements distinct in JavaScript but equal in Python). It can also
    be passed to :func:`stringify` to send a Set whose element order matters.
    """

    def __repr__(self) -> str:
        return f"JsSet({list.__repr__(self)})"


@dataclass(frozen=True)
class JsRegExp:
    """A JavaScript ``RegExp``: its ``source`` (as ``RegExp#source`` shows it) and ``flags``."""

    source: str
    flags: str = ""

    def __str__(self) -> str:
        return f"/{self.source}/{self.flags}"

    @classmethod
    def from_pattern(cls, pattern: re.Pattern[str]) -> JsRegExp:
        """Convert a compiled ``str`` pattern; raises ``ValueError`` when it has no JS equivalent.

        ``re.IGNORECASE``/``MULTILINE``/``DOTALL`` map to ``i``/``m``/``s``; ``re.VERBOSE`` is
        rejected. The source is escaped like V8's ``RegExp#source`` (``/`` outside character
        classes and line terminators); Python-only syntax such as ``(?P<name>…)`` is kept as-is.
        """
        if not isinstance(pattern.pattern, str):
            raise ValueError("a bytes regular expression has no JavaScript equivalent")
        if pattern.flags & re.VERBOSE:
            raise ValueError("re.VERBOSE has no JavaScript equivalent")
        flags = ""
        if pattern.flags & re.IGNORECASE:
            flags += "i"
        if pattern.flags & re.MULTILINE:
            flags += "m"
        if pattern.flags & re.DOTALL:
            flags += "s"
        return cls(_js_regexp_source(pattern.pattern), flags)


_REGEXP_SOURCE_ESCAPES: Final = {
    "\n": "\\n",
    "\r": "\\r",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _js_regexp_source(src: str) -> str:
    if not src:
        return "(?:)"
    out: list[str] = []
    in_class = False
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            out.append(src[i : i + 2])
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            c = "\\/"
        else:
            c = _REGEXP_SOURCE_ESCAPES.get(c, c)
        out.append(c)
        i += 1
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Numbers


def format_js_number(x: float) -> str:
    """Format a finite float exactly like JavaScript's ``Number.prototype.toString()``."""
    if x == 0:
        return "0"  # also -0.0: JSON.stringify(-0) is "0"
    r = repr(x)
    if "e" not in r:
        # Python prints positionally only for 1e-4 <= |x| < 1e16, where JavaScript does too and
        # both use the same shortest round-trip digits; only the ".0" of integers differs.
        return r[:-2] if r.endswith(".0") else r
    sign = ""
    if r[0] == "-":
        sign = "-"
        r = r[1:]
    mantissa, _, exp_text = r.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).rstrip("0")
    stripped = digits.lstrip("0")
    # value = 0.<digits> * 10**point (ECMAScript's n); leading zeros shift the point left
    point = len(int_part) + int(exp_text) - (len(digits) - len(stripped))
    digits = stripped
    k = len(digits)
    if k <= point <= 21:
        return sign + digits + "0" * (point - k)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    e = point - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{head}e{'+' if e >= 0 else '-'}{abs(e)}"


def _float_text(x: float) -> str:
    if x != x:
        return '"!NaN"'
    if x == math.inf:
        return '"!Infinity"'
    if x == -math.inf:
        return '"!-Infinity"'
    return format_js_number(x)


# --------------------------------------------------------------------------------------------
# Strings

_encode_basestring: Final = json.encoder.encode_basestring  # the C one when available
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _escape_surrogate(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _quote(s: str) -> str:
    """JSON-quote ``s`` exactly like ``JSON.stringify`` (Python's escaper, plus surrogates)."""
    q = _encode_basestring(s)
    if q.isascii() or _SURROGATE.search(q) is None:
        return q
    # Re-pair surrogates the way a UTF-16 JavaScript string would, then escape the lone ones.
    s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return _SURROGATE.sub(_escape_surrogate, _encode_basestring(s))


# --------------------------------------------------------------------------------------------
# stringify


class _Seg(str):
    """A path step that is rendered verbatim (Map and Set positions)."""


class _Fail(Exception):
    """Internal: unwinds to :func:`stringify`, collecting the path on the way out."""

    def __init__(self, what: str, value: Any) -> None:
        super().__init__(what)
        self.what = what
        self.value = value
        self.path: list[Any] = []  # innermost step first


_DOT_KEY: Final = re.compile(r"[a-zA-Z0-9$_]+\Z")


def _path_string(path: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, step in enumerate(path):
        if isinstance(step, _Seg):
            parts.append(step)
        elif isinstance(step, int):
            parts.append(f"[{step}]")
        elif _DOT_KEY.match(step):
            parts.append(step if i == 0 else "." + step)
        else:
            parts.append("[" + json.dumps(step, ensure_ascii=False) + "]")
    return "".join(parts)


def _describe(value: Any) -> str:
    tname = f"{type(value).__module__}.{type(value).__qualname__}"
    if isinstance(value, type):
        return f"a class ({value.__module__}.{value.__qualname__})"
    if callable(value):
        return f"a function ({tname})"
    return f"a value of type {tname} that has no JavaScript equivalent"


def _key_label(key: Any) -> str:
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    if isinstance(key, int | float) and not isinstance(key, bool):
        return repr(key)
    return f"<{type(key).__name__}>"


def _is_array_index(key: str) -> bool:
    return (
        key.isascii()
        and key.isdigit()
        and (key == "0" or key[0] != "0")
        and int(key) < 4294967295  # 2**32 - 1
    )


def _js_key_order(d: dict[str, Any]) -> list[tuple[str, Any]]:
    index_items = [(k, v) for k, v in d.items() if _is_array_index(k)]
    if not index_items:
        return list(d.items())
    index_items.sort(key=lambda kv: int(kv[0]))
    return index_items + [(k, v) for k, v in d.items() if not _is_array_index(k)]


def _same_value_zero_key(v: Any) -> Any:
    """A key under which two values are the same JavaScript Set element / Map key.

    JavaScript compares primitives by value (SameValueZero: NaN equals NaN, 0 equals -0, and
    a number never equals a bigint) and objects by identity.
    """
    if v is None or v is UNDEFINED:
        return v
    if isinstance(v, bool):
        return ("bool", bool(v))
    if isinstance(v, str):
        return ("str", str(v))
    if isinstance(v, int):
        if isinstance(v, BigInt) or not -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
            return ("bigint", int(v))
        return ("number", float(v))
    if isinstance(v, float):
        return ("number", "NaN" if v != v else float(v))
    return ("object", id(v))


def _js_unique_items(items: Iterable[Any]) -> list[Any]:
    """The elements ``new Set(items)`` keeps, in order."""
    seen: set[Any] = set()
    out: list[Any] = []
    for item in items:
        key = _same_value_zero_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _js_unique_entries(entries: Iterable[Any]) -> list[Any]:
    """The entries ``new Map(entries)`` keeps: first key position, last value."""
    slots: dict[Any, int] = {}
    out: list[Any] = []
    for entry in entries:
        if isinstance(entry, tuple | list) and len(entry) == 2:
            key = _same_value_zero_key(entry[0])
            if key in slots:
                out[slots[key]] = (out[slots[key]][0], entry[1])
                continue
            slots[key] = len(out)
        out.append(entry)
    return out


def _iso_date(d: datetime) -> str:
    if d.tzinfo is not None and d.utcoffset() is not None:
        d = d.astimezone(UTC)
    return (
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond // 1000:03d}Z"
    )


def _replaced(replacer: Replacer, v: Any, out: list[str]) -> bool:
    """Ask ``replacer`` about ``v``; a string it returns is written as is (a resolved
    placeholder, not ``!``-escaped) and ``True`` returned."""
    r = replacer(v)
    if r is None:
        return False
    if not isinstance(r, str):
        raise TypeError(f"replacer must return str or None, got {type(r).__name__}")
    out.append(_quote(r))
    return True


def _make_encoder() -> tuple[Callable[[Any, list[str]], None], list[Replacer | None]]:
    """Build the recursive writer and the slots holding its replacer (set per call).

    ``slot[0]`` is asked about every value, ``slot[1]`` only about values that are not plain
    data (see ``stringify``'s ``plain_data``). A closure keeps the hot-path lookups local;
    building one costs eight function objects, so :func:`stringify` reuses idle ones.
    """
    active: set[int] = set()  # ids of the containers being written, to detect cycles
    slot: list[Replacer | None] = [None, None]

    def enter(container: Any) -> int:
        cid = id(container)
        if cid in active:
            raise _Fail("a circular reference", container)
        active.add(cid)
        return cid

    def enc(v: Any, out: list[str]) -> None:
        replacer = slot[0]
        if replacer is not None and _replaced(replacer, v, out):
            return
        t = type(v)
        if t is str:
            out.append(_quote("!" + v) if v.startswith("!") else _quote(v))
        elif t is int:
            if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
                out.append(int.__repr__(v))
            else:
                out.append('"!BigInt:' + int.__repr__(v) + '"')
        elif t is float:
            out.append(_float_text(v))
        elif v is None:
            out.append("null")
        elif v is True:
            out.append("true")
        elif v is False:
            out.append("false")
        elif t is dict:
            enc_dict(v, out)
        elif t is list or t is tuple:
            enc_array(v, out)
        else:
            enc_other(v, out)

    def enc_dict(d: dict[Any, Any], out: list[str]) -> None:
        has_index_key = False
        for k in d:
            if isinstance(k, str):
                if "0" <= k[:1] <= "9":
                    has_index_key = True
            else:
                enc_map(d, list(d.items()), out)
                return
        items: Iterable[tuple[str, Any]] = _js_key_order(d) if has_index_key else d.items()
        cid = enter(d)
        sep = "{"
        try:
            for k, x in items:
                out.append(sep + _quote(k) + ":")
                sep = ","
                enc(x, out)
        except _Fail as e:
            e.path.append(k)
            raise
        finally:
            active.discard(cid)
        out.append("{}" if sep == "{" else "}")

    def enc_array(a: list[Any] | tuple[Any, ...], out: list[str]) -> None:
        if not a:
            out.append("[]")
            return
        cid = enter(a)
        sep = "["
        i = 0
        try:
            for x in a:
                out.append(sep)
                sep = ","
                enc(x, out)
                i += 1
        except _Fail as e:
            e.path.append(i)
            raise
        finally:
            active.discard(cid)
        out.append("]")

    def enc_map(container: Any, entries: Iterable[tuple[Any, Any]], out: list[str]) -> None:
        cid = enter(container)
        inner: list[str] = []
        sep = "["
        i = 0
        k: Any = None
        try:
            for entry in entries:
                if not isinstance(entry, tuple | list) or len(entry) != 2:
                    raise _Fail("not a (key, value) pair", entry)
                k, x = entry
                inner.append(sep + "[")
                sep = ","
                try:
                    enc(k, inner)
                except _Fail as e:
                    e.path.append(_Seg(f"<Map key #{i}>"))
                    raise
                inner.append(",")
                try:
                    enc(x, inner)
                except _Fail as e:
                    e.path.append(_Seg(f"<Map value for {_key_label(k)}>"))
                    raise
                inner.append("]")
                i += 1
        finally:
            active.discard(cid)
        inner.append("[]" if sep == "[" else "]")
        out.append(_quote("!Map:" + "".join(inner)))

    def enc_set(container: Any, items: Iterable[Any], out: list[str]) -> None:
        cid = enter(container)
        inner: list[str] = []
        sep = "["
        i = 0
        try:
            for x in items:
                inner.append(sep)
                sep = ","
                enc(x, inner)
                i += 1
        except _Fail as e:
            e.path.append(_Seg(f"<Set item #{i}>"))
            raise
        finally:
            active.discard(cid)
        inner.append("[]" if sep == "[" else "]")
        out.append(_quote("!Set:" + "".join(inner)))

    def enc_other(v: Any, out: list[str]) -> None:
        replacer = slot[1]
        if replacer is not None and _replaced(replacer, v, out):
            return
        if v is UNDEFINED:
            out.append('"!undefined"')
        elif isinstance(v, BigInt):
            out.append('"!BigInt:' + int.__repr__(v) + '"')
        elif isinstance(v, bool):  # unreachable for real bools (final class); kept for clarity
            out.append("true" if v else "false")
        # Subclasses of int/float/str (IntEnum, StrEnum ...): their plain value; the dunder
        # calls bypass overridden __int__/__float__/__str__.
        elif isinstance(v, int):
            enc(int.__int__(v), out)
        elif isinstance(v, float):
            out.append(_float_text(float.__float__(v)))
        elif isinstance(v, str):
            enc(str.__str__(v), out)
        elif isinstance(v, datetime):
            try:
                out.append('"!Date:' + _iso_date(v) + '"')
            except (OverflowError, ValueError) as exc:
                raise _Fail(f"a datetime that cannot be converted to UTC ({exc})", v) from exc
        elif isinstance(v, bytes | bytearray | memoryview):
            data = v.tobytes() if isinstance(v, memoryview) else v
            b64 = base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
            out.append('"!Uint8Array:' + b64 + '"')
        elif isinstance(v, JsMap):
            enc_map(v, list(v.items()), out)
        elif isinstance(v, dict):
            enc_dict(v, out)
        elif isinstance(v, JsMapEntries):
            # A list can repeat a key; the Map JavaScript would build from it cannot.
            enc_map(v, _js_unique_entries(v), out)
        elif isinstance(v, JsSet):
            enc_set(v, _js_unique_items(v), out)
        elif isinstance(v, set | frozenset):
            enc_set(v, v, out)
        elif isinstance(v, list | tuple):
            enc_array(v, out)
        elif isinstance(v, JsRegExp):
            out.append(_quote(f"!RegExp:/{v.source}/{v.flags}"))
        elif isinstance(v, re.Pattern):
            try:
                rx = JsRegExp.from_pattern(v)
            except ValueError as exc:
                raise _Fail(
                    f"a regular expression that JavaScript cannot express ({exc})", v
                ) from exc
            out.append(_quote(f"!RegExp:/{rx.source}/{rx.flags}"))
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            # A dataclass instance travels as the object of its fields (what the shield and
            # the generated TypeScript describe); it comes back as a dict.
            enc_dict({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, out)
        elif isinstance(v, enum.Enum):
            enc(v.value, out)  # an Enum member travels as its value
        else:
            raise _Fail(_describe(v), v)

    return enc, slot


#: How deep :func:`_is_plain` looks before leaving a value to the full encoder (which also
#: finds circular references).
_PLAIN_DEPTH: Final = 32


def _is_plain(v: dict[Any, Any] | list[Any] | tuple[Any, ...], depth: int) -> bool:
    """Whether ``v`` holds only values orjson writes exactly as :func:`stringify` does.

    That is exact ``dict`` (``str`` keys, none starting with a digit: JavaScript orders
    array-index keys first), ``list``, ``tuple``, ``str`` not starting with ``!``, ``int`` within
    ``MAX_SAFE_INTEGER``, ``bool`` and ``None``; no float (JavaScript formats numbers its own
    way). Strings are escaped alike: both escape ``"``, ``\\`` and control characters only.
    """
    if depth > _PLAIN_DEPTH:
        return False
    values: Iterable[Any] = v
    if type(v) is dict:
        for k in v:
            if type(k) is not str or k[:1] in _DIGITS:
                return False
        values = v.values()
    for x in values:
        t = type(x)
        if t is str:
            if x[:1] == "!":
                return False
        elif t is int:
            if not -MAX_SAFE_INTEGER <= x <= MAX_SAFE_INTEGER:
                return False
        elif t is dict or t is list or t is tuple:
            if not _is_plain(x, depth + 1):
                return False
        elif t is not bool and x is not None:
            return False
    return True


_DIGITS: Final = frozenset("0123456789")


def _plain_text(value: dict[Any, Any] | list[Any], script_safe: bool) -> str | None:
    """``stringify(value)`` through orjson, or ``None`` when ``value`` needs the full encoder."""
    if _fast_dumps is None or not _is_plain(value, 0):
        return None
    try:
        text = _fast_dumps(value).decode("utf-8")
    except TypeError:  # a lone surrogate (orjson.JSONEncodeError is a TypeError)
        return None
    return text.replace("<", "\\u003c").replace("/", "\\/") if script_safe else text


#: orjson's ``dumps`` when installed (the ``speedups`` extra), for plain data; else ``None``.
_fast_dumps: Callable[[Any], bytes] | None
try:
    from orjson import dumps as _fast_dumps
except ImportError:
    _fast_dumps = None


#: Idle encoders with their replacer slots. A call takes one for itself (list ``pop`` and
#: ``append`` are atomic), so threads and re-entrant calls (a replacer or a tzinfo calling
#: ``stringify``) never share one; it goes back only after a clean run, its cycle set empty.
_idle_encoders: list[tuple[Callable[[Any, list[str]], None], list[Replacer | None]]] = []
_MAX_IDLE: Final = 8


def stringify(
    value: Any,
    *,
    replacer: Replacer | None = None,
    script_safe: bool = True,
    replace_plain: bool = True,
) -> str:
    """Serialize ``value`` to the exact text ``@brillout/json-serializer``'s ``stringify`` emits.

    ``replacer(v)`` is called for every value (the root, object values, array items, Map keys
    and values, Set items) before the built-in rules; when it returns a ``str``, that string is
    emitted as the JSON string value as-is (not ``!``-escaped). With ``replace_plain=False`` it
    is not asked about plain data, values of exactly ``str``, ``int``, ``float``, ``bool``,
    ``None``, ``dict``, ``list`` or ``tuple`` (for a replacer that leaves those alone: most
    values of a result are plain data). ``script_safe`` applies the default ``htmlScriptSafe``
    escaping of ``<`` and ``/``.

    Raises :class:`SerializationError` for values with no JavaScript equivalent (functions,
    arbitrary objects, circular references, nesting too deep for the Python stack).
    """
    if replacer is None or not replace_plain:
        # A lone scalar (a channel message, a small result) needs no encoder.
        t = type(value)
        if t is str:
            text = _quote("!" + value) if value.startswith("!") else _quote(value)
            return text.replace("<", "\\u003c").replace("/", "\\/") if script_safe else text
        if t is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int.__repr__(value)
        if value is None:
            return "null"
        if t is dict or t is list:
            plain = _plain_text(value, script_safe)
            if plain is not None:
                return plain
    out: list[str] = []
    encoder = _idle_encoders.pop() if _idle_encoders else _make_encoder()
    encode, slot = encoder
    if replace_plain:
        slot[0] = replacer
    else:
        slot[1] = replacer
    try:
        encode(value, out)
    except _Fail as e:
        path = tuple(reversed(e.path))
        path_string = _path_string(path)
        subject = path_string or "value"
        raise SerializationError(
            f"cannot serialize {subject} because it's {e.what}",
            value=e.value,
            path=path,
            path_string=path_string,
        ) from None
    except RecursionError:
        raise SerializationError(
            "cannot serialize value because it is nested too deeply",
            value=value,
            path=(),
            path_string="",
        ) from None
    slot[0] = slot[1] = None  # holds no reference to the caller's replacer while idle
    if len(_idle_encoders) < _MAX_IDLE:
        _idle_encoders.append(encoder)
    text = "".join(out)
    if script_safe:
        # Only ever inside JSON strings, so these stay valid escapes that JSON.parse undoes.
        text = text.replace("<", "\\u003c").replace("/", "\\/")
    return text


# --------------------------------------------------------------------------------------------
# parse


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name!r}")


def _unsafe_int(x: int) -> float:
    """A JSON integer literal beyond 2**53-1 is a plain (rounded) number in JavaScript."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


_ISO_DATE: Final = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z\Z")


def _parse_date(text: str) -> datetime:
    m = _ISO_DATE.match(text)
    try:
        if m is not None:
            y, mo, d, h, mi, s, ms = (int(g) for g in m.groups())
            return datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"invalid or unsupported !Date value {text!r}: {exc}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_regexp(text: str) -> JsRegExp:
    first = text.find("/")
    last = text.rfind("/")
    if first == -1 or last == first:
        raise ValueError(f"invalid !RegExp value {text!r}")
    return JsRegExp(text[first + 1 : last], text[last + 1 :])


def _parse_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _loads(text: str | bytes) -> Any:
    """``json.loads`` that rejects NaN/Infinity literals, through orjson when it is installed
    (``text`` may be UTF-8 bytes).

    orjson (the optional ``speedups`` extra; never on Pyodide) parses several times faster. It
    refuses a few inputs JSON.parse accepts — lone surrogates, integers beyond 64 bits, numbers
    beyond float range — so any input it refuses goes through the standard library, which then
    either parses it like JSON.parse or raises the usual ``ValueError``.
    """
    if _fast_loads is not None:
        try:
            return _fast_loads(text)
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            pass
    if isinstance(text, bytes):
        # Decoded here: json.loads would guess UTF-16 or UTF-32 from the first bytes.
        text = text.decode()
    return json.loads(text, parse_constant=_reject_constant)


#: The fast parser in use, or ``None`` (tests switch it off to cover the pure path).
_fast_loads: Callable[[str | bytes], Any] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # the pure-Python path (and the only one under Pyodide)
    _fast_loads = None


class _TooDeep(ValueError):
    """Internal: the input nests deeper than the caller's ``max_depth``."""


def _make_reviver(max_depth: int) -> tuple[Callable[[Any, int], Any], list[Reviver | None]]:
    """Build the post-``json.loads`` walk that revives ``!`` strings in place, and the slot
    holding the caller's reviver (set per call; :func:`parse` reuses idle walks).

    The walk recurses once per level of arrays and objects (a Map's or Set's payload is one),
    and gives up past ``max_depth`` levels: the recursion of this
    walk, and of anything that later walks the result (the shield), stays bounded.
    """
    slot: list[Reviver | None] = [None]

    def load(text: str, depth: int) -> Any:
        return walk(_loads(text), depth)

    def walk(v: Any, depth: int) -> Any:
        t = type(v)
        if t is str:
            return revive(v, depth) if v.startswith("!") else v
        if t is dict or t is list:
            if depth >= max_depth:
                raise _TooDeep(f"nested deeper than {max_depth} levels")
            inner = depth + 1
        if t is dict:
            for k, x in v.items():
                tx = type(x)
                if tx is str:
                    if x.startswith("!"):
                        v[k] = revive(x, inner)
                elif tx is dict or tx is list:
                    walk(x, inner)
                elif tx is int and not -MAX_SAFE_INTEGER <= x <= MAX_SAFE_INTEGER:
                    v[k] = _unsafe_int(x)
            return v
        if t is list:
            for i, x in enumerate(v):
                tx = type(x)
                if tx is str:
                    if x.startswith("!"):
                        v[i] = revive(x, inner)
                elif tx is dict or tx is list:
                    walk(x, inner)
                elif tx is int and not -MAX_SAFE_INTEGER <= x <= MAX_SAFE_INTEGER:
                    v[i] = _unsafe_int(x)
            return v
        if t is int and not -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
            return _unsafe_int(v)
        return v

    def revive(s: str, depth: int) -> Any:
        reviver = slot[0]
        if reviver is not None:
            hit, replacement = reviver(s)
            if hit:
                return replacement
        if s == "!undefined":
            return UNDEFINED
        if s == "!Infinity":
            return math.inf
        if s == "!-Infinity":
            return -math.inf
        if s == "!NaN":
            return math.nan
        if s.startswith("!Date:"):
            return _parse_date(s[6:])
        if s.startswith("!BigInt:"):
            return BigInt(s[8:])
        if s.startswith("!RegExp:"):
            return _parse_regexp(s[8:])
        if s.startswith("!Map:"):
            return make_map(load(s[5:], depth))
        if s.startswith("!Set:"):
            return make_set(load(s[5:], depth))
        if s.startswith("!Uint8Array:"):
            return _parse_bytes(s[12:])
        return s[1:]

    def make_map(entries: Any) -> JsMap | JsMapEntries:
        if not isinstance(entries, list):
            raise ValueError("!Map: payload is not an array of entries")
        pairs: list[tuple[Any, Any]] = []
        for entry in entries:
            if not isinstance(entry, list) or not entry:
                raise ValueError("!Map: entry is not a [key, value] array")
            # new Map([[k]]) gives k -> undefined in JavaScript
            pairs.append((entry[0], entry[1] if len(entry) > 1 else UNDEFINED))
        try:
            result = JsMap(pairs)
        except TypeError:  # an unhashable key
            return JsMapEntries(pairs)
        if len(result) != len(pairs):  # keys distinct in JavaScript collapsed in Python
            return JsMapEntries(pairs)
        return result

    def make_set(items: Any) -> set[Any] | JsSet:
        if not isinstance(items, list):
            raise ValueError("!Set: payload is not an array")
        try:
            result = set(items)
        except TypeError:  # an unhashable element
            return JsSet(items)
        if len(result) != len(items):
            return JsSet(items)
        return result

    return walk, slot


#: Idle walks per depth bound, taken and given back like the encoders of ``stringify``.
_idle_walks: dict[int, list[tuple[Callable[[Any, int], Any], list[Reviver | None]]]] = {}


#: A table turning ASCII digits into ``0``, ``[`` and ``{`` into ``[`` and every other byte into a
#: space; sixteen digits in a row: possibly an integer beyond ``MAX_SAFE_INTEGER`` (which has 16).
#: One C pass gives both the nesting bound and the digit runs; a regular expression costs several
#: times more.
_PLAIN_MASK: Final = bytes(
    0x30 if 0x30 <= i <= 0x39 else 0x5B if i in (0x5B, 0x7B) else 0x20 for i in range(256)
)
_SIXTEEN_DIGITS: Final = b"0" * 16
_BANG, _BACKSLASH = ord("!"), ord("\\")

#: Nesting :func:`parse` accepts when no ``max_depth`` is given: as deep as Python's own
#: recursion allows (``RecursionError`` becomes ``ValueError``).
UNBOUNDED_DEPTH: Final = 1 << 30


def parse(
    text: str | bytes, *, reviver: Reviver | None = None, max_depth: int | None = None
) -> Any:
    """Parse text produced by ``@brillout/json-serializer`` (or :func:`stringify`), as a string
    or as its UTF-8 bytes (a frame's payload: plain JSON is then parsed without decoding it).

    ``reviver(s)`` is called for every string that starts with ``!`` (also inside Maps and
    Sets) before the built-in revival; returning ``(True, v)`` replaces the string with ``v``,
    ``(False, anything)`` falls through to the built-in rules.

    ``max_depth`` bounds the nesting of arrays and objects (a Map or Set counts as the array
    it is encoded as); deeper input is malformed. Servers pass
    ``config.limits.max_depth``. The check rides on the walk that revives ``!`` strings, so
    it costs nothing extra, on the orjson path as on the pure one.

    Raises ``ValueError`` for malformed input (bytes that are not UTF-8 included), including
    input nested too deeply.
    """
    depth = UNBOUNDED_DEPTH if max_depth is None else max_depth
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    # (An int in a bytes object and ``find`` search in C; ``bytes in bytes`` costs more.)
    if _BANG not in data and (_BACKSLASH not in data or data.find(b"\\u0021") < 0):
        mask = data.translate(_PLAIN_MASK)
        plain = mask.count(b"[") <= depth and mask.find(_SIXTEEN_DIGITS) < 0
    else:
        plain = False
    if plain:
        # Plain JSON (most messages and calls): no "!" string to revive (not even escaped), no
        # integer that may pass 2**53, and too few brackets to nest past `depth`, so the walk
        # would change nothing.
        fast = _fast_loads
        if fast is not None:
            try:
                return fast(text)  # (not through _loads: one call less per message)
            except ValueError:
                pass  # what orjson refuses, _loads hands to the standard library
        try:
            return _loads(text)
        except RecursionError:
            raise ValueError("nested too deeply") from None
    if isinstance(text, bytes):
        text = text.decode()  # UnicodeDecodeError is a ValueError
    idle = _idle_walks.get(depth)
    walker = idle.pop() if idle else _make_reviver(depth)
    walk, slot = walker
    slot[0] = reviver
    try:
        return walk(_loads(text), 0)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    finally:
        # The walk keeps no state between calls: it goes back even after a failure.
        slot[0] = None
        if idle is not None:
            if len(idle) < _MAX_IDLE:
                idle.append(walker)
        elif len(_idle_walks) < _MAX_IDLE:
            _idle_walks[depth] = [walker]
