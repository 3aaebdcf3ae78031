"""Chat room telefunctions (fixture for `telefunc codegen`)."""

from __future__ import annotations

from typing import Literal, TypedDict

from codegen_channels import BroadcastChannel, Channel
from codegen_models import Color, Invite, Message, Mood, Page, Room


class Typing(TypedDict):
    user: str
    typing: bool


async def last_messages(room: str, limit: int = 50) -> list[Message]:
    """The last messages of a room, oldest first."""
    return []


async def post(room: str, text: str, mood: Mood | None = None) -> Message:
    return {"id": 1, "author": "me", "text": text, "reply_to": None}


async def join(room: Room, invite: Invite | None = None) -> Room:
    return room


async def rooms(page: int) -> Page[Room]:
    return Page(items=[], total=0)


async def connect(user: str) -> Channel[str | Typing, Message]:
    return Channel()


async def subscribe(room: str) -> BroadcastChannel[Message]:
    raise NotImplementedError


async def leave(room: str) -> None:
    """Leave a room.

    Nothing comes back (the client gets null).
    */ is escaped in comments.
    """


def paint(color: Color, where: Literal["wall", "door"] = "wall") -> dict[Color, int]:
    return {}
