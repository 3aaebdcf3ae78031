"""Production-style Python Worker code, written only against `workers`, `js` and `pyodide.ffi`.

It runs unchanged under the emulator (the stand-in modules are installed by conftest).
"""

from __future__ import annotations

from typing import Any

from js import Date, Object, WebSocketPair  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]
from workers import DurableObject, Response, WorkerEntrypoint  # type: ignore[import-not-found]


class Counter(DurableObject):  # type: ignore[misc]
    """A counter with RPC, fetch, alarms and hibernatable WebSockets."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.memory = 0  # in-memory only: lost on eviction / hibernation
        self.alarms_seen: list[Any] = []
        self.ctx.blockConcurrencyWhile(self._load)

    async def _load(self) -> None:
        self.loaded = await self.ctx.storage.get("n") or 0

    async def increment(self, by: int = 1) -> int:
        n = (await self.ctx.storage.get("n") or 0) + by
        await self.ctx.storage.put("n", n)
        self.memory += by
        return int(n)

    async def increment_with_kv_in_between(self, by: int = 1) -> int:
        n = await self.ctx.storage.get("n") or 0
        await self.env.KV.get("anything")  # non-storage I/O: the input gate opens here
        await self.ctx.storage.put("n", n + by)
        return int(n + by)

    async def get_memory(self) -> int:
        return self.memory

    async def get_n(self) -> int:
        return int(await self.ctx.storage.get("n") or 0)

    async def echo(self, value: Any) -> Any:
        return value

    async def mutate(self, value: dict[str, Any]) -> dict[str, Any]:
        value["mutated"] = True
        return value

    async def whoami(self) -> dict[str, Any]:
        return {"id": self.ctx.id.toString(), "jurisdiction": self.ctx.id.jurisdiction}

    async def schedule(self, seconds: float) -> None:
        await self.ctx.storage.setAlarm(Date.now() + seconds * 1000)

    async def alarm(self, alarm_info: Any) -> None:
        n = await self.ctx.storage.get("alarms") or 0
        await self.ctx.storage.put("alarms", n + 1)
        await self.ctx.storage.put("last_retry", alarm_info.retryCount)

    async def sql_roundtrip(self, text: str) -> list[dict[str, Any]]:
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, val TEXT)")
        sql.exec("INSERT INTO t (val) VALUES (?)", text)
        return list(sql.exec("SELECT id, val FROM t ORDER BY id").toArray())

    async def fetch(self, request: Any) -> Any:
        if request.headers.get("upgrade") == "websocket":
            client, server = WebSocketPair.new().object_values()
            self.ctx.acceptWebSocket(server, ["chat"])
            server.serializeAttachment({"joined": Date.now(), "name": "ann"})
            return Response(None, status=101, web_socket=client)
        n = await self.increment(1)
        return Response.json({"n": n, "colo": request.cf.colo if request.cf else None})

    async def webSocketMessage(self, ws: Any, message: Any) -> None:
        att = ws.deserializeAttachment()
        ws.send(f"{att['name']}:{message}:memory={self.memory}")
        self.memory += 1

    async def webSocketClose(self, ws: Any, code: int, reason: str, was_clean: bool) -> None:
        await self.ctx.storage.put("closed", [code, reason])


class Default(WorkerEntrypoint):  # type: ignore[misc]
    """Routes `/counter/<name>` to the Counter object and `/kv/<key>` to KV."""

    async def fetch(self, request: Any) -> Any:
        path = request.url.split("://", 1)[1].split("/", 1)[1]
        parts = path.split("?")[0].split("/")
        if parts[0] == "counter":
            stub = self.env.COUNTER.getByName(parts[1])
            return await stub.fetch(request)
        if parts[0] == "kv":
            if request.method == "PUT":
                await self.env.KV.put(parts[1], await request.text())
                return Response("stored")
            value = await self.env.KV.get(parts[1])
            return Response.json(to_js({"value": value}, dict_converter=Object.fromEntries).to_py())
        return Response("not found", status=404)
