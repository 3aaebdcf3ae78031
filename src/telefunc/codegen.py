"""``telefunc codegen ROOT --out DIR``: TypeScript stubs for the Python telefunctions.

For every ``*.telefunc.py`` file under ``ROOT`` this writes ``DIR/<same path>.telefunc.ts``,
whose exported functions call ``__remoteTelefunctionCall(file, name, args)`` from
``telefunc/client`` (what the official bundler transform does for a ``.telefunc.ts`` file),
typed from the Python annotations. A front end imports the stub instead of the Python file and
gets the official client's behaviour with static types. The Python → TypeScript type mapping and
its decisions (``Promise<void>``, ``RoomInput`` for arguments, optional parameters, names) are in
docs/architecture.md §5.1. An annotation without a mapping becomes ``unknown`` with a comment;
nothing here imports the telefunc runtime classes it recognises.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import enum
import inspect
import json
import re
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from telefunc.errors import UsageError
from telefunc.server.hints import (
    NONE_TYPES,
    TYPE_ALIAS_TYPE,
    UNION_ORIGINS,
    admits_none,
    class_hints,
    is_any,
    strip,
    typeddict_key_required,
)
from telefunc.server.registry import Telefunction, discover

__all__ = [
    "generate",
    "main_codegen",
    "python_type_to_ts",
    "render_all",
    "render_module",
    "write_if_changed",
]

PY_SUFFIX = ".telefunc.py"
TS_SUFFIX = ".telefunc.ts"

# Words that cannot be a binding name in an ES module (strict mode), plus the stub's own import.
# fmt: off
_RESERVED_WORDS = frozenset({
    "break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do",
    "else", "enum", "export", "extends", "false", "finally", "for", "function", "if", "import",
    "in", "instanceof", "new", "null", "return", "super", "switch", "this", "throw", "true", "try",
    "typeof", "var", "void", "while", "with", "yield", "let", "static", "implements", "interface",
    "package", "private", "protected", "public", "await", "arguments", "eval",
    "__remoteTelefunctionCall",
})
# Type names the stubs use (TypeScript built-ins, DOM types, imports): user types must not
# shadow them.
_RESERVED_TYPE_NAMES = _RESERVED_WORDS | frozenset({
    "ClientChannel", "BroadcastChannel", "Promise", "PromiseLike", "Record", "Partial", "Map",
    "Set", "Date", "File", "Blob", "Uint8Array", "RegExp", "AsyncGenerator", "Array",
    "ReadonlyArray", "Object", "String", "Number", "Boolean", "Symbol", "Error", "Function",
    "unknown", "never", "undefined", "string", "number", "boolean", "bigint", "object", "any",
    "symbol",
})
# fmt: on

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

_SCALARS: dict[Any, str] = {
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    bytes: "Uint8Array",
    bytearray: "Uint8Array",
    memoryview: "Uint8Array",
    datetime: "Date",
    re.Pattern: "RegExp",
}
_SEQUENCE_ORIGINS = frozenset({list, cabc.Sequence, cabc.MutableSequence})
_COLLECTION_ORIGINS = frozenset({cabc.Collection, cabc.Iterable})
_SET_ORIGINS = frozenset({set, frozenset, cabc.Set, cabc.MutableSet})
_MAPPING_ORIGINS = frozenset({dict, cabc.Mapping, cabc.MutableMapping})
_AWAITABLE_ORIGINS = frozenset({cabc.Awaitable, cabc.Coroutine})
_CALLABLE: Any = cabc.Callable
_ASYNC_ITER_ORIGINS = frozenset({cabc.AsyncIterator, cabc.AsyncIterable, cabc.AsyncGenerator})

# Telefunc classes recognised by (module, qualname) anywhere in a class's MRO. The handler gets
# the renderer, the type arguments and whether the position is an argument.
_Special = Callable[["_Renderer", tuple[Any, ...], bool, frozenset[Any]], str]


def _channel(r: _Renderer, args: tuple[Any, ...], argument: bool, scope: frozenset[Any]) -> str:
    r.type_imports.add("ClientChannel")
    if len(args) != 2:
        return "ClientChannel<unknown, unknown>"
    # The client sends ClientToServer values (they arrive as arguments would) and receives
    # ServerToClient values (they are results).
    client_to_server = r.ts(args[0], True, scope)
    server_to_client = r.ts(args[1], False, scope)
    return f"ClientChannel<{client_to_server}, {server_to_client}>"


def _broadcast(r: _Renderer, args: tuple[Any, ...], argument: bool, scope: frozenset[Any]) -> str:
    r.type_imports.add("BroadcastChannel")
    item = r.ts(args[0], False, scope) if len(args) == 1 else "unknown"
    return f"BroadcastChannel<{item}>"


def _fixed(text: str) -> _Special:
    return lambda r, args, argument, scope: text


_UNDEFINED_KEY = ("telefunc.wire.serializer", "UndefinedType")
_SPECIAL_CLASSES: dict[tuple[str, str], _Special] = {
    ("telefunc.server.channel", "Channel"): _channel,
    ("telefunc.server.broadcast", "BroadcastChannel"): _broadcast,
    ("telefunc.server.files", "UploadedFile"): _fixed("File | Blob"),
    ("telefunc.wire.serializer", "UndefinedType"): _fixed("undefined"),
    ("telefunc.wire.serializer", "BigInt"): _fixed("bigint"),
    ("telefunc.wire.serializer", "JsRegExp"): _fixed("RegExp"),
    ("telefunc.wire.serializer", "JsMap"): _fixed("Map<unknown, unknown>"),
    ("telefunc.wire.serializer", "JsMapEntries"): _fixed("Map<unknown, unknown>"),
    ("telefunc.wire.serializer", "JsSet"): _fixed("Set<unknown>"),
}


def _special_for(cls: type[Any]) -> _Special | None:
    for base in getattr(cls, "__mro__", (cls,)):
        key = (getattr(base, "__module__", ""), getattr(base, "__qualname__", ""))
        handler = _SPECIAL_CLASSES.get(key)
        if handler is not None:
            return handler
    return None


def _literal(value: Any) -> str | None:
    """A TypeScript literal type for a ``Literal[...]`` option or enum value, if it has one."""
    if isinstance(value, enum.Enum):
        if (type(value).__module__, type(value).__qualname__) == _UNDEFINED_KEY:
            return "undefined"
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(str(value), ensure_ascii=False)
    return None


def _union(members: Sequence[str]) -> str:
    seen: list[str] = []
    for member in members:
        if member == "unknown":
            return "unknown"  # absorbs every other member
        if member == "never" or member in seen:
            continue
        seen.append(member)
    if not seen:
        return "never"
    if len(seen) == 1:
        return seen[0]
    return " | ".join(_paren(member) if "=>" in member else member for member in seen)


def _paren(text: str) -> str:
    return f"({text})"


def _array(item: str) -> str:
    return f"{_paren(item) if ('|' in item or '=>' in item or '&' in item) else item}[]"


def _property_name(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name, ensure_ascii=False)


def _comment(text: str) -> str:
    return text.replace("*/", "*\\/")


def _describe(tp: Any) -> str:
    if isinstance(tp, type):
        return f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp)


@dataclass(slots=True)
class _Renderer:
    """Turns annotations into TypeScript, naming the declarations it needs on the way.

    ``differs`` holds the named types whose argument form differs from their result form; a
    reference to one in an argument position uses its ``…Input`` declaration. ``on_ref`` is
    told about every reference to a named type (and which form it uses).
    """

    names: dict[Any, str] = field(default_factory=dict)
    input_names: dict[Any, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=lambda: set(_RESERVED_TYPE_NAMES))
    differs: set[Any] = field(default_factory=set)
    type_imports: set[str] = field(default_factory=set)
    on_ref: Callable[[Any, bool], None] | None = None

    # -- names ------------------------------------------------------------------------------

    def _allocate(self, base: str) -> str:
        base = re.sub(r"\W", "_", base) or "Type"
        if base[0].isdigit():
            base = "_" + base
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def _ref(self, obj: Any, argument: bool) -> str:
        """The declared name for ``obj`` in this position, registering it on first sight."""
        if obj not in self.names:
            self.names[obj] = self._allocate(getattr(obj, "__name__", "Type"))
        input_form = argument and obj in self.differs
        if self.on_ref is not None:
            self.on_ref(obj, input_form)
        if not input_form:
            return self.names[obj]
        if obj not in self.input_names:
            self.input_names[obj] = self._allocate(self.names[obj] + "Input")
        return self.input_names[obj]

    # -- types ------------------------------------------------------------------------------

    def ts(self, tp: Any, argument: bool, scope: frozenset[Any] = frozenset()) -> str:
        """The TypeScript type for ``tp``; ``argument`` for values the client sends."""
        tp = strip(tp, resolve_names=False)
        if is_any(tp):
            return "unknown"
        if tp in NONE_TYPES:
            return "null"
        if tp is typing.NoReturn or tp is getattr(typing, "Never", typing.NoReturn):
            return "never"
        if tp is typing.LiteralString:
            return "string"
        if isinstance(tp, str | typing.ForwardRef):
            text = tp if isinstance(tp, str) else tp.__forward_arg__
            return f"unknown /* unresolved forward reference {_comment(repr(text))} */"
        if isinstance(tp, typing.TypeVar):
            return self._type_var(tp, argument, scope)
        if TYPE_ALIAS_TYPE is not None and isinstance(tp, TYPE_ALIAS_TYPE):
            return self._ref(tp, argument)

        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in UNION_ORIGINS:
            return _union([self.ts(member, argument, scope) for member in args])
        if origin is typing.Literal:
            return self._literal_union(args)
        if TYPE_ALIAS_TYPE is not None and isinstance(origin, TYPE_ALIAS_TYPE):
            # A generic `type A[T] = ...` with arguments.
            inner = ", ".join(self.ts(arg, argument, scope) for arg in args)
            return f"{self._ref(origin, argument)}<{inner}>"

        cls = origin if origin is not None else tp
        if not isinstance(cls, type):
            return f"unknown /* no TypeScript mapping for {_comment(_describe(tp))} */"
        special = _special_for(cls)
        if special is not None:
            return special(self, args, argument, scope)
        scalar = _SCALARS.get(cls)
        if scalar is not None:
            return scalar
        if issubclass(cls, enum.Enum):
            return self._ref(cls, argument)
        if typing.is_typeddict(cls) or dataclasses.is_dataclass(cls):
            return self._class_ref(cls, args, argument, scope)
        if cls in _SEQUENCE_ORIGINS:
            return _array(self._item(args, argument, scope))
        if cls is tuple:
            return self._tuple(tp, origin, args, argument, scope)
        if cls in _COLLECTION_ORIGINS:
            item = self._item(args, argument, scope)
            # The shield accepts arrays and Sets for these; Python results are sent as arrays.
            return f"{_array(item)} | Set<{item}>" if argument else _array(item)
        if cls in _SET_ORIGINS:
            return f"Set<{self._item(args, argument, scope)}>"
        if cls in _MAPPING_ORIGINS or (origin is None and issubclass(cls, dict)):
            return self._mapping(args, argument, scope)
        if cls in _AWAITABLE_ORIGINS:
            return f"Promise<{self._awaited(args, argument, scope)}>"
        if cls in _ASYNC_ITER_ORIGINS:
            return f"AsyncGenerator<{self._item(args, argument, scope)}>"
        if cls is _CALLABLE:
            return self._callable(args, argument, scope)
        for base, text in ((str, "string"), (bool, "boolean"), (int, "number"), (float, "number")):
            if issubclass(cls, base):
                return text
        return f"unknown /* no TypeScript mapping for {_comment(_describe(tp))} */"

    def _item(self, args: tuple[Any, ...], argument: bool, scope: frozenset[Any]) -> str:
        return self.ts(args[0], argument, scope) if args else "unknown"

    def _awaited(self, args: tuple[Any, ...], argument: bool, scope: frozenset[Any]) -> str:
        # Awaitable[T] has one argument; Coroutine[Yield, Send, Return] resolves to the last.
        return self.ts(args[-1], argument, scope) if args else "unknown"

    def _type_var(self, tv: Any, argument: bool, scope: frozenset[Any]) -> str:
        if tv in scope:
            return str(tv.__name__)
        if tv.__bound__ is not None:
            return self.ts(tv.__bound__, argument, scope)
        if tv.__constraints__:
            return _union([self.ts(c, argument, scope) for c in tv.__constraints__])
        return "unknown"

    def _literal_union(self, options: tuple[Any, ...]) -> str:
        members = []
        for option in options:
            text = _literal(option)
            members.append(
                text
                if text is not None
                else f"unknown /* Literal[{_comment(repr(option))}] has no TypeScript form */"
            )
        return _union(members)

    def _tuple(
        self, tp: Any, origin: Any, args: tuple[Any, ...], argument: bool, scope: frozenset[Any]
    ) -> str:
        if origin is None:
            return "unknown[]"  # bare `tuple`
        if len(args) == 2 and args[1] is Ellipsis:
            return _array(self.ts(args[0], argument, scope))
        if args == ((),):  # `Tuple[()]` spelled the old way
            return "[]"
        return "[" + ", ".join(self.ts(arg, argument, scope) for arg in args) + "]"

    def _mapping(self, args: tuple[Any, ...], argument: bool, scope: frozenset[Any]) -> str:
        key_tp, value_tp = args if len(args) == 2 else (Any, Any)
        value = self.ts(value_tp, argument, scope)
        key = strip(key_tp, resolve_names=False)
        if is_any(key) or key is str or key is typing.LiteralString:
            return f"Record<string, {value}>"
        if self._string_keys(key):
            # Not every key need be present: a dict[Literal["a", "b"], V] may hold only "a".
            return f"Partial<Record<{self.ts(key, argument, scope)}, {value}>>"
        # A dict with a non-str key is sent as a JavaScript Map (and a Map arrives as one).
        return f"Map<{self.ts(key, argument, scope)}, {value}>"

    def _string_keys(self, key: Any) -> bool:
        """Whether every value of ``key`` is a ``str`` (so the dict is sent as a plain object)."""
        key = strip(key, resolve_names=False)
        origin = typing.get_origin(key)
        if origin in UNION_ORIGINS:
            return all(self._string_keys(member) for member in typing.get_args(key))
        if origin is typing.Literal:
            return all(isinstance(option, str) for option in typing.get_args(key))
        return isinstance(key, type) and issubclass(key, str)

    def _callable(self, args: tuple[Any, ...], argument: bool, scope: frozenset[Any]) -> str:
        params: Any = args[0] if args else Ellipsis
        result: Any = args[1] if len(args) == 2 else Any
        # A function crosses the wire as a remote callback: its parameters flow the other way.
        if params is Ellipsis or not isinstance(params, list):
            param_text = "...args: any[]" if argument else "...args: unknown[]"
        else:
            param_text = ", ".join(
                f"arg{i}: {self.ts(p, not argument, scope)}" for i, p in enumerate(params)
            )
        stripped = strip(result, resolve_names=False)
        if argument:
            # The client's callback may return the value or a promise of it.
            if stripped in NONE_TYPES:
                return f"({param_text}) => void"
            returned = self.ts(result, True, scope)
            if returned == "unknown":
                return f"({param_text}) => unknown"
            wrapped = _paren(returned) if "=>" in returned else returned
            return f"({param_text}) => {wrapped} | Promise<{returned}>"
        returned = "void" if stripped in NONE_TYPES else self.ts(result, False, scope)
        return f"({param_text}) => Promise<{returned}>"

    def _class_ref(
        self, cls: type[Any], args: tuple[Any, ...], argument: bool, scope: frozenset[Any]
    ) -> str:
        name = self._ref(cls, argument)
        params = _type_params(cls)
        if not args or not params:
            return name
        return f"{name}<{', '.join(self.ts(arg, argument, scope) for arg in args)}>"

    # -- declarations -----------------------------------------------------------------------

    def body(self, obj: Any, argument: bool) -> str:
        """The right-hand side of ``obj``'s declaration in the given form."""
        if isinstance(obj, type) and issubclass(obj, enum.Enum):
            return self._enum_body(obj)
        if isinstance(obj, type):
            scope = frozenset(_type_params(obj))
            if typing.is_typeddict(obj):
                fields = _typeddict_fields(obj)
            else:
                fields = _dataclass_fields(obj, argument)
            lines = [
                f"  {_property_name(name)}{'?' if optional else ''}: "
                f"{self.ts(hint, argument, scope)}"
                for name, hint, optional in fields
            ]
            return "{\n" + "".join(line + "\n" for line in lines) + "}"
        # A `type X = ...` alias (Python 3.12+).
        scope = frozenset(getattr(obj, "__type_params__", ()))
        return self.ts(obj.__value__, argument, scope)

    def _enum_body(self, cls: type[enum.Enum]) -> str:
        if issubclass(cls, enum.Flag):
            return "number"  # flags combine into values that are not members
        members = []
        for member in cls:
            text = _literal(member.value)
            members.append(
                text
                if text is not None
                else f"unknown /* {_comment(cls.__qualname__)}.{member.name} has no JSON value */"
            )
        return _union(members)

    def declaration(self, obj: Any, argument: bool) -> str:
        """The full ``export interface``/``export type`` text for ``obj`` in the given form."""
        name = self.input_names[obj] if argument else self.names[obj]
        params = _type_params(obj) if isinstance(obj, type) else getattr(obj, "__type_params__", ())
        generic = "<" + ", ".join(f"{p.__name__} = unknown" for p in params) + ">" if params else ""
        body = self.body(obj, argument)
        doc = _class_doc(obj)
        prefix = f"/** {_comment(doc)} */\n" if doc else ""
        if isinstance(obj, type) and not issubclass(obj, enum.Enum):
            return f"{prefix}export interface {name}{generic} {body}\n"
        return f"{prefix}export type {name}{generic} = {body}\n"


