"""``telefunc dev --edge``: the Cloudflare emulator behind a real HTTP/WebSocket server (uvicorn).

Serves ``ROOT/worker.py`` (or, without one, ROOT's telefunctions through
``telefunc.cloudflare.Telefunc``: :func:`zero_config_worker`) inside the emulator on a real
clock, so multi-region behaviour can be watched on one machine. A request's colo comes from the
``x-telefunc-colo`` header or the ``?colo=`` query parameter. It emulates; it does not deploy.
The ``worker.py`` convention and where bindings come from: docs/architecture.md §5.6.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs

from telefunc.config import config

from . import install
from .clock import RealClock
from .runtime import DEFAULT_COLOS, Emulator
from .startup import worker_startup
from .web import Request, Response
from .websocket import WebSocket

__all__ = [
    "EdgeApp",
    "EdgeServer",
    "load_worker",
    "main_edge",
    "parse_duration",
    "serve_edge",
    "zero_config_worker",
]

COLO_HEADER = "x-telefunc-colo"
WS_MAX_SIZE = 64 << 20  # above the runtime's 32 MiB so the emulator's own limit (1009) applies


def parse_duration(text: str) -> float:
    """``"2s"``, ``"500ms"``, ``"1m"`` or ``"2"`` (seconds) → seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    value = float(m.group(1))
    unit = m.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def colos_for_regions(regions: list[str]) -> dict[str, tuple[str, str | None, str | None]]:
    """The emulator's colos for the chosen location-hint regions (a few known colos each)."""
    out: dict[str, tuple[str, str | None, str | None]] = {}
    for region in regions:
        found = {c: info for c, info in DEFAULT_COLOS.items() if info[0] == region}
        if not found:
            raise ValueError(f"unknown region {region!r}; known: {sorted(_regions())}")
        out.update(found)
    return out


def _regions() -> set[str]:
    return {info[0] for info in DEFAULT_COLOS.values()}


