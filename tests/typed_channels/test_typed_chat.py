"""Typed channel data (issue 15): the official client against a typed chat room, on WS and SSE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

APPS = Path(__file__).resolve().parents[1] / "apps"


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_typed_chat_room_shields_client_data(
    live_server: Any, run_node: Any, transport: str
) -> None:
    server = live_server(APPS / "typed_chat")
    lines = run_node("typed_chat.mjs", server.origin, env={"TELEFUNC_TRANSPORTS": transport})
    results = {line["name"]: line for line in lines}

    room = results["room"]
    # The malformed fire-and-forget message was dropped: the acked send counts 3 messages.
    assert room["counted"] == {"ok": True, "value": 3}
    rejected = room["rejected"]
    assert rejected["ok"] is False
    assert rejected["error"]["isShieldValidationError"] is True
    assert "channel message" in rejected["error"]["message"]
    assert room["after"] == {"ok": True, "value": 4}
    server_side = room["server"]
    # (The report races the last sends: what the listener saw is a prefix of the valid ones.)
    texts = [m["text"] for m in server_side["received"]]
    assert texts == ["one", "two", "three", "four"][: len(texts)]
    # The server declared the client's answers to be bool: a string rejects its send().
    assert server_side["outcomes"][0] is True
    assert server_side["outcomes"][1].startswith("ShieldValidationError: channel ack")

    plain = results["plain"]
    assert plain["ok"] == {"ok": True, "value": "HI"}
    assert plain["bad"]["error"]["isShieldValidationError"] is True

    news = results["news"]
    assert news["good"] is True and news["goodSeq"] == 1
    assert news["bad"]["ok"] is False
    assert news["bad"]["error"]["isShieldValidationError"] is True


TYPED_USAGE_TS = """\
import { room, plain_room, news } from './gen/room.telefunc'

export async function main(): Promise<void> {
  const ch = await room()
  const count: number = await ch.send({ author: 'a', text: 'b' }, { ack: true })
  // @ts-expect-error author must be a string (the shield drops it, as the test above shows)
  await ch.send({ author: 5, text: 'malformed' })
  // @ts-expect-error text is required (the shield rejects the acked send)
  await ch.send({ author: 'eve' }, { ack: true })
  ch.listen(() => true)
  // @ts-expect-error the server declared the client's answers to be booleans
  ch.listen(() => 'not a bool')
  const plain = await plain_room()
  // @ts-expect-error a ChatMessage, not a string
  await plain.send('not a message', { ack: true })
  const broadcast = await news()
  await broadcast.publish({ author: 'a', text: 'news' })
  // @ts-expect-error text is a string
  await broadcast.publish({ author: 'a', text: 7 })
  void count
}
"""


def test_codegen_types_reject_what_the_shield_rejects(tmp_path: Path) -> None:
    from codegen.test_codegen import JS_MODULES, _tsc, _tsc_or_skip
    from telefunc.codegen import generate

    node = _tsc_or_skip()
    (tmp_path / "node_modules").symlink_to(JS_MODULES, target_is_directory=True)
    generate(APPS / "typed_chat", tmp_path / "gen")
    (tmp_path / "usage.ts").write_text(TYPED_USAGE_TS)
    result = _tsc(node, tmp_path, ["gen/room.telefunc.ts", "usage.ts"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_python_client_gets_shield_errors_from_a_typed_room(
    live_server: Any, transport: str
) -> None:
    from telefunc.client import Client, ShieldValidationError

    server = live_server(APPS / "typed_chat")
    async with Client(server.origin, transports=(transport,)) as client:
        ch = await client.call("/room.telefunc.py", "plain_room")
        assert await ch.send({"author": "a", "text": "hi"}, ack=True) == "HI"
        with pytest.raises(ShieldValidationError, match="channel message"):
            await ch.send({"author": "a"}, ack=True)
        # A dropped fire-and-forget message does not disturb what follows.
        await ch.send("not a message")
        assert await ch.send({"author": "b", "text": "again"}, ack=True) == "AGAIN"
        await ch.close()

        news = await client.call("/room.telefunc.py", "news")
        receipt = await news.publish({"author": "a", "text": "news"})
        assert receipt["seq"] == 1
        with pytest.raises(ShieldValidationError):
            await news.publish({"author": "a", "text": 7})
        await news.close()


async def test_a_flood_of_malformed_messages_is_dropped_without_stalling_or_flooding_the_log(
    live_server: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attack: thousands of fire-and-forget messages that fail the type. Each is dropped but
    still consumes its receive credit (else the sender would stall), and the log gets one
    rate-limited line, not one per message."""
    import asyncio
    import logging

    from telefunc.client import Client
    from telefunc.endpoint.client_errors import ClientErrorLog
    from telefunc.server import channel_shield

    # A fresh limiter: the process-wide one may have logged this kind in an earlier test.
    monkeypatch.setattr(channel_shield, "log_client_error", ClientErrorLog())
    server = live_server(APPS / "typed_chat")
    with caplog.at_level(logging.WARNING, logger="telefunc.client_errors"):
        async with Client(server.origin, transports=("ws",)) as client:
            ch = await client.call("/room.telefunc.py", "plain_room")
            async with asyncio.timeout(30):  # a sender stalled on credit fails here
                for i in range(3000):
                    await ch.send({"author": i, "text": "x" * 200})  # ~660 KB: past the window
                still = await ch.send({"author": "a", "text": "still here"}, ack=True)
            assert still == "STILL HERE"
            await ch.close()
    lines = [r for r in caplog.records if "channel-shield" in r.getMessage()]
    # One line per 10 s interval (the flood is bounded by the 30 s timeout above), never 3000.
    assert 1 <= len(lines) <= 4