def _type_params(cls: Any) -> tuple[Any, ...]:
    params = getattr(cls, "__parameters__", ())
    return tuple(params) if isinstance(params, tuple) else ()


def _class_doc(obj: Any) -> str:
    if not isinstance(obj, type):
        return ""
    doc = obj.__dict__.get("__doc__")
    if not isinstance(doc, str):
        return ""
    if dataclasses.is_dataclass(obj) and doc.startswith(obj.__name__ + "("):
        return ""  # dataclasses invent a signature docstring; it says nothing new
    if issubclass(obj, enum.Enum) and doc == "An enumeration.":
        return ""
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")


def _typeddict_fields(cls: type[Any]) -> list[tuple[str, Any, bool]]:
    """``(name, hint, optional)`` of a TypedDict's keys."""
    hints = class_hints(cls)
    required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
    fields = []
    for name, hint in hints.items():
        fields.append((name, hint, not typeddict_key_required(name, hint, required_keys)))
    return fields


def _dataclass_fields(cls: type[Any], argument: bool) -> list[tuple[str, Any, bool]]:
    """``(name, hint, optional)`` of a dataclass's fields, as sent (argument) or returned."""
    hints = class_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        if argument and not f.init:
            continue  # the shield rejects keys the constructor does not take
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        fields.append((f.name, hints.get(f.name, Any), argument and has_default))
    return fields


