"""The emulator runs Cloudflare's own ``workers`` SDK (PyPI ``workers-runtime-sdk``, pinned).

The emulator provides only what the runtime puts beneath the SDK (``js``, ``pyodide.ffi``,
``pyodide.http``, ``_cloudflare_compat_flags``, ``_pyodide_entrypoint_helper``); these tests pin
that the SDK's own class wrapping, binding wrappers and ``Response`` are what user code gets.
"""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from telefunc.testing import Emulator, install, uninstall

REPO = Path(__file__).resolve().parents[2]
PINNED = "1.9.5"


def test_the_workers_module_is_the_pinned_sdk() -> None:
    import workers  # type: ignore[import-not-found]

    assert version("workers-runtime-sdk") == PINNED
    assert Path(workers.__file__).parent.parent.name == "site-packages"
    assert not (REPO / "src" / "telefunc" / "testing" / "workers_api.py").exists()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"workers-runtime-sdk=={PINNED}"' in pyproject


def test_import_workers_without_the_emulator_fails_like_cpython() -> None:
    uninstall()
    try:
        sys.modules.pop("js", None)
        with pytest.raises(ModuleNotFoundError, match="'js'"):
            import workers  # noqa: F401
    finally:
        install()


async def test_handlers_see_the_sdk_wrappers(emu: Emulator) -> None:
    from workers import (  # type: ignore[import-not-found]
        DurableObject,
        Response,
        WorkerEntrypoint,
    )
    from workers.entrypoints import DurableObjectContext  # type: ignore[import-not-found]
    from workers.rpc import (  # type: ignore[import-not-found]
        _BindingWrapper,
        _DurableObjectNamespaceWrapper,
        _EnvWrapper,
        _FetcherWrapper,
    )

    seen: dict[str, Any] = {}

    class Counter(DurableObject):  # type: ignore[misc]
        def __init__(self, ctx: Any, env: Any) -> None:
            super().__init__(ctx, env)
            seen["do_ctx"] = type(ctx)

        async def increment(self, by: Any) -> int:
            storage = self.ctx.storage
            seen["storage"] = type(storage)
            n = int(await storage.get("n") or 0) + int(by)
            await storage.put("n", n)
            return n

        async def fetch(self, request: Any) -> Any:
            return Response(b"bytes from the object", headers={"x-object": "yes"})

    class Default(WorkerEntrypoint):  # type: ignore[misc]
        async def fetch(self, request: Any) -> Any:
            seen["env"] = type(self.env)
            seen["kv"] = type(self.env.KV)
            seen["ns"] = type(self.env.COUNTER)
            await self.env.KV.put("k", "v")
            stub = self.env.COUNTER.getByName("c")
            seen["stub"] = type(stub)
            n = await stub.increment(2)
            inner = await stub.fetch("https://object/")
            return Response(
                f"n={n} object={await inner.text()} header={inner.headers['x-object']}",
                status=201,
            )

    emu.durable_object("COUNTER", Counter)
    emu.kv("KV")
    emu.set_worker(Default)
    resp = await emu.fetch("https://app.test/")
    assert resp.status == 201
    assert await resp.text() == "n=2 object=bytes from the object header=yes"
    assert seen == {
        "env": _EnvWrapper,
        "kv": _BindingWrapper,
        "ns": _DurableObjectNamespaceWrapper,
        "stub": _FetcherWrapper,
        "do_ctx": DurableObjectContext,
        "storage": _BindingWrapper,
    }


def test_sdk_response_rejects_a_python_iterator_body() -> None:
    from workers import Response

    async def chunks() -> Any:
        yield b"x"

    with pytest.raises(TypeError, match="Unsupported type in Response"):
        Response(chunks())  # what the adapter must not do: it streams through a ReadableStream
