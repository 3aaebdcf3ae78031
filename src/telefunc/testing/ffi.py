"""Stand-in for ``pyodide.ffi``: ``JsProxy``, ``jsnull``, ``to_js``, ``create_proxy`` and friends.

Only the behaviour the Workers SDK and the telefunc adapter rely on is modelled, as observed in
Pyodide 0.28.2 (docs/cloudflare.md §1.9):

* JS ``null`` is :data:`jsnull`, which is *not* ``None``; JS ``undefined`` is ``None``.
* ``to_js(dict)`` gives a JS ``Map``; ``to_js(dict, dict_converter=js.Object.fromEntries)`` gives
  a plain ``Object``; lists become JS arrays.
* A JS object is a :class:`JsProxy` with attribute access and ``to_py()``.
* A Python callable handed to JS is wrapped with :func:`create_proxy` (``destroy()`` releases it).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "JsArray",
    "JsBuffer",
    "JsException",
    "JsMap",
    "JsNull",
    "JsObject",
    "JsProxy",
    "create_once_callable",
    "create_proxy",
    "destroy_proxies",
    "from_js",
    "jsnull",
    "to_js",
]


class JsException(Exception):
    """A JavaScript error surfacing in Python (``pyodide.ffi.JsException``).

    ``str(exc)`` is ``"<name>: <message>"`` as in Pyodide, e.g.
    ``"Error: KV PUT failed: 429 Too Many Requests"``.
    """

    def __init__(self, name: str = "Error", message: str = "") -> None:
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}")


class _Constructor:
    """``value.constructor``: the SDK tells JS classes apart by ``constructor.name``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class JsProxy:
    """Base class of every emulated JavaScript value (``pyodide.ffi.JsProxy``).

    ``_js_name`` is the JS class name ``constructor.name`` reports (the Python class name unless
    the runtime's differs, e.g. ``KvNamespace``).
    """

    __slots__ = ()
    _js_name: str | None = None

    @property
    def constructor(self) -> _Constructor:
        """The JS ``constructor`` (only its ``name`` is modelled)."""
        return _Constructor(self._js_name or type(self).__name__)

    def to_py(self, *, depth: int = -1, **_options: Any) -> Any:
        """Convert to the closest Python value (dicts, lists, ...)."""
        return self

    @property
    def js_id(self) -> int:
        """An identity number, like Pyodide's ``JsProxy.js_id``."""
        return id(self)

    @property
    def typeof(self) -> str:
        """The JavaScript ``typeof`` of the value."""
        return "function" if callable(self) else "object"


class JsNull(JsProxy):
    """The type of :data:`jsnull`, JavaScript ``null`` (falsy, distinct from ``None``)."""

    __slots__ = ()
    _instance: JsNull | None = None

    def __new__(cls) -> JsNull:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "jsnull"

    def to_py(self, *, depth: int = -1, **_options: Any) -> Any:
        """JS ``null`` converts to ``None``."""
        return None


jsnull = JsNull()
"""JavaScript ``null``; compare with ``is jsnull``."""


