"""Durable Objects: namespaces, ids, stubs, per-object hosts with input/output gates, storage.

Faithful to docs/cloudflare.md §1.2-§1.6 and docs/cloudflare.md §3:

* one instance per id, events (RPC calls, ``fetch``, alarms, WebSocket messages, timers)
  delivered one at a time through an **input gate**: while a storage operation runs no event is
  delivered, and completions of non-storage I/O (KV, ``fetch``, other objects) are events too, so
  a get-then-put is atomic unless the code awaits non-storage I/O in between;
* an **output gate**: results, responses and outgoing WebSocket messages are held until the
  writes made before them are durable (writes in one turn coalesce into one commit);
* ``blockConcurrencyWhile`` closes the gate until its callback finishes;
* hibernation (idle and hibernatable, 10 s) and eviction (idle, not hibernatable, 70 s) on the
  emulator's clock: the constructor re-runs and memory is lost, storage and hibernatable
  WebSockets (with attachments) survive.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as _dt
import hashlib
import inspect
import re
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._context import current_colo, current_emulator, current_host, gate_exempt, reenter_gate
from .clock import TimerHandle
from .clone import clone_size, structured_clone
from .ffi import JsException, JsObject, JsProxy, check_wait_until_argument, from_js, jsnull
from .web import Request, Response, init_options
from .websocket import CLOSED, WebSocket

if TYPE_CHECKING:
    from .runtime import Emulator

__all__ = [
    "JURISDICTIONS",
    "LOCATION_HINTS",
    "DurableObjectAbort",
    "DurableObjectId",
    "DurableObjectNamespace",
    "DurableObjectState",
    "DurableObjectStorage",
    "DurableObjectStub",
    "InputGate",
    "ObjectHost",
    "SqlCursor",
    "SqlStorage",
]

LOCATION_HINTS = ("wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me")
"""Valid ``locationHint`` values (docs/cloudflare.md §1.3)."""

JURISDICTIONS = {"eu": "01", "fedramp": "02", "fedramp-high": "03", "us": "04"}
"""Jurisdictions and the tag the emulator embeds in their ids (last two hex digits)."""

_NO_JURISDICTION_TAG = "00"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_KEY_BYTES = 2048
# SQLite-backed objects: key + value <= 2 MB (docs/cloudflare.md §3)
MAX_VALUE_BYTES = 2 * 1024 * 1024
MAX_BATCH = 128
_ALARM_RETRY_LIMIT = 6


class DurableObjectAbort(BaseException):
    """Raised by ``ctx.abort(reason)``; a ``BaseException`` as in the SDK.

    See docs/cloudflare.md §1.5.
    """


# --------------------------------------------------------------------------------------------
# ids, namespaces, stubs
# --------------------------------------------------------------------------------------------


class DurableObjectId(JsProxy):
    """A 64-hex-digit object id; ``name`` is set when it came from ``idFromName``."""

    __slots__ = ("_hex", "jurisdiction", "name")

    def __init__(self, hex_id: str, name: str | None, jurisdiction: str | None) -> None:
        self._hex = hex_id
        self.name = name
        self.jurisdiction = jurisdiction

    def toString(self) -> str:
        """The hex id."""
        return self._hex

    def __str__(self) -> str:
        return self._hex

    def equals(self, other: DurableObjectId) -> bool:
        """Same id."""
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DurableObjectId) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)

    def __repr__(self) -> str:
        return f"DurableObjectId({self._hex[:12]}…, name={self.name!r})"


class DurableObjectNamespace(JsProxy):
    """A DO namespace binding (``env.COUNTER``), optionally restricted to a jurisdiction.

    Each jurisdiction is a separate id space: the same name gives different ids, and an id from
    one jurisdiction is rejected by another (docs/cloudflare.md §1.3).
    """

    def __init__(
        self,
        emulator: Emulator,
        class_name: str,
        cls: type[Any],
        jurisdiction: str | None = None,
        *,
        _hosts: dict[str, ObjectHost] | None = None,
        _names: dict[str, str] | None = None,
    ) -> None:
        self._emu = emulator
        self.class_name = class_name
        self.cls = cls
        self._jurisdiction = jurisdiction
        # Shared between a namespace and its jurisdiction() views.
        self._hosts: dict[str, ObjectHost] = _hosts if _hosts is not None else {}
        self._names: dict[str, str] = _names if _names is not None else {}
        self._key = hashlib.sha256(f"telefunc-emulator:{class_name}".encode()).hexdigest()

    def _tag(self) -> str:
        return JURISDICTIONS[self._jurisdiction] if self._jurisdiction else _NO_JURISDICTION_TAG

    def _jurisdiction_of(self, hex_id: str) -> str | None:
        tag = hex_id[-2:]
        for name, t in JURISDICTIONS.items():
            if t == tag:
                return name
        return None

    def idFromName(self, name: str) -> DurableObjectId:
        """A stable id derived from ``name`` (different per jurisdiction)."""
        digest = hashlib.sha256(f"{self._key}|{self._jurisdiction}|{name}".encode()).hexdigest()
        hex_id = digest[:62] + self._tag()
        self._names[hex_id] = name
        return DurableObjectId(hex_id, name, self._jurisdiction)

    def newUniqueId(self, *args: Any, **kwargs: Any) -> DurableObjectId:
        """A random id (``jurisdiction=`` option accepted)."""
        opts = init_options(args, kwargs)
        jur = opts.get("jurisdiction", self._jurisdiction)
        if jur is not None and jur not in JURISDICTIONS:
            raise JsException("TypeError", f"Unknown jurisdiction: {jur}")
        tag = JURISDICTIONS[jur] if jur else _NO_JURISDICTION_TAG
        return DurableObjectId(secrets.token_hex(31) + tag, None, jur)

    def idFromString(self, hex_id: str) -> DurableObjectId:
        """Parse a 64-hex-digit id; it must belong to this namespace's jurisdiction."""
        if not isinstance(hex_id, str) or not _HEX64.match(hex_id):
            raise JsException("TypeError", "Invalid Durable Object ID: must be 64 hex digits")
        jur = self._jurisdiction_of(hex_id)
        if self._jurisdiction is not None and jur != self._jurisdiction:
            raise JsException(
                "TypeError", f"Durable Object ID is not valid in jurisdiction {self._jurisdiction}"
            )
        return DurableObjectId(hex_id, self._names.get(hex_id), jur)

    def get(self, id: DurableObjectId, *args: Any, **kwargs: Any) -> DurableObjectStub:
        """A stub for ``id``; ``locationHint=`` is used only when the object is first created."""
        if not isinstance(id, DurableObjectId):
            raise JsException("TypeError", "get() expects a DurableObjectId")
        if self._jurisdiction is not None and id.jurisdiction != self._jurisdiction:
            raise JsException(
                "TypeError", f"Durable Object ID is not valid in jurisdiction {self._jurisdiction}"
            )
        opts = init_options(args, kwargs)
        hint = opts.get("locationHint")
        if hint is not None and hint not in LOCATION_HINTS:
            raise JsException("TypeError", f"Unknown locationHint: {hint}")
        return DurableObjectStub(self, id, hint)

    def getByName(self, name: str, *args: Any, **kwargs: Any) -> DurableObjectStub:
        """``get(idFromName(name), ...)``."""
        return self.get(self.idFromName(name), *args, **kwargs)

    def jurisdiction(self, name: str) -> DurableObjectNamespace:
        """A view of this namespace restricted to jurisdiction ``name`` (own id space)."""
        if name not in JURISDICTIONS:
            raise JsException("TypeError", f"Unknown jurisdiction: {name}")
        return DurableObjectNamespace(
            self._emu, self.class_name, self.cls, name, _hosts=self._hosts, _names=self._names
        )

    # -- emulator side ---------------------------------------------------------------------
    def host(self, id: DurableObjectId | str, hint: str | None = None) -> ObjectHost:
        """The host of object ``id`` (created on first use, placed by hint or caller colo)."""
        hex_id = str(id)
        host = self._hosts.get(hex_id)
        if host is None:
            jur = self._jurisdiction_of(hex_id)
            oid = DurableObjectId(hex_id, self._names.get(hex_id), jur)
            colo = self._emu.colo_for_new_object(hint, current_colo.get())
            host = ObjectHost(self._emu, self, oid, colo, hint)
            self._hosts[hex_id] = host
        return host

    def hosts(self) -> list[ObjectHost]:
        """Every object created so far in this namespace (all jurisdictions)."""
        return list(self._hosts.values())


