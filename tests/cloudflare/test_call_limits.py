"""The Cloudflare adapter's call path has the same request bounds as the ASGI one: a body over
``config.limits.max_body_size`` is 413 (announced or counted while it streams in), too deep or
malformed input the protocol's 400."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from telefunc import config

URL = "https://app.test/_telefunc"


@pytest.fixture
def limits() -> Iterator[Any]:
    yield config.limits
    config.limits.reset()


async def post(edge: Any, body: bytes | str, **headers: str) -> tuple[int, str]:
    resp = await edge.emu.fetch(
        URL, colo="LHR", method="POST", headers={"content-type": "text/plain", **headers}, body=body
    )
    return resp.status, await resp.text()


def call(name: str, args: list[Any]) -> str:
    return json.dumps({"file": "/cf.telefunc.py", "name": name, "args": args})


async def test_a_body_over_max_body_size_is_413(make_edge: Any, limits: Any) -> None:
    limits.max_body_size = 64 * 1024
    edge = make_edge()
    big = call("add", ["x" * 100_000, 1])
    assert await post(edge, big) == (413, "Content Too Large")  # counted while read
    announced = await post(edge, big, **{"content-length": str(len(big))})
    assert announced == (413, "Content Too Large")
    assert await post(edge, call("add", [1, 2])) == (200, '{"ret":3}')


async def test_malformed_and_too_deep_bodies_are_400(make_edge: Any) -> None:
    edge = make_edge()
    deep = '{"file":"/cf.telefunc.py","name":"add","args":[' + "[" * 2000 + "]" * 2000 + "]}"
    meta = json.dumps({"file": "/cf.telefunc.py", "name": "add", "args": ["!TelefuncFile:{}"]})
    upload = len(meta).to_bytes(4, "big") + meta.encode()
    assert await post(edge, deep) == (400, "Malformed Telefunc Request")
    assert await post(edge, "{not json") == (400, "Malformed Telefunc Request")
    bin_status = await post(edge, upload, **{"x-telefunc-request": "bin"})
    assert bin_status == (400, "Malformed Telefunc Request")
