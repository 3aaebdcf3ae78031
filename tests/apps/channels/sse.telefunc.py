"""Channel telefunctions for the SSE transport tests: which transport carried each message."""

from __future__ import annotations

import asyncio
from typing import Any

from telefunc import Channel


def _transport(ch: Channel[Any, Any]) -> str:
    # Test-only peek at the wire the channel is attached to right now ("sse", "ws" or "none").
    peer = ch._core.peer
    return str(getattr(peer, "transport", "none"))


async def upgrade_flow(n: int) -> Channel[int | str, Any]:
    """Streams ``n`` ticks spread over time while recording, for every message in both
    directions, the transport the channel was on; ``"report"`` (acked) returns the record."""
    ch: Channel[int | str, Any] = Channel()
    received: list[int] = []
    received_on: list[str] = []
    sent_on: list[str] = []

    def on_message(msg: Any) -> Any:
        if msg == "report":
            return {"received": received, "receivedOn": received_on, "sentOn": sent_on}
        received.append(msg)
        received_on.append(_transport(ch))
        return None

    ch.listen(on_message)

    async def ticks() -> None:
        for i in range(n):
            sent_on.append(_transport(ch))  # the send below writes to this wire synchronously
            await ch.send(i)
            if i % 10 == 0:
                await asyncio.sleep(0.01)

    ch.on_open(lambda: asyncio.ensure_future(ticks()))
    return ch
