"""``telefunc.cloudflare._ffi`` under real Pyodide 0.28.2, against the JS fakes.

Run by ``js/pyodide/run_python.mjs --preload js/pyodide/cloudflare_fakes.mjs``. Every module of
``telefunc.cloudflare`` is imported first; then each helper of the FFI module is called with the
fakes and its result asserted. One JSON line per check, as in ``ffi_main.py``.
"""

import asyncio
import importlib
import inspect
import json
import pkgutil
import sys
import traceback

import js
from pyodide.ffi import JsException, jsnull, to_js

FAKES = js.cfFakes


def obj(value):
    return to_js(value, dict_converter=js.Object.fromEntries)


def check_imports():
    import telefunc.cloudflare as package

    names = ["telefunc.cloudflare"]
    names += [i.name for i in pkgutil.walk_packages(package.__path__, "telefunc.cloudflare.")]
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    assert not failed, failed
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("uvicorn", "websockets", "httpx"))
    assert not heavy, heavy
    from telefunc.cloudflare import _ffi

    assert _ffi.IN_PYODIDE is True
    return {"modules": names}


def _request(url="https://edge.example/_telefunc?session=tok&_telefunc=txt", body="{}", cf=None):
    init = {"method": "POST", "headers": {"x-telefunc-request": "txt", "X-Mixed": "A"}}
    if body is not None:
        init["body"] = body
    return FAKES.request(url, obj(init), obj(cf) if cf is not None else None)


async def check_requests():
    from telefunc.cloudflare import _ffi

    request = _request(cf={"colo": "NRT", "continent": "AS", "country": "JP"})
    assert _ffi.is_null(jsnull) and _ffi.is_null(None) and not _ffi.is_null(0)
    assert _ffi.py(jsnull) is None and _ffi.py(obj({"a": [1]})) == {"a": [1]}
    assert _ffi.request_url(request).startswith("https://edge.example/_telefunc")
    assert _ffi.request_method(request) == "POST"
    assert _ffi.request_header(request, "x-telefunc-request") == "txt"
    assert _ffi.request_header(request, "x-absent") is None
    headers = _ffi.request_headers(request)
    assert ("x-mixed", "A") in headers and all(k == k.lower() for k, _ in headers)
    assert _ffi.request_query(request) == {"session": "tok", "_telefunc": "txt"}
    assert _ffi.request_cf(request) == {"colo": "NRT", "continent": "AS", "country": "JP"}
    assert _ffi.request_cf(_request(cf={"colo": "CDG"})) == {"colo": "CDG"}
    assert _ffi.request_cf(_request()) == {}
    assert await _ffi.read_body(request) == b"{}"
    assert await _ffi.read_body(FAKES.request("https://edge.example/")) == b""
    chunks = [c async for c in _ffi.body_chunks(_request(body="x" * 70000))]
    assert b"".join(chunks) == b"x" * 70000
    return {"headers": headers, "chunks": len(chunks)}


async def check_kv_and_bindings():
    from telefunc.cloudflare import _ffi

    kv = FAKES.KVNamespace.new()
    env = obj({"TelefuncKV": kv})
    assert _ffi.namespace_binding(env, "TelefuncKV") is not None
    assert _ffi.namespace_binding(env, "TelefuncDurableObject") is None
    assert await _ffi.kv_get_text(kv, "session:missing") is None
    await _ffi.kv_put(kv, "session:t", "weur", ttl=86400)
    stored = kv.data.get("session:t")
    assert stored.value == "weur" and stored.expirationTtl == 86400
    assert await _ffi.kv_get_text(kv, "session:t") == "weur"
    await _ffi.kv_put(kv, "plain", "v")
    try:
        await _ffi.kv_put(kv, "short", "v", ttl=10)
    except JsException as exc:
        short = str(exc)
    else:
        raise AssertionError("ttl=10 accepted")
    assert "at least 60" in short
    return {"calls": kv.calls.to_py()}


