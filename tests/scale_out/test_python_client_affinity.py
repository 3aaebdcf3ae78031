"""Affinity without cookies: the Python client through the real HAProxy of examples/scale-out.

The client keeps no cookie here (its httpx jar refuses every cookie, as a client without a jar
would), so only the process id inside the ``x-telefunc-session`` token pins it: its calls, the
SSE POSTs that attach its channels and the WebSocket it upgrades to must all be logged by the
process its token names. Killing that process ends its channels with ``NetworkError``; its next
call lands on a surviving process, which issues a token of its own, and works.
"""

from __future__ import annotations

import asyncio
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx
import pytest
from _scale_out_util import Cluster

from telefunc.client import Client
from telefunc.errors import NetworkError

pytestmark = pytest.mark.timeout(120)


def _no_cookies() -> httpx.AsyncClient:
    return httpx.AsyncClient(cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))


async def _wait(what: str, condition: Any, cluster: Cluster, timeout: float = 30.0) -> None:
    await asyncio.to_thread(cluster.wait_for, what, condition, timeout)


async def test_token_pins_a_cookieless_client_and_fails_over(cluster: Cluster) -> None:
    async with _no_cookies() as http, Client(cluster.url, http_client=http) as client:
        chat = client.module("/chat.telefunc.py")
        assert await chat.whoami() == "anonymous"
        token = client.session_token
        assert token is not None and token.split(".")[0] in cluster.names, token
        home = token.split(".")[0]

        seen: list[tuple[int, str]] = []
        room = await chat.join("py")
        room.subscribe(lambda event, info: seen.append((info["seq"], event["message"]["text"])))
        user = await chat.connect("py")
        assert await user.send({"kind": "ping"}, ack=True) == "pong"

        def upgraded() -> bool:
            return any(r.kind == "ws" and r.token == token for r in cluster.requests())

        await _wait("the client's WebSocket upgrade in a process log", upgraded, cluster)
        for n in range(3):
            stored = await user.send({"kind": "send", "text": f"m{n}"}, ack=True)
            assert stored["text"] == f"m{n}"
        await _wait("3 broadcasts", lambda: len(seen) >= 3, cluster)
        assert [text for _, text in seen] == ["m0", "m1", "m2"]
        assert [s for s, _ in seen] == sorted({s for s, _ in seen})  # strictly increasing

        mine = [r for r in cluster.requests() if r.token == token]
        # Every request that carried the token reached the process that issued it.
        assert {r.process for r in mine} == {home}, mine
        kinds = {r.kind for r in mine}
        assert {"call", "sse", "ws"} <= kinds, kinds
        assert not http.cookies, "the client kept a cookie: this would not test the token"

        # The process dies: its channels end with the documented error, never silently.
        cluster.kill(home)
        async with asyncio.timeout(30):
            assert isinstance(await user.wait_closed(), NetworkError)
            assert isinstance(await room.wait_closed(), NetworkError)

        # The next call goes to a surviving process, which hands out a token of its own.
        assert await chat.whoami() == "anonymous"
        new_token = client.session_token
        assert new_token is not None
        survivor = new_token.split(".")[0]
        assert survivor in cluster.names and survivor != home
        user = await chat.connect("py")
        stored = await user.send({"kind": "send", "text": "after"}, ack=True)
        # Ids and history are shared through Redis: the survivor continues the room's numbers.
        assert stored["id"] == 4
        history = await chat.history("py")
        assert [m["text"] for m in history] == ["m0", "m1", "m2", "after"]
        after = [r for r in cluster.requests() if r.token == new_token]
        assert after and {r.process for r in after} == {survivor}, after
