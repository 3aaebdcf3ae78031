"""What the server's acked send gets when the Python client's listener answers, raises Abort,
or fails: the same answers the reference client gives (ACK_RES OK / ABORT / ERROR)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from telefunc.client import Abort, Client
from testpaths import APPS_DIR

FILE = "/chat.telefunc.py"


async def outcome_of(c: Client, listener: Any) -> dict[str, Any]:
    ch = await c.call(FILE, "ask_client", "question?")
    if listener is not None:
        ch.listen(listener)
    async with asyncio.timeout(20):
        while "asked" not in (report := await c.call(FILE, "server_report", ch.id)):
            await asyncio.sleep(0.02)  # polling the server's record, bounded by the timeout
    result: dict[str, Any] = report["asked"]
    return result


def refuse(question: str) -> None:
    raise Abort({"refused": question})


def crash(question: str) -> None:
    raise RuntimeError("client-side bug")


@pytest.mark.parametrize(
    ("listener", "expected"),
    [
        (lambda q: f"answer to {q}", {"answer": "answer to question?"}),
        (refuse, {"abort": {"refused": "question?"}}),
        (crash, {"error": "ChannelRemoteError"}),
    ],
    ids=["answer", "abort", "bug"],
)
async def test_server_send_gets_the_client_listener_outcome(
    live_server: Any, listener: Any, expected: dict[str, Any]
) -> None:
    server = live_server(APPS_DIR / "channels")
    async with Client(server.origin, transports=("ws",)) as c:
        assert await outcome_of(c, listener) == expected


async def test_no_listener_is_an_error_for_the_sender(live_server: Any) -> None:
    server = live_server(APPS_DIR / "channels")
    async with Client(server.origin, transports=("ws",)) as c:
        assert await outcome_of(c, None) == {"error": "ChannelRemoteError"}