async def check_durable_object_fetch():
    from telefunc.cloudflare import _ffi

    ns = FAKES.DurableObjectNamespace.new()
    request = _request(body='{"file":"/a.telefunc.py"}')
    response = await _ffi.stub_fetch(
        ns, "telefunc-shard-apac-1", "apac", request, {"x-telefunc-session": "tok"}
    )
    status, headers, body = _ffi.response_parts(response)
    assert status == 200 and ("x-object", "telefunc-shard-apac-1") in headers
    assert body is not None
    echo = json.loads(await response.text())
    assert echo["object"] == "telefunc-shard-apac-1" and echo["locationHint"] == "apac"
    assert echo["headers"]["x-telefunc-session"] == "tok"
    assert echo["headers"]["x-telefunc-request"] == "txt"
    assert echo["body"] == '{"file":"/a.telefunc.py"}' and echo["method"] == "POST"
    no_hint = await _ffi.stub_fetch(ns, "telefunc-shard-weur-0", None, _request(), {})
    assert json.loads(await no_hint.text())["locationHint"] is None
    # rebuild_response: same status and body, extra headers set.
    again = await _ffi.stub_fetch(ns, "o", None, _request(), {})
    rebuilt = _ffi.rebuild_response(again, {"x-telefunc-session": "new"})
    assert rebuilt.status == 200 and rebuilt.headers.get("x-telefunc-session") == "new"
    assert json.loads(await rebuilt.text())["object"] == "o"
    return {"echo": echo}


async def check_websockets():
    from telefunc.cloudflare import _ffi

    client, server = _ffi.new_websocket_pair()
    assert client.label == "client" and server.label == "server"
    state = FAKES.DurableObjectState.new()
    _ffi.accept_websocket(state, server, "conn-7")
    assert server.accepted and _ffi.websocket_attachment(server) == "conn-7"
    assert _ffi.websocket_attachment(FAKES.WebSocket.new("x")) is None
    _ffi.websocket_send(server, b"\x04\x00\x00\x00")
    assert server.sent.to_py() == [{"binary": [4, 0, 0, 0]}]
    assert _ffi.websocket_message("text") == "text"
    assert _ffi.websocket_message(to_js(b"\x01\x02").buffer) == b"\x01\x02"
    _ffi.websocket_close(server, 1000, "bye")
    _ffi.websocket_close(server, 1000, "again")  # already closed: ignored
    assert server.closed.code == 1000 and server.closed.reason == "bye"
    return {"sent": server.sent.to_py()}


async def check_timers_and_clock():
    from telefunc.cloudflare import _ffi

    assert abs(_ffi.now() - float(js.Date.now()) / 1000) < 5
    fired = asyncio.Event()
    cancelled = []
    _ffi.set_timeout(fired.set, 0.01)
    handle = _ffi.set_timeout(lambda: cancelled.append(True), 0.01)
    _ffi.clear_timeout(handle)
    _ffi.clear_timeout(None)
    await asyncio.wait_for(fired.wait(), 5)
    await asyncio.wait_for(FAKES.later(None, 30), 5)  # past the cancelled timer's due time
    assert cancelled == []
    return {"fired": fired.is_set()}


async def check_streamed_body():
    from telefunc.cloudflare import _ffi

    async def chunks():
        for i in range(3):
            await asyncio.sleep(0)
            yield f"part{i};".encode()

    stream = _ffi._body_stream(chunks())
    assert FAKES.tagOf(stream) == "[object ReadableStream]"
    text = await js.Response.new(stream).text()
    assert text == "part0;part1;part2;", text
    return {"text": text}


async def check_wait_until():
    from telefunc.cloudflare import _ffi

    ctx = FAKES.ExecutionContext.new()

    async def write():
        await asyncio.sleep(0)
        return "written"

    _ffi.wait_until(ctx, write())
    settled = (await ctx.drain()).to_py()
    assert settled == [{"ok": "written"}], settled
    return {"settled": settled}


