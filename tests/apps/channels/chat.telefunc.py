"""Channel telefunctions used by the channel interop tests (official client over WebSocket)."""

from __future__ import annotations

import asyncio
from typing import Any

from telefunc import Abort, Channel

#: Results the server side observed, read back by `server_report()` (latest of any channel; kept
#: for older tests).
REPORT: dict[str, Any] = {}
#: The same, per channel id, read back by `server_report(channel_id)`: a test checking *its*
#: channel cannot pass on what another test's channel left in this process.
REPORT_BY_CHANNEL: dict[str, dict[str, Any]] = {}


async def welcome() -> Channel[Any, Any]:
    """Sends a welcome on open and echoes every text message back, in order."""
    ch: Channel[Any, Any] = Channel()
    ch.on_open(lambda: ch.send({"welcome": True}))
    ch.listen(lambda msg: ch.send(msg))
    return ch


async def acked() -> Channel[int, Any]:
    """An ack channel: the listener's return value is the ack; the server also asks the client."""
    ch: Channel[int, Any] = Channel(ack=True)

    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    ch.listen(double)

    async def ask_client() -> None:
        answer = await ch.send("question")  # acked by default on this channel
        await ch.send({"client_answered": answer}, ack=False)

    ch.on_open(ask_client)
    return ch


async def binary_echo() -> Channel[Any, Any]:
    """Echoes binary messages byte for byte."""
    ch: Channel[Any, Any] = Channel()
    ch.listen_binary(lambda data: ch.send_binary(data))
    return ch


async def aborter(value: Any) -> Channel[Any, Any]:
    """Aborts with ``value`` as soon as the client attaches."""
    ch: Channel[Any, Any] = Channel()
    ch.on_open(lambda: ch.abort(value))
    return ch


async def closer() -> Channel[Any, Any]:
    """Closes itself when told to; the close result is kept for `server_report`."""
    ch: Channel[Any, Any] = Channel()

    async def on_message(msg: Any) -> None:
        if msg == "close-now":
            result = await ch.close(timeout=5.0)
            REPORT["server_close_result"] = result
            REPORT_BY_CHANNEL.setdefault(ch.id, {})["server_close_result"] = result

    def on_close(err: Exception | None) -> None:
        REPORT["closer_on_close"] = repr(err)
        REPORT_BY_CHANNEL.setdefault(ch.id, {})["closer_on_close"] = repr(err)

    ch.listen(on_message)
    ch.on_close(on_close)
    return ch


async def listener_abort() -> Channel[Any, Any]:
    """A listener raising Abort aborts the channel."""
    ch: Channel[Any, Any] = Channel(ack=True)

    def refuse(msg: Any) -> None:
        raise Abort({"refused": msg})

    ch.listen(refuse)
    return ch


async def both_ways(n: int) -> Channel[int | str, Any]:
    """Streams ``n`` ticks while recording what the client streams; ``"report"`` (acked) returns
    what the server received."""
    ch: Channel[int | str, Any] = Channel()
    received: list[int] = []

    def on_message(msg: Any) -> Any:
        if msg == "report":
            return received
        received.append(msg)
        return None

    ch.listen(on_message)

    async def ticks() -> None:
        for i in range(n):
            await ch.send(i)
            if i % 20 == 0:
                await asyncio.sleep(0.005)  # spread the stream over time so a cut lands mid-way

    ch.on_open(lambda: asyncio.ensure_future(ticks()))
    return ch


async def ask_client(question: Any) -> Channel[Any, Any]:
    """Once open, asks the client ``question`` with an acked send and records the outcome."""
    ch: Channel[Any, Any] = Channel()

    async def ask() -> None:
        try:
            outcome: Any = {"answer": await ch.send(question, ack=True)}
        except Abort as abort:
            outcome = {"abort": abort.value}
        except Exception as exc:
            outcome = {"error": type(exc).__name__}
        REPORT_BY_CHANNEL.setdefault(ch.id, {})["asked"] = outcome

    ch.on_open(ask)
    return ch


async def server_report(channel_id: str | None = None) -> dict[str, Any]:
    """What the server observed: for channel ``channel_id``, or (no id) the latest of any."""
    if channel_id is None:
        return dict(REPORT)
    return dict(REPORT_BY_CHANNEL.get(channel_id, {}))


#: Channels handed to every caller of `shared_channel(name)` (for the ownership tests).
SHARED: dict[str, Channel[Any, Any]] = {}


async def shared_channel(name: str) -> Channel[Any, Any]:
    """The same echo channel for every caller: only the first client to attach it owns it."""
    if name not in SHARED:
        ch: Channel[Any, Any] = Channel()
        ch.listen(lambda msg: ch.send(msg))
        SHARED[name] = ch
    return SHARED[name]


async def abort_with_message(value: Any, message: str | None) -> Channel[Any, Any]:
    """Aborts with ``value`` and ``message`` once open; records what its own on_close got."""
    ch: Channel[Any, Any] = Channel()

    def closed(error: Exception | None) -> None:
        REPORT_BY_CHANNEL.setdefault(ch.id, {})["closed"] = (
            None if error is None else {"type": type(error).__name__, "message": str(error)}
        )

    ch.on_close(closed)
    ch.on_open(lambda: ch.abort(value, message))
    return ch


async def watch_close() -> Channel[Any, Any]:
    """Records what its on_close got (for a client-side abort); echoes messages."""
    ch: Channel[Any, Any] = Channel()

    def closed(error: Exception | None) -> None:
        REPORT_BY_CHANNEL.setdefault(ch.id, {})["closed"] = (
            None if error is None else {"type": type(error).__name__, "message": str(error)}
        )

    ch.on_close(closed)
    ch.listen(lambda msg: msg)
    return ch


async def broadcast_transport_probe() -> Channel[Any, Any]:
    """Answers every message with the class name of the broadcast transport its listener sees
    (an app with its own settings scopes its ``broadcast.transport`` around its connections)."""
    from telefunc.broadcast.transport import get_broadcast_transport

    ch: Channel[Any, Any] = Channel()
    ch.listen(lambda _msg: ch.send(type(get_broadcast_transport()).__name__))
    return ch
