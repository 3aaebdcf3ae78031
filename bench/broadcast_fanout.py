"""Server CPU per broadcast delivery, as a ratio of raw ``websockets.broadcast``.

N subscribers connect over WebSocket to each server (child processes on 127.0.0.1); one
publish loop on the server sends M messages to the key; the figure is the server process's CPU
time (user + system) divided by the N*M deliveries, measured from the first publish until every
subscriber has counted every message. telefunc's deliveries are full protocol frames
(BroadcastChannel PUBLISH frames with per-channel seq, replay buffering and credit), the
baseline's are bare WebSocket text messages.

    .venv/bin/python bench/broadcast_fanout.py [--subscribers 100] [--messages 500] [--size 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
from rpc_vs_starlette import cpu_seconds, start  # type: ignore[import-not-found]
from websockets.asyncio.client import ClientConnection, connect

from telefunc.wire.frames import Tag, decode_frame, encode_frame, encode_json


async def telefunc_subscriber(
    http: httpx.AsyncClient, origin: str, key: str, counted: Callable[[], None]
) -> Callable[[], Awaitable[None]]:
    """Join ``key`` like the official client: call, RECONCILE, BROADCAST_SUB; count PUBLISH."""
    body = json.dumps({"file": "/bench.telefunc.py", "name": "join", "args": [key]})
    ret = json.loads((await http.post(origin + "/_telefunc", content=body)).text)["ret"]
    channel_id = json.loads(ret.split(":", 1)[1])["channelId"]
    ws = await connect(origin.replace("http", "ws") + "/_telefunc", max_size=None)
    reconcile = {"open": [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]}
    await ws.send(encode_json(Tag.RECONCILE, reconcile))
    while decode_frame(await ws.recv()).tag != Tag.RECONCILED:
        pass
    await ws.send(encode_frame(Tag.BROADCAST_SUB, 0, 0, b"\x00"))
    return _pump(ws, lambda frame: decode_frame(frame).tag == Tag.PUBLISH, counted, ping=True)


async def websockets_subscriber(
    origin: str, counted: Callable[[], None]
) -> Callable[[], Awaitable[None]]:
    ws = await connect(origin.replace("http", "ws"), max_size=None, max_queue=None)
    await ws.send("sub")
    assert await ws.recv() == "ok"
    return _pump(ws, lambda message: True, counted, ping=False)


def _pump(
    ws: ClientConnection,
    is_delivery: Callable[[bytes | str], bool],
    counted: Callable[[], None],
    *,
    ping: bool,
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        pinger = asyncio.create_task(_ping(ws)) if ping else None
        try:
            async for message in ws:
                if is_delivery(message):
                    counted()
        finally:
            if pinger:
                pinger.cancel()

    return run


async def _ping(ws: ClientConnection) -> None:
    while True:  # the server drops a telefunc connection without PING within 2 x ping_interval
        await ws.send(encode_frame(Tag.PING))
        await asyncio.sleep(2)


async def measure(kind: str, subscribers: int, messages: int, size: int) -> float:
    proc, origin = start(kind)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            await _wait_port(origin)
            expected = subscribers * messages
            received = 0
            all_in = asyncio.Event()

            def counted() -> None:
                nonlocal received
                received += 1
                if received == expected:
                    all_in.set()

            key = f"bench-{uuid.uuid4()}"
            if kind == "telefunc":
                pumps = [
                    await telefunc_subscriber(http, origin, key, counted)
                    for _ in range(subscribers)
                ]
            else:
                pumps = [await websockets_subscriber(origin, counted) for _ in range(subscribers)]
            tasks = [asyncio.create_task(pump()) for pump in pumps]
            cpu_before = cpu_seconds(proc.pid)
            if kind == "telefunc":
                body = json.dumps(
                    {"file": "/bench.telefunc.py", "name": "blast", "args": [key, messages, size]}
                )
                await http.post(origin + "/_telefunc", content=body)
            else:
                async with connect(origin.replace("http", "ws")) as control:
                    await control.send(f"blast {messages} {size}")
                    assert await control.recv() == "done"
            await asyncio.wait_for(all_in.wait(), 300)
            cpu = cpu_seconds(proc.pid) - cpu_before
            for task in tasks:
                task.cancel()
            return cpu / expected * 1e6
    finally:
        proc.terminate()
        proc.wait()


async def _wait_port(origin: str) -> None:
    host, port = origin.rsplit("//", 1)[1].split(":")
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)  # the child process is still starting
    raise RuntimeError(f"{origin} did not start")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    baseline = await measure("websockets", args.subscribers, args.messages, args.size)
    ours = await measure("telefunc", args.subscribers, args.messages, args.size)
    deliveries = args.subscribers * args.messages
    shape = f"{args.subscribers} subscribers x {args.messages} messages of {args.size} chars"
    print(f"{deliveries} deliveries ({shape})")
    print(f"raw websockets.broadcast: {baseline:6.1f} µs server CPU per delivery (baseline)")
    print(f"telefunc BroadcastChannel: {ours:6.1f} µs server CPU per delivery")
    print(f"ratio telefunc / raw websockets: {ours / baseline:.2f}  (lower is better)")


if __name__ == "__main__":
    started = time.perf_counter()
    asyncio.run(main())
    print(f"(took {time.perf_counter() - started:.1f} s)")
