"""FFI behaviour under real Pyodide 0.28.2 that the Cloudflare adapter relies on.

Run by ``js/pyodide/run_python.mjs --preload js/pyodide/cloudflare_fakes.mjs``: the JS fakes of
KV, Durable Object namespaces/stubs, Response (with status 101 / ``webSocket``), WebSocketPair
and the execution context are on ``globalThis``. Each check asserts what it observes and prints
``{"check": name, "ok": true, "observed": {...}}`` (or ``"ok": false`` with the traceback).
"""

import asyncio
import inspect
import json
import sys
import traceback

import js
from pyodide.ffi import JsException, create_once_callable, create_proxy, jsnull, to_js

FAKES = js.cfFakes


def as_object(value):
    """The conversion the adapter must use for every options argument: a plain JS Object."""
    return to_js(value, dict_converter=js.Object.fromEntries)


def future_to_promise(fut):
    """A real JS Promise that settles with ``fut`` (no PyProxy crosses into JS)."""

    def executor(resolve, reject):
        # Runs synchronously inside `new Promise(...)`; resolve/reject are JsProxies we own.
        def done(f):
            if f.cancelled():
                reject(js.Error.new("cancelled"))
            elif f.exception() is not None:
                exc = f.exception()
                reject(js.Error.new(f"{type(exc).__name__}: {exc}"))
            else:
                resolve(f.result())

        fut.add_done_callback(done)

    return js.Promise.new(executor)


def shape(value):
    """The JS-side shape description of a value handed to JS (see cloudflare_fakes.describe)."""
    return json.loads(FAKES.describe(value))


def check_map_versus_object():
    plain = to_js({"a": 1, "b": {"c": 2}})
    converted = as_object({"a": 1, "b": {"c": 2}, "l": [{"d": 3}]})
    assert FAKES.tagOf(plain) == "[object Map]"
    assert FAKES.tagOf(converted) == "[object Object]"
    deep = shape(converted)
    # dict_converter applies at every depth, lists become Arrays.
    assert deep["props"]["b"]["t"] == "[object Object]"
    assert deep["props"]["l"]["t"] == "[object Array]"
    assert deep["props"]["l"]["items"][0]["t"] == "[object Object]"
    # A dict inside a list converted without dict_converter is a Map too.
    in_list = shape(to_js([{"a": 1}]))
    assert in_list["items"][0]["t"] == "[object Map]"
    # None inside a converted dict becomes undefined (JSON.stringify then drops the key).
    with_none = as_object({"x": None, "y": 1})
    assert shape(with_none)["props"]["x"]["t"] == "[object Undefined]"
    assert FAKES.json(with_none) == '{"y":1}'
    # A dict passed as a plain positional argument is NOT converted: JS gets a PyProxy.
    assert shape({"a": 1})["t"] == "[object PyProxy]"
    # bytes likewise: to_js(bytes) is a Uint8Array, a bare bytes argument is a PyProxy.
    assert shape(to_js(b"\x01\x02"))["t"] == "[object Uint8Array]"
    assert shape(b"\x01\x02")["t"] == "[object PyProxy]"
    return {"plain": FAKES.tagOf(plain), "converted": FAKES.tagOf(converted)}


def check_null_and_undefined():
    null = FAKES.returnNull()
    undefined = FAKES.returnUndefined()
    assert null is jsnull and null is not None and not null
    assert type(null).__name__ == "JsNull"
    assert undefined is None
    # Python -> JS: None is undefined, jsnull is null.
    assert shape(None)["t"] == "[object Undefined]"
    assert shape(jsnull)["t"] == "[object Null]"
    # Headers.get of a missing header is null, i.e. jsnull (a truthiness check is not enough to
    # tell it from "", and `is None` is wrong).
    headers = js.Headers.new(as_object({"x-present": ""}))
    missing, present = headers.get("x-absent"), headers.get("x-present")
    assert missing is jsnull and present == ""
    # A missing JS property is an AttributeError on the proxy; getattr with a default works.
    obj = as_object({"a": 1})
    assert getattr(obj, "nope", "default") == "default"
    try:
        obj.nope  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("missing property did not raise AttributeError")
    return {"null": repr(null), "undefined": repr(undefined), "header_missing": repr(missing)}


