"""One burst to many subscribers: loss, server CPU per delivery, time to complete, idle memory.

S subscribers (default 1,000) connect to each server (child processes on 127.0.0.1); the server
then publishes one burst of M messages (default 1,000) as fast as it can, from a loop on the
server side. Per server it reports:

1. what every subscriber received: lost messages (%), duplicates, order violations — telefunc
   must show 0 / 0 / 0;
2. server CPU (user + system, from /proc) per delivery, from the trigger until every subscriber
   is complete (or the deliveries stall);
3. the time from the trigger until the last subscriber has every message;
4. server RSS per idle connection: VmRSS after the S subscribers connected minus VmRSS before,
   divided by S.

Servers: telefunc (BroadcastChannel on uvicorn), raw ``websockets`` (``websockets.broadcast``)
and python-socketio (``AsyncServer(async_mode="asgi")`` on uvicorn, subscribers in a room,
``await emit(..., room=...)`` per message).

The subscribers are not the official clients: each is a minimal WebSocket client (an
``asyncio.Protocol``, no compression offered, so no server compresses) speaking the server's
protocol by hand — telefunc frames (RECONCILE, BROADCAST_SUB, PING), Engine.IO v4 / Socket.IO v5
text packets (open, namespace connect, ping/pong, events), or bare text. They are spread over
several client processes and read every socket at all times, so the clients are not what is
measured; the table shows how busy the client processes were.

    PYTHONPATH=src:bench .venv/bin/python bench/burst.py [--subscribers 1000] [--messages 1000]
        [--size 64] [--client-procs 2] [--servers telefunc,websockets,socketio]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent / "src")):
    if _path not in sys.path:  # so `python bench/burst.py` works without PYTHONPATH too
        sys.path.insert(0, _path)

import httpx  # noqa: E402
from rpc_vs_starlette import cpu_seconds, start  # type: ignore[import-not-found, unused-ignore]  # noqa: E402

from telefunc.config import ChannelSettings  # noqa: E402
from telefunc.wire.frames import Tag, encode_frame, encode_json  # noqa: E402

KINDS = ("telefunc", "websockets", "socketio")
LABELS = {
    "telefunc": "telefunc BroadcastChannel",
    "websockets": "raw websockets.broadcast",
    "socketio": "python-socketio (room emit)",
}
#: How long the deliveries may make no progress at all before a run gives up on the missing ones.
STALL_SECONDS = 20.0
#: Hard ceiling on one burst, whatever happens.
BURST_TIMEOUT = 600.0
#: Ceiling on connecting the subscribers of one client process.
CONNECT_TIMEOUT = 300.0
#: Seconds between a subscriber's PINGs: what the official client does, every ``pingInterval``
#: the server advertises (5 s by default; a server drops a wire without PING for twice that).
PING_EVERY = ChannelSettings().ping_interval
SIO_MSG_PREFIX = b'42["msg","'


# --- a minimal WebSocket client --------------------------------------------------------------


class Wire(asyncio.Protocol):
    """One client WebSocket: HTTP upgrade, then unmasked server frames parsed as they arrive.

    Client frames are masked with an all-zero key (legal framing; the key's randomness guards
    browsers against proxy cache poisoning, which loopback benchmarks do not need), so sending
    costs only a header. Pings are answered at once; every byte is read as soon as it arrives.
    """

    def __init__(self, host: str, path: str, on_message: Callable[[Wire, bytes], None]) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.on_message = on_message
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.fragments: list[bytes] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.upgraded.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            first = buf[pos]
            payload = bytes(buf[pos + head : end])
            pos = end
            opcode = first & 0x0F
            if opcode in (1, 2):
                if first & 0x80:
                    self.on_message(self, payload)
                else:
                    self.fragments = [payload]
            elif opcode == 0 and self.fragments is not None:
                self.fragments.append(payload)
                if first & 0x80:
                    whole, self.fragments = b"".join(self.fragments), None
                    self.on_message(self, whole)
            elif opcode == 9:
                self.send(0xA, payload)
            elif opcode == 8:
                self.send(0x8, payload[:2])
                self.closed = True
        del buf[:pos]

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one final frame (1 text, 2 binary, 8 close, 0xA pong)."""
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        self.transport.write(head + b"\x00\x00\x00\x00" + payload)

    def close(self) -> None:
        """Close cleanly (code 1000: for telefunc, the client is gone for good)."""
        self.send(0x8, (1000).to_bytes(2, "big"))
        if self.transport is not None:
            self.transport.close()


