"""Which server stack ``telefunc serve`` should run: memory per connection and RPC cost for each.

Stacks: uvicorn with each WebSocket implementation (``telefunc``: our ``websockets-sansio``
subclass with the outgoing cap, :mod:`telefunc.asgi.ws_protocol`; uvicorn's own
``websockets``, ``websockets-sansio`` and ``wsproto``), each HTTP implementation (``h11``,
``httptools``) and event loop (``asyncio``, ``uvloop``); and granian (its ASGI interface, in
process). Every stack serves the same TelefuncApp (bench/app) with ``telefunc serve``'s limits
(:func:`telefunc.asgi.uvicorn_settings`).

By default the stacks are a sweep from ``telefunc serve``'s default, one dimension changed at a
time; ``--stacks all`` runs every combination (17 stacks, about half an hour on 2 busy cores).

Per stack, each on a fresh server process: KiB RSS per idle connection, bare and with one open
channel (bench/idle_memory.py), and server CPU per ``add`` call with 64 keep-alive clients and
the p99 latency they saw (bench/perf.py's RPC row). Medians of ``--runs``.

    pip install -e ".[dev,speedups]" granian wsproto
    PYTHONPATH=src:bench .venv/bin/python bench/stack.py [--connections 1000] [--runs 1]
        [--stacks uvicorn:telefunc:httptools:uvloop,granian,...] [--quick] [--src DIR]

``--src`` runs the servers from another telefunc source tree (e.g. ``git archive`` of an older
commit): the before/after of a change.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (str(HERE), str(HERE.parent / "src")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import idle_memory  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
from burst import wait_port  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
from perf import Server, rpc_run  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
from rpc_vs_starlette import free_port  # type: ignore[import-not-found, unused-ignore]  # noqa: E402

WS = ("telefunc", "websockets", "websockets-sansio", "wsproto")
HTTP = ("h11", "httptools")
LOOP = ("asyncio", "uvloop")
ALL_STACKS = [f"uvicorn:{w}:{h}:{lp}" for w, h, lp in itertools.product(WS, HTTP, LOOP)]
ALL_STACKS.append("granian")
#: The default sweep: telefunc serve's default stack, then one dimension changed at a time
#: (WebSocket implementation; HTTP parser and event loop), then granian.
DEFAULT = "uvicorn:telefunc:httptools:uvloop"
SWEEP = [
    DEFAULT,
    *(f"uvicorn:{w}:httptools:uvloop" for w in WS[1:]),
    "uvicorn:telefunc:httptools:asyncio",
    "uvicorn:telefunc:h11:uvloop",
    "uvicorn:telefunc:h11:asyncio",
    "granian",
]


def serve(stack: str, port: int) -> None:
    """Run one stack in this process (the child side)."""
    from telefunc.asgi import TelefuncApp

    app = TelefuncApp(HERE / "app")
    if stack == "granian":
        from granian.constants import Interfaces
        from granian.server.embed import Server as Granian

        # Every open WebSocket is a request in flight: granian's default backpressure
        # (backlog / workers = 128) would leave the rest waiting.
        server = Granian(
            app,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            backlog=16384,
            backpressure=16384,
        )
        asyncio.run(server.serve())
        return
    import uvicorn

    from telefunc.asgi.uvicorn_settings import uvicorn_settings

    _, ws, http, loop = stack.split(":")
    settings = uvicorn_settings()
    settings["ws"] = ws
    if ws == "telefunc":
        from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol

        settings["ws"] = TelefuncWebSocketProtocol
    settings["http"] = http
    if http == "httptools":
        try:  # what telefunc serve runs: uvicorn's, with a request head cap
            from telefunc.asgi.http_protocol import TelefuncHttpToolsProtocol

            settings["http"] = TelefuncHttpToolsProtocol
        except ImportError:  # an older source tree (--src)
            pass
    settings["loop"] = loop
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **settings)


def start(stack: str, src: str | None = None) -> Server:
    port = free_port()
    argv = [sys.executable, __file__, "--serve", stack, str(port)]
    proc = subprocess.Popen([*argv, "--src", src] if src else argv)
    origin = f"http://127.0.0.1:{port}"
    try:
        wait_port(origin)
    except Exception:
        proc.kill()
        raise
    return Server("telefunc", proc, origin)


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def measure(
    stack: str, connections: int, rpc_seconds: float, src: str | None = None
) -> dict[str, float]:
    out: dict[str, float] = {"bare_kib": float("nan"), "channel_kib": float("nan")}
    for channel, key in ((False, "bare_kib"), (True, "channel_kib")) if connections else ():
        server = start(stack, src)
        try:
            out[key] = idle_memory.measure(
                "telefunc", server.origin, server.proc.pid, connections, channel=channel
            )
        finally:
            stop(server)
    server = start(stack, src)
    try:
        rpc = asyncio.run(rpc_run(server, "add", rpc_seconds))
    finally:
        stop(server)
    out["cpu_us"], out["p99_ms"] = rpc["cpu_us"], rpc["p99_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connections", type=int, default=1000, help="per memory set (0: RPC only)"
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--stacks",
        default="",
        help="comma-separated, or 'all' for every combination (default: "
        "the default stack, then one dimension changed at a time, then granian)",
    )
    parser.add_argument("--quick", action="store_true", help="100 connections, 1 s of RPC")
    parser.add_argument(
        "--src", help="the telefunc source tree the servers run (default: this checkout's src/)"
    )
    parser.add_argument("--serve", nargs=2, metavar=("STACK", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        if args.src:
            sys.path.insert(0, args.src)
            for name in [m for m in sys.modules if m == "telefunc" or m.startswith("telefunc.")]:
                del sys.modules[name]
        serve(args.serve[0], int(args.serve[1]))
        return
    stacks = list(ALL_STACKS) if args.stacks == "all" else [s for s in args.stacks.split(",") if s]
    stacks = stacks or list(SWEEP)
    if "granian" in stacks and importlib.util.find_spec("granian") is None:
        print("granian is not installed (pip install -e '.[bench]'): left out", file=sys.stderr)
        stacks.remove("granian")
    connections = min(100, args.connections) if args.quick else args.connections
    rpc_seconds = 1.0 if args.quick else 4.0
    started = time.perf_counter()
    figures: dict[str, list[dict[str, float]]] = {s: [] for s in stacks}
    for _ in range(args.runs):
        for stack in stacks:
            figures[stack].append(measure(stack, connections, rpc_seconds, args.src))
            print(f"  {stack}: {figures[stack][-1]}", file=sys.stderr, flush=True)
    print(f"\nidle connections per memory set: {connections:,}; medians of {args.runs} run(s)\n")
    print("| stack | KiB/bare connection | KiB/connection, one channel | µs CPU/call | p99 ms |")
    print("|---|---|---|---|---|")
    for stack in stacks:
        med = {k: statistics.median(f[k] for f in figures[stack]) for k in figures[stack][0]}
        print(
            f"| {stack} | {med['bare_kib']:.1f} | {med['channel_kib']:.1f} "
            f"| {med['cpu_us']:.0f} | {med['p99_ms']:.1f} |"
        )
    print(f"(took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