def _strip_jsonc(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def _bindings_from_wrangler(root: Path) -> dict[str, Any] | None:
    for name in ("wrangler.jsonc", "wrangler.json"):
        path = root / name
        if path.is_file():
            cfg = json.loads(_strip_jsonc(path.read_text()))
            dos = {
                b["name"]: b["class_name"]
                for b in cfg.get("durable_objects", {}).get("bindings", [])
            }
            kvs = [k["binding"] for k in cfg.get("kv_namespaces", [])]
            return {"durable_objects": dos, "kv_namespaces": kvs, "vars": cfg.get("vars", {})}
    return None


def load_worker(root: Path) -> ModuleType | None:
    """Import ``root/worker.py`` under the Python Workers startup rules, or ``None`` if absent.

    The emulator's runtime modules are installed first; the import runs inside
    :func:`~telefunc.testing.startup.worker_startup`, so top-level randomness or threads fail
    here as they fail in workerd.
    """
    path = root / "worker.py"
    if not path.is_file():
        return None
    install()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("worker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["worker"] = module
    try:
        with worker_startup():
            spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("worker", None)
        raise
    return module


def zero_config_worker(root: Path) -> ModuleType:
    """The worker serving ROOT's telefunctions when ROOT has no ``worker.py``.

    A module like the example's ``worker.py``: ``Default`` answers telefunc traffic through
    ``telefunc.cloudflare.Telefunc(root=ROOT)`` (404 otherwise) and exports
    ``TelefuncDurableObject``, bound with the KV namespace ``TelefuncKV``. It is built under the
    startup rules, as workerd would import it.
    """
    install()
    module = ModuleType("worker", zero_config_worker.__doc__)
    with worker_startup():
        from workers import Response, WorkerEntrypoint

        from telefunc.cloudflare import Telefunc

        telefunc = Telefunc(root=root)

        class Default(WorkerEntrypoint):
            async def fetch(self, request: Any) -> Any:
                response = await telefunc.serve(request=request, env=self.env, ctx=self.ctx)
                return response if response is not None else Response("Not found", status=404)

        module.telefunc = telefunc  # type: ignore[attr-defined]
        module.TelefuncDurableObject = telefunc.TelefuncDurableObject  # type: ignore[attr-defined]
        module.Default = Default  # type: ignore[attr-defined]
        module.BINDINGS = {  # type: ignore[attr-defined]
            "durable_objects": {telefunc.binding_name: "TelefuncDurableObject"},
            "kv_namespaces": [telefunc.kv_binding_name],
        }
    return module


def configure(emu: Emulator, worker: Any, root: Path | None = None) -> None:
    """Bind the worker's Durable Objects, KV namespaces and vars, and set it as the worker."""
    from workers import DurableObject, WorkerEntrypoint

    bindings: Mapping[str, Any] | None = getattr(worker, "BINDINGS", None)
    if bindings is None and root is not None:
        bindings = _bindings_from_wrangler(root)
    exported = (
        {
            name: obj
            for name, obj in vars(worker).items()
            if isinstance(obj, type) and not name.startswith("_")
        }
        if isinstance(worker, ModuleType)
        else {}
    )
    if bindings is None:
        dos = {
            n: n
            for n, c in exported.items()
            if issubclass(c, DurableObject) and c is not DurableObject
        }
        bindings = {"durable_objects": dos, "kv_namespaces": ["KV"]}
    for binding, class_name in dict(bindings.get("durable_objects", {})).items():
        cls = exported.get(class_name) or getattr(worker, class_name, None)
        if cls is None:
            raise ValueError(f"Durable Object class {class_name!r} is not exported by worker.py")
        emu.durable_object(binding, cls)
    for kv in bindings.get("kv_namespaces", []):
        emu.kv(kv)
    for name, value in dict(bindings.get("vars", {})).items():
        emu.var(name, value)
    entry = exported.get("Default")
    if entry is not None and issubclass(entry, WorkerEntrypoint):
        emu.set_worker(entry)
    else:
        emu.set_worker(worker)


class EdgeApp:
    """ASGI application delivering HTTP and WebSocket requests into an :class:`Emulator`."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def _request(self, scope: Mapping[str, Any], body: bytes | None) -> Request:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        hmap = {k.lower(): v for k, v in headers}
        host = hmap.get("host", "localhost")
        scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope["scheme"])
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{scheme}://{host}{scope.get('raw_path', b'').decode('latin-1') or scope['path']}"
        if "?" not in url and query:
            url += f"?{query}"
        colo = hmap.get(COLO_HEADER) or (parse_qs(query).get("colo") or [None])[0]
        method = scope.get("method", "GET")
        req = self.emu.make_request(
            url,
            colo=colo,
            method=method,
            headers=headers,
            body=body if body and method not in ("GET", "HEAD") else None,
        )
        return req

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """ASGI entry point."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Any, receive: Any, send: Any) -> None:
        chunks: list[bytes] = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        try:
            resp = await self.emu.dispatch(self._request(scope, b"".join(chunks)))
        except Exception as exc:
            self.emu.errors.append(exc)
            resp = Response(f"Worker threw exception: {exc}", status=500)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.raw_items()]
        status = 500 if resp.status == 101 else resp.status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        body = resp.body
        if body is None:
            await send({"type": "http.response.body", "body": b""})
            return

        async def stream() -> None:
            async for chunk in body:  # streamed as produced (SSE and friends)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        # As workerd does: a client that goes away cancels the response body's stream, so the
        # worker's source sees cancel() (a telefunc generator's `finally` runs).
        streaming = asyncio.ensure_future(stream())
        watching = asyncio.ensure_future(disconnected())
        done, _ = await asyncio.wait({streaming, watching}, return_when=asyncio.FIRST_COMPLETED)
        if streaming in done:
            watching.cancel()
            streaming.result()
            return
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming

    async def _websocket(self, scope: Any, receive: Any, send: Any) -> None:
        msg = await receive()
        if msg["type"] != "websocket.connect":
            return
        try:
            resp = await self.emu.dispatch(self._request(scope, None))
        except Exception as exc:
            self.emu.errors.append(exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        ws = resp.webSocket
        if resp.status != 101 or ws is None:
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        await _bridge(ws, receive, send)


async def _bridge(ws: WebSocket, receive: Any, send: Any) -> None:
    """Connect the client end of a ``WebSocketPair`` to the real ASGI WebSocket."""
    outgoing: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def on_message(event: Any) -> None:
        data = event.data
        if isinstance(data, str):
            outgoing.put_nowait({"type": "websocket.send", "text": data})
        else:
            outgoing.put_nowait({"type": "websocket.send", "bytes": bytes(data)})

    def on_close(event: Any) -> None:
        code = event.code if event.code not in (1005, 1006) else 1000
        outgoing.put_nowait({"type": "websocket.close", "code": code, "reason": event.reason})
        outgoing.put_nowait(None)

    ws.addEventListener("message", on_message)
    ws.addEventListener("close", on_close)
    ws.accept()

    async def pump_out() -> None:
        while True:
            item = await outgoing.get()
            if item is None:
                return
            await send(item)

    async def pump_in() -> None:
        while True:
            msg = await receive()
            if msg["type"] == "websocket.receive":
                if ws.readyState != WebSocket.OPEN:
                    continue
                text = msg.get("text")
                ws.send(text if text is not None else msg.get("bytes") or b"")
            elif msg["type"] == "websocket.disconnect":
                if ws.readyState == WebSocket.OPEN:
                    ws.close(msg.get("code", 1005) if msg.get("code") != 1006 else 1000)
                return

    out_task = asyncio.ensure_future(pump_out())
    in_task = asyncio.ensure_future(pump_in())
    done, pending = await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]


class EdgeServer:
    """Run an :class:`EdgeApp` under uvicorn in the current loop; ``port=0`` picks a free one."""

    def __init__(self, emu: Emulator, host: str = "127.0.0.1", port: int = 3000) -> None:
        import uvicorn

        self.emu = emu
        self.app = EdgeApp(emu)
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ws_max_size=WS_MAX_SIZE,
            ws_ping_interval=None,
        )
        self.server = uvicorn.Server(config)
        self.host = host
        self.port = port
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> int:
        """Start serving; returns the bound port."""
        self._task = asyncio.ensure_future(self.server.serve())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("edge server exited during startup")
            if loop.time() > deadline:
                raise TimeoutError("edge server did not start")
            await asyncio.sleep(0.01)  # polling uvicorn's started flag (bounded)
        sock = self.server.servers[0].sockets[0]
        self.port = int(sock.getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop serving."""
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)

    async def wait(self) -> None:
        """Serve until stopped."""
        if self._task is not None:
            await self._task


def build_emulator(
    root: Path, regions: list[str], kv_delay: float, worker: object | None = None
) -> tuple[Emulator, str]:
    """An emulator on the real clock with ``worker`` (or ROOT's worker.py, or the zero-config
    worker for ROOT's telefunctions)."""
    install()
    emu = Emulator(clock=RealClock(), colos=colos_for_regions(regions), kv_delay=kv_delay)
    if worker is not None:
        configure(emu, worker, root)
        return emu, "the given worker"
    module = load_worker(root)
    if module is not None:
        configure(emu, module, root)
        return emu, str(root / "worker.py")
    configure(emu, zero_config_worker(root))
    return emu, (
        f"the telefunctions of {root} through telefunc.cloudflare.Telefunc "
        "(no worker.py: zero-config worker)"
    )


async def serve_edge(
    root: Path,
    host: str,
    port: int,
    regions: list[str],
    kv_delay: float,
    worker: object | None = None,
    allowed_origins: Sequence[str] = (),
) -> None:
    """Serve ROOT's worker (or ``worker``, or the zero-config one) until cancelled."""
    emu, what = build_emulator(root, regions, kv_delay, worker)
    if allowed_origins:  # after worker.py ran: it may set config.allowed_origins itself
        config.allowed_origins = (*config.allowed_origins, *allowed_origins)
    server = EdgeServer(emu, host, port)
    bound = await server.start()
    colos = ", ".join(f"{c} ({info[0]})" for c, info in emu.colos.items())
    print(
        f"telefunc dev --edge: serving {what} on http://{host}:{bound}\n"
        f"  colos: {colos}; KV propagation delay {kv_delay:g}s\n"
        f"  choose a colo per request with header '{COLO_HEADER}: NRT' or '?colo=NRT' "
        f"(default {emu.default_colo})",
        flush=True,
    )
    try:
        await server.wait()
    finally:
        emu.close()


def main_edge(argv: list[str]) -> int:
    """Command line of ``telefunc dev --edge``; ``argv`` may start with ``dev``/``--edge``."""
    args = list(argv)
    while args and args[0] in ("dev", "--edge"):
        args.pop(0)
    parser = argparse.ArgumentParser(
        prog="telefunc dev --edge", description="Serve a Python Worker in the local emulator."
    )
    parser.add_argument("root", type=Path, nargs="?", default=Path("."))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--regions", default="weur,enam,apac")
    parser.add_argument("--kv-delay", type=parse_duration, default=2.0)
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="a foreign origin (scheme://host[:port]) whose pages may call; repeatable",
    )
    ns = parser.parse_args(args)
    regions = [r.strip() for r in ns.regions.split(",") if r.strip()]
    try:
        colos_for_regions(regions)
    except ValueError as exc:
        parser.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_edge(ns.root, ns.host, ns.port, regions, ns.kv_delay, None, ns.allow_origin)
        )
    return 0
