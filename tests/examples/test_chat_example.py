"""The example chat's telefunctions over real HTTP and WebSocket, driven by the Python client.

``examples/chat/chat.telefunc.py``: ``join`` (the room's BroadcastChannel), ``history`` (the last
50 messages), ``connect`` (the user's channel: acked sends, typing, pings) and ``whoami``, with
the user read from the ``user`` cookie by ``examples/chat/context.py``. The browser side of the
same app is ``tests/browser/``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from telefunc.client import (
    BroadcastChannel,
    Channel,
    Client,
    PublishInfoDict,
    ShieldValidationError,
)

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "examples" / "chat"
FILE = "/chat.telefunc.py"
WAIT = 20.0  # seconds: bound on every wait for something to arrive


def _room() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"


def _client(origin: str, user: str) -> Client:
    # The page stores the name with encodeURIComponent; the context factory decodes it.
    return Client(origin, headers={"cookie": f"user={user}"})


class Room:
    """Records what a member's room subscription delivers: ``(seq, event)`` in arrival order."""

    def __init__(self) -> None:
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    def __call__(self, event: dict[str, Any], info: PublishInfoDict) -> None:
        self.events.append((info["seq"], event))
        self.changed.set()

    def messages(self) -> list[dict[str, Any]]:
        return [e["message"] for _, e in self.events if e["kind"] == "message"]

    def typing(self) -> list[str]:
        return [e["user"] for _, e in self.events if e["kind"] == "typing"]

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


async def _member(
    client: Client, room: str
) -> tuple[BroadcastChannel[Any], Channel[Any, Any], Room]:
    """join + subscribe + connect, as the page does; returns once the subscription is live."""
    chat = client.module(FILE)
    joined = await chat.join(room)
    user = await chat.connect(room)
    assert isinstance(joined, BroadcastChannel) and isinstance(user, Channel)
    seen = Room()
    joined.subscribe(seen)
    # Both channels share the client's one connection, in order: once the ping (sent after the
    # subscription) is answered, the server has the subscription.
    assert await asyncio.wait_for(user.send({"kind": "ping"}, ack=True), WAIT) == "pong"
    return joined, user, seen


async def test_whoami_reads_the_cookie(live_server: Any) -> None:
    server = live_server(CHAT)
    async with _client(server.origin, "Ada%20Lovelace") as ada, Client(server.origin) as nobody:
        assert await ada.call(FILE, "whoami") == "Ada Lovelace"
        assert await nobody.call(FILE, "whoami") == "anonymous"


async def test_acked_send_is_stored_and_reaches_every_member_in_order(live_server: Any) -> None:
    server = live_server(CHAT)
    room = _room()
    async with _client(server.origin, "ada") as ada, _client(server.origin, "bob") as bob:
        assert await ada.call(FILE, "history", room) == []
        _, ada_ch, ada_room = await _member(ada, room)
        _, bob_ch, bob_room = await _member(bob, room)

        # The ack is the stored message: trimmed, numbered in the room, by the cookie's user.
        hi = ada_ch.send({"kind": "send", "text": " hi "}, ack=True)
        first = await asyncio.wait_for(hi, WAIT)
        assert {k: first[k] for k in ("id", "room", "author", "text")} == {
            "id": 1,
            "room": room,
            "author": "ada",
            "text": "hi",
        }
        # Both send at once; each user's own sends keep their order, and everyone sees one order.
        acks = await asyncio.wait_for(
            asyncio.gather(
                *(ada_ch.send({"kind": "send", "text": f"a{i}"}, ack=True) for i in range(10)),
                *(bob_ch.send({"kind": "send", "text": f"b{i}"}, ack=True) for i in range(10)),
            ),
            WAIT,
        )
        assert sorted(a["id"] for a in acks) == list(range(2, 22))
        for member in (ada_room, bob_room):
            await member.until(lambda m=member: len(m.messages()) >= 21)  # type: ignore[misc]

        for member in (ada_room, bob_room):
            seqs = [seq for seq, _ in member.events]
            assert seqs == sorted(seqs)
            assert [m["id"] for m in member.messages()] == list(range(1, 22))
        assert ada_room.messages() == bob_room.messages()
        texts = [m["text"] for m in ada_room.messages()]
        assert [t for t in texts if t.startswith("a")] == [f"a{i}" for i in range(10)]
        assert [t for t in texts if t.startswith("b")] == [f"b{i}" for i in range(10)]
        assert {m["author"] for m in ada_room.messages() if m["text"].startswith("b")} == {"bob"}
        # The acks are the very messages the room got.
        assert sorted(acks, key=lambda m: m["id"]) == ada_room.messages()[1:]

        # history returns what the room got, oldest first, and only what is after `after_id`.
        history = await ada.call(FILE, "history", room)
        assert history == ada_room.messages()
        assert await bob.call(FILE, "history", room, 19) == ada_room.messages()[19:]