def python_type_to_ts(annotation: Any, *, argument: bool = False) -> str:
    """The TypeScript type for one Python annotation.

    ``argument=True`` gives the form for values the client sends (see the module docstring for
    how it differs). TypedDicts, dataclasses and enums come out as their (declared) names; use
    :func:`render_module` to get their declarations too.
    """
    return _Renderer().ts(annotation, argument)


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    annotation: Any
    optional: bool
    variadic: bool


@dataclass(frozen=True, slots=True)
class _Signature:
    telefunction: Telefunction
    params: tuple[_Param, ...]
    result: Any  # the return annotation with top-level Awaitable/Coroutine removed
    returns_none: bool


def _analyse(tf: Telefunction) -> _Signature:
    func = tf.func
    try:
        hints = typing.get_type_hints(func, include_extras=True)
        signature = inspect.signature(func)
    except Exception as exc:  # NameError for a forward reference that does not resolve, etc.
        line = getattr(getattr(func, "__code__", None), "co_firstlineno", "?")
        raise UsageError(
            f"{tf.file}: {tf.name}(): cannot resolve its type hints ({type(exc).__name__}: {exc})"
            f" at line {line}"
        ) from exc
    params: list[_Param] = []
    for p in signature.parameters.values():
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD):
            continue  # the wire carries positional arguments only
        annotation = hints.get(p.name, inspect.Parameter.empty)
        variadic = p.kind is inspect.Parameter.VAR_POSITIONAL
        optional = p.default is not inspect.Parameter.empty or admits_none(annotation)
        params.append(_Param(p.name, annotation, optional, variadic))
    # TypeScript allows optional parameters only after the required ones.
    trailing_optional = True
    for i in range(len(params) - 1, -1, -1):
        param = params[i]
        if param.variadic:
            continue
        trailing_optional = trailing_optional and param.optional
        if param.optional != trailing_optional:
            params[i] = dataclasses.replace(param, optional=trailing_optional)
    result = strip(hints.get("return", inspect.Parameter.empty), resolve_names=False)
    while typing.get_origin(result) in _AWAITABLE_ORIGINS:
        args = typing.get_args(result)
        result = strip(args[-1], resolve_names=False) if args else Any
    return _Signature(tf, tuple(params), result, result in NONE_TYPES)