async def open_wire(origin: str, path: str, on_message: Callable[[Wire, bytes], None]) -> Wire:
    """Connect and upgrade; frames are passed to ``on_message`` from the first one on."""
    host, port = origin.rsplit("//", 1)[1].split(":")
    loop = asyncio.get_running_loop()
    _, wire = await loop.create_connection(
        lambda: Wire(f"{host}:{port}", path, on_message), host, int(port)
    )
    await asyncio.wait_for(wire.upgraded, 30)
    return wire


# --- subscribers -----------------------------------------------------------------------------


class Tally:
    """What one subscriber received, checked against the burst as messages arrive."""

    __slots__ = ("disorder", "distinct", "done_at", "dups", "highest", "last_at", "seen", "total")

    def __init__(self, messages: int, total: list[int]) -> None:
        self.seen = bytearray(messages)
        self.distinct = self.dups = self.disorder = 0
        self.highest = -1
        self.done_at = self.last_at = 0.0
        self.total = total  # shared one-item counter of distinct deliveries in this process

    def record(self, index: int) -> None:
        """Count message ``index`` of the burst."""
        if index >= len(self.seen) or self.seen[index]:
            self.dups += 1
            return
        self.seen[index] = 1
        if index < self.highest:
            self.disorder += 1
        else:
            self.highest = index
        self.distinct += 1
        self.total[0] += 1
        self.last_at = time.monotonic()
        if self.distinct == len(self.seen):
            self.done_at = self.last_at


async def telefunc_subscriber(http: httpx.AsyncClient, origin: str, key: str, tally: Tally) -> Wire:
    """Join ``key`` like the official client: call ``join``, RECONCILE, BROADCAST_SUB."""
    body = json.dumps({"file": "/bench.telefunc.py", "name": "join", "args": [key]})
    ret = json.loads((await http.post(origin + "/_telefunc", content=body)).text)["ret"]
    channel_id = json.loads(ret.split(":", 1)[1])["channelId"]
    reconciled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_message(wire: Wire, frame: bytes) -> None:
        tag = frame[0]
        if tag == Tag.PUBLISH:
            # payload: "<broadcast seq>,<timestamp>\n" + JSON string "\"<index>:xxx...\""
            newline = frame.find(b"\n", 7)
            tally.record(int(frame[newline + 2 : frame.find(b":", newline)]))
        elif tag == Tag.RECONCILED and not reconciled.done():
            reconciled.set_result(None)
        elif tag == Tag.PONG and not pong.done():
            pong.set_result(None)
        elif tag == Tag.BDP_PING:
            wire.send(2, encode_frame(Tag.BDP_PING_ACK, int.from_bytes(frame[1:3], "little")))

    wire = await open_wire(origin, "/_telefunc", on_message)
    reconcile = {"open": [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]}
    wire.send(2, encode_json(Tag.RECONCILE, reconcile))
    await asyncio.wait_for(reconciled, 30)
    wire.send(2, encode_frame(Tag.BROADCAST_SUB, 0, 0, b"\x00"))
    # Frames on one connection are handled in order: the PONG means the SUB is in effect.
    wire.send(2, encode_frame(Tag.PING))
    await asyncio.wait_for(pong, 30)
    return wire


async def websockets_subscriber(origin: str, tally: Tally) -> Wire:
    """Send ``sub``, wait for ``ok``; every later message is ``<index>:xxx...``."""
    ok: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_message(wire: Wire, message: bytes) -> None:
        if ok.done():
            tally.record(int(message[: message.find(b":")]))
        elif message == b"ok":
            ok.set_result(None)

    wire = await open_wire(origin, "/", on_message)
    wire.send(1, b"sub")
    await asyncio.wait_for(ok, 30)
    return wire


