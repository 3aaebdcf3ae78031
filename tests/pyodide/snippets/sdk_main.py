"""The adapter on Cloudflare's own ``workers`` SDK under real Pyodide 0.28.2, against the JS fakes.

Run by ``js/pyodide/run_python.mjs --package <site-packages>/workers --preload
js/pyodide/cloudflare_fakes.mjs``: the ``workers`` package is the one installed from the pinned
``workers-runtime-sdk`` wheel. The two private modules the runtime injects beneath it
(``_cloudflare_compat_flags``, ``_pyodide_entrypoint_helper``) are the only stand-ins, defined
here with what the SDK reads from them. One JSON line per check.
"""

import asyncio
import inspect
import json
import sys
import traceback
import types

import js
from pyodide.ffi import to_js

FAKES = js.cfFakes


def _runtime_modules():
    flags = types.ModuleType("_cloudflare_compat_flags")
    flags.python_request_headers_preserve_commas = True
    flags.python_workflows_implicit_dependencies = False
    helper = types.ModuleType("_pyodide_entrypoint_helper")
    helper.patchWaitUntil = lambda ctx: None
    sys.modules["_cloudflare_compat_flags"] = flags
    sys.modules["_pyodide_entrypoint_helper"] = helper


_runtime_modules()


def obj(value):
    return to_js(value, dict_converter=js.Object.fromEntries)


def _env():
    return obj(
        {
            "TelefuncKV": FAKES.KVNamespace.new(),
            "TelefuncDurableObject": FAKES.DurableObjectNamespace.new(),
        }
    )


def check_imports():
    import workers

    assert workers.__file__.startswith("/lib/telefunc_src/workers/"), workers.__file__
    from telefunc.cloudflare import _ffi

    assert _ffi.durable_object_base() is workers.DurableObject
    return {"file": workers.__file__}


async def check_responses():
    import workers

    from telefunc.cloudflare import _ffi

    text = _ffi.new_response("hi", status=201, headers={"x-a": "1"})
    assert isinstance(text, workers.Response)
    assert text.js_object.status == 201 and text.js_object.headers.get("x-a") == "1"
    assert await text.js_object.text() == "hi"
    raw = _ffi.new_response(b"\x00\x01", headers=[("content-type", "application/octet-stream")])
    assert (await raw.js_object.arrayBuffer()).to_bytes() == b"\x00\x01"

    async def chunks():
        for part in (b"a", b"bc", b"def"):
            yield part

    streamed = _ffi.new_response(chunks(), status=200)
    assert streamed.js_object.body.constructor.name == "ReadableStream"
    assert await streamed.js_object.text() == "abcdef"
    return {"status": text.js_object.status}


async def check_env_wrapper_and_kv():
    from workers.rpc import _BindingWrapper, _DurableObjectNamespaceWrapper, _EnvWrapper

    from telefunc.cloudflare import _ffi

    env = _EnvWrapper(_env())
    kv = _ffi.namespace_binding(env, "TelefuncKV")
    assert type(kv) is _BindingWrapper, type(kv)
    ns = _ffi.namespace_binding(env, "TelefuncDurableObject")
    assert type(ns) is _DurableObjectNamespaceWrapper, type(ns)
    assert _ffi.namespace_binding(env, "Missing") is None
    await _ffi.kv_put(kv, "session:t", '{"s":"x"}', ttl=86400)
    assert await _ffi.kv_get_text(kv, "session:t") == '{"s":"x"}'
    assert await _ffi.kv_get_text(kv, "session:absent") is None
    put = next(c for c in kv._binding.calls.to_py() if c["op"] == "put")
    options = put["options"]  # a plain Object (not a Map) reached KV through the SDK's wrapper
    assert options["t"] == "[object Object]", put
    assert options["props"]["expirationTtl"]["value"] == 86400, put
    return {"put": put}


async def check_durable_object_class():
    from workers.entrypoints import DurableObjectContext
    from workers.rpc import _EnvWrapper

    from telefunc.cloudflare.durable_object import build_durable_object_class
    from telefunc.server.registry import Registry

    cls = build_durable_object_class(lambda: Registry(), None, lambda: "/_telefunc")
    instance = cls(FAKES.DurableObjectState.new(), _env())
    assert type(instance.ctx) is DurableObjectContext
    assert type(instance.env) is _EnvWrapper
    assert instance.telefunc.state is instance.ctx
    return {"class": cls.__name__}


async def check_stub_fetch_through_pyfetch():
    import workers
    from workers.rpc import _EnvWrapper

    from telefunc.cloudflare import _ffi

    env = _EnvWrapper(_env())
    ns = _ffi.namespace_binding(env, "TelefuncDurableObject")
    request = FAKES.request("https://edge.example/_telefunc", obj({"method": "POST", "body": "{}"}))
    response = await _ffi.stub_fetch(
        ns, "telefunc-shard-weur-0", "weur", request, {"x-telefunc-shard": "s"}
    )
    assert isinstance(response, workers.Response), type(response)
    rebuilt = _ffi.rebuild_response(response, {"x-telefunc-session": "tok"})
    assert rebuilt.headers.get("x-telefunc-session") == "tok"
    assert rebuilt.headers.get("x-object") == "telefunc-shard-weur-0"
    echo = json.loads(await rebuilt.text())
    assert echo["locationHint"] == "weur" and echo["headers"]["x-telefunc-shard"] == "s"
    assert echo["body"] == "{}"
    return {"object": echo["object"]}


CHECKS = [
    check_imports,
    check_responses,
    check_env_wrapper_and_kv,
    check_durable_object_class,
    check_stub_fetch_through_pyfetch,
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