def _param_name(name: str, taken: set[str]) -> str:
    candidate = name
    while candidate in _RESERVED_WORDS or candidate in taken:
        candidate += "_"
    taken.add(candidate)
    return candidate


def _function_text(file_key: str, sig: _Signature, r: _Renderer) -> tuple[str, str | None]:
    """The function declaration, and the reserved name it must be exported under (if any)."""
    tf = sig.telefunction
    taken: set[str] = set()
    declared: list[str] = []
    passed: list[str] = []
    for param in sig.params:
        local = _param_name(param.name, taken)
        ts = r.ts(param.annotation, True)
        if param.variadic:
            declared.append(f"...{local}: {_array(ts)}")
            passed.append(f"...{local}")
        else:
            declared.append(f"{local}{'?' if param.optional else ''}: {ts}")
            passed.append(local)
    returned = "void" if sig.returns_none else r.ts(sig.result, False)
    exported_as: str | None = None
    local_name = tf.name
    if tf.name in _RESERVED_WORDS:
        local_name = tf.name + "_"
        exported_as = tf.name
    doc = inspect.getdoc(tf.func)
    lines = []
    if doc:
        lines.append("/**")
        lines.extend(f" * {_comment(line)}".rstrip() for line in doc.splitlines())
        lines.append(" */")
    export = "" if exported_as else "export "
    call = (
        f"__remoteTelefunctionCall({json.dumps(file_key)}, {json.dumps(tf.name)}, "
        f"[{', '.join(passed)}])"
    )
    lines.append(f"{export}function {local_name}({', '.join(declared)}): Promise<{returned}> {{")
    lines.append(f"  return {call} as Promise<{returned}>")
    lines.append("}")
    return "\n".join(lines) + "\n", exported_as


