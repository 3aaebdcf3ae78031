"""The shield: validate a telefunction call's arguments against the function's type hints.

The JSON-revived positional arguments are checked against the annotations before the
telefunction runs, and may be converted to what they promise (arrays to tuples, objects to
dataclasses, values to enum members, ints to floats). A mismatch is the protocol's 422
``Shield Validation Error`` (docs/protocol.md §5); an unsupported annotation is a
:class:`~telefunc.errors.UsageError`, never a validation error. Error messages name the function,
argument and path and describe types only, never values, so they are safe to log. The rules
(numbers, missing arguments, ``undefined``, unions, ``__telefunc_validate__``) are in
docs/architecture.md §5.2.
"""

from __future__ import annotations

import collections.abc as cabc
import contextlib
import dataclasses
import enum
import functools
import inspect
import types
import typing
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

from telefunc.errors import ShieldValidationError, UsageError
from telefunc.server.hints import NONE_TYPES as _NONE_TYPES
from telefunc.server.hints import UNION_ORIGINS as _UNION_ORIGINS
from telefunc.server.hints import admits_none as _admits_none
from telefunc.server.hints import class_hints, typeddict_key_required
from telefunc.server.hints import is_any as _is_any
from telefunc.server.hints import strip as _strip
from telefunc.wire.serializer import UNDEFINED, JsMap, JsMapEntries, JsSet

__all__ = ["is_valid", "validate_call", "validate_value"]


# ---------------------------------------------------------------------------------------------
# JavaScript's `undefined`
# ---------------------------------------------------------------------------------------------

#: Marks a key missing from a received object (distinct from ``UNDEFINED``, which the client sent).
_ABSENT: Any = object()

# JsSet and JsMapEntries are list subclasses and JsMap a dict subclass, but they stand for a
# JavaScript Set / Map, which must not pass where an array / plain object is expected (nor vice
# versa).


def _is_array(value: Any) -> bool:
    """Whether ``value`` is what a JavaScript array parses to (a list, not a Set or Map)."""
    if type(value) is list:
        return True
    return isinstance(value, list) and not isinstance(value, JsSet | JsMapEntries)


