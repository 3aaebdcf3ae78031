"""The uvicorn settings ``telefunc serve`` uses, for apps that run uvicorn themselves.

    uvicorn.run(TelefuncApp("app/"), host="0.0.0.0", port=3000, **uvicorn_settings())

They bound what one client can make uvicorn hold before telefunc sees anything: the largest
WebSocket message (``config.limits.max_message_size``; past it the socket closes with 1009),
no permessage-deflate unless asked for (a compressed message can inflate a thousandfold), the
number of concurrent connections (``config.limits.max_concurrency``; past it HTTP requests get
503), how long an idle keep-alive connection stays open, and the largest request head h11 buffers.
uvicorn's WebSocket keep-alive pings are off: the channel protocol's PING deadline finds dead
peers.
uvicorn has no timeout for reading a request's headers: put a reverse proxy in front for that.
Read when called, so set ``config.limits`` first.
"""

from __future__ import annotations

from typing import Any

from telefunc.config import config

__all__ = ["KEEP_ALIVE_TIMEOUT", "MAX_REQUEST_HEAD", "uvicorn_settings"]

#: Seconds an idle keep-alive HTTP connection stays open (uvicorn's default, stated here).
KEEP_ALIVE_TIMEOUT = 5
#: Largest request line + headers h11 buffers, in bytes (h11's own default, made explicit).
MAX_REQUEST_HEAD = 16 * 1024


def uvicorn_settings(*, ws_compression: bool = False) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``/``uvicorn.run`` from the current ``config``."""
    limits = config.limits.snapshot()
    return {
        "ws_max_size": limits.max_message_size,
        "ws_per_message_deflate": ws_compression,
        "limit_concurrency": limits.max_concurrency,
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "h11_max_incomplete_event_size": MAX_REQUEST_HEAD,
        # The channel protocol's own PING deadline finds dead peers; uvicorn's WebSocket pings
        # every 20 s would add a timer per connection and traffic for nothing.
        "ws_ping_interval": None,
    }
