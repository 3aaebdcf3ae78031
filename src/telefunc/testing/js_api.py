"""Stand-in for Pyodide's ``js`` module: the JavaScript globals a Python Worker reaches for.

JS classes are built with ``.new(...)`` as under Pyodide (docs/cloudflare.md §1.9). Time comes from
the emulator's clock, so ``Date.now()`` follows a :class:`~telefunc.testing.clock.FakeClock`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import secrets
import sys
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from ._context import get_emulator
from .durable_objects import WebSocketRequestResponsePair
from .ffi import JsArray, JsException, JsMap, JsObject, JsProxy, from_js
from .startup import in_startup
from .web import Headers, ReadableStream, Request, Response, TransformStream, init_options
from .websocket import WebSocket, WebSocketPair

__all__ = [
    "JSON",
    "URL",
    "Array",
    "Date",
    "Error",
    "Headers",
    "Map",
    "Object",
    "ReadableStream",
    "Request",
    "Response",
    "TextDecoder",
    "TextEncoder",
    "TransformStream",
    "URLSearchParams",
    "Uint8Array",
    "WebSocket",
    "WebSocketPair",
    "WebSocketRequestResponsePair",
    "clearInterval",
    "clearTimeout",
    "console",
    "crypto",
    "fetch",
    "queueMicrotask",
    "setInterval",
    "setTimeout",
    "undefined",
]

undefined = None
"""JS ``undefined`` is ``None`` in Python."""

Map = JsMap


def _now_ms() -> int:
    emu = get_emulator()
    if emu is not None:
        return emu.clock.now_ms()
    return int(_dt.datetime.now(_dt.UTC).timestamp() * 1000)


class Object:
    """The ``Object`` global."""

    @staticmethod
    def new() -> JsObject:
        """``new Object()``."""
        return JsObject()

    @staticmethod
    def fromEntries(entries: Iterable[Any]) -> JsObject:
        """A plain object from ``(key, value)`` pairs (use as ``to_js`` ``dict_converter``)."""
        if isinstance(entries, JsMap):
            entries = list(entries.entries())
        return JsObject({str(k): v for k, v in entries})

    @staticmethod
    def keys(obj: Any) -> JsArray:
        """``Object.keys``."""
        return JsArray(_props(obj).keys())

    @staticmethod
    def values(obj: Any) -> JsArray:
        """``Object.values``."""
        return JsArray(_props(obj).values())

    @staticmethod
    def entries(obj: Any) -> JsArray:
        """``Object.entries``."""
        return JsArray(JsArray(kv) for kv in _props(obj).items())

    @staticmethod
    def assign(target: JsObject, *sources: Any) -> JsObject:
        """``Object.assign``."""
        for s in sources:
            for k, v in _props(s).items():
                target[k] = v
        return target


def _props(obj: Any) -> dict[str, Any]:
    if isinstance(obj, JsObject):
        return dict(obj.as_object_map())
    if isinstance(obj, dict):
        return {str(k): v for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return {str(i): v for i, v in enumerate(obj)}
    return {}


class _DateValue(JsProxy):
    __slots__ = ("_ms",)

    def __init__(self, ms: float) -> None:
        self._ms = ms

    def getTime(self) -> float:
        return self._ms

    valueOf = getTime

    def toISOString(self) -> str:
        d = _dt.datetime.fromtimestamp(self._ms / 1000, _dt.UTC)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(self._ms) % 1000:03d}Z"


class Date:
    """The ``Date`` global (``Date.now()`` follows the emulator clock)."""

    @staticmethod
    def now() -> int:
        """Milliseconds since the epoch."""
        return _now_ms()

    @staticmethod
    def new(value: float | str | None = None) -> _DateValue:
        """``new Date(ms)`` / ``new Date()``."""
        if value is None:
            return _DateValue(_now_ms())
        if isinstance(value, str):
            d = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return _DateValue(d.timestamp() * 1000)
        return _DateValue(float(value))


GLOBAL_SCOPE_ERROR = (
    "Disallowed operation called within global scope. Asynchronous I/O (ex: fetch() or "
    "connect()), setting a timeout, and generating random values are not allowed within global "
    "scope. To fix this error, perform this operation within a handler. "
    "https://developers.cloudflare.com/workers/runtime-apis/handlers/"
)
"""workerd's error for JS I/O, timers and randomness while the worker's modules load."""


def _refuse_in_global_scope() -> None:
    if in_startup():
        raise JsException("Error", GLOBAL_SCOPE_ERROR)


class _Crypto(JsProxy):
    __slots__ = ()

    def randomUUID(self) -> str:
        _refuse_in_global_scope()
        return str(uuid.uuid4())

    def getRandomValues(self, array: Any) -> Any:
        _refuse_in_global_scope()
        if isinstance(array, bytearray):
            array[:] = secrets.token_bytes(len(array))
            return array
        if isinstance(array, list):
            array[:] = list(secrets.token_bytes(len(array)))
            return array
        raise JsException("TypeError", "getRandomValues expects a typed array")


crypto = _Crypto()
"""``crypto`` global: ``randomUUID()`` and ``getRandomValues()``."""


class JSON:
    """The ``JSON`` global."""

    @staticmethod
    def stringify(value: Any, *_: Any) -> str:
        """Compact JSON like ``JSON.stringify``."""
        return json.dumps(from_js(value), separators=(",", ":"), ensure_ascii=False)

    @staticmethod
    def parse(text: str) -> Any:
        """Parse JSON into JS values (objects become :class:`JsObject`)."""
        try:
            return json.loads(text, object_hook=JsObject)
        except json.JSONDecodeError as exc:
            raise JsException("SyntaxError", str(exc)) from None


class _Console(JsProxy):
    __slots__ = ()

    def log(self, *args: Any) -> None:
        print(*args, file=sys.stderr)

    info = debug = warn = error = log


console = _Console()
"""``console`` global (to stderr)."""


class Error:
    """The ``Error`` global: ``Error.new(msg)`` is a raisable :class:`JsException`."""

    @staticmethod
    def new(message: str = "") -> JsException:
        """``new Error(message)``."""
        return JsException("Error", message)


class Array:
    """The ``Array`` global."""

    @staticmethod
    def new(*items: Any) -> JsArray:
        """``new Array(...)``."""
        return JsArray(items)

    @staticmethod
    def isArray(value: Any) -> bool:
        """``Array.isArray``."""
        return isinstance(value, list)

    @staticmethod
    def from_(iterable: Iterable[Any]) -> JsArray:
        """``Array.from`` (``from`` is a Python keyword)."""
        return JsArray(iterable)


class Uint8Array:
    """``Uint8Array.new(bytes_or_length)`` gives a ``bytearray``."""

    @staticmethod
    def new(value: Any = 0) -> bytearray:
        """A new byte array."""
        if isinstance(value, int):
            return bytearray(value)
        return bytearray(value)


class TextEncoder(JsProxy):
    """``new TextEncoder()``."""

    __slots__ = ()

    @classmethod
    def new(cls) -> TextEncoder:
        """Construct."""
        return cls()

    def encode(self, text: str = "") -> bytes:
        """UTF-8 bytes."""
        return text.encode()


class TextDecoder(JsProxy):
    """``new TextDecoder()``."""

    __slots__ = ()

    @classmethod
    def new(cls, *_: Any) -> TextDecoder:
        """Construct."""
        return cls()

    def decode(self, data: Any = b"", *_: Any) -> str:
        """Decode UTF-8."""
        return bytes(data).decode("utf-8", errors="replace")


class URLSearchParams(JsProxy):
    """``URLSearchParams``."""

    def __init__(self, query: str = "") -> None:
        self._pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)

    @classmethod
    def new(cls, query: str = "") -> URLSearchParams:
        """Construct."""
        return cls(query)

    def get(self, name: str) -> str | None:
        """First value or ``None`` (JS ``null``)."""
        for k, v in self._pairs:
            if k == name:
                return v
        return None

    def getAll(self, name: str) -> list[str]:
        """Every value."""
        return [v for k, v in self._pairs if k == name]

    def has(self, name: str) -> bool:
        """Present?"""
        return any(k == name for k, _ in self._pairs)

    def set(self, name: str, value: str) -> None:
        """Replace."""
        self._pairs = [(k, v) for k, v in self._pairs if k != name] + [(name, str(value))]

    def append(self, name: str, value: str) -> None:
        """Add."""
        self._pairs.append((name, str(value)))

    def delete(self, name: str) -> None:
        """Remove."""
        self._pairs = [(k, v) for k, v in self._pairs if k != name]

    def toString(self) -> str:
        """Serialize."""
        return urlencode(self._pairs)


class URL(JsProxy):
    """``URL`` (``URL.new(url, base)``)."""

    def __init__(self, url: str, base: str | None = None) -> None:
        full = urljoin(base, url) if base else url
        parts = urlsplit(full)
        if not parts.scheme or (
            parts.scheme in ("http", "https", "ws", "wss") and not parts.netloc
        ):
            raise JsException("TypeError", f"Invalid URL: {full}")
        self.href = full
        self.protocol = parts.scheme + ":"
        self.host = parts.netloc.rsplit("@", 1)[-1]
        self.hostname = parts.hostname or ""
        self.port = str(parts.port) if parts.port else ""
        self.pathname = parts.path or "/"
        self.search = f"?{parts.query}" if parts.query else ""
        self.hash = f"#{parts.fragment}" if parts.fragment else ""
        self.origin = f"{parts.scheme}://{self.host}"
        self.searchParams = URLSearchParams(parts.query)

    @classmethod
    def new(cls, url: str, base: str | None = None) -> URL:
        """``new URL(url, base)``."""
        return cls(url, base)

    def toString(self) -> str:
        """The href."""
        return self.href

    def __str__(self) -> str:
        return self.href


async def fetch(input: str | Request, init: Any = None, **kw: Any) -> Response:
    """Global ``fetch``: an outbound subrequest through the emulator (counted)."""
    emu = get_emulator()
    if emu is None:
        raise JsException("Error", "no emulator is running")
    req = (
        input
        if isinstance(input, Request) and init is None and not kw
        else Request(input, init_options((init,), kw) or None)
    )
    return await emu.outbound_fetch(req)


def setTimeout(callback: Any, ms: float = 0, *args: Any) -> int:
    """Run ``callback`` after ``ms`` on the emulator clock; an object event inside a DO."""
    _refuse_in_global_scope()
    emu = get_emulator()
    if emu is None:
        raise JsException("Error", "no emulator is running")
    return emu.set_timeout(callback, ms, *args)


def clearTimeout(timer_id: int | None) -> None:
    """Cancel a ``setTimeout``."""
    emu = get_emulator()
    if emu is not None:
        emu.clear_timeout(timer_id)


_intervals: dict[int, int] = {}


def setInterval(callback: Any, ms: float = 0, *args: Any) -> int:
    """Repeat ``callback`` every ``ms``."""
    emu = get_emulator()
    if emu is None:
        raise JsException("Error", "no emulator is running")
    handle_id = -1

    def tick() -> Any:
        _intervals[handle_id] = emu.set_timeout(tick, ms)
        return callback(*args)

    first = emu.set_timeout(tick, ms)
    handle_id = first
    _intervals[handle_id] = first
    return handle_id


def queueMicrotask(callback: Any) -> None:
    """``queueMicrotask``: run ``callback`` soon, before other timers (the loop's next turn)."""
    import asyncio

    asyncio.get_running_loop().call_soon(callback)


def clearInterval(interval_id: int | None) -> None:
    """Stop a ``setInterval``."""
    if interval_id is None:
        return
    current = _intervals.pop(interval_id, None)
    if current is not None:
        clearTimeout(current)


NaN = math.nan
Infinity = math.inf