def render_module(file_key: str, functions: Sequence[Telefunction]) -> str:
    """The TypeScript stub for the telefunc file ``file_key`` (e.g. ``/chat/room.telefunc.py``).

    ``functions`` are that file's telefunctions, in the order they are written out. Raises
    :class:`~telefunc.errors.UsageError` when an annotation cannot be resolved.
    """
    for tf in functions:
        if tf.file != file_key:
            raise UsageError(f"{tf.key} is not a telefunction of {file_key}")
    signatures = [_analyse(tf) for tf in functions]
    r = _Renderer()

    # Pass 1: find every named type reachable from the signatures and which of them need a
    # separate argument form. A type's argument form differs when its two bodies differ; a
    # difference in one type makes its containers differ on the next round, so repeat until
    # nothing changes (the set only grows, so this ends).
    for _ in range(1000):
        for sig in signatures:
            _function_text(file_key, sig, r)
        bodies: dict[Any, tuple[str, str]] = {}
        i = 0
        while i < len(r.names):
            obj = list(r.names)[i]
            i += 1
            bodies[obj] = (r.body(obj, False), r.body(obj, True))
        grown = r.differs | {obj for obj, (out, inp) in bodies.items() if out != inp}
        if grown == r.differs:
            break
        r.differs = grown

    # Pass 2: write out the functions and the declarations they reach, in order of first use.
    wanted: list[tuple[Any, bool]] = []
    r.on_ref = lambda obj, argument: (
        None if (obj, argument) in wanted else wanted.append((obj, argument))
    )
    r.type_imports.clear()
    functions_text: list[str] = []
    reexports: list[str] = []
    for sig in signatures:
        text, exported_as = _function_text(file_key, sig, r)
        functions_text.append(text)
        if exported_as is not None:
            reexports.append(f"{exported_as}_ as {exported_as}")
    declarations: list[str] = []
    i = 0
    while i < len(wanted):
        obj, argument = wanted[i]
        i += 1
        declarations.append(r.declaration(obj, argument))

    source = file_key.lstrip("/")
    out = [
        f"// Generated by `telefunc codegen` from {source}. Do not edit: edit the Python file and",
        "// run `telefunc codegen` again.",
        "import { __remoteTelefunctionCall } from 'telefunc/client'",
    ]
    if r.type_imports:
        out.append(f"import type {{ {', '.join(sorted(r.type_imports))} }} from 'telefunc'")
    out.append("")
    for block in [*declarations, *functions_text]:
        out.append(block)
    if reexports:
        out.append(f"export {{ {', '.join(reexports)} }}\n")
    return "\n".join(out).rstrip("\n") + "\n"


