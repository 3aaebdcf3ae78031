"""Every row of the performance table (issue 19), against baselines measured in the same run.

Servers, each a child process on 127.0.0.1: ours (``telefunc``: TelefuncApp on uvicorn with
``telefunc serve``'s settings; uvloop/httptools/orjson when installed), plain Starlette on the
same uvicorn (RPC rows), raw ``websockets`` (channel and fan-out rows) and the official
telefunc 0.2.23 Node server from js/interop/node_server (every row but burst). One load
generator speaks the Telefunc wire protocol to all of them: a hand-rolled HTTP/1.1 keep-alive
client and the minimal WebSocket client of burst.py, so the client costs little and the same
for every server.

Rows (the server's CPU time, user + system from /proc, divided by the operations it did):

* ``rpc-add`` / ``rpc-echo``: 64 concurrent keep-alive connections calling ``add(a, b)`` or
  ``echo(~100 B object)``: server CPU per call and the p99 latency the client saw;
* ``roundtrip``: one socket, one channel, send a message and wait for the echo: round trips/s;
* ``oneway``: one socket, one channel, messages in batches of 50, the last one ack-requesting
  (raw websockets: 49 and a ping), so the client stays within the server's 100-message window:
  server CPU per message;
* ``paced``: 1,000 subscribers of one broadcast key over 2 client processes, one publish every
  200 ms: p99 of publish-request-to-delivery latency and server CPU per delivery, with loss,
  duplicates and reordering counted (must be 0);
* ``burst``: bench/burst.py's 1,000 subscribers x 1,000 messages (telefunc and raw websockets):
  deliveries/s, server CPU per delivery, loss, and RSS per idle subscribed connection;
* ``mem-bare`` / ``mem-channel``: bench/idle_memory.py's server RSS per idle WebSocket at 5,000
  connections, bare (upgraded, PINGs only) and with one open channel each, a fresh server per
  set (raw websockets: one set serves both rows, its socket being the channel); one run by
  default (``--memory-runs 3`` for medians), as 5,000 connections take a while to open.

Each figure is the median of 3 runs (memory rows: ``--memory-runs``); the runs are interleaved
(server A, B, C, A, B, C ...).

    pip install -e ".[dev,speedups]"   # uvloop, httptools, orjson: what `telefunc serve` picks up
    PYTHONPATH=src:bench .venv/bin/python bench/perf.py [--quick] [--rows rpc-add,oneway,mem,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent / "src")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import burst  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
import idle_memory  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
from burst import Wire, open_wire, wait_port  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
from rpc_vs_starlette import cpu_seconds, start  # type: ignore[import-not-found, unused-ignore]  # noqa: E402

from telefunc.wire.frames import Tag, decode_frame, encode_frame, encode_json, encode_u32_frame  # noqa: E402
from telefunc.wire.serializer import parse, stringify  # noqa: E402

JS_DIR = HERE.parent / "js"
NODE_SERVER = JS_DIR / "interop" / "node_server" / "server.mjs"
RUNS = 3
CONCURRENCY = 64

#: Per server kind: the telefunction files the scenarios call (ours and the Node mirrors).
FILES = {
    "telefunc": {"rpc": "/bench.telefunc.py", "chan": "/bench.telefunc.py"},
    "node": {
        "rpc": "/calc.telefunc.mjs",
        "chan": "/chat.telefunc.mjs",
        "room": "/room.telefunc.mjs",
    },
    "starlette": {"rpc": "/bench.telefunc.py"},
}
#: The ~100-byte value the echo row sends.
ECHO_VALUE = {
    "id": 12345,
    "name": "Ada Lovelace",
    "tags": ["math", "engines"],
    "ok": True,
    "note": "x" * 30,
}


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    kind: str
    proc: subprocess.Popen[bytes]
    origin: str

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


def _start_node() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        ["node", "--no-warnings", str(NODE_SERVER)],
        cwd=JS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the Node server did not start")
    return proc, f"http://127.0.0.1:{json.loads(line)['port']}"


@contextmanager
def servers(kinds: list[str]) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for kind in kinds:
            proc, origin = _start_node() if kind == "node" else start(kind)
            started[kind] = Server(kind, proc, origin)
        for server in started.values():
            wait_port(server.origin)
        yield started
    finally:
        for server in started.values():
            server.proc.terminate()
            server.proc.wait()


# --- RPC over HTTP/1.1 keep-alive ------------------------------------------------------------


def _request(origin: str, file: str, name: str, args: list[Any]) -> bytes:
    host = origin.rsplit("//", 1)[1]
    body = json.dumps({"file": file, "name": name, "args": args}, separators=(",", ":")).encode()
    head = (
        f"POST /_telefunc HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """The body of one HTTP/1.1 200 response (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return await reader.readexactly(int(line[15:]))
    chunks = []
    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
    await reader.readexactly(2)
    return b"".join(chunks)


async def _http_worker(
    origin: str, requests: list[bytes], latencies: list[float], deadline: float
) -> int:
    host, port = origin.rsplit("//", 1)[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    done = 0
    try:
        while time.monotonic() < deadline:
            request = requests[done % len(requests)]
            sent = time.perf_counter()
            writer.write(request)
            body = await read_response(reader)
            if b'"ret"' not in body:
                raise RuntimeError(body.decode(errors="replace"))
            latencies.append(time.perf_counter() - sent)
            done += 1
    finally:
        writer.close()
    return done


async def rpc_run(server: Server, name: str, seconds: float) -> dict[str, float]:
    file = FILES[server.kind]["rpc"]
    if name == "add":
        requests = [_request(server.origin, file, "add", [i, i + 1]) for i in range(64)]
    else:
        requests = [_request(server.origin, file, "echo", [ECHO_VALUE])]
    warm: list[float] = []
    await asyncio.gather(
        *(_http_worker(server.origin, requests, warm, time.monotonic() + 0.3) for _ in range(8))
    )
    latencies: list[float] = []
    cpu = server.cpu()
    deadline = time.monotonic() + seconds
    calls = sum(
        await asyncio.gather(
            *(
                _http_worker(server.origin, requests, latencies, deadline)
                for _ in range(CONCURRENCY)
            )
        )
    )
    cpu = server.cpu() - cpu
    latencies.sort()
    return {
        "cpu_us": cpu / calls * 1e6,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "server_cpu_s": cpu,
    }


# --- one channel on one socket ---------------------------------------------------------------


class ChannelClient:
    """One WebSocket carrying one channel (ix 0), or bare messages for raw websockets."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.received = 0
        self.wire: Wire | None = None
        self.reconciled = asyncio.get_running_loop().create_future()
        self.seq = 0

    def on_frame(self, wire: Wire, frame: bytes) -> None:
        tag = frame[0]
        if tag == Tag.TEXT:
            self.received += 1
            if self.received % 25 == 0:  # keep the server's send credit topped up
                wire.send(2, encode_u32_frame(Tag.MSG_WINDOW, 0, 100))
            self.inbox.put_nowait(parse(decode_frame(frame).payload.decode()))
        elif tag == Tag.PONG or tag == Tag.ACK_RES:
            self.inbox.put_nowait("pong")
        elif tag == Tag.RECONCILED and not self.reconciled.done():
            self.reconciled.set_result(None)
        elif tag == Tag.BDP_PING:
            wire.send(2, encode_frame(Tag.BDP_PING_ACK, int.from_bytes(frame[1:3], "little")))

    def on_raw(self, wire: Wire, message: bytes) -> None:
        self.inbox.put_nowait(message.decode())

    async def open(self, server: Server, telefunction: str, args: list[Any]) -> None:
        if server.kind == "websockets":
            self.wire = await open_wire(server.origin, "/", self.on_raw)
            return
        host, port = server.origin.rsplit("//", 1)[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(_request(server.origin, FILES[server.kind]["chan"], telefunction, args))
        ret = json.loads(await read_response(reader))["ret"]
        writer.close()
        channel_id = json.loads(ret.split(":", 1)[1])["channelId"]
        self.wire = await open_wire(server.origin, "/_telefunc", self.on_frame)
        reconcile = {"open": [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]}
        self.wire.send(2, encode_json(Tag.RECONCILE, reconcile))
        await asyncio.wait_for(self.reconciled, 30)

    def send(self, kind: str, text: str, prefix: str, *, ack: bool = False) -> None:
        """One message; with ``ack`` the server answers (``pong`` / ACK_RES) once it is handled."""
        assert self.wire is not None
        if kind == "websockets":
            self.wire.send(1, b"ping" if ack else (prefix + text).encode())
        else:
            self.seq += 1
            tag = Tag.TEXT_ACK_REQ if ack else Tag.TEXT
            self.wire.send(2, encode_frame(tag, 0, self.seq, stringify(text).encode()))


async def roundtrip_run(server: Server, seconds: float) -> dict[str, float]:
    client = ChannelClient()
    await client.open(server, "welcome" if server.kind == "node" else "pingpong", [])
    cpu, started = server.cpu(), time.perf_counter()
    deadline, trips = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        text = f"m{trips}"
        client.send(server.kind, text, "e:")
        want = "e:" + text if server.kind == "websockets" else text
        while await asyncio.wait_for(client.inbox.get(), 10) != want:
            pass  # Node's `welcome` greets first
        trips += 1
    elapsed, cpu = time.perf_counter() - started, server.cpu() - cpu
    assert client.wire is not None
    client.wire.close()
    return {"per_s": trips / elapsed, "cpu_us": cpu / trips * 1e6, "server_cpu_s": cpu}


async def oneway_run(server: Server, seconds: float) -> dict[str, float]:
    client = ChannelClient()
    if server.kind == "node":
        await client.open(server, "both_ways", [0])
    else:
        await client.open(server, "sink", [])
    text = "x" * 32
    cpu, started = server.cpu(), time.perf_counter()
    deadline, sent = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        for _ in range(49):
            client.send(server.kind, text, "s:")
        # The 50th asks for an answer (raw websockets: a ping): the server stays within one window
        # (the PING rate limit rules out a PING per batch).
        client.send(server.kind, text, "s:", ack=True)
        sent += 50 if server.kind != "websockets" else 49
        while await asyncio.wait_for(client.inbox.get(), 10) != "pong":
            pass
    elapsed, cpu = time.perf_counter() - started, server.cpu() - cpu
    assert client.wire is not None
    client.wire.close()
    return {"per_s": sent / elapsed, "cpu_us": cpu / sent * 1e6, "server_cpu_s": cpu}


# --- paced fan-out ---------------------------------------------------------------------------


def _paced_client(
    pipe: Connection, kind: str, origin: str, key: str, subscribers: int, messages: int
) -> None:
    asyncio.run(_paced_subscribers(pipe, kind, origin, key, subscribers, messages))


async def _paced_subscribers(
    pipe: Connection, kind: str, origin: str, key: str, subscribers: int, messages: int
) -> None:
    latencies: list[float] = []
    last = [-1] * subscribers
    bad = [0, 0]  # duplicates or reordered, closed

    def recorder(n: int) -> Callable[[str], None]:
        def record(who: str) -> None:
            index, _, sent = who.partition(":")
            latencies.append(time.monotonic() - float(sent))
            i = int(index)
            if i <= last[n]:
                bad[0] += 1
            last[n] = i

        return record

    gate = asyncio.Semaphore(32)
    room = FILES.get(kind, {}).get("room", "/bench.telefunc.py")
    name = "room" if kind == "node" else "join"

    async def connect(n: int) -> Wire:
        record = recorder(n)
        async with gate:
            if kind == "websockets":
                ok = asyncio.get_running_loop().create_future()

                def on_raw(wire: Wire, message: bytes) -> None:
                    if not ok.done():
                        ok.set_result(None)
                    else:
                        record(message.decode())

                wire = await open_wire(origin, "/", on_raw)
                wire.send(1, b"sub")
                await asyncio.wait_for(ok, 30)
                return wire
            host, port = origin.rsplit("//", 1)[1].split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(_request(origin, room, name, [key]))
            ret = json.loads(await read_response(reader))["ret"]
            writer.close()
            channel_id = json.loads(ret.split(":", 1)[1])["channelId"]
            ready = asyncio.get_running_loop().create_future()

            def on_frame(wire: Wire, frame: bytes) -> None:
                tag = frame[0]
                if tag == Tag.PUBLISH:
                    newline = frame.find(b"\n", 7)
                    record(json.loads(frame[newline + 1 :])["who"])
                elif tag in (Tag.RECONCILED, Tag.PONG) and not ready.done():
                    ready.set_result(None)
                elif tag == Tag.BDP_PING:
                    wire.send(
                        2, encode_frame(Tag.BDP_PING_ACK, int.from_bytes(frame[1:3], "little"))
                    )

            wire = await open_wire(origin, "/_telefunc", on_frame)
            reconcile = {"open": [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]}
            wire.send(2, encode_json(Tag.RECONCILE, reconcile))
            await asyncio.wait_for(ready, 30)
            wire.send(2, encode_frame(Tag.BROADCAST_SUB, 0, 0, b"\x00"))
            return wire

    wires = await asyncio.wait_for(asyncio.gather(*(connect(n) for n in range(subscribers))), 300)
    pinger = asyncio.create_task(burst._ping(wires)) if kind != "websockets" else None
    pipe.send("ready")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, pipe.recv)
    deadline = time.monotonic() + messages * 0.2 + 10
    while len(latencies) < subscribers * messages and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling a counter the protocol callbacks advance
    if pinger:
        pinger.cancel()
    bad[1] = sum(w.closed for w in wires)
    pipe.send((latencies, len(latencies), bad))
    for wire in wires:
        wire.close()


async def paced_run(server: Server, subscribers: int, messages: int) -> dict[str, float]:
    key = f"paced-{uuid.uuid4()}"
    ctx = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    for share in (subscribers // 2, subscribers - subscribers // 2):
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_paced_client, args=(child, server.kind, server.origin, key, share, messages)
        )
        proc.start()
        procs.append(proc)
        pipes.append(parent)
    loop = asyncio.get_running_loop()
    try:
        for pipe in pipes:
            assert await loop.run_in_executor(None, pipe.recv) == "ready"
        await asyncio.sleep(1)  # let the subscriptions settle (SUB has no answer)
        for pipe in pipes:
            pipe.send("go")
        host, port = server.origin.rsplit("//", 1)[1].split(":")
        cpu = server.cpu()
        if server.kind == "websockets":
            control = await open_wire(server.origin, "/", lambda wire, message: None)
        else:
            reader, writer = await asyncio.open_connection(host, int(port))
        room = FILES.get(server.kind, {}).get("room", "/bench.telefunc.py")
        name = "server_publish" if server.kind == "node" else "publish_one"
        started = time.monotonic()
        for i in range(messages):
            await asyncio.sleep(max(0.0, started + i * 0.2 - time.monotonic()))
            who = f"{i}:{time.monotonic()!r}"
            if server.kind == "websockets":
                control.send(1, ("pub " + who).encode())
            else:
                args: list[Any] = [key, 1, who] if server.kind == "node" else [key, who]
                writer.write(_request(server.origin, room, name, args))
                await read_response(reader)
        results = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
        cpu = server.cpu() - cpu
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    latencies = sorted(x for r in results for x in r[0])
    received = sum(r[1] for r in results)
    expected = subscribers * messages
    return {
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else float("nan"),
        "cpu_us": cpu / max(received, 1) * 1e6,
        "lost": expected - received,
        "disorder": sum(r[2][0] for r in results),
        "closed": sum(r[2][1] for r in results),
        "server_cpu_s": cpu,
    }


# --- the table -------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    kinds: list[str]
    metric: str
    unit: str
    goal: str  # e.g. "<= 1.0 x starlette"
    runner: Callable[[Server], Any]
    lower_is_better: bool = True
    figures: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def rows(quick: bool) -> list[Row]:
    rpc_s = 1.5 if quick else 5.0
    chan_s = 1.0 if quick else 4.0
    subs, msgs = (50, 5) if quick else (1000, 50)

    def rpc(name: str) -> Callable[[Server], Any]:
        return lambda server: rpc_run(server, name, rpc_s)

    paced = lambda server: paced_run(server, subs, msgs)  # noqa: E731
    three = ["starlette", "node", "telefunc"]
    ws3 = ["websockets", "node", "telefunc"]
    return [
        Row("rpc-add", three, "cpu_us", "µs CPU/call", "<= 1.0 x starlette", rpc("add")),
        Row("rpc-echo", three, "cpu_us", "µs CPU/call", "<= 1.0 x starlette", rpc("echo")),
        Row("rpc-p99", three, "p99_ms", "ms p99 (add)", "<= 1.2 x starlette", rpc("add")),
        Row(
            "roundtrip",
            ws3,
            "per_s",
            "round trips/s",
            ">= 1.0 x node, >= 0.95 x websockets",
            lambda s: roundtrip_run(s, chan_s),
            lower_is_better=False,
        ),
        Row(
            "oneway",
            ws3,
            "cpu_us",
            "µs CPU/message",
            "<= 1.0 x node",
            lambda s: oneway_run(s, chan_s),
        ),
        Row("paced-p99", ws3, "p99_ms", "ms p99 latency", "<= 1.5 x websockets", paced),
        Row("paced-cpu", ws3, "cpu_us", "µs CPU/delivery", "<= 1.5 x websockets", paced),
    ]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument(
        "--memory-runs",
        type=int,
        default=1,
        help="runs of the memory rows (default 1: about 2.5 minutes each; their figures move by "
        "under 0.5 KiB between runs, raw websockets' by about 1.5)",
    )
    args = parser.parse_args()
    wanted = [r for r in args.rows.split(",") if r]
    table = [
        r
        for r in rows(args.quick)
        if not wanted or r.name in wanted or r.name.split("-")[0] in wanted
    ]
    do_burst = not wanted or "burst" in wanted
    do_memory = not wanted or bool({"mem", "mem-bare", "mem-channel"} & set(wanted))
    started = time.perf_counter()
    results = asyncio.run(_measure(table, args.runs)) if table else {}
    burst_results = _burst(args.quick, args.runs) if do_burst else {}
    memory = _memory(args.quick, args.memory_runs) if do_memory else None
    print_table(table, results, burst_results, memory)
    print(f"(took {time.perf_counter() - started:.0f} s)")


async def _measure(table: list[Row], runs: int) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Each scenario ``runs`` times per server, servers interleaved; derived rows reuse runs."""
    out: dict[str, dict[str, list[dict[str, float]]]] = {}
    kinds = sorted({k for row in table for k in row.kinds})
    #: rows read from another row's runs: p99 comes from the rpc-add calls, CPU from paced runs
    same_runs = {"rpc-p99": "rpc-add", "paced-cpu": "paced-p99"}
    with servers(kinds) as running:
        for row in table:
            source = same_runs.get(row.name, row.name)
            if source in out:
                out[row.name] = out[source]
                continue
            per_kind: dict[str, list[dict[str, float]]] = {k: [] for k in row.kinds}
            for _ in range(runs):
                for kind in row.kinds:
                    per_kind[kind].append(await row.runner(running[kind]))
            out[row.name] = out[source] = per_kind
            print(f"  measured {source} ({time.strftime('%H:%M:%S')})", file=sys.stderr)
    return out


def _burst(quick: bool, runs: int) -> dict[str, list[Any]]:
    subs, msgs = (20, 20) if quick else (1000, 1000)
    out: dict[str, list[Any]] = {"websockets": [], "telefunc": []}
    for _ in range(runs):
        for kind in out:
            result = burst.measure(kind, subs, msgs, 64, 2)
            out[kind].append(result)
            shown = (result.lost, result.duplicates, result.disorder, result.disconnected)
            print(f"  burst {kind}: lost/dup/order/dropped {shown} {result.notes}", file=sys.stderr)
    return out


MEMORY_CONNECTIONS = 5000


def _memory(quick: bool, runs: int) -> tuple[int, dict[tuple[str, bool], list[float]]]:
    """Connections per set, and KiB per idle connection per (server kind, with a channel),
    ``runs`` fresh servers each."""
    n = 100 if quick else MEMORY_CONNECTIONS
    sets = [("websockets", False), ("node", False), ("telefunc", False)]
    sets += [("node", True), ("telefunc", True)]
    out: dict[tuple[str, bool], list[float]] = {key: [] for key in sets}
    for _ in range(runs):
        for kind, channel in sets:
            with servers([kind]) as running:
                server = running[kind]
                kib = idle_memory.measure(kind, server.origin, server.proc.pid, n, channel=channel)
            out[kind, channel].append(kib)
            print(f"  memory {kind} channel={channel}: {kib:.1f} KiB", file=sys.stderr)
    out["websockets", True] = out["websockets", False]
    return n, out


HEADER = (
    "| row | measure | raw websockets | Starlette/uvicorn | Node telefunc 0.2.23 | ours "
    "| ratio | goal | met |\n|---|---|---|---|---|---|---|---|---|"
)


def _line(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def print_table(
    table: list[Row],
    results: dict[str, dict[str, list[dict[str, float]]]],
    burst_results: dict[str, list[Any]],
    memory: tuple[int, dict[tuple[str, bool], list[float]]] | None = None,
) -> None:
    print()
    print(HEADER)
    for row in table:
        figures = results.get(row.name, {})
        med = {k: _median([f[row.metric] for f in figures.get(k, [])]) for k in row.kinds}
        ours = med["telefunc"]
        cells = [f"{med[k]:,.1f}" if k in med else "–" for k in ("websockets", "starlette", "node")]
        ratios, met = [], True
        for clause in row.goal.split(", "):
            bound, _, rest = clause.partition(" x ")
            op, limit = bound.split()
            ratio = ours / med[rest] if med[rest] else float("nan")  # --quick: too few ticks
            ratios.append(f"{ratio:.2f}x {rest}")
            met = met and (ratio <= float(limit) if op == "<=" else ratio >= float(limit))
        if row.name.startswith("paced"):
            lost = sum(int(f["lost"]) + int(f["disorder"]) for f in figures.get("telefunc", []))
            ratios.append(f"lost+reordered {lost}")
            met = met and lost == 0
        ratio_text = "; ".join(ratios)
        verdict = "yes" if met else "NO"
        print(_line(row.name, row.unit, *cells, f"{ours:,.1f}", ratio_text, row.goal, verdict))
    if burst_results:
        rate = {
            k: _median([r.received / r.seconds_to_last for r in v if r.seconds_to_last])
            for k, v in burst_results.items()
        }
        cpu = {k: _median([r.cpu_us_per_delivery for r in v]) for k, v in burst_results.items()}
        mem = {k: _median([r.rss_kib_per_conn for r in v]) for k, v in burst_results.items()}
        lost = sum(r.lost + r.duplicates + r.disorder for r in burst_results["telefunc"])
        ratio = rate["telefunc"] / rate["websockets"]
        print(
            _line(
                "burst",
                "deliveries/s (µs CPU each)",
                f"{rate['websockets']:,.0f} ({cpu['websockets']:.1f})",
                "–",
                "–",
                f"{rate['telefunc']:,.0f} ({cpu['telefunc']:.1f})",
                f"{ratio:.2f}x websockets; lost+dup+reordered {lost}",
                ">= 1.2 x websockets, 0 lost",
                "yes" if ratio >= 1.2 and lost == 0 else "NO",
            )
        )
        mratio = mem["telefunc"] / mem["websockets"]
        print(
            _line(
                "idle-memory",
                "KiB RSS per subscribed connection",
                f"{mem['websockets']:.1f}",
                "–",
                "–",
                f"{mem['telefunc']:.1f}",
                f"{mratio:.2f}x websockets",
                "<= 1.3 x websockets",
                "yes" if mratio <= 1.3 else "NO",
            )
        )
    if memory:
        connections, kib = memory
        for channel, name, measure, bound, base in (
            (False, "mem-bare", "KiB RSS per idle connection, no channel", 1.0, "node"),
            (True, "mem-channel", "KiB RSS per idle connection, one channel", 1.3, "websockets"),
        ):
            med = {k: _median(kib[k, channel]) for k in ("websockets", "node", "telefunc")}
            ratio = med["telefunc"] / med[base]
            other = "websockets" if base == "node" else "node"
            print(
                _line(
                    name,
                    f"{measure} (at {connections:,})",
                    f"{med['websockets']:.1f}",
                    "–",
                    f"{med['node']:.1f}",
                    f"{med['telefunc']:.1f}",
                    f"{ratio:.2f}x {base}; {med['telefunc'] / med[other]:.2f}x {other}",
                    f"<= {bound} x {base}",
                    "yes" if ratio <= bound else "NO",
                )
            )


if __name__ == "__main__":
    main()
