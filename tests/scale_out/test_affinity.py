"""ServerAffinity without a load balancer: which token a response carries, and what a client
cannot make it echo (another process's token, a malformed or oversized one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from telefunc.asgi import TelefuncApp
from telefunc.asgi.affinity import SERVER_HEADER, SESSION_HEADER, ServerAffinity
from telefunc.cli import build_app, main
from telefunc.errors import UsageError

CHAT = Path(__file__).resolve().parents[2] / "examples" / "chat"
CALL = {"file": "/chat.telefunc.py", "name": "whoami", "args": []}


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def _call(
    client: httpx.AsyncClient, token: str | None = None, *, query: bool = False
) -> httpx.Response:
    url = "/_telefunc?_telefunc=txt"
    headers = {"x-telefunc-request": "txt", "content-type": "text/plain"}
    if token is not None and query:
        url += "&session=" + token
    elif token is not None:
        headers[SESSION_HEADER] = token
    return await client.post(url, content=json.dumps(CALL), headers=headers)


async def test_token_names_the_process_and_is_echoed_only_when_it_does() -> None:
    app = ServerAffinity(build_app(CHAT), "s2")
    async with _client(app) as client:
        first = await _call(client)
        assert first.status_code == 200 and first.json() == {"ret": "anonymous"}
        assert first.headers[SERVER_HEADER] == "s2"
        token = first.headers[SESSION_HEADER]
        assert token.startswith("s2.") and len(token) == 3 + 32
        # Sent back (header or ?session=): the same token, so the client's routing stays put.
        assert (await _call(client, token)).headers[SESSION_HEADER] == token
        assert (await _call(client, token, query=True)).headers[SESSION_HEADER] == token
        # A client cannot make this process hand out a token routing elsewhere, or junk.
        hostile = [
            "s1." + "a" * 32,  # another process's
            "s2." + "a" * 31,  # malformed
            "s2." + "a" * 32 + ".x",
            "s2." + "a" * 10_000,  # oversized
            "s2.<script>" + "a" * 24,
            "",
        ]
        for bad in hostile:
            answer = await _call(client, bad)
            assert answer.status_code == 200
            fresh = answer.headers[SESSION_HEADER]
            assert fresh != bad and fresh.startswith("s2.") and len(fresh) == 35, bad
        # Static files name the process too, but get no token (only the endpoint does).
        page = await client.get("/")
        assert page.headers[SERVER_HEADER] == "s2" and SESSION_HEADER not in page.headers


@pytest.mark.parametrize("bad", ["", "s 1", "s1.x", "a" * 33, "ö"])
def test_server_id_is_checked(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError):
        ServerAffinity(TelefuncApp(CHAT), bad)
    assert main(["serve", str(CHAT), "--port", "0", "--server-id", bad]) == 2
    assert "server id" in capsys.readouterr().err
