"""The call endpoint over real HTTP (uvicorn on 127.0.0.1), status by status.

See docs/protocol.md §5.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

BASIC = Path(__file__).resolve().parent.parent / "apps" / "basic"
URL = "/_telefunc?_telefunc=txt"
HEADERS = {"x-telefunc-request": "txt", "content-type": "text/plain"}


def body(file: str, name: str, args: list[Any]) -> str:
    return json.dumps({"file": file, "name": name, "args": args})


@pytest.fixture
def server(live_server: Any) -> Any:
    return live_server(BASIC)


@pytest.fixture
async def client(server: Any) -> Any:
    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as c:
        yield c


async def test_a_call_returns_200_with_ret(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=body("/calc.telefunc.py", "add", [2, 3]), headers=HEADERS)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == '{"ret":5}'


async def test_abort_returns_403_with_the_value(client: httpx.AsyncClient) -> None:
    r = await client.post(
        URL, content=body("/calc.telefunc.py", "refuse", ["no/way"]), headers=HEADERS
    )
    assert r.status_code == 403
    assert r.text == '{"ret":{"reason":"no\\/way"},"abort":true}'


async def test_an_exception_is_500_and_logged_not_leaked(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="telefunc"):
        r = await client.post(URL, content=body("/calc.telefunc.py", "crash", []), headers=HEADERS)
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    assert "secret detail" not in r.text
    assert any("secret detail" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)


@pytest.mark.parametrize(
    ("content", "url", "headers"),
    [
        ("{not json", URL, HEADERS),
        (body("/calc.telefunc.py", "nope", []), URL, HEADERS),
        (body("/missing.telefunc.py", "add", [1, 2]), URL, HEADERS),
        (json.dumps({"file": "/calc.telefunc.py", "name": "add"}), URL, HEADERS),
        (json.dumps({"file": "/calc.telefunc.py", "name": "add", "args": {}}), URL, HEADERS),
        (body("/calc.telefunc.py", "add", [1, 2]), "/_telefunc?_telefunc=bin", HEADERS),
        (body("/calc.telefunc.py", "add", [1, 2]), "/_telefunc?_telefunc=what", {}),
        (body("/calc.telefunc.py", "add", [1, 2]), "/_telefunc", {"x-telefunc-request": "zip"}),
    ],
    ids=[
        "bad-json",
        "unknown-name",
        "unknown-file",
        "no-args",
        "args-not-list",
        "kinds-disagree",
        "unknown-query-kind",
        "unknown-header-kind",
    ],
)
async def test_malformed_requests_get_400_and_the_exact_body(
    client: httpx.AsyncClient, content: str, url: str, headers: dict[str, str]
) -> None:
    r = await client.post(url, content=content, headers=headers)
    assert r.status_code == 400
    assert r.text == "Malformed Telefunc Request"


async def test_wrong_method_is_400(client: httpx.AsyncClient) -> None:
    r = await client.put(URL, content=body("/calc.telefunc.py", "add", [1, 2]), headers=HEADERS)
    assert (r.status_code, r.text) == (400, "Malformed Telefunc Request")


async def test_no_kind_at_all_is_a_text_call(client: httpx.AsyncClient) -> None:
    r = await client.post("/_telefunc", content=body("/calc.telefunc.py", "add", [1, 2]))
    assert (r.status_code, r.text) == (200, '{"ret":3}')


async def test_arguments_not_matching_hints_get_422(client: httpx.AsyncClient) -> None:
    for args in (["2", 3], [1], [1, 2, 3], [True, 2]):
        r = await client.post(URL, content=body("/calc.telefunc.py", "add", args), headers=HEADERS)
        assert (r.status_code, r.text) == (422, "Shield Validation Error"), args


async def test_context_comes_from_the_factory(client: httpx.AsyncClient) -> None:
    r = await client.post(
        URL,
        content=body("/calc.telefunc.py", "whoami", []),
        headers={**HEADERS, "cookie": "user=ada"},
    )
    assert r.text == '{"ret":"ada"}'


async def test_other_paths_are_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/nothing-here")
    assert r.status_code == 404


async def test_an_uncallable_signature_is_a_logged_500(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=body("/calc.telefunc.py", "unusable", []), headers=HEADERS)
    assert (r.status_code, r.text) == (500, "Internal Server Error")
