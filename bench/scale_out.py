"""RPC throughput and broadcast fan-out with 1, 2 and 3 processes behind HAProxy.

Runs examples/scale-out/run.sh (redis-server, N ``telefunc serve --redis --server-id sK`` of
bench/app, HAProxy) on ephemeral ports for N = 1, 2, 3 and measures through HAProxy:

* **RPC**: calls per second of ``add(1, 2)`` from 2 client processes with 16 keep-alive
  connections each, for ``--seconds``; the clients send no cookie, so HAProxy spreads the calls
  round robin.
* **Fan-out**: deliveries per second of one ``blast`` of ``--messages`` publishes to a key with
  ``--subscribers`` WebSocket subscribers (in 2 client processes), each pinned to its process
  by its session token; the publishes go through Redis to every process.

Prints each figure and its ratio to N = 1. On a 2-core machine the load generators, HAProxy,
Redis and the processes share two cores, so the ratio cannot pass ~2 and is usually lower.

    PYTHONPATH=src:bench .venv/bin/python bench/scale_out.py [--workers 1,2,3] [--seconds 5]
        [--subscribers 60] [--messages 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from telefunc.wire.frames import Tag, decode_frame, encode_frame, encode_json

REPO = Path(__file__).resolve().parent.parent
RUN_SH = REPO / "examples" / "scale-out" / "run.sh"
APP = REPO / "bench" / "app"
FILE = "/bench.telefunc.py"
CLIENT_PROCS = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_cluster(workers: int, run_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """run.sh with ``workers`` processes of bench/app; returns it and HAProxy's URL once ready."""
    port = _free_port()
    ports = ",".join(str(_free_port()) for _ in range(workers))
    argv = ["bash", str(RUN_SH), "--no-install", "--app", str(APP), "--workers", str(workers)]
    argv += ["--port", str(port), "--worker-ports", ports, "--redis-port", str(_free_port())]
    proc = subprocess.Popen(
        [*argv, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ready: "):
            return proc, f"http://127.0.0.1:{port}"
    raise RuntimeError(f"run.sh exited with {proc.wait()}")


def stop_cluster(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _cookieless() -> httpx.AsyncClient:
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(timeout=60, cookies=jar)


def _call_body(name: str, *args: object) -> str:
    return json.dumps({"file": FILE, "name": name, "args": list(args)})


# ── RPC ──────────────────────────────────────────────────────────────────


async def _rpc_client(url: str, seconds: float, concurrency: int) -> int:
    """Calls over ``concurrency`` keep-alive connections, one write per request (httpx's own
    per-request CPU would make the client the bottleneck on 2 cores)."""
    host, port = url.rsplit("//", 1)[1].split(":")
    body = _call_body("add", 1, 2).encode()
    request = (
        b"POST /_telefunc HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (host.encode(), port.encode(), len(body), body)
    )
    done = 0
    deadline = time.monotonic() + seconds

    async def connection() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            assert await reader.readexactly(length) == b'{"ret":3}'
            done += 1
        writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return done


def _rpc_child(url: str, seconds: float, concurrency: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_rpc_client(url, seconds, concurrency)))


def measure_rpc(url: str, seconds: float) -> float:
    """Calls per second through HAProxy from CLIENT_PROCS processes."""
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [
        multiprocessing.Process(target=_rpc_child, args=(url, seconds, 16, out))
        for _ in range(CLIENT_PROCS)
    ]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


# ── fan-out ──────────────────────────────────────────────────────────────


async def _subscribers(url: str, key: str, count: int, messages: int, ready, go, out) -> None:  # type: ignore[no-untyped-def]
    expected = count * messages
    received = 0
    all_in = asyncio.Event()
    sockets = []
    async with _cookieless() as http:
        for _ in range(count):
            reply = await http.post(url + "/_telefunc", content=_call_body("join", key))
            token = reply.headers["x-telefunc-session"]  # pins the WebSocket to that process
            channel_id = json.loads(reply.json()["ret"].split(":", 1)[1])["channelId"]
            ws = await connect(
                url.replace("http", "ws") + f"/_telefunc?session={token}", max_size=None
            )
            open_ = {"open": [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]}
            await ws.send(encode_json(Tag.RECONCILE, open_))
            while decode_frame(await ws.recv()).tag != Tag.RECONCILED:
                pass
            await ws.send(encode_frame(Tag.BROADCAST_SUB, 0, 0, b"\x00"))
            sockets.append(ws)

    async def pump(ws) -> None:  # type: ignore[no-untyped-def]
        nonlocal received
        async for frame in ws:
            if decode_frame(frame).tag == Tag.PUBLISH:
                received += 1
                if received == expected:
                    all_in.set()

    async def ping(ws) -> None:  # type: ignore[no-untyped-def]
        while True:  # a telefunc connection without PING is dropped after 2 x ping_interval
            await ws.send(encode_frame(Tag.PING))
            await asyncio.sleep(2)

    tasks = [asyncio.create_task(f(ws)) for ws in sockets for f in (pump, ping)]
    ready.set()
    await asyncio.to_thread(go.wait)
    await asyncio.wait_for(all_in.wait(), 300)
    out.put(time.monotonic())
    for task in tasks:
        task.cancel()
    for ws in sockets:
        await ws.close()


def _subscriber_child(url, key, count, messages, ready, go, out) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(_subscribers(url, key, count, messages, ready, go, out))


def measure_fanout(url: str, subscribers: int, messages: int) -> float:
    """Deliveries per second of one blast to ``subscribers`` spread over the processes."""
    key = f"bench-{uuid.uuid4()}"
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    go = multiprocessing.Event()
    readies = [multiprocessing.Event() for _ in range(CLIENT_PROCS)]
    share = subscribers // CLIENT_PROCS
    procs = [
        multiprocessing.Process(
            target=_subscriber_child, args=(url, key, share, messages, ready, go, out)
        )
        for ready in readies
    ]
    for p in procs:
        p.start()
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("subscribers did not connect")
    go.set()
    started = time.monotonic()
    reply = httpx.post(
        url + "/_telefunc", content=_call_body("blast", key, messages, 64), timeout=300
    )
    assert reply.status_code == 200, reply.text
    finished = max(out.get(timeout=300) for _ in procs)
    for p in procs:
        p.join()
    return share * CLIENT_PROCS * messages / (finished - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--subscribers", type=int, default=60)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    results: dict[int, tuple[float, float]] = {}
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as run_dir:
            proc, url = start_cluster(workers, Path(run_dir))
            try:
                rpc = measure_rpc(url, args.seconds)
                fanout = measure_fanout(url, args.subscribers, args.messages)
            finally:
                stop_cluster(proc)
        results[workers] = (rpc, fanout)
        base_rpc, base_fan = results[min(results)]
        print(
            f"{workers} process(es): {rpc:8.0f} calls/s (x{rpc / base_rpc:.2f})   "
            f"{fanout:8.0f} deliveries/s (x{fanout / base_fan:.2f})",
            flush=True,
        )
    print(f"({os.cpu_count()} cores shared by the clients, HAProxy, Redis and the processes)")


if __name__ == "__main__":
    sys.exit(main())
