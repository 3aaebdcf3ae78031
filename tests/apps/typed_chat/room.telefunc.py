"""A typed chat room: the channel's type hints shield what the client sends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypedDict

from telefunc import BroadcastChannel, Channel, ShieldValidationError


class ChatMessage(TypedDict):
    author: str
    text: str


#: Client -> server: ChatMessage, acked with the number of messages received so far.
#: Server -> client: any question, which the client must answer with a bool.
Room = Channel[Callable[[ChatMessage], int], Callable[[Any], bool]]


async def room() -> Room:
    ch: Room = Channel()
    received: list[ChatMessage] = []

    def on_message(msg: ChatMessage) -> int:
        assert isinstance(msg["author"], str) and isinstance(msg["text"], str)
        received.append(msg)
        return len(received)

    async def ask() -> None:
        outcomes: list[Any] = []
        for question in ("answer-bool", "answer-string"):
            try:
                outcomes.append(await ch.send(question, ack=True))
            except ShieldValidationError as exc:
                outcomes.append(f"ShieldValidationError: {exc}")
        await ch.send({"outcomes": outcomes, "received": received})

    ch.listen(on_message)
    ch.on_open(ask)
    return ch


async def plain_room() -> Channel[ChatMessage, Any]:
    """Data typed without a handler signature: no ack type is declared."""
    ch: Channel[ChatMessage, Any] = Channel()
    ch.listen(lambda msg: msg["text"].upper())
    return ch


async def news() -> BroadcastChannel[ChatMessage]:
    return BroadcastChannel(key=f"news-{uuid.uuid4()}")
