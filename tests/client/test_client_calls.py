"""The Python client's telefunction calls against our server (uvicorn on 127.0.0.1)."""

from __future__ import annotations

import importlib.util
import math
import socket
from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from telefunc.asgi import TelefuncApp
from telefunc.client import (
    Abort,
    Client,
    RemoteCallError,
    ShieldValidationError,
    TelefuncConnectionError,
)
from telefunc.wire.serializer import UNDEFINED, BigInt, JsMap, JsRegExp

APPS = Path(__file__).resolve().parents[1] / "apps"
CALC = "/calc.telefunc.py"


@pytest.fixture
def origin(live_server: Any) -> str:
    server = live_server(APPS / "basic")
    return str(server.origin)


async def test_every_serializer_type_round_trips(origin: str) -> None:
    value = {
        "none": None,
        "undefined": UNDEFINED,
        "bool": True,
        "int": 42,
        "neg": -7,
        "float": 1.5,
        "big": 2**64,
        "inf": math.inf,
        "ninf": -math.inf,
        "bang": "!bang",
        "html": "héllo </script> ✓",
        "date": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "bytes": b"\x00\x01\xfe\xff",
        "set": {1, 2, 3},
        "map": {1: "a", 2: "b"},
        "list": [1, [2, [3, None]]],
        "regexp": JsRegExp("a+/b", "gi"),
        "nested": {"deep": [{"x": UNDEFINED, "d": datetime(1970, 1, 1, tzinfo=UTC)}]},
    }
    async with Client(origin) as c:
        back = await c.call(CALC, "echo", value)
        nan = await c.call(CALC, "echo", math.nan)
    assert back == value
    assert isinstance(back["big"], BigInt) and isinstance(back["map"], JsMap)
    assert back["undefined"] is UNDEFINED
    assert isinstance(nan, float) and math.isnan(nan)


async def test_module_proxy_and_plain_result(origin: str) -> None:
    async with Client(origin) as c:
        calc = c.module(CALC)
        assert await calc.add(2, 3) == 5
        assert await c.call(CALC, "add", 40, 2) == 42


async def test_abort_carries_the_value(origin: str) -> None:
    async with Client(origin) as c:
        with pytest.raises(Abort) as info:
            await c.call(CALC, "refuse", "nope")
    assert info.value.value == {"reason": "nope"}
    assert "refuse()" in str(info.value) and CALC in str(info.value)


async def test_server_error_is_a_remote_call_error_without_details(origin: str) -> None:
    async with Client(origin) as c:
        with pytest.raises(RemoteCallError) as info:
            await c.call(CALC, "crash")
    assert info.value.status == 500
    assert info.value.body == "Internal Server Error"
    assert "crash()" in str(info.value) and "secret" not in str(info.value)


async def test_shield_rejection(origin: str) -> None:
    async with Client(origin) as c:
        with pytest.raises(ShieldValidationError) as info:
            await c.call(CALC, "add", "one", 2)
    assert "add()" in str(info.value)


async def test_unknown_telefunction_is_a_400(origin: str) -> None:
    async with Client(origin) as c:
        with pytest.raises(RemoteCallError) as info:
            await c.call(CALC, "no_such_function")
        with pytest.raises(RemoteCallError) as info2:
            await c.call("/nope.telefunc.py", "add", 1, 2)
    assert info.value.status == 400 and info2.value.status == 400
    assert "no_such_function()" in str(info.value)


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    async with Client(f"http://127.0.0.1:{port}") as c:
        with pytest.raises(TelefuncConnectionError) as info:
            await c.call(CALC, "add", 1, 2)
    assert isinstance(info.value, ConnectionError)
    assert f"127.0.0.1:{port}" in str(info.value)


async def test_headers_option_reaches_the_context(live_server: Any) -> None:
    spec = importlib.util.spec_from_file_location("basic_context", APPS / "basic" / "context.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = live_server(TelefuncApp(APPS / "basic", context=module.context))
    async with Client(server.origin, headers={"cookie": "user=bob"}) as c:
        assert await c.call(CALC, "whoami") == "bob"
    async with Client(server.origin) as c:
        assert await c.call(CALC, "whoami") == "anonymous"


async def test_telefunc_url_option(live_server: Any) -> None:
    server = live_server(TelefuncApp(APPS / "basic", telefunc_url="/api/tf"))
    async with Client(server.origin, telefunc_url="/api/tf") as c:
        assert await c.call(CALC, "add", 1, 1) == 2
    async with Client(server.origin + "/some/page", telefunc_url="/api/tf") as c:
        assert await c.call(CALC, "add", 2, 2) == 4
    async with Client(server.origin) as c:  # the default /_telefunc is not served there
        with pytest.raises(RemoteCallError):
            await c.call(CALC, "add", 1, 1)


class SessionIssuer:
    """Wraps an ASGI app: hands out ``x-telefunc-session`` tokens (as the Cloudflare adapter
    does) and records what each request carried back."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str | None, str]] = []  # (type, header token, query string)
        self.counter = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope.get("headers", []))
            token = headers.get(b"x-telefunc-session")
            self.seen.append(
                (
                    scope["type"],
                    token.decode() if token else None,
                    scope.get("query_string", b"").decode(),
                )
            )
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_token(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.counter += 1
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-telefunc-session", f"tok{self.counter}".encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_token)


@pytest.mark.parametrize("transports", [("ws",), ("sse",)], ids=["ws", "sse"])
async def test_session_token_is_stored_and_sent_back(
    live_server: Any, transports: tuple[str, ...]
) -> None:
    issuer = SessionIssuer(TelefuncApp(APPS / "channels"))
    server = live_server(issuer)
    async with Client(server.origin, transports=transports) as c:
        assert c.session_token is None
        await c.call("/chat.telefunc.py", "server_report")
        assert c.session_token == "tok1"
        ch = await c.call("/chat.telefunc.py", "welcome")
        assert c.session_token == "tok2"
        got = await ch.send("ping", ack=False)
        assert got is None
        closed = await ch.close()
        assert closed == 0
    http = [s for s in issuer.seen if s[0] == "http" and "_telefunc=sse" not in s[2]]
    sse = [s for s in issuer.seen if s[0] == "http" and "_telefunc=sse" in s[2]]
    ws = [s for s in issuer.seen if s[0] == "websocket"]
    assert http[0][1] is None and "session" not in http[0][2]
    assert http[1][1] == "tok1" and "session=tok1" in http[1][2]
    assert "_telefunc=txt" in http[1][2]
    if transports == ("ws",):
        assert ws and "session=tok2" in ws[0][2]  # the channel socket names the session too
        assert not sse
    else:  # every SSE POST names the session, as header and in the query
        assert sse and not ws
        assert all(token == "tok2" and "session=tok2" in query for _, token, query in sse)


async def test_top_level_undefined_reaches_any_and_becomes_none_for_optional(origin: str) -> None:
    async with Client(origin) as c:
        assert await c.call(CALC, "echo", UNDEFINED) is UNDEFINED
        assert await c.call(CALC, "maybe", UNDEFINED) == "None"
        assert await c.call(CALC, "maybe", 3) == "3"