async def socketio_subscriber(origin: str, room: str, tally: Tally) -> Wire:
    """Engine.IO v4 / Socket.IO v5 over WebSocket by hand; join ``room`` via the ``sub`` event."""
    ok: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_message(wire: Wire, packet: bytes) -> None:
        if packet.startswith(SIO_MSG_PREFIX):
            end = packet.find(b":", len(SIO_MSG_PREFIX))
            tally.record(int(packet[len(SIO_MSG_PREFIX) : end]))
        elif packet == b"2":  # Engine.IO ping: answer or the server closes the connection
            wire.send(1, b"3")
        elif packet.startswith(b"0{"):  # Engine.IO open: connect to the default namespace
            wire.send(1, b"40")
        elif packet.startswith(b"40"):  # Socket.IO connected: join the room
            wire.send(1, b'42["sub",' + json.dumps(room).encode() + b"]")
        elif packet == b'42["ok"]' and not ok.done():
            ok.set_result(None)

    wire = await open_wire(origin, "/socket.io/?EIO=4&transport=websocket", on_message)
    await asyncio.wait_for(ok, 30)
    return wire


# --- a client process ------------------------------------------------------------------------


def client_process(
    pipe: Connection, kind: str, origin: str, key: str, subscribers: int, messages: int
) -> None:
    """Entry point of one client process: connect, report ready, count the burst, report."""
    asyncio.run(_client(pipe, kind, origin, key, subscribers, messages))


async def _client(
    pipe: Connection, kind: str, origin: str, key: str, subscribers: int, messages: int
) -> None:
    total = [0]
    tallies = [Tally(messages, total) for _ in range(subscribers)]
    gate = asyncio.Semaphore(32)  # a connect storm overflows the servers' accept backlog
    async with httpx.AsyncClient(timeout=30) as http:

        async def connect(tally: Tally) -> Wire:
            async with gate:
                if kind == "telefunc":
                    return await telefunc_subscriber(http, origin, key, tally)
                if kind == "websockets":
                    return await websockets_subscriber(origin, tally)
                return await socketio_subscriber(origin, key, tally)

        wires = await asyncio.wait_for(
            asyncio.gather(*(connect(t) for t in tallies)), CONNECT_TIMEOUT
        )
    pinger = asyncio.create_task(_ping(wires)) if kind == "telefunc" else None
    loop = asyncio.get_running_loop()
    pipe.send("ready")
    await loop.run_in_executor(None, pipe.recv)  # the parent is about to trigger the burst
    cpu_before, started = time.process_time(), time.monotonic()
    expected, progress, progress_at = subscribers * messages, -1, started
    while total[0] < expected:
        now = time.monotonic()
        if total[0] != progress:
            progress, progress_at = total[0], now
        if now - progress_at > STALL_SECONDS or now - started > BURST_TIMEOUT:
            break
        await asyncio.sleep(0.05)  # polling a counter the protocol callbacks advance
    busy = time.process_time() - cpu_before
    if pinger:
        pinger.cancel()
    report = [
        (t.distinct, t.dups, t.disorder, t.done_at, t.last_at, w.closed)
        for t, w in zip(tallies, wires, strict=True)
    ]
    pipe.send((report, busy))
    for wire in wires:
        wire.close()


async def _ping(wires: list[Wire]) -> None:
    ping = encode_frame(Tag.PING)
    while True:
        for wire in wires:
            wire.send(2, ping)
        await asyncio.sleep(PING_EVERY)


# --- the parent: server, warm-up, trigger, figures --------------------------------------------