class JsObject(JsProxy):
    """A plain JS object: attribute access and item access on the same properties."""

    __slots__ = ("_props",)
    _js_name = "Object"

    def __init__(self, props: Mapping[str, Any] | None = None, /, **kw: Any) -> None:
        object.__setattr__(self, "_props", dict(props or {}, **kw))

    def __getattr__(self, name: str) -> Any:
        props: dict[str, Any] = object.__getattribute__(self, "_props")
        if name in props:
            return props[name]
        if name.startswith("__"):
            raise AttributeError(name)
        return None  # JS `undefined` reads as None

    def __setattr__(self, name: str, value: Any) -> None:
        self._props[name] = value

    def __delattr__(self, name: str) -> None:
        self._props.pop(name, None)

    def __getitem__(self, key: str) -> Any:
        return self._props[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._props[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._props

    def __iter__(self) -> Iterator[str]:
        return iter(self._props)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsObject) and other._props == self._props

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"[object Object] {self._props!r}"

    def as_object_map(self) -> dict[str, Any]:
        """The properties as a mutable mapping (Pyodide ``as_object_map``)."""
        props: dict[str, Any] = self._props
        return props

    def object_keys(self) -> list[str]:
        """``Object.keys(obj)``."""
        return list(self._props)

    def object_values(self) -> list[Any]:
        """``Object.values(obj)``."""
        return list(self._props.values())

    def object_entries(self) -> list[tuple[str, Any]]:
        """``Object.entries(obj)``."""
        return list(self._props.items())

    def to_py(self, *, depth: int = -1, **_options: Any) -> Any:
        """Convert to a ``dict`` (recursively unless ``depth`` stops it)."""
        if depth == 0:
            return self
        return {k: from_js(v, depth=depth - 1) for k, v in self._props.items()}


class JsMap(JsProxy):
    """A JS ``Map`` (what ``to_js(dict)`` produces)."""

    __slots__ = ("_d",)
    _js_name = "Map"

    def __init__(
        self, entries: Iterable[tuple[Any, Any]] | Mapping[Any, Any] | None = None
    ) -> None:
        self._d: dict[Any, Any] = dict(entries or {})

    @classmethod
    def new(cls, entries: Iterable[tuple[Any, Any]] | Mapping[Any, Any] | None = None) -> JsMap:
        """``new Map(entries)``."""
        return cls(entries)

    def get(self, key: Any) -> Any:
        """``map.get(key)`` (``None`` for a missing key, JS ``undefined``)."""
        return self._d.get(key)

    def set(self, key: Any, value: Any) -> JsMap:
        """``map.set(key, value)``."""
        self._d[key] = value
        return self

    def has(self, key: Any) -> bool:
        """``map.has(key)``."""
        return key in self._d

    def delete(self, key: Any) -> bool:
        """``map.delete(key)``."""
        return self._d.pop(key, _MISSING) is not _MISSING

    def clear(self) -> None:
        """``map.clear()``."""
        self._d.clear()

    @property
    def size(self) -> int:
        """``map.size``."""
        return len(self._d)

    def keys(self) -> Iterator[Any]:
        """``map.keys()``."""
        return iter(list(self._d))

    def values(self) -> Iterator[Any]:
        """``map.values()``."""
        return iter(list(self._d.values()))

    def entries(self) -> Iterator[tuple[Any, Any]]:
        """``map.entries()``."""
        return iter(list(self._d.items()))

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self.entries()

    def __len__(self) -> int:
        return len(self._d)

    def __getitem__(self, key: Any) -> Any:
        return self._d[key]

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __repr__(self) -> str:
        return f"Map {self._d!r}"

    def to_py(self, *, depth: int = -1, **_options: Any) -> Any:
        """Convert to a ``dict``."""
        if depth == 0:
            return self
        return {k: from_js(v, depth=depth - 1) for k, v in self._d.items()}


_MISSING = object()


class JsArray(list[Any], JsProxy):
    """A JS array: a Python ``list`` that is also a :class:`JsProxy`."""

    _js_name = "Array"

    def to_py(self, *, depth: int = -1, **_options: Any) -> Any:
        """Convert to a ``list``."""
        if depth == 0:
            return self
        return [from_js(v, depth=depth - 1) for v in self]

    @property
    def length(self) -> int:
        """``array.length``."""
        return len(self)


class _JsFunction(JsProxy):
    """A Python callable exposed to JS by :func:`create_proxy`."""

    __slots__ = ("_destroyed", "_fn", "_once")
    _js_name = "Function"

    def __init__(self, fn: Callable[..., Any], once: bool) -> None:
        self._fn: Callable[..., Any] | None = fn
        self._once = once
        self._destroyed = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fn = self._fn
        if fn is None or self._destroyed:
            raise JsException("Error", "This borrowed proxy was automatically destroyed")
        if self._once:
            self.destroy()
        return fn(*args, **kwargs)

    def destroy(self) -> None:
        """Release the proxy; calling it afterwards raises, as in Pyodide."""
        self._destroyed = True
        self._fn = None

    def __repr__(self) -> str:
        return f"<JsProxy function {self._fn!r}>"


class JsBuffer(JsProxy):
    """A JS view of Python bytes (what ``create_proxy(b).getBuffer().data`` hands to JS)."""

    __slots__ = ("data",)
    _js_name = "Uint8Array"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def to_bytes(self) -> bytes:
        """The bytes."""
        return self.data

    def release(self) -> None:
        """Release the buffer view (nothing to do here)."""


class _PyProxy(JsProxy):
    """A non-callable Python object handed to JS (``getBuffer()`` for bytes-like ones)."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def getBuffer(self) -> JsBuffer:
        """A buffer view of a bytes-like object (the SDK's zero-copy response bodies)."""
        return JsBuffer(bytes(self._obj))

    def destroy(self) -> None:
        """Release the proxy."""
        self._obj = None


def create_proxy(obj: Any, *, roundtrip: bool = True) -> Any:
    """Hand a Python object to JS (``pyodide.ffi.create_proxy``): callables become functions."""
    if callable(obj):
        return _JsFunction(obj, once=False)
    return _PyProxy(obj)


def destroy_proxies(proxies: Any) -> None:
    """Destroy every proxy in a JS array of proxies (``pyodide.ffi.destroy_proxies``)."""
    for proxy in list(proxies or []):
        destroy = getattr(proxy, "destroy", None)
        if callable(destroy):
            destroy()


def create_once_callable(obj: Callable[..., Any]) -> Any:
    """Wrap a callable that JS may call once (``pyodide.ffi.create_once_callable``)."""
    return _JsFunction(obj, once=True)


def to_js(
    obj: Any,
    *,
    depth: int = -1,
    dict_converter: Callable[[Iterable[tuple[Any, Any]]], Any] | None = None,
    create_pyproxies: bool = True,
    default_converter: Callable[..., Any] | None = None,
) -> Any:
    """Convert a Python value to its JS counterpart (``pyodide.ffi.to_js``).

    Dicts become a :class:`JsMap` unless ``dict_converter`` is given (``js.Object.fromEntries``
    gives a :class:`JsObject`, docs/cloudflare.md §1.9); lists and tuples become
    :class:`JsArray`; ``None`` stays
    ``None`` (JS ``undefined``); scalars, bytes and existing JS values pass through.
    """
    if depth == 0 or (isinstance(obj, JsProxy) and not isinstance(obj, JsArray)):
        return obj
    if isinstance(obj, Mapping):
        entries = [
            (
                k,
                to_js(
                    v,
                    depth=depth - 1,
                    dict_converter=dict_converter,
                    default_converter=default_converter,
                ),
            )
            for k, v in obj.items()
        ]
        if dict_converter is not None:
            return dict_converter(entries)
        return JsMap(entries)
    if isinstance(obj, list | tuple | set | frozenset):
        return JsArray(
            to_js(
                v,
                depth=depth - 1,
                dict_converter=dict_converter,
                default_converter=default_converter,
            )
            for v in obj
        )
    if default_converter is not None and not isinstance(
        obj, str | int | float | bool | bytes | bytearray | memoryview | type(None)
    ):
        # Pyodide calls it for what it cannot convert itself (the SDK's python_to_rpc uses it).
        def convert(value: Any) -> Any:
            return to_js(value, dict_converter=dict_converter, default_converter=default_converter)

        return default_converter(obj, convert, {})
    return obj


def from_js(value: Any, *, depth: int = -1) -> Any:
    """Convert an emulated JS value to Python (``jsnull`` → ``None``, objects → dicts).

    The emulator's binding wrappers use this on arguments, as the SDK's ``python_from_rpc`` does.
    """
    if isinstance(value, JsProxy):
        return value.to_py(depth=depth)
    return value


def check_wait_until_argument(aw: Any) -> Any:
    """What ``waitUntil`` accepts: a scheduled Future/Task or a JS thenable, not a bare coroutine.

    Handed to JavaScript, a bare coroutine (or any borrowed proxy) is destroyed when the call
    returns, before the runtime's Promise machinery uses it, so its work is lost (Pyodide's
    "borrowed proxy was automatically destroyed"). The emulator refuses it up front instead of
    running it anyway; schedule it first (``asyncio.ensure_future``) or hand over a Promise.
    """
    if inspect.iscoroutine(aw):
        aw.close()  # never awaited: close it so Python does not warn about it too
        raise TypeError(
            "waitUntil() needs a Promise or a scheduled Future, not a bare coroutine: "
            "wrap it with asyncio.ensure_future(...) (and create_proxy under Pyodide)"
        )
    if not (isinstance(aw, asyncio.Future) or callable(getattr(aw, "then", None))):
        raise TypeError(f"waitUntil() needs a Promise or a Future, got {type(aw).__name__}")
    return aw
