"""The one module of the Cloudflare adapter that touches ``js``, ``pyodide.ffi`` and ``workers``.

Everything else in :mod:`telefunc.cloudflare` works on plain Python values (``str``, ``bytes``,
``dict``, ``None``); the conversions that bite under Pyodide (``jsnull``, ``JsProxy``, plain
``Object`` options, proxies for callables, SDK wrappers) live here (docs/cloudflare.md §1.9).
:func:`wait_until` hands ``ctx.waitUntil`` a real JS ``Promise`` settled from the Future's done
callback (a Future handed over as it is becomes a borrowed PyProxy, destroyed too early). Under
CPython the same names resolve to the stand-ins of :mod:`telefunc.testing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from telefunc.errors import UsageError

__all__ = [
    "IN_PYODIDE",
    "accept_websocket",
    "clear_timeout",
    "durable_object_base",
    "is_null",
    "kv_delete",
    "kv_get_text",
    "kv_list_names",
    "kv_put",
    "namespace_binding",
    "new_response",
    "new_websocket_pair",
    "now",
    "py",
    "read_body",
    "request_cf",
    "request_header",
    "request_headers",
    "request_method",
    "request_query",
    "request_url",
    "response_parts",
    "set_timeout",
    "storage_get",
    "storage_put",
    "stub_call",
    "stub_fetch",
    "stub_for",
    "wait_until",
    "websocket_attachment",
    "websocket_close",
    "websocket_message",
    "websocket_send",
]

IN_PYODIDE = sys.platform == "emscripten"
"""True inside real Pyodide (a Python Worker); False under CPython with the emulator."""


def _js() -> Any:
    return importlib.import_module("js")


def _pyffi() -> Any:
    return importlib.import_module("pyodide.ffi")


def _workers() -> Any:
    try:
        return importlib.import_module("workers")
    except ImportError as exc:  # CPython without the emulator's stand-ins
        raise UsageError(
            "telefunc.cloudflare runs inside a Python Worker (module 'workers'); under CPython "
            "call telefunc.testing.install() first to use the local emulator"
        ) from exc


def is_null(value: Any) -> bool:
    """``None`` (JS ``undefined``) or ``jsnull`` (JS ``null``)."""
    if value is None:
        return True
    try:
        return value is _pyffi().jsnull
    except ImportError:
        return False


def py(value: Any) -> Any:
    """A JS value as a plain Python value (``jsnull`` → ``None``, objects → dicts)."""
    if is_null(value):
        return None
    to_py = getattr(value, "to_py", None)
    return to_py() if callable(to_py) else value


def _unwrap(value: Any) -> Any:
    # SDK wrappers (workers.Request, ...) keep the JS value in `js_object`.
    inner = getattr(value, "js_object", None)
    return value if inner is None else inner


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    to_bytes = getattr(value, "to_bytes", None)  # a JS ArrayBuffer / Uint8Array proxy
    if callable(to_bytes):
        return bytes(to_bytes())
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(py(value))


def _js_options(options: Mapping[str, Any]) -> Any:
    """A plain JS object (not a ``Map``) for an options argument."""
    js = _js()
    return _pyffi().to_js(dict(options), dict_converter=js.Object.fromEntries)


# ── time ───────────────────────────────────────────────────────────────────


def now() -> float:
    """Wall-clock seconds (``Date.now()``; the emulator's clock in tests)."""
    return float(_js().Date.now()) / 1000.0


def set_timeout(callback: Callable[[], Any], delay: float) -> Any:
    """``setTimeout(callback, delay s)``; inside a Durable Object it keeps the object awake."""
    proxy = _pyffi().create_once_callable(callback)
    return _js().setTimeout(proxy, max(0, round(delay * 1000)))


def clear_timeout(handle: Any) -> None:
    """``clearTimeout(handle)``."""
    if handle is not None:
        _js().clearTimeout(handle)


# ── requests and responses ─────────────────────────────────────────────────


def request_url(request: Any) -> str:
    """The request URL."""
    return str(_unwrap(request).url)


def request_method(request: Any) -> str:
    """The request method, upper-case."""
    return str(_unwrap(request).method).upper()


def request_header(request: Any, name: str) -> str | None:
    """One request header, ``None`` when absent (JS ``null`` converted)."""
    value = _unwrap(request).headers.get(name)
    return None if is_null(value) else str(value)


def request_headers(request: Any) -> list[tuple[str, str]]:
    """Every request header as ``(lower-case name, value)``."""
    headers = _unwrap(request).headers
    items: list[tuple[str, str]] = []
    for pair in headers.entries():
        k, v = (pair[0], pair[1]) if not isinstance(pair, tuple) else pair
        items.append((str(k).lower(), str(v)))
    return items


def request_query(request: Any) -> dict[str, str]:
    """The URL's query parameters (first value of each)."""
    query = urlsplit(request_url(request)).query
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def request_cf(request: Any) -> dict[str, Any]:
    """``request.cf`` as a dict with ``colo``, ``continent``, ``country`` (missing → absent)."""
    cf = getattr(_unwrap(request), "cf", None)
    if is_null(cf):
        return {}
    out: dict[str, Any] = {}
    for name in ("colo", "continent", "country"):
        value = getattr(cf, name, None)
        if not is_null(value):
            out[name] = str(value)
    return out


async def read_body(request: Any) -> bytes:
    """The whole request body."""
    req = _unwrap(request)
    if req.body is None or is_null(req.body):
        return b""
    return _to_bytes(await req.arrayBuffer())


async def body_chunks(request: Any) -> AsyncIterator[bytes]:
    """The request body chunk by chunk, as it arrives."""
    req = _unwrap(request)
    stream = req.body
    if is_null(stream):
        return
    reader = stream.getReader()
    while True:
        result = await reader.read()
        if result.done:
            return
        chunk = _to_bytes(result.value)
        if chunk:
            yield chunk


def _body_stream(chunks: AsyncIterator[bytes]) -> Any:
    """A response body that streams ``chunks`` (an async iterator of bytes)."""
    js, ffi = _js(), _pyffi()
    it = chunks.__aiter__()

    async def pull(controller: Any) -> None:
        try:
            chunk = await it.__anext__()
        except StopAsyncIteration:
            controller.close()
            return
        controller.enqueue(ffi.to_js(chunk))

    async def cancel(_reason: Any = None) -> None:
        closer = getattr(it, "aclose", None)
        if closer is not None:
            await closer()

    source = {"pull": ffi.create_proxy(pull), "cancel": ffi.create_proxy(cancel)}
    return js.ReadableStream.new(_js_options(source))


def new_response(
    body: bytes | str | AsyncIterator[bytes] | None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    web_socket: Any = None,
) -> Any:
    """A ``workers.Response``; an async iterator body is streamed."""
    workers = _workers()
    if body is not None and not isinstance(body, bytes | str):
        body = _body_stream(body)
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    kwargs: dict[str, Any] = {"status": status}
    if pairs:
        kwargs["headers"] = dict(pairs)
    if web_socket is not None:
        kwargs["web_socket"] = web_socket
    return workers.Response(body, **kwargs)


def response_parts(response: Any) -> tuple[int, list[tuple[str, str]], Any]:
    """``(status, headers, body stream or None)`` of a response from a Durable Object."""
    resp = _unwrap(response)
    headers = [
        (str(p[0]), str(p[1])) if not isinstance(p, tuple) else p for p in resp.headers.entries()
    ]
    body = resp.body
    return int(resp.status), headers, None if is_null(body) else body


def rebuild_response(response: Any, extra_headers: Mapping[str, str]) -> Any:
    """The same response (status, body stream) with ``extra_headers`` set."""
    resp = _unwrap(response)
    if int(resp.status) == 101:
        return response
    js = _js()
    headers = js.Headers.new(resp.headers)
    for name, value in extra_headers.items():
        headers.set(name, value)
    init = _js_options({"status": int(resp.status), "headers": headers})
    return js.Response.new(resp.body, init)


# ── bindings ───────────────────────────────────────────────────────────────


def namespace_binding(env: Any, name: str) -> Any:
    """``env[name]`` or ``None`` when the binding is missing."""
    value = getattr(env, name, None)
    return None if is_null(value) else value


def future_to_promise(future: asyncio.Future[Any]) -> Any:
    """A JS ``Promise`` settled by ``future`` (rejects with an ``Error`` when it fails).

    It resolves with the result when that is a primitive (``str``, number, ``bool``, ``None``),
    else with ``undefined``.

    No PyProxy of the Future crosses into JS: the executor runs synchronously inside
    ``new Promise`` and keeps ``resolve``/``reject``, which the done callback calls.
    """
    js, ffi = _js(), _pyffi()

    def executor(resolve: Any, reject: Any) -> None:
        def settle(fut: asyncio.Future[Any]) -> None:
            if fut.cancelled():
                reject(js.Error.new("cancelled"))
            elif fut.exception() is not None:
                exc = fut.exception()
                reject(js.Error.new(f"{type(exc).__name__}: {exc}"))
            else:
                result = fut.result()
                # Primitives convert implicitly; anything else would cross as a PyProxy.
                simple = result is None or isinstance(result, str | int | float | bool)
                resolve(result if simple else None)

        future.add_done_callback(settle)

    proxy = ffi.create_once_callable(executor)
    return js.Promise.new(proxy)


def wait_until(ctx: Any, awaitable: Awaitable[Any]) -> None:
    """``ctx.waitUntil(...)``: a real ``Promise`` under Pyodide, the Future in the emulator."""
    future = asyncio.ensure_future(awaitable)
    ctx.waitUntil(future_to_promise(future) if IN_PYODIDE else future)


async def kv_get_text(kv: Any, key: str) -> str | None:
    """``await kv.get(key)`` as ``str`` or ``None``."""
    value = await kv.get(key)
    return None if is_null(value) else str(value)


async def kv_put(kv: Any, key: str, value: str, *, ttl: int | None = None) -> None:
    """``await kv.put(key, value, {expirationTtl})``."""
    if ttl is None:
        await kv.put(key, value)
    else:
        await kv.put(key, value, _js_options({"expirationTtl": ttl}))


async def kv_delete(kv: Any, key: str) -> None:
    """``await kv.delete(key)``."""
    await kv.delete(key)


async def kv_list_names(kv: Any, prefix: str) -> list[str]:
    """Every key name under ``prefix`` (``kv.list`` page by page)."""
    names: list[str] = []
    cursor: str | None = None
    while True:
        options: dict[str, Any] = {"prefix": prefix}
        if cursor:
            options["cursor"] = cursor
        page = py(await kv.list(_js_options(options))) or {}
        names.extend(str(item["name"]) for item in page.get("keys") or [])
        cursor = page.get("cursor")
        if page.get("list_complete", True) or not cursor:
            return names


async def storage_get(state: Any, key: str) -> Any:
    """``await ctx.storage.get(key)`` as a plain value (``None`` when absent)."""
    return py(await state.storage.get(key))


async def storage_put(state: Any, key: str, value: Any) -> None:
    """``await ctx.storage.put(key, value)`` (a str or a number)."""
    await state.storage.put(key, value)


def stub_for(namespace: Any, name: str, location_hint: str | None) -> Any:
    """The stub of the object named ``name`` (``locationHint`` applies on first creation)."""
    object_id = namespace.idFromName(name)
    if location_hint is None:
        return namespace.get(object_id)
    return namespace.get(object_id, _js_options({"locationHint": location_hint}))


def _rpc_value(value: Any) -> Any:
    # Plain JS values for an RPC argument: Objects (not Maps), bytes as Uint8Array.
    if not IN_PYODIDE:
        return value
    return _pyffi().to_js(value, dict_converter=_js().Object.fromEntries)


def rpc_value(value: Any) -> Any:
    """An RPC argument or result received from JS as plain Python (dicts, lists, ``bytes``)."""
    value = py(value)
    if isinstance(value, dict):
        return {str(k): rpc_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rpc_value(v) for v in value]
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


async def stub_call(stub: Any, method: str, argument: Mapping[str, Any]) -> Any:
    """``await stub.<method>(argument)`` (Workers RPC); the result as plain Python."""
    result = await getattr(stub, method)(_rpc_value(dict(argument)))
    return rpc_value(result)


async def stub_fetch(
    namespace: Any,
    name: str,
    location_hint: str | None,
    request: Any,
    extra_headers: Mapping[str, str],
) -> Any:
    """Forward ``request`` (with ``extra_headers`` set) to the object named ``name``."""
    js = _js()
    object_id = namespace.idFromName(name)
    if location_hint is None:
        stub = namespace.get(object_id)
    else:
        stub = namespace.get(object_id, _js_options({"locationHint": location_hint}))
    req = _unwrap(request)
    headers = js.Headers.new(req.headers)
    for key, value in extra_headers.items():
        headers.set(key, value)
    forwarded = js.Request.new(req, _js_options({"headers": headers}))
    return await stub.fetch(forwarded)


def durable_object_base() -> type[Any]:
    """``workers.DurableObject``, the base class of every Durable Object."""
    base: type[Any] = _workers().DurableObject
    return base


# ── WebSockets (hibernation API) ───────────────────────────────────────────


def new_websocket_pair() -> tuple[Any, Any]:
    """``(client, server)`` ends of a new ``WebSocketPair``."""
    client, server = _js().WebSocketPair.new().object_values()
    return client, server


def accept_websocket(state: Any, ws: Any, attachment: str) -> None:
    """``ctx.acceptWebSocket(ws)`` (hibernatable) and remember ``attachment`` on the socket."""
    state.acceptWebSocket(ws)
    ws.serializeAttachment(attachment)


def websocket_attachment(ws: Any) -> str | None:
    """The string attached with :func:`accept_websocket` (survives hibernation)."""
    value = ws.deserializeAttachment()
    return None if is_null(value) else str(value)


def websocket_message(message: Any) -> bytes | str:
    """A received message: ``str`` for text, ``bytes`` for binary."""
    if isinstance(message, str):
        return message
    return _to_bytes(message)


def websocket_send(ws: Any, data: bytes) -> None:
    """Send one binary message."""
    ws.send(_pyffi().to_js(data) if IN_PYODIDE else data)


def websocket_close(ws: Any, code: int, reason: str = "") -> None:
    """Close the socket (ignored when it is closed already)."""
    with contextlib.suppress(Exception):  # already closed: nothing to do
        ws.close(code, reason)
