"""The in-process "edge": colos, bindings in ``env``, counters, and entry into a worker.

``Emulator`` holds the clock, the KV and Durable Object namespaces bound into ``env``, the
counters, and the worker. ``await emu.fetch(url, colo="NRT")`` runs the worker's ``fetch`` for a
request arriving at that colo, with ``request.cf`` filled in (docs/cloudflare.md §1.8).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ._context import (
    current_colo,
    current_emulator,
    current_host,
    gate_exempt,
    reenter_gate,
    set_default_emulator,
)
from .clock import Clock, FakeClock, RealClock, settle
from .durable_objects import (
    LOCATION_HINTS,
    DurableObjectNamespace,
    DurableObjectStub,
    ObjectHost,
    js_result,
)
from .ffi import JsException, JsObject, JsProxy, check_wait_until_argument
from .kv import KVNamespace
from .web import Request, Response

__all__ = ["DEFAULT_COLOS", "Counters", "Emulator", "Env", "ExecutionContext"]

# A handful of colos per location-hint region so the emulator can place objects and run one
# KV cache per colo. Not the full IATA table (the Cloudflare adapter owns that mapping).
DEFAULT_COLOS: dict[str, tuple[str, str, str]] = {
    # colo: (region, country, continent)
    "SJC": ("wnam", "US", "NA"),
    "IAD": ("enam", "US", "NA"),
    "GRU": ("sam", "BR", "SA"),
    "LHR": ("weur", "GB", "EU"),
    "CDG": ("weur", "FR", "EU"),
    "WAW": ("eeur", "PL", "EU"),
    "NRT": ("apac", "JP", "AS"),
    "SIN": ("apac", "SG", "AS"),
    "SYD": ("oc", "AU", "OC"),
    "JNB": ("afr", "ZA", "AF"),
    "DXB": ("me", "AE", "AS"),
}


@dataclass
class Counters:
    """Operation counters, so a test can state what an operation costs."""

    requests: int = 0
    subrequests: int = 0
    do_requests: int = 0
    do_websocket_messages: int = 0
    do_storage_reads: int = 0
    do_storage_writes: int = 0
    kv_reads: int = 0
    kv_writes: int = 0
    kv_deletes: int = 0
    kv_lists: int = 0
    alarms: int = 0
    hibernations: int = 0
    evictions: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        """Zero every counter."""
        for f in fields(self):
            setattr(self, f.name, {} if f.name == "extra" else 0)

    def snapshot(self) -> dict[str, int]:
        """The counters as a dict (``extra`` merged in)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    def diff(self, before: Mapping[str, int]) -> dict[str, int]:
        """Non-zero changes since ``before`` (a :meth:`snapshot`)."""
        now = self.snapshot()
        return {k: v - before.get(k, 0) for k, v in now.items() if v != before.get(k, 0)}


class Env(JsObject):
    """``env`` / ``self.env``: bindings and vars by attribute (missing ones read as ``None``)."""

    __slots__ = ()


class ExecutionContext(JsProxy):
    """``ctx`` of a worker invocation: ``waitUntil`` and ``passThroughOnException``."""

    def __init__(self, emu: Emulator) -> None:
        self._emu = emu
        self.props = JsObject()

    def waitUntil(self, aw: Awaitable[Any]) -> None:
        """Keep ``aw`` running after the response (a Future or thenable, as the runtime wants)."""
        self._emu.spawn(check_wait_until_argument(aw))

    def passThroughOnException(self) -> None:
        """Accepted; there is no origin to pass through to locally."""


OutboundFetch = Callable[[Request], Awaitable[Response]]