def _is_object(value: Any) -> bool:
    """Whether ``value`` is what a JavaScript plain object parses to (a dict, not a Map)."""
    if type(value) is dict:
        return True
    return isinstance(value, dict) and not isinstance(value, JsMap)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def validate_call(
    func: Callable[..., Any], args: Sequence[Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Validate the positional ``args`` of a call of ``func`` against its type hints.

    Returns ``(positional, keyword)`` ready for ``func(*positional, **keyword)``, with values
    converted as their annotations require. Raises :class:`ShieldValidationError` when the
    arguments do not match, and :class:`UsageError` when ``func`` cannot be validated at all
    (a keyword-only parameter without default, an unresolvable or unsupported annotation).
    """
    plan = _plan_for(func)
    undefined = UNDEFINED
    exacts = plan.exacts
    if exacts is not None and len(args) == len(exacts):
        # Every parameter takes a scalar by exact type (or anything): the common plain call.
        for value, exact in zip(args, exacts, strict=True):
            if (exact is not _ANY_VALUE and type(value) is not exact) or value is undefined:
                break
        else:
            return list(args), {}
    params = plan.positional
    count = len(args)
    if count > len(params) and plan.var_positional is None:
        raise ShieldValidationError(
            f"{plan.name}() takes {_count(len(params), 'argument')}, got {count}"
        )
    # One slot per positional parameter; _OMIT means "let Python use the default".
    slots: list[Any] = []
    for index, param in enumerate(params):
        value = args[index] if index < count else undefined
        exact = param.exact
        if (
            exact is not None
            and (exact is _ANY_VALUE or type(value) is exact)
            and value is not undefined
        ):
            slots.append(value)  # an exact scalar, or anything for Any: as _validate would
            continue
        path = param.path
        if value is undefined:
            if param.default is not _NO_DEFAULT:
                slots.append(_OMIT)
            elif index < count and _is_any(_strip(param.annotation)):
                slots.append(undefined)  # an explicit ``undefined`` reaches Any as itself
            elif param.admits_none:
                slots.append(None)
            else:
                raise ShieldValidationError(f"{path}: missing (expected {param.described})")
        else:
            slots.append(_validate(value, param.annotation, path))
    # Trailing defaults are left to Python; defaults between given arguments must be explicit.
    while slots and slots[-1] is _OMIT:
        slots.pop()
    positional = [params[i].default if slot is _OMIT else slot for i, slot in enumerate(slots)]
    variadic = plan.var_positional
    if variadic is not None:
        for index in range(len(params), count):
            path = f"{plan.name}() argument {index + 1} (*{variadic.name})"
            positional.append(_validate(args[index], variadic.annotation, path))
    return positional, {}


def validate_value(value: Any, annotation: Any, path: str = "value") -> Any:
    """Validate ``value`` against ``annotation`` and return it, possibly converted.

    ``path`` prefixes the error message (``"value.items[2]: expected int, got str"``).
    Raises :class:`ShieldValidationError` on mismatch, :class:`UsageError` for an annotation
    the shield cannot check (a string / unresolved forward reference, an unsupported form).
    """
    return _validate(value, annotation, path)


def is_valid(value: Any, annotation: Any) -> bool:
    """Return whether ``value`` matches ``annotation`` (see :func:`validate_value`)."""
    try:
        _validate(value, annotation, "value")
    except ShieldValidationError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Per-function analysis (cached)
# ---------------------------------------------------------------------------------------------

_NO_DEFAULT: Any = inspect.Parameter.empty
_OMIT: Any = object()
_ANY: Any = Any


@dataclasses.dataclass(frozen=True, slots=True)
class _Param:
    name: str
    annotation: Any
    default: Any
    admits_none: bool
    described: str
    #: The error-message prefix naming this parameter.
    path: str = ""
    #: A value of exactly this type is valid as it is (``_ANY_VALUE``: any value); ``None`` when
    #: every value goes through :func:`_validate`.
    exact: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    name: str
    positional: tuple[_Param, ...]
    var_positional: _Param | None
    #: Every positional parameter's ``exact`` when all have one and there is no ``*args``:
    #: a call whose arguments all match them passes as it is.
    exacts: tuple[Any, ...] | None = None


# Weak keys: telefunctions defined at runtime (tests, reloads) must not be kept alive by us.
_PLANS: weakref.WeakKeyDictionary[Any, _Plan] = weakref.WeakKeyDictionary()
# Bound methods are created on every attribute access; their plan is cached on the function.
_BOUND_PLANS: weakref.WeakKeyDictionary[Any, _Plan] = weakref.WeakKeyDictionary()


#: Plans of plain functions by ``id``, with a weak reference telling the function is still the
#: same one: a lookup without the ``WeakKeyDictionary``'s per-lookup reference object.
_PLANS_BY_ID: dict[int, tuple[weakref.ref[Any], _Plan]] = {}


def _forget_plan(key: int) -> Callable[[Any], None]:
    def forget(_ref: Any) -> None:
        _PLANS_BY_ID.pop(key, None)

    return forget


def _plan_for(func: Callable[..., Any]) -> _Plan:
    entry = _PLANS_BY_ID.get(id(func))
    if entry is not None and entry[0]() is func:
        return entry[1]
    if type(func) is types.FunctionType:
        plan = _plan_for_any(func)
        _PLANS_BY_ID[id(func)] = (weakref.ref(func, _forget_plan(id(func))), plan)
        return plan
    return _plan_for_any(func)


def _plan_for_any(func: Callable[..., Any]) -> _Plan:
    if isinstance(func, types.MethodType):
        cache, key = _BOUND_PLANS, func.__func__
    else:
        cache, key = _PLANS, func
    try:
        plan = cache.get(key)
    except TypeError:  # unhashable callable object: analyse every time
        return _analyse(func)
    if plan is None:
        plan = _analyse(func)
        with contextlib.suppress(TypeError):  # not weak-referenceable: just don't cache
            cache[key] = plan
    return plan


def _function_name(func: Any) -> str:
    target = func
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__name__", None)
    return name if isinstance(name, str) else type(target).__name__


def _hint_source(func: Any) -> Any:
    """The object whose ``__annotations__`` describe ``func``'s parameters."""
    target = func
    while True:
        if isinstance(target, functools.partial):
            target = target.func
        elif isinstance(target, types.MethodType):
            target = target.__func__
        else:
            break
    if not (inspect.isroutine(target) or isinstance(target, type)) and callable(target):
        target = type(target).__call__
    return target


def _analyse(func: Callable[..., Any]) -> _Plan:
    name = _function_name(func)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name}(): cannot read its signature: {exc}") from exc
    try:
        hints = typing.get_type_hints(_hint_source(func), include_extras=True)
    except TypeError:  # an object without annotations (e.g. some builtins): nothing to check
        hints = {}
    except Exception as exc:  # NameError for a forward reference that does not resolve, etc.
        raise UsageError(
            f"{name}(): cannot resolve the type hints of its parameters "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    positional: list[_Param] = []
    var_positional: _Param | None = None
    for param in signature.parameters.values():
        annotation = hints.get(param.name, _ANY)
        if param.kind is inspect.Parameter.KEYWORD_ONLY:
            if param.default is inspect.Parameter.empty:
                raise UsageError(
                    f"{name}(): keyword-only parameter {param.name!r} has no default, but "
                    "telefunctions are called with positional arguments only"
                )
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue  # never filled: the wire carries no keyword arguments
        _check_annotation(annotation, name, param.name)
        stripped = _strip(annotation)
        entry = _Param(
            name=param.name,
            annotation=annotation,
            default=param.default,
            admits_none=_admits_none(annotation),
            described=_describe(annotation),
            path=f"{name}() argument {len(positional) + 1} ({param.name})",
            exact=_ANY_VALUE if _is_any(stripped) else _exact_scalar(stripped),
        )
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            var_positional = entry
        else:
            positional.append(entry)
    exacts = tuple(p.exact for p in positional)
    return _Plan(
        name=name,
        positional=tuple(positional),
        var_positional=var_positional,
        exacts=exacts if var_positional is None and None not in exacts else None,
    )


#: ``_Param.exact`` of a parameter annotated ``Any`` (or not at all).
_ANY_VALUE: Final = object()


def _exact_scalar(tp: Any) -> Any:
    """``tp`` when it is a scalar whose values :func:`_validate` accepts by exact type."""
    try:
        return tp if tp in _EXACT_SCALARS else None
    except TypeError:  # unhashable annotation
        return None


def _check_annotation(annotation: Any, func_name: str, param_name: str) -> None:
    """Reject, at analysis time, annotations that stayed strings (they would fail every call)."""
    if isinstance(annotation, str | typing.ForwardRef):
        raise UsageError(
            f"{func_name}(): the annotation of parameter {param_name!r} is an unresolved "
            f"forward reference {_describe(annotation)}"
        )


# ---------------------------------------------------------------------------------------------
# Annotation helpers
# ---------------------------------------------------------------------------------------------


def _describe(tp: Any) -> str:
    """A short, readable name for an annotation (used in messages)."""
    if tp is None or tp is type(None):
        return "None"
    if tp is Any or tp is inspect.Parameter.empty:
        return "Any"
    if isinstance(tp, str):
        return repr(tp)
    if isinstance(tp, list):  # the parameter list of Callable[[A, B], R]
        return f"[{', '.join(_describe(item) for item in tp)}]"
    if isinstance(tp, typing.ForwardRef):
        return repr(tp.__forward_arg__)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _describe(tp.__origin__)
    if origin in _UNION_ORIGINS:
        return " | ".join(_describe(member) for member in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is not None:
        base = getattr(origin, "__name__", None) or repr(origin)
        if not args:
            return f"{base}[()]" if origin is tuple else str(base)
        inner = ", ".join("..." if arg is Ellipsis else _describe(arg) for arg in args)
        return f"{base}[{inner}]"
    if isinstance(tp, typing.NewType):
        return str(tp.__name__)
    name = getattr(tp, "__name__", None)
    return name if isinstance(name, str) else repr(tp)


def _got(value: Any) -> str:
    if value is None:
        return "None"
    if value is UNDEFINED:
        return "undefined"
    return type(value).__name__


def _key_text(key: Any) -> str:
    """``repr`` of a client-supplied key, bounded so a hostile key cannot flood the log."""
    text = repr(key) if isinstance(key, str | int | float | bool) or key is None else _got(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _field_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{_key_text(key)}]"


def _fail(path: str, expected: Any, value: Any) -> typing.NoReturn:
    expected_text = expected if isinstance(expected, str) else _describe(expected)
    raise ShieldValidationError(f"{path}: expected {expected_text}, got {_got(value)}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# ---------------------------------------------------------------------------------------------
# The validator
# ---------------------------------------------------------------------------------------------

_SEQUENCE_ORIGINS: frozenset[Any] = frozenset(
    {cabc.Sequence, cabc.MutableSequence, typing.Sequence, typing.MutableSequence}
)
_COLLECTION_ORIGINS: frozenset[Any] = frozenset(
    {cabc.Collection, cabc.Iterable, typing.Collection, typing.Iterable}
)
_MAPPING_ORIGINS: frozenset[Any] = frozenset(
    {dict, cabc.Mapping, cabc.MutableMapping, typing.Mapping, typing.MutableMapping}
)
_SET_ORIGINS: frozenset[Any] = frozenset(
    {set, frozenset, cabc.Set, cabc.MutableSet, typing.AbstractSet, typing.MutableSet}
)
# Item types whose check is a plain exact-type test: containers of them take a fast path.
_EXACT_SCALARS: frozenset[Any] = frozenset({str, int, bool})


def _validate(value: Any, tp: Any, path: str) -> Any:
    tp = _strip(tp)
    if _is_any(tp):
        return value
    if isinstance(tp, str | typing.ForwardRef):
        raise UsageError(f"{path}: cannot validate against the unresolved annotation {tp!r}")
    if value is UNDEFINED and _admits_none(tp):
        return None
    if tp is None or tp is type(None):
        if value is None:
            return None
        _fail(path, "None", value)

    # Scalars first: they are by far the most common annotations.
    if tp is str:
        if isinstance(value, str):
            return value
        _fail(path, "str", value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        _fail(path, "int", value)
    if tp is float:
        if isinstance(value, float):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # a BigInt too large for a float
                _fail(path, "float", value)
        _fail(path, "float", value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        _fail(path, "bool", value)
    if tp is bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        _fail(path, "bytes", value)

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in _UNION_ORIGINS:
        return _validate_union(value, tp, args, path)
    if origin is typing.Literal:
        return _validate_literal(value, tp, args, path)

    cls = origin if origin is not None else tp
    if not isinstance(cls, type):
        raise UsageError(f"{path}: the shield does not support the annotation {tp!r}")

    hook = getattr(cls, "__telefunc_validate__", None)
    if hook is not None:
        return _call_hook(hook, value, path)
    if issubclass(cls, enum.Enum):
        return _validate_enum(value, cls, path)
    if typing.is_typeddict(cls):
        return _validate_typeddict(value, tp, cls, args, path)
    if dataclasses.is_dataclass(cls):
        return _validate_dataclass(value, tp, cls, args, path)
    if cls is list or cls in _SEQUENCE_ORIGINS:
        return _validate_sequence(value, tp, cls, args, path)
    if cls is tuple:
        return _validate_tuple(value, tp, origin, args, path)
    if cls in _MAPPING_ORIGINS:
        return _validate_mapping(value, tp, args, path)
    if cls in _SET_ORIGINS:
        return _validate_set(value, tp, cls, args, path)
    if cls in _COLLECTION_ORIGINS:
        return _validate_collection(value, tp, args, path)
    try:
        accepted = isinstance(value, cls)
    except TypeError as exc:  # e.g. a Protocol that is not runtime-checkable
        raise UsageError(f"{path}: cannot check isinstance against {tp!r}: {exc}") from exc
    if accepted:
        return value
    _fail(path, tp, value)


def _call_hook(hook: Callable[[Any, str], Any], value: Any, path: str) -> Any:
    try:
        return hook(value, path)
    except ShieldValidationError:
        raise
    except (TypeError, ValueError) as exc:
        # A hook signalling rejection the ordinary way: report it as a validation failure.
        raise ShieldValidationError(f"{path}: rejected ({type(exc).__name__})") from exc


def _validate_union(value: Any, tp: Any, members: tuple[Any, ...], path: str) -> Any:
    failures: list[ShieldValidationError] = []
    for member in members:
        try:
            return _validate(value, member, path)
        except ShieldValidationError as exc:
            failures.append(exc)
    # `X | None` with a non-None value: X's own (deeper) message is the useful one.
    candidates = [
        (member, exc)
        for member, exc in zip(members, failures, strict=True)
        if _strip(member) not in _NONE_TYPES
    ]
    if len(candidates) == 1 and value is not None:
        raise candidates[0][1]
    _fail(path, tp, value)


def _validate_literal(value: Any, tp: Any, options: tuple[Any, ...], path: str) -> Any:
    for option in options:
        # Exact type as well as equality: Literal[1] must reject True and 1.0.
        if type(value) is type(option) and value == option:
            return value
        if isinstance(option, enum.Enum):
            if value is option:
                return value
            if type(value) is type(option.value) and value == option.value:
                return option
    if any(type(value) is type(option) for option in options):
        raise ShieldValidationError(f"{path}: expected {_describe(tp)}, got another {_got(value)}")
    _fail(path, tp, value)


def _validate_enum(value: Any, cls: type[enum.Enum], path: str) -> Any:
    if isinstance(value, cls):
        return value
    if value is None or value is UNDEFINED:
        _fail(path, cls, value)
    try:
        member = cls(value)
    except (ValueError, TypeError):
        member = None
    # Exact value type, so an IntEnum rejects True and a float-valued lookup of 1.0.
    if member is not None and type(member.value) is type(value):
        return member
    value_types = sorted({type(m.value).__name__ for m in cls})
    raise ShieldValidationError(
        f"{path}: expected a value of {cls.__name__} ({' | '.join(value_types)}), got "
        f"{'another ' if type(value).__name__ in value_types else ''}{_got(value)}"
    )


def _list_items(value: list[Any] | tuple[Any, ...], item_tp: Any, path: str) -> list[Any]:
    item = _strip(item_tp)
    if _is_any(item):
        return list(value)
    if item in _EXACT_SCALARS:
        # Fast path: no conversion is possible, so only the type of each item matters.
        if item is int:
            ok = all(type(v) is int for v in value)
        else:
            ok = all(type(v) is item for v in value)
        if ok:
            return list(value)
    return [_validate(v, item, f"{path}[{i}]") for i, v in enumerate(value)]


def _validate_sequence(
    value: Any, tp: Any, cls: type[Any], args: tuple[Any, ...], path: str
) -> Any:
    item_tp = args[0] if args else Any
    if cls is list or cls is cabc.MutableSequence:
        if not _is_array(value):
            _fail(path, tp, value)
        return _list_items(value, item_tp, path)
    # Sequence: JSON arrays (lists) and tuples, never str/bytes even though they are sequences.
    if _is_array(value):
        return _list_items(value, item_tp, path)
    if isinstance(value, tuple):
        return tuple(_list_items(value, item_tp, path))
    _fail(path, tp, value)


def _validate_tuple(
    value: Any, tp: Any, origin: Any, args: tuple[Any, ...], path: str
) -> tuple[Any, ...]:
    if not (isinstance(value, tuple) or _is_array(value)):
        _fail(path, tp, value)
    if origin is None:  # bare `tuple`
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_list_items(value, args[0], path))
    if len(value) != len(args):
        raise ShieldValidationError(
            f"{path}: expected {_describe(tp)} ({_count(len(args), 'item')}), "
            f"got {_count(len(value), 'item')}"
        )
    return tuple(
        _validate(v, item_tp, f"{path}[{i}]")
        for i, (v, item_tp) in enumerate(zip(value, args, strict=True))
    )


def _validate_mapping(value: Any, tp: Any, args: tuple[Any, ...], path: str) -> dict[Any, Any]:
    # A dict (plain object or JsMap) or a JsMapEntries (a Map whose keys Python cannot hold in
    # a dict as they are; converted keys, e.g. arrays becoming tuples, may make it possible).
    if isinstance(value, dict):
        entries: Any = value.items()
    elif isinstance(value, JsMapEntries):
        entries = value
    else:
        _fail(path, tp, value)
    key_tp, value_tp = args if len(args) == 2 else (Any, Any)
    key_tp, value_tp = _strip(key_tp), _strip(value_tp)
    keys_any, values_any = _is_any(key_tp), _is_any(value_tp)
    if keys_any and values_any and isinstance(value, dict):
        return dict(value)
    result: dict[Any, Any] = {}
    for key, item in entries:
        item_path = f"{path}[{_key_text(key)}]"
        new_key = key if keys_any else _validate(key, key_tp, f"{item_path} (key)")
        new_value = item if values_any else _validate(item, value_tp, item_path)
        try:
            result[new_key] = new_value
        except TypeError as exc:
            raise ShieldValidationError(f"{item_path} (key): unhashable") from exc
    return result


def _validate_set(value: Any, tp: Any, cls: type[Any], args: tuple[Any, ...], path: str) -> Any:
    # A JsSet (a Set whose elements Python cannot hold in a set as they are) may still convert,
    # e.g. arrays becoming tuples for set[tuple[int, int]].
    if not isinstance(value, set | frozenset | JsSet):
        _fail(path, tp, value)
    item_tp = _strip(args[0]) if args else Any
    items: Any = value
    if not _is_any(item_tp):
        items = [_validate(v, item_tp, f"{path}[*]") for v in value]
    try:
        return frozenset(items) if cls is frozenset else set(items)
    except TypeError as exc:
        raise ShieldValidationError(f"{path}[*]: unhashable") from exc


def _validate_collection(value: Any, tp: Any, args: tuple[Any, ...], path: str) -> Any:
    item_tp = args[0] if args else Any
    if _is_array(value):
        return _list_items(value, item_tp, path)
    if isinstance(value, tuple):
        return tuple(_list_items(value, item_tp, path))
    if isinstance(value, set | frozenset | JsSet):
        return _validate_set(
            value, tp, frozenset if isinstance(value, frozenset) else set, args, path
        )
    _fail(path, tp, value)


# -- TypedDict and dataclasses ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    annotation: Any
    required: bool
    has_default: bool


def _substitute(tp: Any, mapping: dict[Any, Any]) -> Any:
    """Replace type variables in ``tp`` (a field hint of a generic class) with ``mapping``."""
    if not mapping:
        return tp
    if isinstance(tp, typing.TypeVar):
        return mapping.get(tp, tp)
    parameters = getattr(tp, "__parameters__", ())
    if isinstance(parameters, tuple) and parameters:
        try:
            return tp[tuple(mapping.get(p, p) for p in parameters)]
        except TypeError:
            return tp
    return tp


def _type_mapping(cls: type[Any], args: tuple[Any, ...]) -> dict[Any, Any]:
    parameters = getattr(cls, "__parameters__", ())
    if not args or not isinstance(parameters, tuple) or len(parameters) != len(args):
        return {}
    return dict(zip(parameters, args, strict=True))


@functools.lru_cache(maxsize=1024)
def _typeddict_fields(cls: type[Any], args: tuple[Any, ...]) -> tuple[_Field, ...]:
    hints = class_hints(cls)
    mapping = _type_mapping(cls, args)
    required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    fields: list[_Field] = []
    for name, hint in hints.items():
        required = typeddict_key_required(name, hint, required_keys)
        fields.append(_Field(name, _substitute(hint, mapping), required, False))
    return tuple(fields)


@functools.lru_cache(maxsize=1024)
def _dataclass_fields(cls: type[Any], args: tuple[Any, ...]) -> tuple[_Field, ...]:
    hints = class_hints(cls)
    mapping = _type_mapping(cls, args)
    fields: list[_Field] = []
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        has_default = (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        )
        hint = _substitute(hints.get(field.name, Any), mapping)
        fields.append(_Field(field.name, hint, not has_default, has_default))
    return tuple(fields)


def _cached_fields(
    loader: Any,  # one of the lru_cache'd loaders above
    cls: type[Any],
    args: tuple[Any, ...],
) -> tuple[_Field, ...]:
    try:
        cached: tuple[_Field, ...] = loader(cls, args)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        # Unhashable type arguments: skip the cache.
        result: tuple[_Field, ...] = loader.__wrapped__(cls, args)
        return result
    return cached


def _check_keys(value: dict[Any, Any], known: set[str], path: str) -> None:
    for key in value:
        if key not in known:
            raise ShieldValidationError(f"{path}: unexpected key {_key_text(key)}")


def _validate_typeddict(
    value: Any, tp: Any, cls: type[Any], args: tuple[Any, ...], path: str
) -> dict[str, Any]:
    if not _is_object(value):
        _fail(path, tp, value)
    fields = _cached_fields(_typeddict_fields, cls, args)
    _check_keys(value, {f.name for f in fields}, path)
    undefined = UNDEFINED
    result: dict[str, Any] = {}
    for field in fields:
        field_path = _field_path(path, field.name)
        item = value.get(field.name, _ABSENT)
        if item is _ABSENT or (item is undefined and not field.required):
            if field.required:
                raise ShieldValidationError(f"{field_path}: missing key")
            continue
        result[field.name] = _validate(item, field.annotation, field_path)
    return result


def _validate_dataclass(
    value: Any, tp: Any, cls: type[Any], args: tuple[Any, ...], path: str
) -> Any:
    if isinstance(value, cls):
        return value
    if not _is_object(value):
        _fail(path, tp, value)
    fields = _cached_fields(_dataclass_fields, cls, args)
    _check_keys(value, {f.name for f in fields}, path)
    undefined = UNDEFINED
    kwargs: dict[str, Any] = {}
    for field in fields:
        field_path = _field_path(path, field.name)
        item = value.get(field.name, _ABSENT)
        if item is _ABSENT or (item is undefined and field.has_default):
            if field.required:
                raise ShieldValidationError(f"{field_path}: missing key")
            continue
        kwargs[field.name] = _validate(item, field.annotation, field_path)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        # __post_init__ rejecting the values is a validation failure; its message may quote
        # client data, so only its type is reported.
        raise ShieldValidationError(
            f"{path}: {cls.__name__}(...) rejected the values ({type(exc).__name__})"
        ) from exc
