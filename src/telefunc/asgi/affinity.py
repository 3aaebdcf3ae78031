"""Server affinity for several processes behind a load balancer: the process id in a session token.

    app = ServerAffinity(TelefuncApp("app/"), server_id="s1")   # telefunc serve --server-id s1

Every response on the telefunc endpoint carries ``x-telefunc-session: <server_id>.<random>``
(and ``x-telefunc-server``); both clients send the token back (``?session=``, and the header on
HTTP requests), so a load balancer can route every request of a session to its process
(README "Scale-out", examples/scale-out/). The token is a routing hint only, never trusted for
anything else: it is echoed when well formed and naming this server, otherwise a new one is
minted.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import parse_qs

from telefunc.asgi.http import Receive, Scope, Send
from telefunc.config import config
from telefunc.errors import UsageError

__all__ = ["SERVER_HEADER", "SESSION_HEADER", "ServerAffinity", "check_server_id"]

SESSION_HEADER = "x-telefunc-session"
SERVER_HEADER = "x-telefunc-server"
#: A server id: what a load-balancer server name and a cookie value can hold without quoting.
SERVER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
#: ``<server id>.<32 hex digits>``: the only tokens echoed back.
TOKEN = re.compile(r"([A-Za-z0-9_-]{1,32})\.[0-9a-f]{32}")


def check_server_id(server_id: str) -> str:
    """``server_id`` when it is 1 to 32 letters, digits, ``-`` or ``_``; UsageError otherwise."""
    if not SERVER_ID.fullmatch(server_id):
        raise UsageError(f"a server id has 1 to 32 letters, digits, '-' or '_', got {server_id!r}")
    return server_id


def _request_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == SESSION_HEADER.encode():
            return bytes(value).decode("latin-1")
    query = bytes(scope.get("query_string", b""))
    # Bounded: parse_qs reads at most a few fields of a query the server already limits.
    values = parse_qs(query.decode("latin-1"), max_num_fields=16).get("session") if query else None
    return values[0] if values else None


class ServerAffinity:
    """ASGI middleware: adds this process's session token and id to the app's HTTP responses.

    :param app: the wrapped ASGI app (a :class:`~telefunc.asgi.TelefuncApp`).
    :param server_id: this process's name at the load balancer (see :func:`check_server_id`).
    :param telefunc_url: the endpoint whose responses get a token (``config.telefunc_url``).
    """

    def __init__(self, app: Any, server_id: str, telefunc_url: str | None = None) -> None:
        self.app = app
        self.server_id = check_server_id(server_id)
        self.telefunc_url = telefunc_url or config.telefunc_url
        self._server_header = (SERVER_HEADER.encode(), server_id.encode())

    def __getattr__(self, name: str) -> Any:
        # The wrapped app's attributes (registry, hub, ...) stay reachable.
        return getattr(self.app, name)

    def token_for(self, scope: Scope) -> str:
        """The request's token when it names this server, else a new one."""
        token = _request_token(scope)
        if token is not None:
            match = TOKEN.fullmatch(token)
            if match is not None and match.group(1) == self.server_id:
                return token
        return f"{self.server_id}.{uuid.uuid4().hex}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [self._server_header]
        if scope.get("path") == self.telefunc_url:
            extra.append((SESSION_HEADER.encode(), self.token_for(scope).encode()))

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