def _stub_path(out_dir: Path, file_key: str) -> Path:
    relative = file_key.lstrip("/")
    return out_dir / (relative[: -len(PY_SUFFIX)] + TS_SUFFIX)


def render_all(root: str | Path, out_dir: str | Path) -> dict[Path, str]:
    """Every stub for the telefunc files under ``root``: ``{path under out_dir: text}``.

    Imports the files and renders in memory; writes nothing. Raises like :func:`generate`.
    """
    registry = discover(root)
    by_file: dict[str, list[Telefunction]] = {}
    for tf in registry.values():
        by_file.setdefault(tf.file, []).append(tf)
    out = Path(out_dir)
    return {_stub_path(out, key): render_module(key, by_file[key]) for key in sorted(by_file)}


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; True when written.

    The new text replaces the old in one rename, so a watcher (Vite's) sees one change and
    never a half-written file.
    """
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return True


def generate(root: str | Path, out_dir: str | Path) -> list[Path]:
    """Write one ``<path>.telefunc.ts`` stub per telefunc file under ``root`` into ``out_dir``.

    ``chat/room.telefunc.py`` becomes ``out_dir/chat/room.telefunc.ts``. Returns the written
    paths, sorted by file key. Raises :class:`~telefunc.errors.UsageError` (or its subclass
    ``TelefuncFileError``) when ``root`` is not a folder, a file fails to import or an
    annotation cannot be resolved; nothing is written in that case.
    """
    rendered = render_all(root, out_dir)
    written: list[Path] = []
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main_codegen(root: str, out: str) -> int:
    """Run ``telefunc codegen ROOT --out DIR``: print what was written and return 0.

    On a problem (ROOT missing, a telefunc file failing to import, an unresolvable annotation,
    no telefunc files at all, an unwritable DIR) prints one line on stderr and returns 2.
    """
    try:
        written = generate(root, out)
    except UsageError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {exc.filename or out}: {exc.strerror or exc}")
    if not written:
        return _fail(f"no telefunctions found in *{PY_SUFFIX} files under {root}")
    for path in written:
        print(f"wrote {path}")
    print(f"telefunc codegen: {len(written)} stub(s) in {out}")
    return 0


def _fail(message: str) -> int:
    print(f"telefunc codegen: error: {message}", file=sys.stderr)
    return 2
