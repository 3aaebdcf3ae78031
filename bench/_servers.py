"""Servers the benchmarks start in child processes, so the client never shares their GIL."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def starlette_app() -> Any:
    """The baseline: a plain Starlette endpoint doing the same work as the telefunction."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def add(request: Request) -> PlainTextResponse:
        body = json.loads(await request.body())
        args = body["args"]
        ret = args[0] if body["name"] == "echo" else args[0] + args[1]
        return PlainTextResponse(json.dumps({"ret": ret}, separators=(",", ":")))

    return Starlette(routes=[Route("/_telefunc", add, methods=["POST"])])


def telefunc_app() -> Any:
    """Our ASGI app serving bench/app/*.telefunc.py."""
    from telefunc.asgi import TelefuncApp

    return TelefuncApp(Path(__file__).resolve().parent / "app")


def telefunc_metrics_app() -> Any:
    """The same app with Prometheus metrics and structured event logs on (`--metrics`)."""
    from telefunc.asgi import TelefuncApp
    from telefunc.server.observe import enable_event_log

    enable_event_log()
    return TelefuncApp(Path(__file__).resolve().parent / "app", metrics=True)


def socketio_app() -> Any:
    """The python-socketio baseline: ``AsyncServer(async_mode="asgi")`` on uvicorn.

    Event ``sub ROOM`` puts the sender in ROOM and answers ``ok``; ``blast ROOM COUNT SIZE``
    emits COUNT ``msg`` events of SIZE characters to ROOM, awaiting each ``emit`` (the idiomatic
    loop), then answers ``done``.
    """
    import socketio  # type: ignore[import-untyped]

    sio = socketio.AsyncServer(async_mode="asgi")

    @sio.on("sub")  # type: ignore[untyped-decorator]
    async def sub(sid: str, room: str) -> None:
        await sio.enter_room(sid, room)
        await sio.emit("ok", to=sid)

    @sio.on("blast")  # type: ignore[untyped-decorator]
    async def blast(sid: str, room: str, count: int, size: int) -> None:
        payload = "x" * size
        for i in range(count):
            await sio.emit("msg", f"{i}:{payload}", room=room)
        await sio.emit("done", to=sid)

    return socketio.ASGIApp(sio)


async def websockets_broadcast_server(port: int) -> None:
    """The raw ``websockets`` baseline: fan-out with ``websockets.broadcast``, echo and sink.

    A connection that sends ``sub`` becomes a subscriber; ``blast COUNT SIZE`` broadcasts COUNT
    messages of SIZE characters to every subscriber, each message text built once; ``pub TEXT``
    broadcasts TEXT once. ``e:...`` is sent back as is, ``s:...`` is only counted, ``ping`` is
    answered ``pong`` (after everything sent before it was handled).
    """
    import asyncio

    import websockets
    from websockets.asyncio.server import ServerConnection, serve

    subscribers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        try:
            sunk = 0
            async for message in ws:
                if isinstance(message, str) and message.startswith("e:"):
                    await ws.send(message)
                elif isinstance(message, str) and message.startswith("s:"):
                    sunk += 1
                elif message == "ping":
                    await ws.send("pong")
                elif isinstance(message, str) and message.startswith("pub "):
                    websockets.broadcast(subscribers, message[4:])
                elif message == "sub":
                    subscribers.add(ws)
                    await ws.send("ok")
                elif isinstance(message, str) and message.startswith("blast "):
                    _, count, size = message.split()
                    payload = "x" * int(size)
                    for i in range(int(count)):
                        websockets.broadcast(subscribers, f"{i}:{payload}")
                        if i % 64 == 0:
                            await asyncio.sleep(0)  # let the loop flush, as a real server would
                    await ws.send("done")
        finally:
            subscribers.discard(ws)

    async with serve(handler, "127.0.0.1", port, max_queue=None):
        await asyncio.Future()


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "websockets":
        import asyncio

        asyncio.run(websockets_broadcast_server(port))
    else:
        import uvicorn

        apps = {
            "starlette": starlette_app,
            "socketio": socketio_app,
            "telefunc": telefunc_app,
            "telefunc+metrics": telefunc_metrics_app,
        }
        app = apps[kind]()
        settings: dict[str, Any] = {}
        if kind == "telefunc":  # what `telefunc serve` runs with
            from telefunc.asgi.uvicorn_settings import uvicorn_settings
            from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol

            settings = {**uvicorn_settings(), "ws": TelefuncWebSocketProtocol}
        uvicorn.run(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **settings
        )
