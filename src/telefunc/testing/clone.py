"""A structured-clone-like deep copy for values crossing an object boundary.

RPC arguments and results, DO storage values, KV JSON and WebSocket attachments are serialized in
the real runtime (V8 serializer / ``python_to_rpc``, docs/cloudflare.md §1.4), so the receiver never
shares a mutable object with the sender. :func:`structured_clone` copies the value and rejects
what the serializer rejects (arbitrary class instances), raising ``DataCloneError``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from typing import Any

from .ffi import JsArray, JsException, JsMap, JsNull, JsObject

__all__ = ["clone_size", "structured_clone"]

_SCALARS = (str, int, float, bool, type(None), JsNull, _dt.datetime, _dt.date)


def structured_clone(value: Any, *, passthrough: Callable[[Any], bool] | None = None) -> Any:
    """Deep-copy ``value``; tuples become lists (JS arrays), ``bytearray`` becomes ``bytes``.

    ``passthrough(v)`` may return True for values that are handed over by reference (RPC stubs
    and functions, which the real RPC system passes as stubs).
    """
    memo: dict[int, Any] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, _SCALARS):
            return v
        if isinstance(v, bytes | bytearray | memoryview):
            return bytes(v)
        if passthrough is not None and passthrough(v):
            return v
        key = id(v)
        if key in memo:
            return memo[key]
        if isinstance(v, dict):
            out: dict[Any, Any] = {}
            memo[key] = out
            for k, item in v.items():
                out[walk(k)] = walk(item)
            return out
        if isinstance(v, JsObject):
            o = JsObject()
            memo[key] = o
            for k, item in v.object_entries():
                o[k] = walk(item)
            return o
        if isinstance(v, JsMap):
            m = JsMap()
            memo[key] = m
            for k, item in v.entries():
                m.set(walk(k), walk(item))
            return m
        if isinstance(v, JsArray):
            a = JsArray()
            memo[key] = a
            a.extend(walk(item) for item in v)
            return a
        if isinstance(v, list | tuple):
            lst: list[Any] = []
            memo[key] = lst
            lst.extend(walk(item) for item in v)
            return lst
        if isinstance(v, set | frozenset):
            return {walk(item) for item in v}
        if isinstance(v, BaseException):
            return type(v)(*v.args)
        raise JsException("DataCloneError", f"{type(v).__name__} object could not be cloned.")

    return walk(value)


def clone_size(value: Any) -> int:
    """Approximate serialized size in bytes (JSON of the value, bytes counted raw)."""

    def default(o: Any) -> Any:
        if isinstance(o, bytes | bytearray | memoryview):
            return "x" * len(o)
        if isinstance(o, JsObject | JsMap):
            return o.to_py()
        if isinstance(o, set | frozenset):
            return list(o)
        return repr(o)

    return len(json.dumps(value, default=default, ensure_ascii=False).encode())