async def test_refused_send_is_the_ack_and_the_channel_stays_open(live_server: Any) -> None:
    server = live_server(CHAT)
    room = _room()
    async with _client(server.origin, "ada") as ada:
        _, ch, seen = await _member(ada, room)
        for text, error in (("   ", "empty message"), ("x" * 2001, "message too long")):
            ack = await asyncio.wait_for(ch.send({"kind": "send", "text": text}, ack=True), WAIT)
            assert ack == {"error": error}
        ack = await asyncio.wait_for(ch.send({"kind": "send", "text": "ok"}, ack=True), WAIT)
        assert ack["id"] == 1 and ack["text"] == "ok"
        await seen.until(lambda: len(seen.messages()) == 1)
        assert [m["text"] for m in await ada.call(FILE, "history", room)] == ["ok"]

        # A request that is no UserRequest is refused by the shield; the channel stays open.
        with pytest.raises(ShieldValidationError):
            await asyncio.wait_for(ch.send({"kind": "shout"}, ack=True), WAIT)
        with pytest.raises(ShieldValidationError):
            await asyncio.wait_for(ch.send({"kind": "send", "text": 5}, ack=True), WAIT)
        assert await asyncio.wait_for(ch.send({"kind": "ping"}, ack=True), WAIT) == "pong"


async def test_typing_is_relayed_to_the_others(live_server: Any) -> None:
    server = live_server(CHAT)
    room = _room()
    async with _client(server.origin, "ada") as ada, _client(server.origin, "bob") as bob:
        _, _, ada_room = await _member(ada, room)
        _, bob_ch, _ = await _member(bob, room)
        assert await asyncio.wait_for(bob_ch.send({"kind": "typing"}, ack=True), WAIT) is None
        await bob_ch.send({"kind": "send", "text": "done typing"}, ack=True)
        await ada_room.until(lambda: len(ada_room.messages()) == 1)
        # The typing event came first (the room keeps one order), as bob, then his message.
        assert [e["kind"] for _, e in ada_room.events] == ["typing", "message"]
        assert ada_room.typing() == ["bob"]


async def test_members_cannot_publish_to_the_room_directly(live_server: Any) -> None:
    server = live_server(CHAT)
    room = _room()
    async with _client(server.origin, "mallory") as mallory, _client(server.origin, "bob") as bob:
        mallory_joined, _, _ = await _member(mallory, room)
        _, bob_ch, bob_room = await _member(bob, room)
        forged = {"kind": "message", "message": {"id": 999, "author": "bob", "text": "forged"}}
        with pytest.raises(Exception, match="read-only"):
            await asyncio.wait_for(mallory_joined.publish(forged), WAIT)
        await bob_ch.send({"kind": "send", "text": "real"}, ack=True)
        await bob_room.until(lambda: len(bob_room.messages()) == 1)
    assert [m["text"] for m in bob_room.messages()] == ["real"]


async def test_history_keeps_the_last_50(live_server: Any) -> None:
    server = live_server(CHAT)
    room = _room()
    async with _client(server.origin, "ada") as ada:
        _, ch, _ = await _member(ada, room)
        for i in range(55):
            await asyncio.wait_for(ch.send({"kind": "send", "text": f"m{i}"}, ack=True), WAIT)
        history = await ada.call(FILE, "history", room)
        assert [m["text"] for m in history] == [f"m{i}" for i in range(5, 55)]
        assert [m["id"] for m in history] == list(range(6, 56))
        # Rooms are separate: another room has its own history and numbering.
        assert await ada.call(FILE, "history", _room()) == []


def test_bad_room_names_are_refused_over_http(live_server: Any) -> None:
    server = live_server(CHAT)
    with httpx.Client(base_url=server.origin, timeout=WAIT) as c:
        for name, args in (("join", [""]), ("history", ["x" * 41]), ("connect", ["  "])):
            body = json.dumps({"file": FILE, "name": name, "args": args})
            response = c.post("/_telefunc", content=body, headers={"cookie": "user=ada"})
            assert response.status_code == 403, (name, response.text)
            assert json.loads(response.text) == {
                "ret": {"error": "a room name has 1 to 40 characters"},
                "abort": True,
            }


def test_front_end_bundle_builds_from_the_generated_stubs_and_is_served(live_server: Any) -> None:
    if not (REPO / "js" / "node_modules" / "esbuild").is_dir():
        pytest.skip("js/node_modules is not installed")
    stub = CHAT / "frontend" / "generated" / "chat.telefunc.ts"
    stub.unlink(missing_ok=True)
    subprocess.run(
        ["node", "scripts/build-example.mjs", "chat"], cwd=REPO / "js", check=True, timeout=120
    )
    # The build ran codegen first: the stub the front end imports is back.
    assert "export function join(room: string)" in stub.read_text()
    server = live_server(CHAT)
    with httpx.Client(base_url=server.origin, timeout=WAIT) as c:
        page = c.get("/")
        bundle = c.get("/bundle.js")
    assert page.status_code == 200 and '<script type="module" src="/bundle.js">' in page.text
    assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
    for name in ("join", "history", "connect", "whoami"):
        assert f'"/chat.telefunc.py", "{name}"' in bundle.text, name