class Emulator:
    """A local Cloudflare edge: colos, bindings, Durable Objects, KV, counters, one worker.

    ``clock``: a :class:`FakeClock` for deterministic tests (default :class:`RealClock`).
    ``colos``: colo -> (region, country, continent); a colo is any string.
    ``kv_delay``: seconds until a KV write is visible outside the colo that wrote it.
    ``hibernate_after`` / ``evict_after``: idle times before hibernation (hibernatable) or
    eviction (not hibernatable), 10 s and 70 s as in production (docs/cloudflare.md §3);
    ``None`` disables.
    ``write_latency``: clock seconds until a DO write is durable (delays the output gate).
    ``input_gates``: turn the input gate off to watch the races it prevents.
    ``kv_write_limit``: enforce 1 write/s per key (429).
    ``outbound``: handles ``fetch()`` to anything that is not a binding (default: error).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        colos: Mapping[str, tuple[str, str | None, str | None]] | Iterable[str] | None = None,
        default_colo: str | None = None,
        kv_delay: float = 10.0,
        hibernate_after: float | None = 10.0,
        evict_after: float | None = 70.0,
        write_latency: float = 0.0,
        input_gates: bool = True,
        kv_write_limit: bool = True,
        outbound: OutboundFetch | None = None,
    ) -> None:
        self.clock: Clock = clock if clock is not None else RealClock()
        if colos is None:
            self.colos: dict[str, tuple[str, str | None, str | None]] = dict(DEFAULT_COLOS)
        elif isinstance(colos, Mapping):
            self.colos = dict(colos)
        else:
            self.colos = {c: DEFAULT_COLOS.get(c, ("weur", None, None)) for c in colos}
        self.default_colo = default_colo or next(iter(self.colos))
        self.kv_delay = kv_delay
        self.hibernate_after = hibernate_after
        self.evict_after = evict_after
        self.write_latency = write_latency
        self.input_gates = input_gates
        self.kv_write_limit = kv_write_limit
        self.outbound = outbound
        self.counters = Counters()
        self.env = Env()
        self.errors: list[BaseException] = []
        self.worker: Any = None
        self._namespaces: dict[str, DurableObjectNamespace] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._timer_ids = itertools.count(1)
        self._plain_timers: dict[int, Any] = {}
        set_default_emulator(self)

    # -- configuration ---------------------------------------------------------------------
    def durable_object(self, binding: str, cls: type[Any]) -> DurableObjectNamespace:
        """Bind a Durable Object class as ``env.<binding>``."""
        ns = DurableObjectNamespace(self, cls.__name__, cls)
        self._namespaces[binding] = ns
        self.env[binding] = ns
        return ns

    def kv(self, binding: str) -> KVNamespace:
        """Bind a KV namespace as ``env.<binding>``."""
        ns = KVNamespace(self, binding)
        self.env[binding] = ns
        return ns

    def var(self, name: str, value: Any) -> None:
        """A plain ``env`` variable."""
        self.env[name] = value

    def set_worker(self, worker: Any) -> None:
        """The worker: a ``WorkerEntrypoint`` subclass, or a module with ``on_fetch``/``fetch``."""
        self.worker = worker

    def region_of(self, colo: str) -> str | None:
        """The location-hint region of ``colo`` if known."""
        info = self.colos.get(colo) or DEFAULT_COLOS.get(colo)
        return info[0] if info else None

    def colo_for_new_object(self, hint: str | None, caller_colo: str | None) -> str:
        """Where a new object lives: first colo of the hinted region, else near the caller."""
        if hint is not None and hint in LOCATION_HINTS:
            for colo, info in self.colos.items():
                if info[0] == hint:
                    return colo
            for colo, info in DEFAULT_COLOS.items():
                if info[0] == hint:
                    return colo
        return caller_colo or self.default_colo

    # -- running ---------------------------------------------------------------------------
    def spawn(self, aw: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``aw`` in the background, tracked so :meth:`drain` can wait for it."""
        fut = asyncio.ensure_future(aw)
        self._tasks.add(fut)
        fut.add_done_callback(self._task_done)
        return fut

    def _task_done(self, fut: asyncio.Future[Any]) -> None:
        self._tasks.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            exc = fut.exception()
            assert exc is not None
            if exc not in self.errors:
                self.errors.append(exc)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded, real time) for background work (``waitUntil``, handlers) to finish."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await settle()
            pending = [t for t in self._tasks if not t.done()]
            if not pending:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(pending)} background tasks still running")
            await asyncio.wait(pending, timeout=remaining)

    def make_request(
        self,
        input: str | Request,
        *,
        colo: str | None = None,
        country: str | None = None,
        continent: str | None = None,
        cf: Mapping[str, Any] | None = None,
        **init: Any,
    ) -> Request:
        """A request arriving at ``colo`` with ``request.cf`` set (docs/cloudflare.md §1.8)."""
        colo = colo or self.default_colo
        info = self.colos.get(colo) or DEFAULT_COLOS.get(colo)
        dcountry, dcontinent = (info[1], info[2]) if info else (None, None)
        props: dict[str, Any] = {
            "colo": colo,
            "country": country or dcountry,
            "continent": continent or dcontinent,
        }
        props.update(cf or {})
        req = Request(input, **init)
        req._cf = props
        return req

    async def fetch(
        self,
        input: str | Request,
        *,
        colo: str | None = None,
        country: str | None = None,
        continent: str | None = None,
        cf: Mapping[str, Any] | None = None,
        **init: Any,
    ) -> Response:
        """Deliver a request to the worker at ``colo`` and return its response."""
        req = self.make_request(
            input, colo=colo, country=country, continent=continent, cf=cf, **init
        )
        return await self.dispatch(req)

    async def dispatch(self, request: Request) -> Response:
        """Run the worker's fetch handler for ``request`` (its ``cf.colo`` picks the colo)."""
        if self.worker is None:
            raise JsException("Error", "no worker set: call Emulator.set_worker(...)")
        cf = request._cf or {}
        colo = (cf.get("colo") if isinstance(cf, Mapping) else None) or self.default_colo
        ctx = contextvars.copy_context()
        ctx.run(current_colo.set, colo)
        ctx.run(current_host.set, None)
        ctx.run(current_emulator.set, self)
        ctx.run(gate_exempt.set, False)
        self.counters.requests += 1
        task = asyncio.get_running_loop().create_task(self._invoke(request), context=ctx)
        return await task

    async def _invoke(self, request: Request) -> Response:
        worker = self.worker
        ectx = ExecutionContext(self)
        if isinstance(worker, type):
            inst = worker(ectx, self.env)
            result = inst.fetch(request)
        else:
            handler = getattr(worker, "on_fetch", None) or getattr(worker, "fetch", None)
            if handler is None:
                raise JsException("Error", "the worker has no fetch handler")
            nparams = len(inspect.signature(handler).parameters)
            result = handler(*(request, self.env, ectx)[: max(1, nparams)])
        if inspect.isawaitable(result):
            result = await result
        result = js_result(result)
        if not isinstance(result, Response):
            raise JsException(
                "TypeError",
                "Incorrect type for Promise: the Promise did not resolve to 'Response'.",
            )
        return result

    async def outbound_fetch(self, request: Request) -> Response:
        """A subrequest (``fetch()``) from worker or object code; counted."""
        self.counters.subrequests += 1
        if self.outbound is None:
            raise JsException(
                "TypeError",
                f"fetch() to {request.url} is not available in the emulator "
                "(pass Emulator(outbound=...))",
            )
        try:
            return await self.outbound(request)
        finally:
            await reenter_gate()

    # -- timers ----------------------------------------------------------------------------
    def set_timeout(self, fn: Callable[..., Any], ms: float, *args: Any) -> int:
        """``setTimeout``: inside an object it is that object's event and blocks hibernation."""
        tid = next(self._timer_ids)
        host = current_host.get()
        delay = max(0.0, float(ms or 0)) / 1000

        def call() -> Any:
            return fn(*args)

        if host is not None:
            host.add_timer(tid, delay, call)
        else:
            ctx = contextvars.copy_context()

            def due() -> None:
                self._plain_timers.pop(tid, None)
                result = ctx.run(call)
                if inspect.isawaitable(result):
                    self.spawn(result)

            self._plain_timers[tid] = self.clock.call_later(delay, due)
        return tid

    def clear_timeout(self, tid: int | None) -> None:
        """``clearTimeout``."""
        if tid is None:
            return
        handle = self._plain_timers.pop(tid, None)
        if handle is not None:
            handle.cancel()
            return
        for ns in self._namespaces.values():
            for host in ns.hosts():
                if host.clear_timer(tid):
                    return

    # -- objects ---------------------------------------------------------------------------
    def namespace(self, binding: str) -> DurableObjectNamespace:
        """The namespace bound as ``binding``."""
        return self._namespaces[binding]

    def host_of(self, target: DurableObjectStub | ObjectHost) -> ObjectHost:
        """The host behind a stub."""
        if isinstance(target, ObjectHost):
            return target
        return target._host()

    def evict(self, target: DurableObjectStub | ObjectHost) -> None:
        """Evict one object now (like ``evictDurableObject``): memory lost, storage kept."""
        self.host_of(target).drop_instance("evict")

    def hibernate(self, target: DurableObjectStub | ObjectHost) -> None:
        """Hibernate one object now: memory lost; storage and hibernatable sockets kept."""
        host = self.host_of(target)
        if not host.hibernatable:
            raise JsException("Error", "object is not hibernatable (timers or plain sockets)")
        host.drop_instance("hibernate")

    def evict_all(self) -> None:
        """Evict every object (a deploy / runtime restart)."""
        for ns in self._namespaces.values():
            for host in ns.hosts():
                host.drop_instance("evict")

    def hosts(self) -> list[ObjectHost]:
        """Every object created so far."""
        return [h for ns in self._namespaces.values() for h in ns.hosts()]

    def use_fake_clock(self) -> FakeClock:
        """Replace the clock with a :class:`FakeClock` (before anything is scheduled)."""
        clock = FakeClock()
        self.clock = clock
        return clock

    def close(self) -> None:
        """Stop being the default emulator and cancel background work."""
        for t in list(self._tasks):
            t.cancel()
        set_default_emulator(None)
