"""Fuzzing the call endpoint: random JSON shapes, random bytes, random placeholders and random
``bin`` metadata get one of the protocol's answers (200/400/403/413/422) — never a 500, never
a traceback in the log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from telefunc import config
from telefunc.asgi import TelefuncApp
from testpaths import APPS_DIR

ALLOWED = {200, 400, 403, 413, 422}
NAMES = [
    ("/calc.telefunc.py", "add"),
    ("/calc.telefunc.py", "echo"),
    ("/calc.telefunc.py", "describe"),
    ("/calc.telefunc.py", "refuse"),
    ("/calc.telefunc.py", "whoami"),
    ("/files.telefunc.py", "upload_text"),
    ("/files.telefunc.py", "describe_upload"),
    ("/calc.telefunc.py", "nope"),
    ("/x.telefunc.py", "add"),
]
PREFIXES = [
    "!TelefuncStream:",
    "!TelefuncFunction:",
    "!TelefuncFile:",
    "!TelefuncBlob:",
    "!Map:",
    "!Set:",
    "!Date:",
    "!BigInt:",
    "!RegExp:",
    "!Uint8Array:",
    "!undefined",
    "!NaN",
    "!",
    "!!",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
placeholder_meta = st.one_of(
    st.text(max_size=30),
    st.builds(
        json.dumps,
        st.dictionaries(
            st.sampled_from(["channelId", "index", "size", "name", "type", "lastModified", "k"]),
            scalars,
            max_size=5,
        ),
    ),
    st.builds(json.dumps, st.lists(scalars, max_size=3)),
)
placeholders = st.builds(lambda p, m: p + m, st.sampled_from(PREFIXES), placeholder_meta)
file_placeholders = st.builds(
    lambda p, m: p + m, st.sampled_from(["!TelefuncFile:", "!TelefuncBlob:"]), placeholder_meta
)
json_values = st.recursive(
    st.one_of(placeholders, scalars),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def envelopes(draw: st.DrawFn, files: bool) -> str:
    file, name = draw(st.sampled_from(NAMES))
    leading = file_placeholders if files else placeholders
    args = draw(st.lists(st.one_of(leading, json_values), max_size=4))
    envelope: Any = {"file": file, "name": name, "args": args}
    if draw(st.booleans()):
        envelope = draw(st.one_of(json_values, st.just(envelope)))
    if isinstance(envelope, dict) and draw(st.booleans()):
        envelope["stream"] = draw(json_values)
    return json.dumps(envelope)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """(kind, body): a text call, a bin call with random metadata and file bytes, or noise."""
    kind = draw(st.sampled_from(["txt", "bin", "none", "noise"]))
    if kind == "noise":
        return draw(st.sampled_from(["txt", "bin"])), draw(st.binary(max_size=200))
    meta = draw(envelopes(kind == "bin")).encode()
    if kind != "bin":
        return kind, meta
    announced = draw(st.sampled_from([len(meta)] * 4 + [draw(st.integers(0, 2**32 - 1))]))
    return "bin", announced.to_bytes(4, "big") + meta + draw(st.binary(max_size=64))


def _bin_call(name: str, args: list[Any]) -> bytes:
    meta = json.dumps({"file": "/files.telefunc.py", "name": name, "args": args}).encode()
    return len(meta).to_bytes(4, "big") + meta


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
@example(request=("bin", _bin_call("upload_text", ["!TelefuncFile:{}"])))  # was a KeyError
@example(request=("txt", b'{"file":"/calc.telefunc.py","name":"echo","args":' + b"[" * 995))
def test_fuzzed_call_bodies_get_a_protocol_answer_and_no_traceback(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture, request: tuple[str, bytes]
) -> None:
    kind, body = request
    config.limits.max_placeholders = 50  # keeps the channels a body opens few
    try:
        app = TelefuncApp(APPS_DIR / "basic")
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            status = loop.run_until_complete(asyncio.wait_for(_post(app, kind, body), 20))
            loop.run_until_complete(app.hub.aclose())
    finally:
        config.limits.reset()
    assert status in ALLOWED, body[:300]
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, (body[:300], [r.getMessage() for r in bad])


async def _post(app: TelefuncApp, kind: str, body: bytes) -> int:
    url = "/_telefunc" if kind == "none" else f"/_telefunc?_telefunc={kind}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.post(url, content=body)
        return response.status_code
