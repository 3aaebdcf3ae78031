"""The chat's telefunctions: rooms as broadcast channels, plus a channel per user for sending.

A page calls three things:

* ``join(room)`` returns the room's :class:`BroadcastChannel`; everything said in the room (new
  messages, "X is typing") is published to its key, so every member gets it in one order, and a
  member whose connection drops gets what it missed replayed when it reconnects.
* ``history(room)`` returns the room's last 50 messages (the ones before the page joined).
* ``connect(room)`` returns the user's own :class:`Channel`. The page sends on it with an ack:
  ``{"kind": "send", "text": ...}`` is validated, stored, published to the room, and the ack
  value is the stored :class:`Message` (with its ``id``), or a :class:`Rejected` saying why
  not; ``{"kind": "typing"}`` is relayed to the room; ``{"kind": "ping"}`` is answered with
  ``"pong"`` (the page's "connected" check).

Every message is published by the server, after validation, under the name the ``context``
factory (``context.py``) read from the ``user`` cookie — a page never supplies an author.

Several processes (``telefunc serve --redis``, examples/scale-out/) share the rooms: with the
Redis broadcast transport configured, message ids and history live in that Redis too, so ids
stay one sequence per room whichever process stores a message, and a page whose process died
catches up from any other. Without it, they live in this process's memory.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from typing import Any, Literal, TypedDict

from telefunc import Abort, Broadcast, BroadcastChannel, Channel, config, get_context

HISTORY = 50
MAX_TEXT = 2000
MAX_ROOM = 40
TYPING_EVERY = 1.0  # seconds: a user's typing events are relayed at most this often


class Message(TypedDict):
    """One stored chat message; ``id`` is its number in the room (1, 2, 3, …)."""

    id: int
    room: str
    author: str
    text: str
    at: float


class MessageEvent(TypedDict):
    """Published to the room when a message was stored."""

    kind: Literal["message"]
    message: Message


class TypingEvent(TypedDict):
    """Published to the room while ``user`` is typing."""

    kind: Literal["typing"]
    user: str


ChatEvent = MessageEvent | TypingEvent


class SendRequest(TypedDict):
    """Client -> server: store and publish ``text`` (acked with the stored message)."""

    kind: Literal["send"]
    text: str


class TypingRequest(TypedDict):
    """Client -> server: the user is typing."""

    kind: Literal["typing"]


class PingRequest(TypedDict):
    """Client -> server: answered ``"pong"``; the page shows "reconnecting…" until it is."""

    kind: Literal["ping"]


UserRequest = SendRequest | TypingRequest | PingRequest


class Rejected(TypedDict):
    """The ack of a ``send`` the server refused (the channel stays open)."""

    error: str


class Notice(TypedDict):
    """Server -> client on the user's channel: a line for the page's status area."""

    text: str


_history: dict[str, deque[Message]] = defaultdict(lambda: deque(maxlen=HISTORY))
# Per room, so a room's ids are 1, 2, 3…: a page that sees id 7 after id 5 knows it missed one.
_last_id: dict[str, int] = defaultdict(int)


class _RedisRooms:
    """Ids (``INCR``) and the last ``HISTORY`` messages (a list) of every room, in Redis."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis_asyncio

        self._redis: Any = redis_asyncio.from_url(url)

    async def store(self, room: str, message: dict[str, Any]) -> Message:
        message["id"] = int(await self._redis.incr(f"chat:id:{room}"))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(f"chat:history:{room}", json.dumps(message))
            pipe.ltrim(f"chat:history:{room}", -HISTORY, -1)
            await pipe.execute()
        return message  # type: ignore[return-value]

    async def history(self, room: str) -> list[Message]:
        raw = await self._redis.lrange(f"chat:history:{room}", 0, -1)
        # Two processes may push in the other order than their ids: sort.
        return sorted((json.loads(item) for item in raw), key=lambda m: m["id"])


