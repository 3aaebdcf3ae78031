"""examples/fastapi: a FastAPI app mounting telefunc next to its routes, driven by the official
client; the context factory gets the Starlette request and the user its middleware
authenticated."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fastapi"


@pytest.fixture
def fastapi_app() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        spec = importlib.util.spec_from_file_location("fastapi_example_app", EXAMPLE / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.NOTES.clear()
        yield module.app
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("notes_store", None)


def test_official_client_through_fastapi(fastapi_app: Any, live_server: Any, run_node: Any) -> None:
    server = live_server(fastapi_app)
    results = {line["name"]: line for line in run_node("fastapi_example.mjs", server.origin)}

    assert results["anonymous"] == {"name": "anonymous", "ok": True, "value": None}
    refused = results["anonymous_add"]["error"]
    assert refused["isAbort"] is True and refused["abortValue"] == {"error": "sign in first"}
    assert results["bad_login"]["value"]["status"] == 401
    assert results["login"]["value"] == {"status": 200, "body": {"user": "ada"}}
    # The user FastAPI's middleware authenticated reaches the telefunctions' context...
    assert results["whoami"]["value"] == "ada"
    # ...with the Starlette request itself.
    assert results["user_agent"]["value"] == "fastapi-example-test"
    assert results["add_again"]["value"] == ["milk", "eggs"]
    # FastAPI's own routes (with their dependency) see the same user and data.
    assert results["me"]["value"] == {"status": 200, "body": {"user": "ada"}}
    assert results["notes"]["value"] == {"status": 200, "body": ["milk", "eggs"]}


async def test_python_client_and_forged_cookie(fastapi_app: Any, live_server: Any) -> None:
    from telefunc.client import Abort, Client

    server = live_server(fastapi_app)
    # A cookie that is not signed by the app is no session: the user stays anonymous.
    async with Client(server.origin, headers={"cookie": "session=ada.forged"}) as c:
        assert await c.call("/notes.telefunc.py", "whoami") is None
        with pytest.raises(Abort):
            await c.call("/notes.telefunc.py", "add_note", "x")