async def check_keyword_arguments():
    kv = FAKES.KVNamespace.new()
    # Keyword arguments become ONE trailing plain Object...
    await kv.put("k", "v", expirationTtl=60)
    last = kv.calls.to_py()[-1]
    assert last["options"]["t"] == "[object Object]"
    assert last["options"]["props"]["expirationTtl"]["value"] == 60
    # ... and the JS side validates it (the real KV's 60 s minimum).
    try:
        await kv.put("k", "v", expirationTtl=10)
    except JsException as exc:
        ttl_error = str(exc)
    else:
        raise AssertionError("expirationTtl=10 was accepted")
    assert "Invalid expiration_ttl of 10" in ttl_error
    # A dict VALUE inside kwargs is not converted: JS receives a PyProxy (borrowed, destroyed
    # after the call). The adapter must pass a converted options object instead.
    try:
        await kv.put("m", "v", metadata={"a": 1})
    except JsException as exc:
        kwargs_dict_error = str(exc)
    else:
        raise AssertionError("a dict kwarg arrived as a plain Object")
    assert "PyProxy" in kwargs_dict_error
    await kv.put("m", "v", as_object({"metadata": {"a": 1}, "expirationTtl": 90}))
    assert kv.calls.to_py()[-1]["options"]["props"]["metadata"]["t"] == "[object Object]"
    # kwargs with None become undefined properties (ignored by JS option readers).
    await kv.put("n", "v", expirationTtl=None)
    assert kv.calls.to_py()[-1]["options"]["props"]["expirationTtl"]["t"] == "[object Undefined]"
    # A Map as options (plain to_js) is the silent production bug; the strict fake rejects it.
    try:
        await kv.put("k", "v", to_js({"expirationTtl": 60}))
    except JsException as exc:
        map_error = str(exc)
    else:
        raise AssertionError("a Map options argument was accepted")
    assert "[object Map]" in map_error
    # Mixed: positional arguments then kwargs, on a Durable Object namespace.
    ns = FAKES.DurableObjectNamespace.new()
    stub = ns.get(ns.idFromName("telefunc-shard-weur-0"), locationHint="weur")
    assert stub.locationHint == "weur"
    stub2 = ns.get(ns.idFromName("x"), as_object({"locationHint": "enam"}))
    assert stub2.locationHint == "enam"
    stub3 = ns.get(ns.idFromName("y"))
    assert stub3.locationHint is jsnull
    eu = ns.jurisdiction("eu")
    assert eu.idFromName("z").jurisdiction == "eu"
    assert str(eu.idFromName("z")) != str(ns.idFromName("z"))
    return {"ttl_error": ttl_error, "kwargs_dict_error": kwargs_dict_error, "map_error": map_error}


def check_proxy_lifetime():
    calls = []

    def callback(value):
        calls.append(value)
        return value * 2

    # A bare Python callable is a *borrowed* proxy: destroyed when the JS call returns.
    FAKES.keep(callback)
    try:
        FAKES.callKept(1)
    except JsException as exc:
        borrowed = str(exc)
    else:
        raise AssertionError("a borrowed proxy survived the call")
    assert "borrowed proxy was automatically destroyed" in borrowed
    # create_proxy lives until destroy().
    proxy = create_proxy(callback)
    FAKES.keep(proxy)
    assert FAKES.callKept(2) == 4 and FAKES.callKept(3) == 6
    proxy.destroy()
    try:
        FAKES.callKept(4)
    except JsException as exc:
        destroyed = str(exc)
    else:
        raise AssertionError("a destroyed proxy was callable")
    assert "already been destroyed" in destroyed
    # create_once_callable: one call, then it is gone (setTimeout callbacks).
    once = create_once_callable(callback)
    FAKES.keep(once)
    assert FAKES.callKept(5) == 10
    try:
        FAKES.callKept(6)
    except JsException as exc:
        once_error = str(exc)
    else:
        raise AssertionError("a once-callable ran twice")
    assert calls == [2, 3, 5]
    return {
        "borrowed": borrowed.splitlines()[0],
        "destroyed": destroyed.splitlines()[0],
        "once": once_error.splitlines()[0],
    }


async def check_promises():
    assert await FAKES.later("value") == "value"
    try:
        await FAKES.failLater("nope")
    except JsException as exc:
        rejected = str(exc)
    else:
        raise AssertionError("a rejected Promise did not raise")
    assert rejected == "Error: nope"
    kv = FAKES.KVNamespace.new()
    assert await kv.get("missing") is jsnull  # KV.get of a missing key: null, not None
    await kv.put("k", "v")
    assert await kv.get("k") == "v"

    # ctx.waitUntil with a bare Future: Pyodide hands JS a *borrowed* thenable PyProxy that is
    # destroyed when waitUntil() returns, before the Promise machinery calls its `then` (a
    # microtask later). Plain Pyodide therefore rejects it; workerd patches waitUntil for this
    # (cloudflare/workerd#4808), but the adapter must not depend on that patch.
    ctx = FAKES.ExecutionContext.new()

    async def background(value):
        await asyncio.sleep(0)
        return value

    ctx.waitUntil(asyncio.ensure_future(background("bare")))
    bare = (await ctx.drain()).to_py()
    assert "borrowed proxy was automatically destroyed" in bare[0]["error"], bare
    # Portable 1: a create_proxy'd Future (destroyed once it is done).
    fut = asyncio.ensure_future(background("proxied"))
    proxy = create_proxy(fut)
    ctx.waitUntil(proxy)
    proxied = (await ctx.drain()).to_py()
    proxy.destroy()
    assert proxied == [{"ok": "proxied"}], proxied
    # Portable 2: a real JS Promise settled from the Future's done callback.
    ctx.waitUntil(future_to_promise(asyncio.ensure_future(background("promise"))))

    async def failing():
        raise ValueError("bad")

    ctx.waitUntil(future_to_promise(asyncio.ensure_future(failing())))
    settled = (await ctx.drain()).to_py()
    assert settled[0] == {"ok": "promise"}, settled
    assert "ValueError: bad" in settled[1]["error"], settled
    return {
        "rejected": rejected,
        "bare_future": bare[0]["error"].splitlines()[0],
        "settled": settled,
    }