def js_result(value: Any) -> Any:
    """What a handler returned, as JS sees it: a ``workers.Response`` gives its JS ``Response``.

    (The runtime's entrypoint wrapper does ``res?.js_object ?? res``.)
    """
    inner = getattr(value, "js_object", None)
    return value if inner is None else inner


def _is_by_reference(v: Any) -> bool:
    return isinstance(v, DurableObjectStub | WebSocket) or callable(v)


class DurableObjectStub(JsProxy):
    """A stub: ``await stub.method(*args)`` (RPC) and ``await stub.fetch(request)``."""

    def __init__(self, ns: DurableObjectNamespace, id: DurableObjectId, hint: str | None) -> None:
        self._ns = ns
        self.id = id
        self.name = id.name
        self._hint = hint

    def _host(self) -> ObjectHost:
        return self._ns.host(self.id, self._hint)

    async def fetch(self, input: str | Request, init: Any = None, **kw: Any) -> Response:
        """Send an HTTP request to the object's ``fetch`` handler."""
        if init is not None and not from_js(init) and not kw:
            init = None  # `fetch(request, {})`, as Pyodide's pyfetch sends it
        req = input if isinstance(input, Request) and init is None and not kw else None
        if req is None:
            req = Request(input, init, **kw)
        host = self._host()
        host.emu.counters.do_requests += 1
        try:
            result = await host.deliver("fetch", lambda inst: inst.fetch(req))
            return js_result(result)  # type: ignore[no-any-return]
        finally:
            await reenter_gate()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def rpc(*args: Any, **kwargs: Any) -> Any:
            # Arguments and results cross a serialization boundary (python_to_rpc,
            # docs/cloudflare.md §1.4).
            cargs = structured_clone(list(args), passthrough=_is_by_reference)
            ckw = structured_clone(dict(kwargs), passthrough=_is_by_reference)
            host = self._host()
            host.emu.counters.do_requests += 1

            def invoke(inst: Any) -> Any:
                method = getattr(inst, name, None)
                if method is None or not callable(method) or name in _RESERVED:
                    raise JsException(
                        "TypeError",
                        f'The RPC receiver does not implement the method "{name}".',
                    )
                return method(*[from_js(a) for a in cargs], **ckw)

            try:
                result = await host.deliver("rpc", invoke)
                return structured_clone(result, passthrough=_is_by_reference)
            finally:
                await reenter_gate()

        return rpc

    def __repr__(self) -> str:
        return f"<DurableObjectStub {self._ns.class_name} {self.id!r}>"