BROADCAST_FAKES_JS = """
(() => {
  const tag = (v) => Object.prototype.toString.call(v);
  class RpcStub {
    constructor(name, hint, calls) { this.name = name; this.hint = hint; this.calls = calls; }
    async telefuncBroadcastPublish(request) {
      // Workers RPC clones plain Objects and typed arrays; a Map or a PyProxy is refused here.
      if (tag(request) !== "[object Object]") throw new TypeError(`RPC arg: ${tag(request)}`);
      const info = request.info;
      if (info !== undefined && tag(info) !== "[object Object]") throw new TypeError("info");
      const bin = request.binaryData;
      if (bin !== undefined && !(bin instanceof Uint8Array)) throw new TypeError(tag(bin));
      this.calls.push({ to: this.name, hint: this.hint, keys: Object.keys(request).sort(),
                        doNames: request.doNames ?? null, bytes: bin ? [...bin] : null });
      return { seq: 7, timestamp: 1700000000123, meta: { authorityBucket: "weur",
               fanoutBuckets: ["weur", "apac"] } };
    }
  }
  class Namespace {
    constructor() { this.calls = []; }
    idFromName(name) { return { name }; }
    get(id, options) {
      if (options !== undefined && tag(options) !== "[object Object]") throw new TypeError("opts");
      return new RpcStub(id.name, options?.locationHint ?? null, this.calls);
    }
  }
  class ListingKV {
    constructor(names) { this.names = names; this.calls = []; }
    async list(options) {
      if (tag(options) !== "[object Object]") throw new TypeError(`list: ${tag(options)}`);
      this.calls.push({ prefix: options.prefix, cursor: options.cursor ?? null });
      const start = options.cursor ? Number(options.cursor) : 0;
      const hits = this.names.filter((n) => n.startsWith(options.prefix));
      const page = hits.slice(start, start + 2).map((name) => ({ name, expiration: 1 }));
      const done = start + 2 >= hits.length;
      return done ? { keys: page, list_complete: true }
                  : { keys: page, list_complete: false, cursor: String(start + 2) };
    }
    async delete(key) { this.calls.push({ deleted: key }); }
  }
  class Storage {
    constructor() { this.data = new Map(); }
    async get(key) { return this.data.has(key) ? this.data.get(key) : undefined; }
    async put(key, value) { this.data.set(key, value); }
  }
  return { Namespace, ListingKV, Storage };
})()
"""


async def check_broadcast_ffi():
    from pyodide.code import run_js

    from telefunc.cloudflare import _ffi
    from telefunc.cloudflare.broadcast import presence_key

    fakes = run_js(BROADCAST_FAKES_JS)
    ns = fakes.Namespace.new()
    stub = _ffi.stub_for(ns, "telefunc:broadcast:authority:room", "weur")
    text = await _ffi.stub_call(
        stub,
        "telefuncBroadcastPublish",
        {"key": "room", "locationBucket": "weur", "serialized": '"hi"'},
    )
    assert text == {
        "seq": 7,
        "timestamp": 1700000000123,
        "meta": {"authorityBucket": "weur", "fanoutBuckets": ["weur", "apac"]},
    }, text
    coordinator = _ffi.stub_for(ns, "telefunc:broadcast:apac:0", None)
    await _ffi.stub_call(
        coordinator,
        "telefuncBroadcastPublish",
        {
            "key": "room",
            "binaryData": b"\x00\xff",
            "forwarded": True,
            "doNames": ["telefunc-shard-apac-0"],
            "info": {"seq": 7, "timestamp": 1.5},
        },
    )
    calls = ns.calls.to_py()
    assert calls[0]["hint"] == "weur" and _ffi.is_null(calls[1]["hint"]), calls
    assert calls[1]["bytes"] == [0, 255] and calls[1]["doNames"] == ["telefunc-shard-apac-0"]
    # An RPC argument arriving from JS (an Object with a Uint8Array) as plain Python.
    incoming = _ffi.rpc_value(
        obj({"key": "k", "binaryData": to_js(b"\x01\x02"), "info": {"seq": 3, "timestamp": 9}})
    )
    assert incoming == {"key": "k", "binaryData": b"\x01\x02", "info": {"seq": 3, "timestamp": 9}}
    # Presence listing across pages, and delete.
    mine = [presence_key("room", r, f"telefunc-shard-{r}-0") for r in ("weur", "enam", "apac")]
    kv = fakes.ListingKV.new(to_js([*mine, "tfps:other:weur:x", "session:abc"]))
    names = await _ffi.kv_list_names(kv, "tfps:room:")
    assert names == mine, names
    await _ffi.kv_delete(kv, mine[0])
    kv_calls = kv.calls.to_py()
    assert [_ffi.py(c.get("cursor")) for c in kv_calls[:2]] == [None, "2"], kv_calls
    assert kv_calls[-1] == {"deleted": mine[0]}
    # Storage counters: undefined -> None, numbers round-trip.
    storage = fakes.Storage.new()
    state = obj({"storage": storage})
    assert await _ffi.storage_get(state, "broadcast:room:sequence") is None
    await _ffi.storage_put(state, "broadcast:room:sequence", 41)
    assert await _ffi.storage_get(state, "broadcast:room:sequence") == 41
    return {"rpc_calls": calls, "kv_calls": kv_calls}


CHECKS = [
    check_imports,
    check_requests,
    check_kv_and_bindings,
    check_durable_object_fetch,
    check_websockets,
    check_timers_and_clock,
    check_streamed_body,
    check_wait_until,
    check_broadcast_ffi,
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
