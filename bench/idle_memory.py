"""Server memory per idle WebSocket connection: bare, and with one open channel.

One fresh server: a few connections of each kind are opened and closed first (imports and
first-use caches land in the baseline), then client processes open ``n`` bare WebSockets
(upgraded, nothing sent: ``/_telefunc`` for telefunc and Node, ``/`` for raw websockets) and the
server's RSS is read; then ``n`` more connections that each carry one open channel (a
``pingpong`` channel for ours, ``welcome`` for the Node server: call over HTTP, upgrade,
RECONCILE, wait for RECONCILED; for raw websockets the socket is the channel, so a second set of
bare sockets) and the RSS is read again. Every wire PINGs as a client does, or the Telefunc
servers would drop it at the ping deadline. Both sets stay open until the end, so the second figure
is not flattered by memory the first one freed. Figures are RSS growth divided by ``n``, in KiB.

Used by bench/perf.py (rows ``mem-bare`` and ``mem-channel``) and bench/stack.py.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from burst import PING_EVERY, Wire, open_wire, rss_kib  # type: ignore[import-not-found, unused-ignore]

from telefunc.wire.frames import Tag, encode_frame, encode_json

#: Per server kind: the WebSocket path and the (file, telefunction) that opens one channel.
CHANNEL = {
    "telefunc": ("/_telefunc", "/bench.telefunc.py", "pingpong"),
    "node": ("/_telefunc", "/chat.telefunc.mjs", "welcome"),
    "websockets": ("/", "", ""),
}
#: Connections opened at a time per client process.
PARALLEL = 64
#: Seconds a whole set of connections may take to open.
OPEN_TIMEOUT = 300.0


def _post(host: str, file: str, name: str) -> bytes:
    body = json.dumps({"file": file, "name": name, "args": []}).encode()
    head = (
        f"POST /_telefunc HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_body(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    length = None
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length is not None:
        return await reader.readexactly(length)
    chunks = []
    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readexactly(2)
    return b"".join(chunks)


async def _open_set(kind: str, origin: str, n: int, channel: bool, wires: list[Wire]) -> None:
    """Add ``n`` idle WebSockets to ``wires`` as they open, bare or each with one channel."""
    path, file, name = CHANNEL[kind]
    host_port = origin.rsplit("//", 1)[1]
    host, port = host_port.split(":")
    todo = iter(range(n))

    async def worker() -> None:
        reader = writer = None
        try:
            for _ in todo:
                if not channel or kind == "websockets":
                    wires.append(await open_wire(origin, path, lambda w, m: None))
                    continue
                for attempt in range(2):  # keep-alive may time out while the server is busy
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, int(port))
                    assert reader is not None
                    writer.write(_post(host_port, file, name))
                    try:
                        body = await _read_body(reader)
                        break
                    except (asyncio.IncompleteReadError, ConnectionError):
                        writer.close()
                        reader = writer = None
                        if attempt:
                            raise
                ret = json.loads(body)["ret"]
                channel_id = json.loads(ret.split(":", 1)[1])["channelId"]
                ready = asyncio.get_running_loop().create_future()

                def on_frame(wire: Wire, frame: bytes, ready: Any = ready) -> None:
                    if frame[0] == Tag.RECONCILED and not ready.done():
                        ready.set_result(None)

                wire = await open_wire(origin, path, on_frame)
                reconcile = {"open": [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]}
                wire.send(2, encode_json(Tag.RECONCILE, reconcile))
                await asyncio.wait_for(ready, 30)
                wires.append(wire)
        finally:
            if writer is not None:
                writer.close()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(PARALLEL))), OPEN_TIMEOUT)


def _client(pipe: Connection, kind: str, origin: str, n: int, channel: bool) -> None:
    asyncio.run(_hold(pipe, kind, origin, n, channel))


async def _hold(pipe: Connection, kind: str, origin: str, n: int, channel: bool) -> None:
    """Open a set, report, wait for the parent's word, close everything."""
    loop = asyncio.get_running_loop()
    held: list[Wire] = []
    # The Telefunc servers drop a wire that sends no PING within the ping deadline.
    pinger = asyncio.create_task(_ping(held)) if kind != "websockets" else None
    try:
        await _open_set(kind, origin, n, channel, held)
        pipe.send(("ok", sum(w.closed for w in held)))
        await loop.run_in_executor(None, pipe.recv)
    except Exception as exc:  # reported to the parent, which fails the measurement
        pipe.send(("error", repr(exc)))
    finally:
        if pinger is not None:
            pinger.cancel()
        for wire in held:
            wire.close()


async def _ping(wires: list[Wire]) -> None:
    ping = encode_frame(Tag.PING)
    while True:
        await asyncio.sleep(PING_EVERY)
        for wire in wires:
            wire.send(2, ping)


def warm_up(kind: str, origin: str, channel: bool) -> None:
    """A few connections of the set, closed again (see the module docstring)."""

    async def run() -> None:
        wires: list[Wire] = []
        await _open_set(kind, origin, 4, channel, wires)
        for wire in wires:
            wire.close()

    asyncio.run(run())


def measure(
    kind: str, origin: str, pid: int, n: int, *, channel: bool, client_procs: int = 2
) -> float:
    """KiB of RSS growth of server ``pid`` per idle connection, ``n`` of them, bare or with one
    channel each. Run it on a fresh server."""
    warm_up(kind, origin, channel)
    time.sleep(0.5)  # let the closed warm-up connections be torn down before the baseline
    ctx = multiprocessing.get_context("spawn")
    shares = [n // client_procs + (i < n % client_procs) for i in range(client_procs)]
    clients = []
    before = rss_kib(pid)
    for share in shares:
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_client, args=(theirs, kind, origin, share, channel))
        proc.start()
        clients.append((proc, ours))
    try:
        for _, pipe in clients:
            if not pipe.poll(OPEN_TIMEOUT + 30):
                raise RuntimeError(f"{kind}: a client process did not open its connections")
            status, detail = pipe.recv()
            if status != "ok" or detail:
                raise RuntimeError(f"{kind}: {status} {detail} (connections closed)")
        time.sleep(0.5)  # the server finishes what the last handshakes started
        after = rss_kib(pid)
        for _, pipe in clients:
            pipe.send("close")
    finally:
        for proc, _ in clients:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return (after - before) / n