_RESERVED = {"alarm", "webSocketMessage", "webSocketClose", "webSocketError", "constructor"}


# --------------------------------------------------------------------------------------------
# gates
# --------------------------------------------------------------------------------------------


class InputGate:
    """Counts storage operations (and ``blockConcurrencyWhile``) in flight; open at zero."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._locks = 0
        self._event: asyncio.Event | None = None

    def _ev(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
            self._event.set()
        return self._event

    @property
    def is_open(self) -> bool:
        """No storage operation or ``blockConcurrencyWhile`` in progress."""
        return self._locks == 0

    def close(self) -> None:
        """A storage operation started."""
        if not self.enabled:
            return
        self._locks += 1
        self._ev().clear()

    def release(self) -> None:
        """A storage operation finished."""
        if not self.enabled:
            return
        self._locks = max(0, self._locks - 1)
        if self._locks == 0:
            self._ev().set()

    def reset(self) -> None:
        """Open unconditionally (the object was reset)."""
        self._locks = 0
        self._ev().set()

    async def wait_open(self) -> None:
        """Wait (FIFO) until the gate is open."""
        while self._locks > 0:
            await self._ev().wait()


# --------------------------------------------------------------------------------------------
# the per-object host
# --------------------------------------------------------------------------------------------


class ObjectHost:
    """Everything the runtime keeps for one object id, across instance lifetimes."""

    def __init__(
        self,
        emu: Emulator,
        ns: DurableObjectNamespace,
        id: DurableObjectId,
        colo: str,
        hint: str | None,
    ) -> None:
        self.emu = emu
        self.ns = ns
        self.id = id
        self.colo = colo
        self.location_hint = hint
        self.instance: Any = None
        self.generation = 0
        self.constructions = 0
        self.gate = InputGate(emu.input_gates)
        self.storage_data: dict[str, Any] = {}
        self.sql_conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.sql_conn.row_factory = sqlite3.Row
        self.alarm_ms: int | None = None
        self._alarm_handle: TimerHandle | None = None
        self._alarm_retry = 0
        self.hib_sockets: list[WebSocket] = []
        self.plain_sockets: set[WebSocket] = set()
        self.auto_response: tuple[str, str] | None = None
        self.inflight = 0
        self.timers: dict[int, TimerHandle] = {}
        self._idle_handle: TimerHandle | None = None
        self.last_active = emu.clock.now()
        # Output gate (docs/cloudflare.md §3): writes get a version; a commit makes all written
        # versions durable.
        self.write_version = 0
        self.durable_version = 0
        self._commit_scheduled = False
        self._commit_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._outbox: list[tuple[int, Callable[[], None]]] = []
        self.ctx: DurableObjectState | None = None

    # -- instance lifecycle ----------------------------------------------------------------
    def _context(self) -> contextvars.Context:
        ctx = contextvars.copy_context()
        ctx.run(current_host.set, self)
        ctx.run(current_colo.set, self.colo)
        ctx.run(current_emulator.set, self.emu)
        ctx.run(gate_exempt.set, False)
        return ctx

    def ensure_instance(self) -> Any:
        """Construct the object if it has no live instance (constructor re-runs after a reset)."""
        if self.instance is None:
            self.generation += 1
            self.constructions += 1
            self.ctx = DurableObjectState(self)
            state = self.ctx
            self.instance = self._context().run(lambda: self.ns.cls(state, self.emu.env))
        return self.instance

    def drop_instance(self, why: str) -> None:
        """Lose the in-memory instance (hibernation, eviction, reset); storage stays."""
        if self.instance is None:
            return
        self.instance = None
        self.ctx = None
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        self.gate.reset()
        if why == "hibernate":
            self.emu.counters.hibernations += 1
        else:
            self.emu.counters.evictions += 1
            # Non-hibernatable sockets are held by the instance and die with it.
            for ws in list(self.plain_sockets):
                if ws.readyState != CLOSED:
                    ws.readyState = CLOSED
                    peer = ws._peer
                    if peer is not None:
                        peer._receive_close(1006, "Durable Object reset", False)
            self.plain_sockets.clear()
            if why == "evict":
                # Hibernatable sockets are disconnected too when the object is evicted outright.
                for ws in list(self.hib_sockets):
                    if ws.readyState != CLOSED:
                        ws.readyState = CLOSED
                        if ws._peer is not None:
                            ws._peer._receive_close(1006, "Durable Object reset", False)
                self.hib_sockets.clear()

    def reset(self, error: BaseException) -> None:
        """The object broke (``abort``, a failing ``blockConcurrencyWhile``): start over."""
        self.emu.errors.append(error)
        self.drop_instance("reset")

    @property
    def hibernatable(self) -> bool:
        """Idle state could hibernate: no plain sockets, no timers, gate open.

        See docs/cloudflare.md §3.
        """
        open_plain = any(ws.readyState != CLOSED for ws in self.plain_sockets)
        return not open_plain and not self.timers and self.gate.is_open

    def _touch(self) -> None:
        self.last_active = self.emu.clock.now()
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None

    def schedule_idle(self) -> None:
        """After an event: arm the hibernation (10 s) or eviction (70 s) timer."""
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self.inflight > 0 or self.instance is None:
            return
        if any(ws.readyState != CLOSED for ws in self.plain_sockets):
            return  # a connected non-hibernatable socket keeps the object in memory
        delay = self.emu.hibernate_after if self.hibernatable else self.emu.evict_after
        if delay is None:
            return
        self._idle_handle = self.emu.clock.call_later(delay, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_handle = None
        if self.inflight > 0 or self.instance is None:
            return
        if any(ws.readyState != CLOSED for ws in self.plain_sockets):
            return
        self.drop_instance("hibernate" if self.hibernatable else "idle-evict")

    # -- event delivery --------------------------------------------------------------------
    async def deliver(self, kind: str, invoke: Callable[[Any], Any]) -> Any:
        """Deliver one event: pass the input gate, run, pass the output gate."""
        task = asyncio.get_running_loop().create_task(
            self._run_event(kind, invoke), context=self._context()
        )
        return await task

    async def _run_event(self, kind: str, invoke: Callable[[Any], Any]) -> Any:
        self.ensure_instance()
        await self.gate.wait_open()
        inst = self.ensure_instance()  # it may have been reset while we waited
        generation = self.generation
        self.inflight += 1
        self._touch()
        try:
            result = invoke(inst)
            if inspect.isawaitable(result):
                result = await result
        except DurableObjectAbort as exc:
            raise JsException("Error", f"Durable Object was aborted: {exc}") from None
        except BaseException as exc:
            if type(exc).__name__ != "DurableObjectAbort":  # the SDK's own (workers.entrypoints)
                raise
            raise JsException("Error", f"Durable Object was aborted: {exc}") from None
        finally:
            self.inflight -= 1
            self.last_active = self.emu.clock.now()
            if self.generation == generation:
                self.schedule_idle()
        await self.output_gate()
        return result

    async def output_gate(self) -> None:
        """Wait until every write made so far is durable (docs/cloudflare.md §3 output gate)."""
        target = self.write_version
        if self.durable_version >= target:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commit_waiters.append((target, fut))
        await fut

    def send_through_output_gate(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (an outgoing message) once prior writes are durable, keeping order."""
        if self.durable_version >= self.write_version and not self._outbox:
            fn()
        else:
            self._outbox.append((self.write_version, fn))

    def note_write(self) -> None:
        """A write happened; schedule the coalesced commit."""
        self.write_version += 1
        self.emu.counters.do_storage_writes += 1
        if not self._commit_scheduled:
            self._commit_scheduled = True
            if self.emu.write_latency > 0:
                self.emu.clock.call_later(self.emu.write_latency, self._commit)
            else:
                asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        self._commit_scheduled = False
        self.durable_version = self.write_version
        waiters, self._commit_waiters = self._commit_waiters, []
        for target, fut in waiters:
            if target <= self.durable_version:
                if not fut.done():
                    fut.set_result(None)
            else:
                self._commit_waiters.append((target, fut))
        outbox, self._outbox = self._outbox, []
        for i, (version, fn) in enumerate(outbox):
            if version > self.durable_version:
                self._outbox = outbox[i:]
                break
            fn()

    async def storage_op(self, fn: Callable[[], Any]) -> Any:
        """Run a storage operation with the input gate closed (docs/cloudflare.md §3 input gate)."""
        self.gate.close()
        try:
            result = fn()
            # Simulated storage latency: other objects (and already-admitted work of this one
            # that is not blocked on the gate) may run, new events may not.
            await asyncio.sleep(0)
        finally:
            self.gate.release()
        return result

    # -- websockets ------------------------------------------------------------------------
    def ws_event(self, ws: WebSocket, kind: str, payload: Any) -> None:
        """A hibernatable socket received something: deliver it as an event (waking if needed)."""
        if kind == "message" and self.auto_response is not None:
            req, resp = self.auto_response
            if payload == req:
                # Answered by the runtime without waking the object.
                ws._auto_response_ts = self.emu.clock.now()
                ws.send(resp)
                return
        args: tuple[Any, ...]
        if kind == "message":
            self.emu.counters.do_websocket_messages += 1
            name, args = "webSocketMessage", (ws, payload)
        elif kind == "close":
            code, reason, clean = payload
            name, args = "webSocketClose", (ws, code, reason, clean)
        else:
            name, args = "webSocketError", (ws, payload)
        if kind != "message" and ws in self.hib_sockets and ws.readyState == CLOSED:
            self.hib_sockets.remove(ws)
            self.hib_sockets.append(ws)  # keep until the handler ran; filtered when listed

        def invoke(inst: Any) -> Any:
            handler = getattr(inst, name, None)
            if handler is None:
                return None
            return handler(*args)

        self._spawn(self.deliver("websocket", invoke))

    def run_listener(self, listener: Callable[..., Any], event: Any) -> None:
        """An ``addEventListener`` callback of a socket this object accepted: an event."""
        self._spawn(self.deliver("websocket", lambda _inst: listener(event)))

    def _spawn(self, aw: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await aw
            except Exception as exc:  # an event handler failing does not crash the emulator
                self.emu.errors.append(exc)

        self.emu.spawn(run())

    def live_hib_sockets(self) -> list[WebSocket]:
        """Accepted hibernatable sockets not yet closed."""
        self.hib_sockets = [ws for ws in self.hib_sockets if ws.readyState != CLOSED]
        return list(self.hib_sockets)

    # -- alarms ----------------------------------------------------------------------------
    def set_alarm(self, ms: int | None) -> None:
        """Persist the alarm time and arm the clock timer."""
        self.alarm_ms = ms
        if self._alarm_handle is not None:
            self._alarm_handle.cancel()
            self._alarm_handle = None
        if ms is not None:
            self._alarm_retry = 0
            delay = ms / 1000 - self.emu.clock.now()
            self._alarm_handle = self.emu.clock.call_later(max(0.0, delay), self._alarm_due, ms)

    def _alarm_due(self, ms: int) -> None:
        self._alarm_handle = None
        if self.alarm_ms != ms:
            return
        self.emu.spawn(self._run_alarm(ms))

    async def _run_alarm(self, ms: int) -> None:
        retry = self._alarm_retry
        # While the handler runs getAlarm() reports no alarm; a new setAlarm() is kept.
        self.alarm_ms = None
        self.emu.counters.alarms += 1
        info = JsObject(retryCount=retry, isRetry=retry > 0)

        def invoke(inst: Any) -> Any:
            handler = getattr(inst, "alarm", None)
            if handler is None:
                return None
            try:
                return handler(info)
            except TypeError:
                return handler()

        try:
            await self.deliver("alarm", invoke)
        except Exception as exc:
            self.emu.errors.append(exc)
            if self.alarm_ms is None and retry < _ALARM_RETRY_LIMIT:
                # At-least-once: retry with exponential backoff from 2 s (docs/cloudflare.md §3).
                backoff = 2.0 ** (retry + 1)
                self.alarm_ms = int((self.emu.clock.now() + backoff) * 1000)
                self._alarm_handle = self.emu.clock.call_later(
                    backoff, self._alarm_due, self.alarm_ms
                )
                self._alarm_retry = retry + 1

    # -- timers (js.setTimeout inside the object) ------------------------------------------
    def add_timer(self, timer_id: int, delay: float, fn: Callable[[], Any]) -> None:
        """A ``setTimeout`` owned by this object: fires as an event, blocks hibernation."""

        def due() -> None:
            self.timers.pop(timer_id, None)
            self._spawn(self.deliver("timer", lambda _inst: fn()))

        self.timers[timer_id] = self.emu.clock.call_later(delay, due)

    def clear_timer(self, timer_id: int) -> bool:
        """Cancel a timer; True if it was this object's."""
        handle = self.timers.pop(timer_id, None)
        if handle is None:
            return False
        handle.cancel()
        self.schedule_idle()
        return True


# --------------------------------------------------------------------------------------------
# ctx and storage
# --------------------------------------------------------------------------------------------


class DurableObjectState(JsProxy):
    """``self.ctx`` inside a Durable Object."""

    def __init__(self, host: ObjectHost) -> None:
        self._host = host
        self.id = host.id
        self.storage = DurableObjectStorage(host)

    def blockConcurrencyWhile(self, callback: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``callback`` with every other event held back; returns an awaitable of its result.

        If the callback fails the object is reset (the constructor runs again on the next event).
        """
        host = self._host
        host.gate.close()

        async def run() -> Any:
            gate_exempt.set(True)
            try:
                result = callback()
                if inspect.isawaitable(result):
                    result = await result
                return result
            except BaseException as exc:
                host.reset(exc)  # reopens the gate
                raise
            finally:
                host.gate.release()

        ctx = host._context()
        task = asyncio.get_running_loop().create_task(run(), context=ctx)
        # A constructor may not await it; don't report an unobserved failure twice.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    def waitUntil(self, aw: Awaitable[Any]) -> None:
        """Keep working on ``aw`` after the event (a Future or thenable, as the runtime wants)."""
        self._host.emu.spawn(check_wait_until_argument(aw))

    def acceptWebSocket(self, ws: WebSocket, tags: list[str] | None = None) -> None:
        """Accept ``ws`` with the hibernation API: events go to ``webSocketMessage`` etc."""
        ws._accept_hibernatable(self._host, list(from_js(tags) or []))
        self._host.hib_sockets.append(ws)

    def getWebSockets(self, tag: str | None = None) -> list[WebSocket]:
        """Accepted hibernatable sockets (optionally with ``tag``) that are still open."""
        socks = self._host.live_hib_sockets()
        if tag is not None:
            socks = [ws for ws in socks if tag in ws._tags]
        return socks

    def getTags(self, ws: WebSocket) -> list[str]:
        """The tags ``ws`` was accepted with."""
        return list(ws._tags)

    def setWebSocketAutoResponse(self, pair: Any = None) -> None:
        """Answer ``pair.request`` with ``pair.response`` without waking the object."""
        if pair is None:
            self._host.auto_response = None
        else:
            self._host.auto_response = (pair.request, pair.response)

    def getWebSocketAutoResponse(self) -> Any:
        """The current auto-response pair or ``None``."""
        ar = self._host.auto_response
        return None if ar is None else WebSocketRequestResponsePair(*ar)

    def getWebSocketAutoResponseTimestamp(self, ws: WebSocket) -> Any:
        """When ``ws`` last got an auto-response (a ``datetime``) or ``None``."""
        ts = ws._auto_response_ts
        return None if ts is None else _dt.datetime.fromtimestamp(ts, _dt.UTC)

    def setHibernatableWebSocketEventTimeout(self, ms: int | None = None) -> None:
        """Accepted; event timeouts are not enforced locally."""

    def abort(self, reason: str | None = None) -> None:
        """Reset the object and raise :class:`DurableObjectAbort`."""
        exc = DurableObjectAbort(reason or "aborted")
        self._host.reset(exc)
        raise exc


class WebSocketRequestResponsePair(JsProxy):
    """``new WebSocketRequestResponsePair(request, response)`` for auto-responses."""

    def __init__(self, request: str, response: str) -> None:
        self.request = request
        self.response = response

    @classmethod
    def new(cls, request: str, response: str) -> WebSocketRequestResponsePair:
        """JS-style constructor."""
        return cls(request, response)


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise JsException("TypeError", "Keys must be strings")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise JsException("RangeError", f"Keys cannot be larger than {MAX_KEY_BYTES} bytes.")
    return key


def _alarm_ms(value: Any) -> int:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value)
    raise JsException("TypeError", "setAlarm() expects milliseconds since the epoch or a datetime")


class DurableObjectStorage(JsProxy):
    """``ctx.storage``: the KV-style API, ``sql`` and alarms. Storage survives the instance."""

    def __init__(self, host: ObjectHost) -> None:
        self._host = host
        self.sql = SqlStorage(host)

    async def get(self, key: str | list[str], *opts: Any, **kw: Any) -> Any:
        """A value (or ``None``), or a dict of the found keys for a list of keys."""
        host = self._host

        def op() -> Any:
            host.emu.counters.do_storage_reads += 1
            if isinstance(key, list | tuple):
                if len(key) > MAX_BATCH:
                    raise JsException("RangeError", f"Maximum number of keys is {MAX_BATCH}.")
                return {
                    k: structured_clone(host.storage_data[k])
                    for k in key
                    if _check_key(k) in host.storage_data
                }
            _check_key(key)
            if key not in host.storage_data:
                return None
            return structured_clone(host.storage_data[key])

        return await host.storage_op(op)

    async def put(
        self, key: str | dict[str, Any], value: Any = None, *opts: Any, **kw: Any
    ) -> None:
        """Store one value, or every entry of a dict."""
        host = self._host
        entries = dict(from_js(key)) if not isinstance(key, str) else {key: value}
        if len(entries) > MAX_BATCH:
            raise JsException("RangeError", f"Maximum number of pairs is {MAX_BATCH}.")
        copies: dict[str, Any] = {}
        for k, v in entries.items():
            _check_key(k)
            if v is None and isinstance(key, str):
                raise JsException("TypeError", "put() requires a value")
            copy = structured_clone(v)
            if len(k.encode()) + clone_size(copy) > MAX_VALUE_BYTES:
                raise JsException("RangeError", "Values cannot be larger than 2097152 bytes.")
            copies[k] = copy

        def op() -> None:
            host.storage_data.update(copies)
            host.note_write()

        await host.storage_op(op)

    async def delete(self, key: str | list[str], *opts: Any, **kw: Any) -> bool | int:
        """Delete a key (→ existed?) or a list of keys (→ how many existed)."""
        host = self._host

        def op() -> bool | int:
            keys = list(key) if isinstance(key, list | tuple) else [key]
            n = 0
            for k in keys:
                if host.storage_data.pop(_check_key(k), _MISSING) is not _MISSING:
                    n += 1
            host.note_write()
            return n if isinstance(key, list | tuple) else n == 1

        result: bool | int = await host.storage_op(op)
        return result

    async def deleteAll(self, *opts: Any, **kw: Any) -> None:
        """Delete every key, the SQL tables and the alarm."""
        host = self._host

        def op() -> None:
            host.storage_data.clear()
            tables = host.sql_conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
            for (name,) in tables:
                host.sql_conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            host.set_alarm(None)
            host.note_write()

        await host.storage_op(op)

    async def list(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Sorted entries; options prefix, start, startAfter, end, reverse, limit."""
        o = init_options(args, kwargs)
        host = self._host

        def op() -> dict[str, Any]:
            host.emu.counters.do_storage_reads += 1
            keys = sorted(host.storage_data)
            if o.get("prefix") is not None:
                keys = [k for k in keys if k.startswith(o["prefix"])]
            if o.get("start") is not None:
                keys = [k for k in keys if k >= o["start"]]
            if o.get("startAfter") is not None:
                keys = [k for k in keys if k > o["startAfter"]]
            if o.get("end") is not None:
                keys = [k for k in keys if k < o["end"]]
            if o.get("reverse"):
                keys.reverse()
            if o.get("limit") is not None:
                keys = keys[: int(o["limit"])]
            return {k: structured_clone(host.storage_data[k]) for k in keys}

        result: dict[str, Any] = await host.storage_op(op)
        return result

    async def transaction(self, closure: Callable[[Any], Any]) -> Any:
        """Run ``closure(txn)`` atomically; an exception or ``txn.rollback()`` undoes it."""
        host = self._host
        snapshot = dict(host.storage_data)
        txn = _Transaction(self)
        try:
            result = closure(txn)
            if inspect.isawaitable(result):
                result = await result
        except BaseException:
            host.storage_data.clear()
            host.storage_data.update(snapshot)
            raise
        if txn.rolled_back:
            host.storage_data.clear()
            host.storage_data.update(snapshot)
        return result

    def transactionSync(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in one SQLite transaction (synchronous)."""
        host = self._host
        snapshot = dict(host.storage_data)
        host.sql_conn.execute("SAVEPOINT txsync")
        try:
            result = fn()
        except BaseException:
            host.sql_conn.execute("ROLLBACK TO txsync")
            host.sql_conn.execute("RELEASE txsync")
            host.storage_data.clear()
            host.storage_data.update(snapshot)
            raise
        host.sql_conn.execute("RELEASE txsync")
        host.note_write()
        return result

    async def sync(self) -> None:
        """Wait until earlier writes are durable."""
        await self._host.output_gate()

    async def getAlarm(self, *opts: Any, **kw: Any) -> int | None:
        """The alarm time in ms since the epoch, or ``None``."""
        host = self._host
        result: int | None = await host.storage_op(lambda: host.alarm_ms)
        return result

    async def setAlarm(self, when: Any, *opts: Any, **kw: Any) -> None:
        """Schedule ``alarm()`` at ``when`` (ms since the epoch or a ``datetime``)."""
        host = self._host
        ms = _alarm_ms(when)

        def op() -> None:
            host.set_alarm(ms)
            host.note_write()

        await host.storage_op(op)

    async def deleteAlarm(self, *opts: Any, **kw: Any) -> None:
        """Cancel the alarm."""
        host = self._host

        def op() -> None:
            host.set_alarm(None)
            host.note_write()

        await host.storage_op(op)


_MISSING = object()


class _Transaction(JsProxy):
    def __init__(self, storage: DurableObjectStorage) -> None:
        self._s = storage
        self.rolled_back = False
        self.get = storage.get
        self.put = storage.put
        self.delete = storage.delete
        self.list = storage.list
        self.getAlarm = storage.getAlarm
        self.setAlarm = storage.setAlarm
        self.deleteAlarm = storage.deleteAlarm

    def rollback(self) -> None:
        self.rolled_back = True


class SqlStorage(JsProxy):
    """``ctx.storage.sql`` on stdlib ``sqlite3`` (one database per object, survives eviction)."""

    def __init__(self, host: ObjectHost) -> None:
        self._host = host

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        """Run one or more ``;``-separated statements; a cursor over the last one's rows."""
        if len(query.encode()) > 100_000:
            raise JsException("Error", "SQLITE_TOOBIG: statement too long")
        if len(bindings) > 100:
            raise JsException("Error", "too many SQL variables")
        host = self._host
        statements = _split_sql(query)
        if not statements:
            raise JsException("Error", "SQL code did not contain a statement.")
        conn = host.sql_conn
        params = [from_js(b) if b is not jsnull else None for b in bindings]
        try:
            before = conn.total_changes
            cur: sqlite3.Cursor | None = None
            for i, stmt in enumerate(statements):
                last = i == len(statements) - 1
                cur = conn.execute(stmt, params if last else [])
            assert cur is not None
            rows = cur.fetchall() if cur.description else []
            columns = [d[0] for d in cur.description] if cur.description else []
            written = conn.total_changes - before
        except sqlite3.Error as exc:
            raise JsException("Error", f"{exc}: SQLITE_ERROR") from None
        if written:
            host.note_write()
        host.emu.counters.do_storage_reads += 1
        return SqlCursor(columns, [tuple(r) for r in rows], len(rows), written)

    @property
    def databaseSize(self) -> int:
        """Size of the database in bytes."""
        conn = self._host.sql_conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)


def _split_sql(query: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for part in query.split(";"):
        buf = f"{buf};{part}" if buf else part
        if sqlite3.complete_statement(buf + ";"):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


class SqlCursor(JsProxy):
    """Result of ``sql.exec``: iterate rows (dicts), ``toArray()``, ``one()``, ``raw()``."""

    def __init__(
        self, columns: list[str], rows: list[tuple[Any, ...]], read: int, written: int
    ) -> None:
        self.columnNames = columns
        self._rows = rows
        self._pos = 0
        self.rowsRead = read
        self.rowsWritten = written

    def _row(self, t: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(self.columnNames, t, strict=False))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self._pos < len(self._rows):
            row = self._rows[self._pos]
            self._pos += 1
            yield self._row(row)

    def next(self) -> JsObject:
        """``{done, value}`` like a JS iterator."""
        if self._pos >= len(self._rows):
            return JsObject(done=True, value=None)
        row = self._rows[self._pos]
        self._pos += 1
        return JsObject(done=False, value=self._row(row))

    def toArray(self) -> list[dict[str, Any]]:
        """Every remaining row."""
        return list(self)

    def one(self) -> dict[str, Any]:
        """Exactly one row, else an error."""
        rest = self.toArray()
        if len(rest) != 1:
            raise JsException(
                "Error",
                "Expected exactly one result from SQL query, but got "
                + ("no results." if not rest else "multiple results."),
            )
        return rest[0]

    def raw(self) -> Iterator[list[Any]]:
        """Remaining rows as lists."""
        while self._pos < len(self._rows):
            row = self._rows[self._pos]
            self._pos += 1
            yield list(row)
