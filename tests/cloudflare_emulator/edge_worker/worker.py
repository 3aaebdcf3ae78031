"""A worker exercising the emulator over HTTP (``telefunc dev --edge`` tests), on the real SDK.

Routes: ``/`` help; ``/counter/<name>`` increments a Durable Object counter; ``/kv/<key>``
(GET, PUT) reads and writes KV in the request's colo; ``/stream`` streams five server-sent events
(a JS ``ReadableStream`` pulled from Python); ``/ws/<name>`` is a hibernatable WebSocket echo held
by a Durable Object; ``/cf`` shows ``request.cf``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from js import Object, ReadableStream, WebSocketPair  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]
from workers import (  # type: ignore[import-not-found]
    DurableObject,
    Response,
    WorkerEntrypoint,
)

BINDINGS = {"durable_objects": {"COUNTER": "DemoCounter"}, "kv_namespaces": ["KV"]}
"""Bindings of the demo (see the ``worker.py`` convention in ``edge_server``)."""

HELP = """telefunc dev --edge: the emulator's test worker.
GET  /counter/<name>   increment a Durable Object counter
GET  /kv/<key>         read KV in this colo;  PUT /kv/<key> writes it
GET  /stream           five server-sent events
WS   /ws/<name>        hibernatable WebSocket echo held by a Durable Object
GET  /cf               request.cf
Pick the colo with header 'x-telefunc-colo: NRT' or '?colo=NRT'.
"""


class DemoCounter(DurableObject):  # type: ignore[misc]
    """A counter object with a hibernatable WebSocket echo."""

    async def increment(self) -> int:
        """Add one to the stored count."""
        n = int(await self.ctx.storage.get("n") or 0) + 1
        await self.ctx.storage.put("n", n)
        return n

    async def fetch(self, request: Any) -> Response:
        """Accept a WebSocket (hibernation API)."""
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:
        """Echo with the object's colo count."""
        n = await self.increment()
        ws.send(f"echo:{message} n={n}" if isinstance(message, str) else message)


class Default(WorkerEntrypoint):  # type: ignore[misc]
    """Routes of the demo."""

    async def fetch(self, request: Any) -> Any:
        """Dispatch by path."""
        parts = [p for p in urlsplit(request.url).path.split("/") if p]
        cf = request.cf
        colo = cf.colo if cf is not None else None
        if not parts:
            return Response(HELP)
        if parts[0] == "counter" and len(parts) == 2:
            n = await self.env.COUNTER.getByName(parts[1]).increment()
            return Response.json({"n": n, "colo": colo})
        if parts[0] == "kv" and len(parts) == 2:
            if request.method == "PUT":
                await self.env.KV.put(parts[1], await request.text())
                return Response.json({"stored": parts[1], "colo": colo})
            return Response.json({"value": await self.env.KV.get(parts[1]), "colo": colo})
        if parts[0] == "ws" and len(parts) == 2:
            if request.headers.get("upgrade") != "websocket":
                return Response("expected a WebSocket upgrade", status=426)
            stub = self.env.COUNTER.getByName(parts[1])
            return await stub.fetch(request)
        if parts[0] == "stream":
            events = iter(range(5))

            async def pull(controller: Any) -> None:
                i = next(events, None)
                if i is None:
                    controller.close()
                else:
                    controller.enqueue(f"data: {json.dumps({'i': i, 'colo': colo})}\n\n".encode())

            source = to_js({"pull": create_proxy(pull)}, dict_converter=Object.fromEntries)
            stream = ReadableStream.new(source)
            return Response(stream, headers={"content-type": "text/event-stream"})
        if parts[0] == "cf":
            return Response.json(cf.to_py() if cf is not None else None)
        return Response("not found", status=404)
