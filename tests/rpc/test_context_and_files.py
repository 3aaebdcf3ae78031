"""get_context() under concurrency, on_close/signal ordering, and `bin` uploads."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from telefunc import get_context
from telefunc.asgi import TelefuncApp
from telefunc.errors import UsageError
from telefunc.server.context import CallScope
from telefunc.server.registry import Registry


def _envelope(file: str, name: str, args: list[Any]) -> bytes:
    return json.dumps({"file": file, "name": name, "args": args}).encode()


async def test_get_context_outside_a_call_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        get_context()


async def test_concurrent_calls_each_see_their_own_context() -> None:
    both_inside = asyncio.Barrier(2)

    async def who() -> str:
        await both_inside.wait()  # the two calls overlap here
        user: str = get_context().user
        return user

    def whoami_sync() -> str:
        user: str = get_context()["user"]
        return user

    registry = Registry()
    registry.add("/ctx.telefunc.py", who)
    registry.add("/ctx.telefunc.py", whoami_sync)
    app = TelefuncApp(registry=registry, context=lambda r: {"user": r.headers.get("x-user")})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        results = await asyncio.gather(
            *(
                c.post(
                    "/_telefunc",
                    content=_envelope("/ctx.telefunc.py", "who", []),
                    headers={"x-user": u},
                )
                for u in ("ada", "bob")
            )
        )
        sync = await c.post(
            "/_telefunc",
            content=_envelope("/ctx.telefunc.py", "whoami_sync", []),
            headers={"x-user": "cy"},
        )
    assert [r.text for r in results] == ['{"ret":"ada"}', '{"ret":"bob"}']
    assert sync.text == '{"ret":"cy"}'


async def test_on_close_waits_for_every_hold() -> None:
    scope = CallScope(hub=None, values={"user": "ada"})
    events: list[str] = []
    scope.context.on_close(lambda: events.append("closed"))
    scope.signal.add_listener(lambda: events.append("signal"))
    release_channel = scope.hold()
    scope.finish_request()
    assert events == [] and not scope.signal.aborted
    release_channel()
    release_channel()  # releasing twice counts once
    assert events == ["signal", "closed"]
    assert scope.signal.aborted


async def test_async_context_factory_and_bad_factory() -> None:
    async def ctx(request: Any) -> dict[str, str]:
        return {"user": "async"}

    async def who() -> str:
        return str(get_context().user)

    registry = Registry()
    registry.add("/c.telefunc.py", who)
    for factory, expected in (
        (ctx, (200, '{"ret":"async"}')),
        (lambda r: 42, (500, "Internal Server Error")),
    ):
        app = TelefuncApp(registry=registry, context=factory)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            r = await c.post("/_telefunc", content=_envelope("/c.telefunc.py", "who", []))
        assert (r.status_code, r.text) == expected


def _bin_body(args: list[Any], files: list[bytes]) -> bytes:
    meta = json.dumps({"file": "/files.telefunc.py", "name": args[0], "args": args[1]}).encode()
    return len(meta).to_bytes(4, "big") + meta + b"".join(files)


async def test_bin_upload_reads_files_lazily_in_order(live_server: Any, apps_dir: Any) -> None:
    server = live_server(apps_dir / "basic")
    first = b"A" * 100_000
    second = b"second file"
    args = [
        "describe_upload",
        [
            "two",
            '!TelefuncFile:{"index":0,"name":"a.bin","size":100000,"type":"application/octet-stream","lastModified":7}',
            '!TelefuncFile:{"index":1,"name":"b.txt","size":11,"type":"text/plain","lastModified":8}',
        ],
    ]
    async with httpx.AsyncClient(base_url=server.origin) as c:
        r = await c.post(
            "/_telefunc?_telefunc=bin",
            content=_bin_body(args, [first, second]),
            headers={"x-telefunc-request": "bin", "content-type": "application/octet-stream"},
        )
    assert r.status_code == 200, r.text
    ret = json.loads(r.text)["ret"]
    assert ret == {
        "label": "two",
        "first": {"name": "a.bin", "type": "application/octet-stream", "size": 100000},
        "second": {"name": "b.txt", "size": 11, "text": "second file"},
    }


async def test_bin_body_shorter_than_announced_is_malformed(
    live_server: Any, apps_dir: Any
) -> None:
    server = live_server(apps_dir / "basic")
    async with httpx.AsyncClient(base_url=server.origin) as c:
        r = await c.post("/_telefunc?_telefunc=bin", content=b"\x00\x00\x01\x00{}")
    assert (r.status_code, r.text) == (400, "Malformed Telefunc Request")


async def test_static_files_are_served_from_public(live_server: Any, apps_dir: Any) -> None:
    server = live_server(apps_dir / "basic")
    async with httpx.AsyncClient(base_url=server.origin) as c:
        index = await c.get("/")
        escape = await c.get("/..%2F..%2Fcalc.telefunc.py")
    assert index.status_code == 200 and "static ok" in index.text
    assert escape.status_code == 404


async def test_mounted_in_starlette(apps_dir: Any) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/api", app=TelefuncApp(apps_dir / "basic"))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="http://t"
    ) as c:
        r = await c.post("/api/_telefunc", content=_envelope("/calc.telefunc.py", "add", [20, 22]))
    assert (r.status_code, r.text) == (200, '{"ret":42}')
