"""The example chat app: its telefunctions over real HTTP, and its front-end bundle served."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]

CHAT = REPO / "examples" / "chat"


def _call(c: httpx.Client, name: str, args: list[Any], user: str) -> httpx.Response:
    body = json.dumps({"file": "/chat.telefunc.py", "name": name, "args": args})
    return c.post("/_telefunc", content=body, headers={"cookie": f"user={user}"})


def test_chat_telefunctions(live_server: Any) -> None:
    server = live_server(CHAT)
    with httpx.Client(base_url=server.origin, timeout=20) as c:
        assert _call(c, "whoami", [], "ada").text == '{"ret":"ada"}'
        for i in range(55):
            assert (
                _call(c, "send_message", ["r1", f"m{i}"], "ada" if i % 2 else "bob").status_code
                == 200
            )
        history = json.loads(_call(c, "last_messages", ["r1"], "cy").text)["ret"]
        empty = _call(c, "send_message", ["r1", "   "], "ada")
    assert [m["text"] for m in history] == [f"m{i}" for i in range(5, 55)]
    assert history[-1]["author"] == "bob" and history[-2]["author"] == "ada"
    assert (empty.status_code, json.loads(empty.text)) == (
        403,
        {"ret": {"error": "empty message"}, "abort": True},
    )


def test_front_end_bundle_builds_and_is_served(live_server: Any) -> None:
    if not (REPO / "js" / "node_modules" / "esbuild").is_dir():
        pytest.skip("js/node_modules is not installed")
    subprocess.run(
        ["node", "scripts/build-example.mjs", "chat"], cwd=REPO / "js", check=True, timeout=120
    )
    server = live_server(CHAT)
    with httpx.Client(base_url=server.origin, timeout=20) as c:
        page = c.get("/")
        bundle = c.get("/bundle.js")
    assert page.status_code == 200 and '<script type="module" src="/bundle.js">' in page.text
    assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
    assert "/chat.telefunc.py" in bundle.text
