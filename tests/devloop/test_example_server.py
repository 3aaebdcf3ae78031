"""examples/vite-react/server over HTTP: its telefunctions bound what a client can add."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from testpaths import REPO

SERVER = REPO / "examples" / "vite-react" / "server"


@pytest.fixture
def client(live_server: Any) -> Iterator[httpx.Client]:
    """A client of a fresh server (a fresh, empty todo list)."""
    with httpx.Client(base_url=live_server(SERVER).origin, timeout=10) as http:
        yield http


def _call(client: httpx.Client, name: str, *args: Any) -> httpx.Response:
    body = json.dumps({"file": "/todos.telefunc.py", "name": name, "args": list(args)})
    return client.post("/_telefunc", content=body)


def test_todos_add_list_and_toggle(client: httpx.Client) -> None:
    added = _call(client, "add_todo", "  milk  ").json()["ret"]
    assert added == {"id": 1, "text": "milk", "done": False}
    assert _call(client, "toggle_todo", 1).json()["ret"]["done"] is True
    assert _call(client, "list_todos").json()["ret"] == [{"id": 1, "text": "milk", "done": True}]


def test_todo_text_and_count_are_bounded(client: httpx.Client) -> None:
    for text in ("", "   ", "x" * 201):
        refused = _call(client, "add_todo", text)
        assert refused.status_code == 403, text
        assert "1 to 200 characters" in refused.text
    for i in range(200):
        assert _call(client, "add_todo", f"todo {i}").status_code == 200
    full = _call(client, "add_todo", "one too many")
    assert full.status_code == 403 and "the list is full (200 todos)" in full.text
    assert len(_call(client, "list_todos").json()["ret"]) == 200
    missing = _call(client, "toggle_todo", 999)
    assert missing.status_code == 403 and "no todo 999" in missing.text
