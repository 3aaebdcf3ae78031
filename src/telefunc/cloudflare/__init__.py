"""telefunc on Cloudflare Workers: session-affine Durable Objects, located through KV.

:class:`Telefunc` serves the ``*.telefunc.py`` files of a Python Worker from its ``fetch``
(example: the README's Cloudflare section and ``examples/cloudflare/``). Channel state lives on
the Durable Object (``TelefuncDurableObject``) that holds the client's connection; KV
(``TelefuncKV``) stores the session token that pins every request of a client to that object.
An app without ``Channel`` / ``BroadcastChannel`` needs neither binding: its calls run in the
worker itself. Routing, sessions and broadcast: docs/cloudflare.md §4.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from telefunc.cloudflare import _ffi
from telefunc.cloudflare.broadcast import BroadcastSettings, DurableBroadcast
from telefunc.cloudflare.durable_object import (
    ContextFactory,
    DurableServer,
    NoChannelHub,
    build_durable_object_class,
    refuse_cross_site,
    serve_call,
)
from telefunc.cloudflare.regions import REGIONS, Scale, resolve_region
from telefunc.cloudflare.routing import (
    BUCKET_HEADER,
    SESSION_HEADER,
    SESSION_QUERY,
    SESSION_TTL,
    SHARD_HEADER,
    Router,
    SessionRecord,
    session_key,
    shard_name,
)
from telefunc.config import Config, config
from telefunc.errors import UsageError
from telefunc.server.registry import Registry, discover
from telefunc.server.rpc import request_kind

__all__ = [
    "JURISDICTIONS",
    "REGIONS",
    "SESSION_HEADER",
    "SESSION_TTL",
    "BroadcastSettings",
    "DurableBroadcast",
    "DurableServer",
    "SessionRecord",
    "Telefunc",
    "resolve_region",
    "shard_name",
]

JURISDICTIONS = ("eu", "fedramp", "fedramp-high", "us")
"""Durable Object jurisdictions accepted by ``jurisdiction=``."""


def _caller_folder() -> Path:
    """The folder of the module constructing :class:`Telefunc` (the first frame outside it).

    Reads ``__file__`` from the caller's globals: no I/O, no entropy, fine at a worker's top level.
    """
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # type: ignore[assignment]
    filename = frame.f_globals.get("__file__") if frame is not None else None
    if not filename:
        raise UsageError(
            "Telefunc() finds the *.telefunc.py files next to the module that constructs it, "
            "but the caller has no __file__: pass root= (the folder of the telefunc files) "
            "or registry="
        )
    return Path(filename).resolve().parent


class Telefunc:
    """telefunc for a Cloudflare Worker; see the module docstring.

    :param context: ``context(request, env)`` (sync or async) returning a mapping: what
        ``get_context()`` gives telefunctions. It runs where the call runs (the Durable Object).
    :param binding_name: the Durable Object binding (``env.TelefuncDurableObject``).
    :param kv_binding_name: the KV namespace binding (``env.TelefuncKV``).
    :param instance_name: prefix of object names, ``<instance>-shard-<region>-<n>``.
    :param scale: objects per region (an ``int``), or ``{"weur": 5, "enam": 3}``: only the
        listed regions get objects, the others route to ``location_fallback``, which must be listed.
    :param location_fallback: the region for requests whose colo and continent are unknown.
    :param jurisdiction: restrict the objects to a jurisdiction (``"eu"``, ``"fedramp"``, ...).
    :param root: the folder holding the app's ``*.telefunc.py`` files, discovered on first use.
        Default: the folder of the module that constructs the ``Telefunc`` (``worker.py``).
    :param registry: an explicit :class:`~telefunc.server.registry.Registry` instead of ``root``.
    :param telefunc_url: the endpoint path prefix (default: the settings' ``telefunc_url``).
    :param settings: this app's :class:`~telefunc.config.Config` (channel settings, limits,
        allowed origins), used by the worker and its Durable Objects; the global
        ``telefunc.config`` by default. Read live, like :class:`~telefunc.asgi.TelefuncApp`'s.
    """

    def __init__(
        self,
        context: ContextFactory | None = None,
        *,
        binding_name: str = "TelefuncDurableObject",
        kv_binding_name: str = "TelefuncKV",
        instance_name: str = "telefunc",
        scale: Scale = 1,
        location_fallback: str = "weur",
        jurisdiction: str | None = None,
        root: str | Path | None = None,
        registry: Registry | None = None,
        telefunc_url: str | None = None,
        settings: Config | None = None,
    ) -> None:
        if root is None and registry is None:
            root = _caller_folder()
        if settings is not None and not isinstance(settings, Config):
            raise UsageError(
                "settings must be a telefunc.config.Config (e.g. config.copy()), "
                f"got {type(settings).__name__}"
            )
        #: This app's settings (the global ``config`` unless it was given its own).
        self.settings = settings if settings is not None else config
        if jurisdiction is not None and jurisdiction not in JURISDICTIONS:
            raise UsageError(
                f"jurisdiction must be one of {', '.join(JURISDICTIONS)}, got {jurisdiction!r}"
            )
        if context is not None and not callable(context):
            raise UsageError("context must be a callable context(request, env)")
        self.context = context
        self.binding_name = binding_name
        self.kv_binding_name = kv_binding_name
        self.instance_name = instance_name
        self.scale = scale
        self.location_fallback = location_fallback
        self.jurisdiction = jurisdiction
        #: Session routing (validates ``scale`` and ``location_fallback``).
        self.router = Router(instance_name, scale, location_fallback)
        self.root = Path(root) if root is not None else None
        self._registry = registry
        self._telefunc_url = telefunc_url
        self._object_class: type[Any] | None = None

    @property
    def registry(self) -> Registry:
        """The app's telefunctions (discovered under ``root`` on first use)."""
        if self._registry is None:
            assert self.root is not None
            self._registry = discover(self.root)
        return self._registry

    @property
    def telefunc_url(self) -> str:
        """The endpoint path prefix."""
        return self._telefunc_url or self.settings.telefunc_url

    @property
    def TelefuncDurableObject(self) -> type[Any]:
        """The Durable Object class to export from the worker's entry module."""
        if self._object_class is None:
            self._object_class = build_durable_object_class(
                lambda: self.registry,
                self.context,
                lambda: self.telefunc_url,
                self.broadcast_settings,
                self.settings,
            )
        return self._object_class

    @property
    def broadcast_settings(self) -> BroadcastSettings:
        """What the objects need for the distributed broadcast (names, scale, bindings)."""
        return BroadcastSettings(
            instance_name=self.instance_name,
            counts=dict(self.router.counts),
            binding_name=self.binding_name,
            kv_binding_name=self.kv_binding_name,
            jurisdiction=self.jurisdiction,
            location_fallback=self.location_fallback,
        )

    def _namespace(self, env: Any) -> Any:
        namespace = _ffi.namespace_binding(env, self.binding_name)
        if namespace is not None and self.jurisdiction is not None:
            namespace = namespace.jurisdiction(self.jurisdiction)
        return namespace

    async def serve(self, *, request: Any, env: Any, ctx: Any) -> Any:
        """Answer telefunc traffic (path under ``telefunc_url``); ``None`` for anything else.

        Calls, SSE POSTs and WebSocket upgrades are forwarded to the client's Durable Object
        (the session token of ``x-telefunc-session`` or ``?session=``; a new session when it is
        missing, unknown or expired); responses other than upgrades carry the token back.
        Without the bindings, calls run here and a channel raises :class:`UsageError`.
        A request from a foreign browser origin gets 403 (the settings' ``allowed_origins``).
        """
        path = urlsplit(_ffi.request_url(request)).path
        if not path.startswith(self.telefunc_url):
            return None
        refused = refuse_cross_site(request, self.settings.allowed_origins)
        if refused is not None:
            return refused
        namespace = self._namespace(env)
        kv = _ffi.namespace_binding(env, self.kv_binding_name)
        is_websocket = (_ffi.request_header(request, "upgrade") or "").lower() == "websocket"
        if namespace is None or kv is None:
            return await self._serve_stateless(request, env, namespace is None, kv is None)
        if is_websocket and "ws" not in self.settings.channel.transports:
            return _ffi.new_response(None, status=400)
        token = (
            _ffi.request_header(request, SESSION_HEADER)
            or _ffi.request_query(request).get(SESSION_QUERY)
            or None
        )
        stored = await _ffi.kv_get_text(kv, session_key(token)) if token else None
        target = self.router.route(token, stored, _ffi.request_cf(request))
        record = target.record
        if target.new:
            _ffi.wait_until(
                ctx,
                _ffi.kv_put(kv, session_key(target.token), record.to_json(), ttl=SESSION_TTL),
            )
        response = await _ffi.stub_fetch(
            namespace,
            record.shard,
            record.region,
            request,
            {SHARD_HEADER: record.shard, BUCKET_HEADER: record.region},
        )
        if is_websocket:
            return response
        return _ffi.rebuild_response(response, {SESSION_HEADER: target.token})

    async def _serve_stateless(
        self, request: Any, env: Any, no_namespace: bool, no_kv: bool
    ) -> Any:
        missing = [
            f"{kind} {name!r}"
            for kind, name, absent in (
                ("Durable Object binding", self.binding_name, no_namespace),
                ("KV namespace binding", self.kv_binding_name, no_kv),
            )
            if absent
        ]
        hub = NoChannelHub(missing, self.settings)
        is_websocket = (_ffi.request_header(request, "upgrade") or "").lower() == "websocket"
        kind = request_kind(
            _ffi.request_query(request).get("_telefunc"),
            _ffi.request_header(request, "x-telefunc-request"),
        )
        if is_websocket or kind == "sse":
            raise hub.usage_error()
        response = await serve_call(self.registry, request, env, hub, self.context)
        if hub.error is not None:
            raise hub.error
        return response
