"""Types shared by the codegen fixture's telefunc files (imported, so not telefunctions)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, Literal, NotRequired, TypedDict, TypeVar

T = TypeVar("T")

Mood = Literal["happy", "sad", 'say "hi"']


class Color(str, enum.Enum):  # noqa: UP042 - the str mixin spelling on purpose
    """A user's colour."""

    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Message(TypedDict):
    """One chat message."""

    id: int
    author: str
    text: str
    mood: NotRequired[Mood]
    reply_to: Message | None  # recursive


class Tree(TypedDict, total=False):
    label: str
    children: list[Tree]


@dataclass
class Room:
    """A chat room."""

    name: str
    topic: str | None = None
    members: list[str] = field(default_factory=list)
    color: Color = Color.RED


@dataclass
class Invite:
    """Holds a Room (whose argument form differs), so its own argument form differs too."""

    room: Room
    note: str


@dataclass
class Page(Generic[T]):
    items: list[T]
    total: int
