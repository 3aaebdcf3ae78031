"""The uvicorn settings ``telefunc serve`` uses, for apps that run uvicorn themselves.

    uvicorn.run(TelefuncApp("app/"), host="0.0.0.0", port=3000, **uvicorn_settings())

They bound what one client can make uvicorn hold before telefunc sees anything (message size,
no permessage-deflate unless asked for, concurrency, keep-alive, request head size; from
``config.limits``, read when called, so set it first), turn uvicorn's WebSocket pings off (the
channel protocol finds dead peers), and pick the measured stack (:mod:`telefunc.asgi.ws_protocol`,
httptools and uvloop when installed). They do not bound reading a request's headers: put a
reverse proxy in front for that. Details: the README's "uvicorn settings" and "Server stack".
"""

from __future__ import annotations

import importlib.util
from typing import Any

from telefunc.config import config

__all__ = [
    "HTTP_CHOICES",
    "KEEP_ALIVE_TIMEOUT",
    "LOOP_CHOICES",
    "WS_CHOICES",
    "uvicorn_settings",
]

#: Seconds an idle keep-alive HTTP connection stays open (uvicorn's default, stated here).
KEEP_ALIVE_TIMEOUT = 5
#: ``ws``: ``telefunc`` is uvicorn's ``websockets-sansio`` with telefunc's caps
#: (:mod:`telefunc.asgi.ws_protocol`); the others are uvicorn's own, without them.
WS_CHOICES = ("telefunc", "websockets-sansio", "websockets", "wsproto")
#: ``http``: ``auto`` is httptools when installed (with telefunc's head cap), else h11.
HTTP_CHOICES = ("auto", "httptools", "h11")
#: ``loop``: ``auto`` is uvloop when installed, else asyncio (uvicorn's own choice).
LOOP_CHOICES = ("auto", "uvloop", "asyncio")


def uvicorn_settings(
    *,
    ws_compression: bool = False,
    ws: str = "telefunc",
    http: str = "auto",
    loop: str = "auto",
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``/``uvicorn.run`` from the current ``config``.

    ``ws``, ``http`` and ``loop`` pick the stack (see :data:`WS_CHOICES`, :data:`HTTP_CHOICES`,
    :data:`LOOP_CHOICES`); the defaults are what bench/stack.py measured best. Raises
    ``ValueError`` for an unknown choice.
    """
    limits = config.limits.snapshot()
    return {
        "ws": _ws_protocol(ws),
        "http": _http_protocol(http),
        "loop": _check(loop, LOOP_CHOICES, "loop"),
        "ws_max_size": limits.max_message_size,
        "ws_per_message_deflate": ws_compression,
        "limit_concurrency": limits.max_concurrency,
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "h11_max_incomplete_event_size": limits.max_request_head,
        # The channel protocol's own PING deadline finds dead peers; uvicorn's WebSocket pings
        # every 20 s would add a timer per connection and traffic for nothing.
        "ws_ping_interval": None,
    }


def _check(choice: str, choices: tuple[str, ...], name: str) -> str:
    if choice not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {choice!r}")
    return choice


def _ws_protocol(ws: str) -> Any:
    if _check(ws, WS_CHOICES, "ws") != "telefunc":
        return ws
    from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol

    return TelefuncWebSocketProtocol


def _http_protocol(http: str) -> Any:
    if _check(http, HTTP_CHOICES, "http") == "h11":
        return "h11"
    if http == "auto" and importlib.util.find_spec("httptools") is None:
        return "h11"
    from telefunc.asgi.http_protocol import TelefuncHttpToolsProtocol

    return TelefuncHttpToolsProtocol
