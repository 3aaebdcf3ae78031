"""The hub's timer task survives a loop that refuses to schedule in the past (Pyodide's webloop).

Pyodide's webloop turns ``call_at(when)`` into ``call_later(when - time())`` and raises
``ValueError("Can't schedule in the past")`` when that is negative. On CPython >= 3.12
``asyncio.timeout`` (and so ``asyncio.wait_for``) checks ``when > time()`` and then calls
``call_at``, so a short delay fails whenever the clock moved on between those readings. The hub's
task must still sleep until such a deadline and fire it: when it died, every channel's deadline
(close timeouts, ping deadlines, ``reconnect_timeout``) stopped with it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from telefunc.server.hub import ChannelHub

#: How far the loop's clock moves on between two readings (a slow interpreter).
CLOCK_STEP = 1e-3


class WebloopLikeLoop(asyncio.SelectorEventLoop):
    """A loop with webloop's scheduling rules and a clock that moves on at every reading."""

    def __init__(self) -> None:
        super().__init__()
        self._skew = 0.0

    def time(self) -> float:
        self._skew += CLOCK_STEP
        return super().time() + self._skew

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Any, *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        if delay < 0:
            raise ValueError("Can't schedule in the past")
        return super().call_at(self.time() + delay, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self, when: float, callback: Any, *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        return self.call_later(when - self.time(), callback, *args, context=context)


class SteppedHub(ChannelHub):
    """A hub whose clock moves only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = 100.0

    def now(self) -> float:  # type: ignore[override]
        return self.clock


class Deadline:
    """A timer target that records that it fired."""

    def __init__(self) -> None:
        self._timer_at: float | None = None
        self.fired = asyncio.Event()

    def handle_timeout(self, now: float) -> None:
        self.fired.set()


async def _deadline_just_ahead_fires() -> None:
    hub = SteppedHub()
    hub._ensure_timer_task()
    task = hub._task
    assert task is not None
    deadline = Deadline()
    try:
        # asyncio.timeout checks ``when > time()`` (one step later) and then calls call_at, which
        # reads the clock once more: a delay between one and two steps passes the check and is
        # in the past by the time call_at looks.
        hub.mux.timers.schedule(deadline, hub.clock + 1.5 * CLOCK_STEP)
        for _ in range(5):  # the task computes its sleep and schedules it
            await asyncio.sleep(0)
        assert not task.done(), task.exception() if task.done() else None
        assert not deadline.fired.is_set()  # the hub's clock has not reached it yet

        hub.clock += 1.0
        await asyncio.wait_for(deadline.fired.wait(), 10)
        assert not task.done()
    finally:
        await hub.aclose()


def test_webloop_like_loop_refuses_a_call_at_that_slipped_into_the_past() -> None:
    """The loop above really has the rule the hub must cope with (else the next test is moot)."""

    async def call_at_soon() -> None:
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + CLOCK_STEP / 2, lambda: None)

    with asyncio.Runner(loop_factory=WebloopLikeLoop) as runner:
        try:
            runner.run(call_at_soon())
        except ValueError as exc:
            assert "past" in str(exc)
        else:
            raise AssertionError("the webloop-like loop accepted a call_at in the past")


def test_hub_timer_task_fires_a_deadline_just_ahead_on_a_webloop_like_loop() -> None:
    with asyncio.Runner(loop_factory=WebloopLikeLoop) as runner:
        runner.run(_deadline_just_ahead_fires())
