"""A probe of runtime semantics the adapter relies on, run unchanged on real workerd and on the
emulator (tests/workerd/test_workerd_differences.py): each answer is a JSON report of what Python
saw. Standalone (ROOT/worker.py) on the emulator; in workerd, the tier's worker serves it under
``/probe`` as ``probe_worker.py``."""

import asyncio
import json

from js import WebSocketPair
from workers import DurableObject, Response, WorkerEntrypoint


def kind(value):
    """A portable name for what the FFI handed to Python."""
    if value is None:
        return "None"
    name = type(value).__name__
    return "JsNull" if "null" in repr(value).lower() and name.startswith("Js") else name


def attempt(read):
    """What ``read()`` returns, or the name of what it raised."""
    try:
        return read()
    except Exception as exc:
        return "raised " + type(exc).__name__


class Probe(DurableObject):
    async def report(self):
        storage = self.ctx.storage
        out = {"id_name": self.ctx.id.name}
        out["storage_missing"] = kind(await storage.get("missing"))
        await storage.put("n", 41)
        out["storage_int"] = await storage.get("n")
        await storage.put("s", "text")
        out["storage_str"] = await storage.get("s")
        row = storage.sql.exec("SELECT 1 + 1 AS two").one()
        out["sql_row_attribute"] = attempt(lambda: row.two)
        out["sql_row_item"] = attempt(lambda: row["two"])
        return json.dumps(out)

    async def bump(self, key, across_kv):
        """Read-modify-write of ``key``; with ``across_kv`` a KV read (not storage) sits inside."""
        storage = self.ctx.storage
        n = (await storage.get(key)) or 0
        if across_kv:
            await self.env.STORE.get("gate")  # input gates stay open across non-storage I/O
        else:
            await storage.get("unrelated")  # storage I/O: the input gate holds other events back
        await storage.put(key, n + 1)
        return n + 1

    async def fetch(self, request):
        if request.headers.get("upgrade") != "websocket":
            return Response(await self.report())
        client, server = WebSocketPair.new().object_values()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        # "close": the object closes with an application code; anything else: its type, echoed.
        if message == "close":
            ws.close(4001, "probe done")
        else:
            ws.send(type(message).__name__)


async def handle(request, env):
    """The probe's answer to ``request`` (``.../gates``: input gates; else the report)."""
    if request.headers.get("upgrade") == "websocket":
        return await env.PROBE.getByName("probe-ws").fetch(request)
    out = {"var": env.GREETING}
    if request.url.endswith("/gates"):
        stub = env.PROBE.getByName("probe-gates")
        gated = await asyncio.gather(*(stub.bump("gated", False) for _ in range(20)))
        raced = await asyncio.gather(*(stub.bump("raced", True) for _ in range(20)))
        out = {"gated": sorted(gated), "raced_final": max(raced)}
        return Response(json.dumps(out), headers={"content-type": "application/json"})
    out["kv_missing"] = kind(await env.STORE.get("missing"))
    await env.STORE.put("k", "v")
    out["kv_roundtrip"] = await env.STORE.get("k")
    try:  # the same key again at once: production allows 1 write/s per key
        await env.STORE.put("k", "w")
        out["kv_rewrite"] = "accepted"
    except Exception as exc:
        out["kv_rewrite"] = str(exc)
    try:
        await env.STORE.put("short", "v", {"expirationTtl": 30})
        out["kv_short_ttl"] = "accepted"
    except Exception as exc:  # the runtime's error, as Python sees it
        out["kv_short_ttl"] = type(exc).__name__
    out["header_missing"] = kind(request.headers.get("x-missing"))
    out["object"] = json.loads(await env.PROBE.getByName("probe-a").report())
    return Response(json.dumps(out), headers={"content-type": "application/json"})


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await handle(request, self.env)