_redis_rooms: _RedisRooms | None = None


def _shared_rooms() -> _RedisRooms | None:
    """The Redis store when broadcast goes through Redis (several processes), else None."""
    global _redis_rooms
    url = getattr(config.broadcast.transport, "url", None)
    if _redis_rooms is None and type(config.broadcast.transport).__name__ == "RedisBroadcast":
        _redis_rooms = _RedisRooms(str(url))
    return _redis_rooms


def _room_key(room: str) -> str:
    return f"chat:room:{room}"


def _check_room(room: str) -> str:
    room = room.strip()
    if not room or len(room) > MAX_ROOM:
        raise Abort({"error": f"a room name has 1 to {MAX_ROOM} characters"})
    return room


def _user() -> str:
    return str(get_context().user)


async def whoami() -> str:
    """The current user's name, from the ``user`` cookie."""
    return _user()


async def join(room: str) -> BroadcastChannel[ChatEvent]:
    """The room's broadcast channel: subscribe to get its messages and typing events, in order.

    Read-only for the client: everything on it is published by the server after checking who
    is speaking, so a page cannot post in someone else's name by publishing directly.
    """
    return BroadcastChannel(key=_room_key(_check_room(room)), read_only=True)


async def history(room: str, after_id: int = 0) -> list[Message]:
    """The room's last 50 messages, oldest first (only those with an id above ``after_id``)."""
    room = _check_room(room)
    shared = _shared_rooms()
    messages = await shared.history(room) if shared else list(_history[room])
    return [m for m in messages if m["id"] > after_id]


async def connect(room: str) -> Channel[UserRequest, Notice]:
    """The current user's channel into ``room``: acked sends, typing events and pings.

    The user is read from the context now, while the call's request is at hand; everything
    sent on the channel later is attributed to that user.
    """
    room = _check_room(room)
    user = _user()
    channel: Channel[UserRequest, Notice] = Channel()
    last_typing = -TYPING_EVERY

    async def on_request(request: UserRequest) -> Message | Rejected | str | None:
        # The shield already checked the request against UserRequest (the channel's type): a
        # malformed one never gets here, and the page's send() rejects with
        # ShieldValidationError.
        nonlocal last_typing
        kind = request["kind"]
        if kind == "send":
            text = request["text"]
            # A refusal is the ack value, not an Abort: raising Abort in a listener would
            # abort the whole channel.
            try:
                return await _post(room, user, text)
            except ValueError as exc:
                return {"error": str(exc)}
        if kind == "typing":
            # A page may send this on every keystroke; the room hears it once a second at most.
            now = time.monotonic()
            if now - last_typing >= TYPING_EVERY:
                last_typing = now
                typing: TypingEvent = {"kind": "typing", "user": user}
                await Broadcast.publish(_room_key(room), typing)
            return None
        return "pong"  # kind == "ping"

    channel.listen(on_request)
    channel.on_open(lambda: channel.send({"text": f"Signed in as {user}."}))
    return channel


async def _post(room: str, author: str, text: str) -> Message:
    """Store and publish one message; raises ``ValueError`` for an empty or too long text."""
    # Private (leading underscore): not a telefunction, so no page can pick its own author.
    text = text.strip()
    if not text:
        raise ValueError("empty message")
    if len(text) > MAX_TEXT:
        raise ValueError("message too long")
    shared = _shared_rooms()
    if shared is not None:
        message = await shared.store(
            room, {"room": room, "author": author, "text": text, "at": time.time()}
        )
    else:
        _last_id[room] += 1
        message = {
            "id": _last_id[room],
            "room": room,
            "author": author,
            "text": text,
            "at": time.time(),
        }
        # Stored and published with no await in between, so history order is publish order.
        _history[room].append(message)
    event: MessageEvent = {"kind": "message", "message": message}
    await Broadcast.publish(_room_key(room), event)
    return message
