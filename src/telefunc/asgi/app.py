"""The telefunc ASGI application: calls, channels and the app's static files.

    app = TelefuncApp("app/", context=lambda request: {"user": request.cookies.get("user")})

Run it with uvicorn (``telefunc serve`` does), or mount it in Starlette/FastAPI. Routes:
``POST /_telefunc`` (calls and the SSE channel transport), the WebSocket channel transport on
the same path, and ``GET`` of files under ``ROOT/public/``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from telefunc.asgi.http import (
    AsgiBody,
    HttpRequest,
    Receive,
    Scope,
    Send,
    call_head,
    query_params,
    send_response,
    send_rpc_response,
)
from telefunc.asgi.static import StaticFiles, not_found
from telefunc.broadcast.transport import (
    reset_scoped_broadcast_transport,
    resolve_broadcast_transport,
    set_scoped_broadcast_transport,
)
from telefunc.config import Config, config
from telefunc.errors import UsageError
from telefunc.server import observe
from telefunc.server.bugs import report_bug
from telefunc.server.gc_tuning import tune_for_server
from telefunc.server.hub import ChannelHub
from telefunc.server.origin import FORBIDDEN_BODY, check_origin, log_refusal
from telefunc.server.registry import Registry, discover
from telefunc.server.rpc import (
    INTERNAL_ERROR,
    MALFORMED,
    MISMATCH,
    RpcResponse,
    handle_call,
    request_kind,
)

__all__ = ["ContextFactory", "TelefuncApp"]

logger = logging.getLogger("telefunc")

ContextFactory = Callable[[HttpRequest], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]

#: The context of a call in an app without a context factory (read-only: CallScope copies it).
_NO_CONTEXT: Mapping[str, Any] = MappingProxyType({})


class TelefuncApp:
    """An ASGI app serving the telefunctions found under ``root``.

    :param root: the app root; every ``*.telefunc.py`` below it is discovered, and its
        ``public/`` folder (when present) is served as static files.
    :param registry: an explicit :class:`Registry` instead of (or in addition to) discovery.
    :param context: ``context(request)`` (sync or async) returning a mapping; its values are
        what ``get_context()`` returns inside telefunctions.
    :param telefunc_url: the endpoint path; the settings' ``telefunc_url`` (``/_telefunc``) by
        default.
    :param settings: this app's :class:`~telefunc.config.Config` (channel settings, limits,
        allowed origins, stream and broadcast transports); the global ``telefunc.config`` by
        default. Read live: a change applies to the next request, connection or channel.
    :param metrics: ``True`` answers ``GET <telefunc_url>/metrics`` with Prometheus metrics (a
        path string picks the path); needs the ``metrics`` extra. See :mod:`telefunc.asgi.metrics`.
    :param tune_gc: on ASGI lifespan startup, freeze the startup heap and raise the garbage
        collector's thresholds for the whole process (:mod:`telefunc.server.gc_tuning`): full
        collections over many connections otherwise stall the event loop every few seconds.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        registry: Registry | None = None,
        context: ContextFactory | None = None,
        telefunc_url: str | None = None,
        metrics: bool | str = False,
        tune_gc: bool = True,
        settings: Config | None = None,
    ) -> None:
        if root is None and registry is None:
            raise UsageError("TelefuncApp needs an app root folder or a registry")
        if settings is not None and not isinstance(settings, Config):
            raise UsageError(
                "settings must be a telefunc.config.Config (e.g. config.copy()), "
                f"got {type(settings).__name__}"
            )
        #: This app's settings (the global ``config`` unless it was given its own).
        self.settings = settings if settings is not None else config
        self.registry = registry if registry is not None else discover(root)  # type: ignore[arg-type]
        self.root = Path(root).resolve() if root is not None else None
        self.context_factory = context
        self.telefunc_url = telefunc_url or self.settings.telefunc_url
        if not self.telefunc_url.startswith("/"):
            raise UsageError(f"telefunc_url must be a path starting with '/', got {telefunc_url!r}")
        public = self.root / "public" if self.root is not None else None
        self.static = StaticFiles(public) if public is not None and public.is_dir() else None
        self.hub = ChannelHub(self.settings)
        self.metrics_path = _metrics_path(metrics, self.telefunc_url)
        self.tune_gc = tune_gc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An app with its own settings makes its broadcast transport the current one for all
        # its request spawns (get_broadcast_transport() reads the global config by itself).
        token = (
            None
            if self.settings is config
            else set_scoped_broadcast_transport(
                resolve_broadcast_transport(self.settings.broadcast.transport)
            )
        )
        try:
            kind = scope["type"]
            if kind == "http":
                await self._http(scope, receive, send)
            elif kind == "websocket":
                await self._websocket(scope, receive, send)
            elif kind == "lifespan":
                await self._lifespan(receive, send)
        finally:
            if token is not None:
                reset_scoped_broadcast_transport(token)

    def _path(self, scope: Scope) -> str:
        # Mounted under a prefix, newer Starlette keeps the full path and sets root_path.
        path: str = scope.get("path", "/")
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :] or "/"
        return path

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self._path(scope)
        if path == self.telefunc_url:
            await self._telefunc_request(scope, receive, send)
        elif path == self.metrics_path and scope["method"] == "GET":
            await _send_metrics(send)
        elif self.static is None or not await self.static.serve(scope["method"], path, send):
            await not_found(send)

    async def _telefunc_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        host, origins, fetch_site, kind_header, content_length = call_head(scope)
        if origins or fetch_site is not None:  # else nothing to check (see check_origin)
            refusal = check_origin(
                scheme=scope.get("scheme", "http"),
                host=host,
                origins=origins,
                sec_fetch_site=fetch_site,
                allowed=self.settings.allowed_origins,
            )
            if refusal is not None:  # cross-site: refused before the body is read or anything runs
                log_refusal(refusal)
                await send_response(send, 403, FORBIDDEN_BODY)
                return
        raw_query = scope.get("query_string")
        query_kind = query_params(raw_query).get("_telefunc") if raw_query else None
        kind = (
            None
            if query_kind is None and kind_header is None
            else request_kind(query_kind, kind_header)
        )
        body = AsgiBody(receive)
        if kind == "sse":
            await self._sse(HttpRequest(scope), body, send)
            return
        if kind == MISMATCH:
            response = RpcResponse.text(400, MALFORMED)
        else:
            try:
                values = (
                    _NO_CONTEXT
                    if self.context_factory is None
                    else await self.build_context(HttpRequest(scope))
                )
            except Exception as exc:
                logger.exception("telefunc: the context factory raised")
                report_bug(exc, None, "context factory")
                observe.sink.call_finished(observe.UNKNOWN, 500, 0.0)
                response = RpcResponse.text(500, INTERNAL_ERROR)
            else:
                response = await handle_call(
                    self.registry,
                    method=scope.get("method", "GET"),
                    kind=kind,
                    body=body,
                    hub=self.hub,
                    context=values,
                    content_length=content_length,
                )
        await send_rpc_response(send, body, response)

    async def build_context(self, request: HttpRequest) -> Mapping[str, Any]:
        """Run the app's context factory for ``request`` (an empty context without one)."""
        if self.context_factory is None:
            return {}
        values = self.context_factory(request)
        if inspect.isawaitable(values):
            values = await values
        if not isinstance(values, Mapping):
            raise UsageError(
                f"the context factory must return a mapping, got {type(values).__name__}"
            )
        return values

    async def _sse(self, request: HttpRequest, body: AsgiBody, send: Send) -> None:
        from telefunc.asgi.sse import serve_sse

        await serve_sse(self.hub, request, body, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._path(scope) != self.telefunc_url:
            await send({"type": "websocket.close", "code": 1008})
            return
        from telefunc.asgi.websocket import serve_websocket

        await serve_websocket(self.hub, scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.tune_gc:
                    tune_for_server()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.aclose()
                # A configured transport (e.g. Redis) holds connections of this event loop; the
                # in-memory default is process-wide and outlives any one app.
                configured = self.settings.broadcast.transport
                if configured is not None:
                    await resolve_broadcast_transport(configured).aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _metrics_path(metrics: bool | str, telefunc_url: str) -> str | None:
    if metrics is False:
        return None
    try:
        from telefunc.asgi.metrics import metrics_registry
    except ImportError:
        raise UsageError(
            "TelefuncApp(metrics=...) needs prometheus-client: pip install 'telefunc[metrics]'"
        ) from None
    metrics_registry()
    return metrics if isinstance(metrics, str) else telefunc_url.rstrip("/") + "/metrics"


async def _send_metrics(send: Send) -> None:
    from telefunc.asgi.metrics import CONTENT_TYPE, render

    await send_response(send, 200, render(), CONTENT_TYPE)
