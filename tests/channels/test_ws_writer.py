"""The WebSocket writer's two paths keep frame order: direct transport writes while the server
is writable (the first frame of a loop turn at once, the rest of the turn in one batch), the ASGI
``send`` task while its writes are paused, then direct writes again."""

from __future__ import annotations

import asyncio
from typing import Any

from telefunc.asgi.websocket import _Writer
from telefunc.server.hub import ChannelHub


async def test_frames_keep_their_order_across_direct_writes_and_a_paused_transport() -> None:
    hub = ChannelHub()
    conn = hub.open_connection(transport="ws")
    wire: list[tuple[str, bytes]] = []  # (path, frame) in the order they reached the socket
    writable = True
    resumed = asyncio.Event()
    arrived = asyncio.Event()
    direct_writes: list[int] = []

    def write_frames(frames: list[bytes]) -> None:
        assert writable, "a direct write while the transport is paused"
        direct_writes.append(len(frames))
        wire.extend(("direct", frame) for frame in frames)
        arrived.set()

    async def send(message: dict[str, Any]) -> None:
        await resumed.wait()  # uvicorn's send waits while its writes are paused
        wire.append(("send", message["bytes"]))
        arrived.set()

    extension = {
        "write_buffer_size": lambda: 0,
        "close_now": lambda code, reason: None,
        "writable": lambda: writable,
        "write_frames": write_frames,
    }
    writer = _Writer(conn, send, hub, extension)
    conn.on_output = writer.wake

    async def until(count: int) -> None:
        while len(wire) < count:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 5)

    async def task_running(running: bool) -> None:
        for _ in range(1000):  # loop iterations, not time: the handover is a callback away
            if (writer.task is not None) == running:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"the writer task never became {'running' if running else 'idle'}")

    try:
        conn.write(b"1")
        assert direct_writes == [1]  # the turn's first frame goes out at once
        conn.write(b"2")
        conn.write(b"3")
        assert direct_writes == [1]  # the rest of the turn waits for the batch
        await until(3)
        assert direct_writes == [1, 2]  # one transport write for both
        assert writer.task is None  # no task for a direct write

        writable = False
        conn.write(b"4")
        conn.write(b"5")
        await task_running(True)  # the scheduled flush hands over to a task
        conn.write(b"6")  # queued behind the paused ones, not written around them
        writable = True
        resumed.set()
        await until(6)
        await task_running(False)
        conn.write(b"7")
        await until(7)
    finally:
        await writer.stop()
        conn.connection_lost(hub.now(), permanent=True)

    assert [frame for _, frame in wire] == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]
    paths = [path for path, _ in wire]
    assert paths == ["direct", "direct", "direct", "send", "send", "send", "direct"]


async def test_fan_out_writes_first_frames_at_once_then_batches_in_one_callback() -> None:
    hub = ChannelHub()
    loop = asyncio.get_running_loop()
    writes: dict[int, list[list[bytes]]] = {}
    pairs = []
    for n in range(50):
        conn = hub.open_connection(transport="ws")

        async def send(message: dict[str, Any]) -> None:
            raise AssertionError("the ASGI send is for paused transports only")

        extension = {
            "write_buffer_size": lambda: 0,
            "close_now": lambda code, reason: None,
            "writable": lambda: True,
            "write_frames": lambda frames, n=n: writes.setdefault(n, []).append(list(frames)),
        }
        writer = _Writer(conn, send, hub, extension)
        conn.on_output = writer.wake
        pairs.append((conn, writer))
    scheduled: list[Any] = []
    real_call_soon = loop.call_soon

    def counting_call_soon(callback: Any, *args: Any, **kwargs: Any) -> Any:
        scheduled.append(callback)
        return real_call_soon(callback, *args, **kwargs)

    loop.call_soon = counting_call_soon  # type: ignore[method-assign]
    try:
        for n, (conn, _) in enumerate(pairs):  # a fan-out: every connection gets output at once
            conn.write(b"a%d" % n)
            conn.write(b"b%d" % n)
    finally:
        loop.call_soon = real_call_soon  # type: ignore[method-assign]
    # The first frames went out at once; the second ones wait for one callback for all 50
    # writers (plus the one ending the turn), not one each.
    assert writes == {n: [[b"a%d" % n]] for n in range(50)}
    assert len(scheduled) == 2
    await asyncio.sleep(0)
    assert writes == {n: [[b"a%d" % n], [b"b%d" % n]] for n in range(50)}  # one write each
    pairs[3][0].write(b"later")  # a new loop turn: written at once again
    assert writes[3] == [[b"a3"], [b"b3"], [b"later"]]
    for conn, writer in pairs:
        await writer.stop()
        conn.connection_lost(hub.now(), permanent=True)


def test_direct_frame_headers_are_the_bytes_websockets_writes() -> None:
    from websockets.frames import Frame, Opcode

    from telefunc.asgi.ws_protocol import _binary_header

    for size in (0, 1, 125, 126, 65535, 65536, 70000):
        data = b"x" * size
        expected = Frame(Opcode.BINARY, data).serialize(mask=False, extensions=[])
        assert _binary_header(size) + data == expected
