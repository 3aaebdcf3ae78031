"""The chat's telefunctions: post to a room, read a room's last 50 messages.

The user name comes from the `user` cookie, read by the context factory in `context.py`.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import TypedDict

from telefunc import Abort, get_context

HISTORY = 50


class Message(TypedDict):
    id: int
    room: str
    author: str
    text: str
    at: float


_rooms: dict[str, deque[Message]] = defaultdict(lambda: deque(maxlen=HISTORY))
_next_id = 0


async def whoami() -> str:
    """The current user's name, from the cookie."""
    return str(get_context().user)


async def send_message(room: str, text: str) -> Message:
    """Post `text` to `room` as the current user."""
    global _next_id
    text = text.strip()
    if not text:
        raise Abort({"error": "empty message"})
    if len(text) > 2000:
        raise Abort({"error": "message too long"})
    _next_id += 1
    message: Message = {
        "id": _next_id,
        "room": room,
        "author": str(get_context().user),
        "text": text,
        "at": time.time(),
    }
    _rooms[room].append(message)
    return message


async def last_messages(room: str, after_id: int = 0) -> list[Message]:
    """The room's last 50 messages (only those newer than `after_id`)."""
    return [m for m in _rooms[room] if m["id"] > after_id]