async def check_request_response_headers():
    request = FAKES.request(
        "https://edge.example/_telefunc?session=abc",
        as_object({"method": "POST", "headers": {"x-telefunc-request": "txt"}, "body": "{}"}),
        as_object({"colo": "CDG", "continent": "EU"}),
    )
    assert request.method == "POST" and request.cf.colo == "CDG"
    assert getattr(request.cf, "city", None) is None  # missing cf field
    assert request.headers.get("X-Telefunc-Request") == "txt"
    entries = [(str(p[0]), str(p[1])) for p in request.headers.entries()]
    assert ("x-telefunc-request", "txt") in entries
    assert await request.text() == "{}"
    no_cf = FAKES.request("https://edge.example/")
    assert no_cf.cf is None  # undefined -> None
    # Response: kwargs become the init object; headers must be converted (a dict kwarg value
    # would arrive as a PyProxy).
    response = js.Response.new("hello", status=201, headers=as_object({"x-a": "1"}))
    assert response.status == 201 and response.headers.get("x-a") == "1"
    assert await response.text() == "hello"
    binary = js.Response.new(to_js(b"\x00\xff"), as_object({"status": 200}))
    body = (await binary.arrayBuffer()).to_bytes()
    assert body == b"\x00\xff"
    try:
        js.Response.new("x", to_js({"status": 404}))
    except JsException as exc:
        map_init = str(exc)
    else:
        raise AssertionError("a Map init was accepted")
    assert "[object Map]" in map_init
    return {"headers": entries, "map_init": map_init}


async def check_websocket_pair_and_stub_fetch():
    client, server = js.WebSocketPair.new().object_values()
    assert client.label == "client" and server.label == "server"
    state = FAKES.DurableObjectState.new()
    state.acceptWebSocket(server)
    assert server.accepted and len(state.getWebSockets()) == 1
    server.serializeAttachment("conn-1")
    assert server.deserializeAttachment() == "conn-1"
    server.send("text")
    server.send(to_js(b"\x04\x00\x00"))
    try:
        server.send(b"\x04")  # bytes without to_js: a PyProxy, not binary data
    except JsException as exc:
        raw_bytes = str(exc)
    else:
        raise AssertionError("bytes without to_js were accepted by send")
    assert "PyProxy" in raw_bytes
    assert server.sent.to_py() == ["text", {"binary": [4, 0, 0]}]
    upgrade = js.Response.new(None, status=101, webSocket=client)
    assert upgrade.status == 101 and upgrade.webSocket.label == "client"
    # A received binary message is an ArrayBuffer: to_bytes() gives Python bytes.
    buf = to_js(b"\x01\x02").buffer
    assert FAKES.tagOf(buf) == "[object ArrayBuffer]" and buf.to_bytes() == b"\x01\x02"
    server.close(1000, "bye")
    assert server.closed.code == 1000

    ns = FAKES.DurableObjectNamespace.new()
    stub = ns.get(ns.idFromName("telefunc-shard-weur-0"), locationHint="weur")
    forwarded = js.Request.new(
        "https://edge.example/_telefunc",
        as_object({"method": "POST", "body": '{"a":1}', "headers": {"x-telefunc-session": "t"}}),
    )
    response = await stub.fetch(forwarded)
    echo = json.loads(await response.text())
    assert echo["object"] == "telefunc-shard-weur-0" and echo["locationHint"] == "weur"
    assert echo["body"] == '{"a":1}' and echo["headers"]["x-telefunc-session"] == "t"
    assert response.headers.get("x-object") == "telefunc-shard-weur-0"
    return {"raw_bytes": raw_bytes, "echo": echo}


CHECKS = [
    check_map_versus_object,
    check_null_and_undefined,
    check_keyword_arguments,
    check_proxy_lifetime,
    check_promises,
    check_request_response_headers,
    check_websocket_pair_and_stub_fetch,
]


async def main() -> None:
    """Run every check; one JSON line each (called by run_python.mjs)."""
    for check in CHECKS:
        name = check.__name__.removeprefix("check_")
        try:
            observed = check()
            if inspect.isawaitable(observed):
                observed = await asyncio.wait_for(observed, 20)
            print(json.dumps({"check": name, "ok": True, "observed": observed}))
        except BaseException:
            print(json.dumps({"check": name, "ok": False, "error": traceback.format_exc()}))
    print(
        json.dumps(
            {"check": "platform", "ok": sys.platform == "emscripten", "observed": sys.version}
        )
    )
