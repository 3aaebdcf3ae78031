"""``Channel.abort(value, message)``: the value crosses the wire, the message stays local; the
other side's error message is derived from the value, as with the official client and server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telefunc.client import Abort, Client
from telefunc.errors import abort_message

APPS = Path(__file__).resolve().parents[1] / "apps"
FILE = "/chat.telefunc.py"


def test_abort_message_follows_the_official_rule() -> None:
    assert abort_message("kicked") == "kicked"
    assert abort_message({"message": "room closed", "code": 4}) == "room closed"
    assert abort_message({"message": 4}) == "Aborted"
    assert abort_message(ValueError("boom")) == "boom"
    assert abort_message(None) == "Aborted"


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_official_client_sees_abort_values_and_messages(
    live_server: Any, run_node: Any, transport: str
) -> None:
    server = live_server(APPS / "channels")
    lines = run_node(
        "channel_abort_message.mjs", server.origin, env={"TELEFUNC_TRANSPORTS": transport}
    )
    results = {line["name"]: line for line in lines}

    obj = results["server_object"]
    assert obj["error"]["isAbort"] is True
    assert obj["error"]["abortValue"] == {"message": "room closed", "code": 4}
    assert obj["error"]["message"] == "room closed"
    # The server's own on_close got the message it passed.
    assert obj["server"]["closed"] == {"type": "Abort", "message": "server side text"}

    string = results["server_string"]
    assert string["error"]["message"] == "kicked"
    assert string["server"]["closed"] == {"type": "Abort", "message": "kicked"}
    assert results["server_plain"]["error"]["message"] == "Aborted"

    client = results["client"]
    assert client["error"]["isAbort"] is True
    assert client["error"]["message"] == "client side text"
    assert client["error"]["abortValue"] == {"why": "bye"}
    # A client abort reaches the server as a clean close (CLOSE 0), as with the Node server.
    assert client["server"]["closed"] is None


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_python_client_abort_value_and_message(live_server: Any, transport: str) -> None:
    server = live_server(APPS / "channels")
    async with Client(server.origin, transports=(transport,)) as c:
        ch = await c.call(FILE, "abort_with_message", {"message": "room closed"}, "server text")
        error = await ch.wait_closed()
        assert isinstance(error, Abort)
        assert error.value == {"message": "room closed"} and str(error) == "room closed"

        watched = await c.call(FILE, "watch_close")
        assert await watched.send("hi", ack=True) == "hi"
        watched.abort({"why": "bye"}, "client text")
        error = await watched.wait_closed()
        assert isinstance(error, Abort) and str(error) == "client text"
        assert error.value == {"why": "bye"}
        for _ in range(500):
            report = await c.call(FILE, "server_report", watched.id)
            if "closed" in report:
                break
        assert report["closed"] is None
