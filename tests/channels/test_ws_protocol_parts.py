"""The light parts :class:`TelefuncWebSocketProtocol` puts in place of uvicorn's ``asyncio.Queue``
and ``asyncio.Event``: same order and wake-ups, fewer bytes per idle connection."""

from __future__ import annotations

import asyncio
import sys

import pytest

from telefunc.asgi.ws_protocol import _ReceiveQueue, _Writable


async def test_receive_queue_keeps_order_and_wakes_the_getter() -> None:
    queue = _ReceiveQueue()
    assert queue.empty()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # the getter is now waiting on an empty queue
    assert not getter.done()
    queue.put_nowait({"n": 0})
    assert await asyncio.wait_for(getter, 5) == {"n": 0}
    for n in range(1, 1000):
        queue.put_nowait({"n": n})
    got = [(await queue.get())["n"] for _ in range(999)]
    assert got == list(range(1, 1000))
    assert queue.empty()


async def test_receive_queue_refuses_a_second_concurrent_getter() -> None:
    queue = _ReceiveQueue()
    first = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already being awaited"):
        await queue.get()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    queue.put_nowait("after")  # a cancelled getter leaves the queue usable
    assert await queue.get() == "after"


async def test_writable_wakes_every_waiter_when_set_again() -> None:
    writable = _Writable()
    assert writable.is_set()
    assert await writable.wait() is True  # set: no wait
    writable.clear()
    waiters = [asyncio.ensure_future(writable.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    cancelled = waiters.pop()
    cancelled.cancel()
    writable.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [True, True]
    assert writable._waiters is None  # nothing kept once they are woken


def test_the_light_parts_are_smaller_than_what_they_replace() -> None:
    async def sizes() -> tuple[int, int]:
        queue, event = asyncio.Queue[object](), asyncio.Event()
        ours = sys.getsizeof(_ReceiveQueue()) + sys.getsizeof([]) + sys.getsizeof(_Writable())
        theirs = sum(sys.getsizeof(x) for x in (queue, queue.__dict__, event, event.__dict__))
        theirs += sum(sys.getsizeof(getattr(queue, n)) for n in ("_queue", "_getters", "_putters"))
        return ours, theirs + sys.getsizeof(event._waiters)

    ours, theirs = asyncio.run(sizes())
    assert ours * 4 < theirs
