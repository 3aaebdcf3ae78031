"""``LiveServer``: an ASGI app on uvicorn in a background thread, on an ephemeral port.

The ``live_server`` fixture (tests/conftest.py) builds these; a test that needs one outside a
fixture (e.g. in a child interpreter) imports it from here.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

__all__ = ["LiveServer"]


class LiveServer:
    """A uvicorn server running ``app`` in a thread; ``origin`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, app: Any, **uvicorn_kwargs: Any) -> None:
        """``uvicorn_kwargs`` override the ``uvicorn.Config`` below (e.g. ``telefunc serve``'s
        stack from :func:`telefunc.asgi.uvicorn_settings.uvicorn_settings`)."""
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        options = {"log_level": "warning", "lifespan": "on", "ws_max_size": 64 * 1024 * 1024}
        config = uvicorn.Config(app, **{**options, **uvicorn_kwargs})
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=f"uvicorn:{self.port}", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # surfaced by start()
            self.error = exc

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        ready = threading.Event()

        def poll() -> None:
            while not self.server.started and self.thread.is_alive():
                ready.wait(0.01)
            ready.set()

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        if not ready.wait(timeout) or not self.server.started:
            raise RuntimeError(f"uvicorn did not start: {self.error!r}")

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