@dataclass
class Result:
    """The figures of one server's burst."""

    kind: str
    subscribers: int
    messages: int
    received: int = 0
    duplicates: int = 0
    disorder: int = 0
    disconnected: int = 0
    complete: int = 0
    cpu_us_per_delivery: float = 0.0
    seconds_to_last: float | None = None
    rss_kib_per_conn: float = 0.0
    client_busy: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Messages some subscriber never received."""
        return self.subscribers * self.messages - self.received

    @property
    def lost_percent(self) -> float:
        """``lost`` as a percentage of all deliveries."""
        return 100.0 * self.lost / (self.subscribers * self.messages)


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB, from /proc/<pid>/status (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def wait_port(origin: str) -> None:
    host, port = origin.rsplit("//", 1)[1].split(":")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # the child process is still starting
    raise RuntimeError(f"{origin} did not start")


def warm_up(kind: str, origin: str, key: str) -> None:
    """One connection of each kind the subscribers use, closed again, so that lazy imports and
    first-use caches land in the "before" RSS rather than in the per-connection figure."""
    from websockets.sync.client import connect

    ws_origin = origin.replace("http", "ws")
    if kind == "telefunc":
        body = json.dumps({"file": "/bench.telefunc.py", "name": "join", "args": [key + "-warm"]})
        ret = json.loads(httpx.post(origin + "/_telefunc", content=body, timeout=30).text)["ret"]
        channel_id = json.loads(ret.split(":", 1)[1])["channelId"]
        with connect(ws_origin + "/_telefunc", compression=None, open_timeout=30) as ws:
            reconcile = {"open": [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]}
            ws.send(encode_json(Tag.RECONCILE, reconcile))
            while ws.recv(timeout=30)[0] != Tag.RECONCILED:
                pass
            ws.send(encode_frame(Tag.BROADCAST_SUB, 0, 0, b"\x00"))
            ws.send(encode_frame(Tag.PING))
            while ws.recv(timeout=30)[0] != Tag.PONG:
                pass
    elif kind == "websockets":
        with connect(ws_origin, compression=None, open_timeout=30) as ws:
            ws.ping().wait(30)
    else:
        with _socketio_control(ws_origin) as ws:
            ws.send('42["sub",' + json.dumps(key + "-warm") + "]")
            _socketio_until(ws, '42["ok"]')


@contextlib.contextmanager
def _socketio_control(ws_origin: str) -> Iterator[Any]:
    """A sync Socket.IO connection to the default namespace, by hand."""
    from websockets.sync.client import connect

    url = ws_origin + "/socket.io/?EIO=4&transport=websocket"
    with connect(url, compression=None, open_timeout=30) as ws:
        assert str(ws.recv(timeout=30)).startswith("0{")
        ws.send("40")
        assert str(ws.recv(timeout=30)).startswith("40")
        yield ws


def _socketio_until(ws: Any, wanted: str) -> None:
    while (packet := ws.recv(timeout=BURST_TIMEOUT)) != wanted:
        if packet == "2":
            ws.send("3")


def trigger(kind: str, origin: str, key: str, messages: int, size: int) -> None:
    """Have the server publish the burst; returns when the server's publish loop is done."""
    from websockets.sync.client import connect

    ws_origin = origin.replace("http", "ws")
    if kind == "telefunc":
        body = json.dumps(
            {"file": "/bench.telefunc.py", "name": "blast", "args": [key, messages, size]}
        )
        httpx.post(origin + "/_telefunc", content=body, timeout=BURST_TIMEOUT).raise_for_status()
    elif kind == "websockets":
        with connect(ws_origin, compression=None, open_timeout=30) as ws:
            ws.send(f"blast {messages} {size}")
            assert ws.recv(timeout=BURST_TIMEOUT) == "done"
    else:
        with _socketio_control(ws_origin) as ws:
            ws.send("42" + json.dumps(["blast", key, messages, size]))
            _socketio_until(ws, '42["done"]')


