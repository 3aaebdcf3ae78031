"""Server CPU per telefunction call, as a ratio of a plain Starlette endpoint doing the same work.

Both servers run on uvicorn in child processes on 127.0.0.1; one httpx client process drives
them alternately (several rounds, best round kept) so machine noise hits both alike. The figure
is the server process's CPU time (user + system, from /proc) per call: the httpx client is
slower than either server, so calls per second mostly measure the client and are shown only
for information.

    .venv/bin/python bench/rpc_vs_starlette.py [--calls 2000] [--concurrency 8] [--rounds 3]
        [--metrics]   (also a telefunc server with metrics and event logs on: their overhead)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    proc = subprocess.Popen([sys.executable, str(HERE / "_servers.py"), kind, str(port)], env=env)
    return proc, f"http://127.0.0.1:{port}"


async def wait_ready(client: httpx.AsyncClient, url: str) -> None:
    for _ in range(200):
        try:
            await client.post(url + "/_telefunc", content=_body(1, 2))
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)  # polling a child process that is still starting
    raise RuntimeError(f"{url} did not start")


def _body(a: int, b: int) -> str:
    return json.dumps({"file": "/bench.telefunc.py", "name": "add", "args": [a, b]})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(
    client: httpx.AsyncClient, url: str, pid: int, calls: int, concurrency: int
) -> tuple[float, float]:
    """(calls per second, server CPU µs per call) for `calls` calls over `concurrency` workers."""
    per_worker = calls // concurrency

    async def worker(w: int) -> None:
        for i in range(per_worker):
            r = await client.post(url + "/_telefunc", content=_body(w, i))
            assert r.text == f'{{"ret":{w + i}}}', r.text

    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    done = per_worker * concurrency
    return done / elapsed, (cpu_seconds(pid) - cpu_before) / done * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--metrics", action="store_true", help="add telefunc with metrics on")
    args = parser.parse_args()
    kinds = (
        ("starlette", "telefunc", "telefunc+metrics") if args.metrics else ("starlette", "telefunc")
    )
    servers = {kind: start(kind) for kind in kinds}
    try:
        limits = httpx.Limits(max_connections=args.concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            for _, url in servers.values():
                await wait_ready(client, url)
            rate = {kind: 0.0 for kind in servers}
            cpu = {kind: float("inf") for kind in servers}
            for _ in range(args.rounds):
                for kind, (proc, url) in servers.items():
                    r, c = await run(client, url, proc.pid, args.calls, args.concurrency)
                    rate[kind], cpu[kind] = max(rate[kind], r), min(cpu[kind], c)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
    for kind in servers:
        print(f"{kind:>16}: {cpu[kind]:7.1f} µs server CPU per call, {rate[kind]:6.0f} calls/s")
    ratio = cpu["telefunc"] / cpu["starlette"]
    print(f"server CPU per call, telefunc / plain Starlette: {ratio:.2f}  (lower is better)")
    if "telefunc+metrics" in cpu:
        overhead = cpu["telefunc+metrics"] / cpu["telefunc"] - 1
        print(f"metrics on vs off: {overhead:+.1%} server CPU per call")


if __name__ == "__main__":
    asyncio.run(main())
