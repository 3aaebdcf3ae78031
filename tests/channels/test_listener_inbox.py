"""Async listeners are fed through one per-channel inbox drained by one task, in order.

A client that floods a slow async listener used to create one task per message; now whatever the
listeners return to await waits in the channel's inbox (bounded by the receive window the
connection enforces) and one task settles it in arrival order, consuming each message (credit)
and answering each ack request with the listener's return value.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from telefunc.errors import Abort
from telefunc.server.channel import Channel
from telefunc.wire.frames import AckStatus, Frame, Tag, decode_frame


class Peer:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: bytes) -> None:
        self.frames.append(decode_frame(frame))

    def acks(self) -> list[tuple[int, AckStatus, str]]:
        return [f.ack_res() for f in self.frames if f.tag == Tag.ACK_RES]


def attached_channel() -> tuple[Channel[Any, Any], Peer]:
    ch: Channel[Any, Any] = Channel()
    peer = Peer()
    assert ch._core.attach(peer, 0, 0, 0.0)
    return ch, peer


def deliver(ch: Channel[Any, Any], seq: int, value: Any, tag: int = Tag.TEXT) -> None:
    ch._core.receive(Frame(tag, 0, seq, json.dumps(value).encode()), 0.0)


async def test_a_flood_to_a_slow_async_listener_makes_one_task_not_one_per_message() -> None:
    ch, _ = attached_channel()
    gate = asyncio.Event()
    got: list[int] = []
    running = 0
    most_running = 0

    async def slow(n: int) -> None:
        nonlocal running, most_running
        running += 1
        most_running = max(most_running, running)
        await gate.wait()
        got.append(n)
        running -= 1

    ch.listen(slow)
    before = len(asyncio.all_tasks())
    for seq in range(1, 301):
        deliver(ch, seq, seq)
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) - before == 1
    window = ch._core._window
    assert window.unconsumed_msgs == 300  # nothing is consumed until the listener is done
    gate.set()
    for _ in range(1000):
        if len(got) == 300:
            break
        await asyncio.sleep(0)
    assert got == list(range(1, 301)) and most_running == 1
    assert window.unconsumed_msgs == 0
    assert ch._inbox is not None and not ch._inbox.busy


async def test_sync_listeners_run_at_once_and_consume_in_order_behind_async_ones() -> None:
    ch, _ = attached_channel()
    gate = asyncio.Event()
    calls: list[Any] = []

    def listener(value: Any) -> Any:
        calls.append(value)
        if value == "slow":

            async def wait() -> None:
                await gate.wait()

            return wait()
        return None

    ch.listen(listener)
    deliver(ch, 1, "slow")
    deliver(ch, 2, "fast")
    assert calls == ["slow", "fast"]  # listeners are called on arrival, like the JS client
    window = ch._core._window
    assert window.unconsumed_msgs == 2  # "fast" is consumed only after "slow", in order
    gate.set()
    for _ in range(100):
        if window.unconsumed_msgs == 0:
            break
        await asyncio.sleep(0)
    assert window.unconsumed_msgs == 0


async def test_ack_requests_are_answered_in_order_with_the_listeners_value() -> None:
    ch, peer = attached_channel()

    async def double(n: int) -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return n * 2

    ch.listen(double)
    before = len(asyncio.all_tasks())
    for seq in range(1, 51):
        deliver(ch, seq, seq, Tag.TEXT_ACK_REQ if seq % 2 else Tag.TEXT)
    assert len(asyncio.all_tasks()) - before == 1
    for _ in range(1000):
        if len(peer.acks()) == 25:
            break
        await asyncio.sleep(0)
    acks = peer.acks()
    assert [seq for seq, _, _ in acks] == list(range(1, 51, 2))
    assert all(status == AckStatus.OK for _, status, _ in acks)
    assert [json.loads(text) for _, _, text in acks] == [2 * s for s in range(1, 51, 2)]


async def test_a_listener_abort_stops_the_inbox() -> None:
    ch, peer = attached_channel()
    seen: list[int] = []

    async def listener(n: int) -> None:
        seen.append(n)
        if n == 3:
            raise Abort("stop")

    ch.listen(listener)
    for seq in range(1, 11):
        deliver(ch, seq, seq)
    for _ in range(100):
        if ch._core.is_shutdown and (ch._inbox is None or not ch._inbox.busy):
            break
        await asyncio.sleep(0)
    assert seen == [1, 2, 3] and ch._core.is_shutdown
    assert any(f.tag == Tag.ABORT for f in peer.frames)


async def test_a_listener_returning_a_settled_future_is_consumed_at_once_without_a_task() -> None:
    ch, _ = attached_channel()
    echoed: list[Any] = []

    def echo(value: Any) -> Any:
        echoed.append(value)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done  # what ``lambda m: ch.send(m)`` returns while credit remains

    ch.listen(echo)
    before = len(asyncio.all_tasks())
    for seq in range(1, 51):
        deliver(ch, seq, seq)
    assert echoed == list(range(1, 51))
    assert len(asyncio.all_tasks()) == before
    assert ch._inbox is None  # never needed
    assert ch._core._window.unconsumed_msgs == 0


async def test_a_settled_future_behind_a_pending_one_still_waits_its_turn() -> None:
    ch, _ = attached_channel()
    gate = asyncio.Event()

    def listener(value: Any) -> Any:
        if value == "slow":
            return asyncio.ensure_future(gate.wait())
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    ch.listen(listener)
    deliver(ch, 1, "slow")
    deliver(ch, 2, "settled")
    window = ch._core._window
    assert window.unconsumed_msgs == 2  # credit stays in order behind the slow one
    gate.set()
    for _ in range(100):
        if window.unconsumed_msgs == 0:
            break
        await asyncio.sleep(0)
    assert window.unconsumed_msgs == 0


async def test_a_settled_failed_future_is_reported_like_a_raising_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ch, _ = attached_channel()

    def failing(value: Any) -> Any:
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(RuntimeError(f"boom {value}"))
        return failed

    ch.listen(failing)
    with caplog.at_level(logging.ERROR, logger="telefunc"):
        deliver(ch, 1, 1)
    reported = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [str(e) for e in reported] == ["boom 1"]
    assert ch._core._window.unconsumed_msgs == 0

    def aborting(value: Any) -> Any:
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(Abort("stop"))
        return failed

    ch2, _ = attached_channel()
    ch2.listen(aborting)
    deliver(ch2, 1, 1)
    assert ch2._core.is_closed  # Abort from a settled future aborts the channel, as when raised