def measure(kind: str, subscribers: int, messages: int, size: int, client_procs: int) -> Result:
    """Run one server through connect, idle-RSS, burst and collect; the server is stopped after."""
    result = Result(kind, subscribers, messages)
    proc: subprocess.Popen[bytes]
    proc, origin = start(kind)
    ctx = multiprocessing.get_context("spawn")  # no inherited event loop or threads
    clients: list[tuple[Any, Connection]] = []
    try:
        wait_port(origin)
        key = f"burst-{uuid.uuid4()}"
        warm_up(kind, origin, key)
        rss_before = rss_kib(proc.pid)
        shares = [subscribers // client_procs] * client_procs
        for i in range(subscribers % client_procs):
            shares[i] += 1
        for share in filter(None, shares):
            ours, theirs = ctx.Pipe()
            child = ctx.Process(
                target=client_process, args=(theirs, kind, origin, key, share, messages)
            )
            child.start()
            clients.append((child, ours))
        for child, pipe in clients:
            if _receive(child, pipe, CONNECT_TIMEOUT + 30) != "ready":
                raise RuntimeError(f"{kind}: a client process did not connect its subscribers")
        result.rss_kib_per_conn = (rss_kib(proc.pid) - rss_before) / subscribers
        for _, pipe in clients:
            pipe.send("go")
        cpu_before, started = cpu_seconds(proc.pid), time.monotonic()
        trigger(kind, origin, key, messages, size)
        reports = []
        for child, pipe in clients:
            reports.append(_receive(child, pipe, BURST_TIMEOUT + 60))
        cpu = cpu_seconds(proc.pid) - cpu_before
        done_at: list[float] = []
        busy = 0.0
        wall = 0.0
        for report, client_busy in reports:
            busy += client_busy
            for distinct, dups, disorder, done, last, closed in report:
                result.received += distinct
                result.duplicates += dups
                result.disorder += disorder
                result.disconnected += closed
                if done:
                    done_at.append(done)
                wall = max(wall, last - started)
        result.complete = len(done_at)
        if len(done_at) == subscribers:
            result.seconds_to_last = max(done_at) - started
        result.cpu_us_per_delivery = cpu / max(result.received, 1) * 1e6
        result.client_busy = busy / max(wall, 1e-9) / len(clients)
        return result
    finally:
        for child, _ in clients:
            child.join(30)
            if child.is_alive():
                child.kill()
                child.join()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _receive(child: Any, pipe: Connection, timeout: float) -> Any:
    """The next message from a client process; raises if it dies or stays silent."""
    deadline = time.monotonic() + timeout
    while not pipe.poll(0.2):
        if not child.is_alive():
            raise RuntimeError(f"client process {child.pid} died (exit code {child.exitcode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"client process {child.pid} silent for {timeout:.0f} s")
    return pipe.recv()


def print_table(results: list[Result], size: int, client_procs: int) -> None:
    first = results[0]
    deliveries = first.subscribers * first.messages
    print(
        f"burst: {first.subscribers} subscribers x {first.messages} messages of {size} chars"
        f" = {deliveries:,} deliveries; {client_procs} client processes"
    )
    head = (
        f"{'server':<28} {'received':>10} {'lost %':>7} {'dups':>5} {'order':>6}"
        f" {'dropped':>8} {'CPU µs/dlv':>10} {'last at s':>9} {'KiB/conn':>8} {'clients':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        last = f"{r.seconds_to_last:9.2f}" if r.seconds_to_last is not None else f"{'never':>9}"
        print(
            f"{LABELS[r.kind]:<28} {r.received:>10,} {r.lost_percent:>7.2f} {r.duplicates:>5}"
            f" {r.disorder:>6} {r.disconnected:>8} {r.cpu_us_per_delivery:>10.1f} {last}"
            f" {r.rss_kib_per_conn:>8.1f} {r.client_busy:>6.0%}"
        )
    by_kind = {r.kind: r for r in results}
    ours, base = by_kind.get("telefunc"), by_kind.get("websockets")
    if ours and base and base.cpu_us_per_delivery > 0:
        cpu = ours.cpu_us_per_delivery / base.cpu_us_per_delivery
        rss = ours.rss_kib_per_conn / base.rss_kib_per_conn if base.rss_kib_per_conn > 0 else 0
        print(
            f"telefunc / raw websockets: CPU per delivery {cpu:.2f}, RSS per connection {rss:.2f}"
        )
    print(
        "dropped = subscriber connections the server closed; last at = seconds from the trigger"
        " until the last subscriber had all messages (never = some never did); clients = how"
        " busy the client processes were (near 100% would mean the clients are the bottleneck)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--servers", default=",".join(KINDS), help="comma-separated, of " + str(KINDS)
    )
    args = parser.parse_args()
    kinds = [k for k in args.servers.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown servers: {sorted(unknown)}")
    results = []
    for kind in kinds:
        results.append(measure(kind, args.subscribers, args.messages, args.size, args.client_procs))
        print(f"  ({kind} done)", file=sys.stderr, flush=True)
    print_table(results, args.size, args.client_procs)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"(took {time.perf_counter() - started:.1f} s)")
