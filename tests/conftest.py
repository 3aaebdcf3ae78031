"""Shared fixtures: a live uvicorn server on an ephemeral port, and the official Node client.

``live_server(app_or_root)`` starts our ASGI app on 127.0.0.1 (port chosen by the OS) in a
background thread with its own event loop, on ``telefunc serve``'s uvicorn stack, and returns
its origin; it stops at teardown.
``run_node(script, *args)`` runs a scenario under ``js/interop/`` with the real
``telefunc@0.2.23`` client and returns the JSON lines it printed. ``redis_server`` is a real
``redis-server`` on an ephemeral port (tests/redis_support.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from live_server import LiveServer
from redis_support import redis_server as redis_server  # a real redis-server per test
from testpaths import APPS_DIR, IN_CI, INTEROP_DIR, JS_DIR, REPO, node_available

__all__ = ["APPS_DIR", "INTEROP_DIR", "IN_CI", "JS_DIR", "REPO", "LiveServer", "node_available"]


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live_server(app_or_root_dir, **TelefuncApp kwargs) -> LiveServer``."""
    servers: list[LiveServer] = []

    def start(app_or_root: Any, **kwargs: Any) -> LiveServer:
        app = app_or_root
        if isinstance(app_or_root, str | Path):
            from telefunc.cli import build_app

            app = build_app(app_or_root) if not kwargs else _app(app_or_root, **kwargs)
        server = LiveServer(app, **serve_stack())
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def serve_stack() -> dict[str, Any]:
    """``telefunc serve``'s uvicorn stack (its WebSocket protocol, httptools, uvloop), so live
    tests run what users run; the message size stays LiveServer's (tests send large ones)."""
    from telefunc.asgi.uvicorn_settings import uvicorn_settings

    settings = uvicorn_settings()
    del settings["ws_max_size"]
    return settings


def _app(root: str | Path, **kwargs: Any) -> Any:
    from telefunc.asgi import TelefuncApp

    return TelefuncApp(root, **kwargs)


@pytest.fixture
def run_node() -> Callable[..., list[dict[str, Any]]]:
    """Factory: ``run_node(script, *args, env=None, timeout=90) -> list of JSON lines``.

    Fails (in CI) or skips (elsewhere) when Node or ``js/node_modules`` is missing.
    """
    if not node_available():
        if IN_CI:
            pytest.fail("node or js/node_modules is missing: .ci/run must install them")
        pytest.skip("node or js/node_modules is missing (run: cd js && npm ci)")

    def run(
        script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 90
    ) -> list[dict[str, Any]]:
        command = [
            "node",
            "--conditions=browser",
            "--experimental-websocket",
            "--no-warnings",
            str(INTEROP_DIR / script),
            *args,
        ]
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            command, cwd=JS_DIR, env=full_env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"node {script} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    return run


@pytest.fixture
def apps_dir() -> Path:
    """The folder of the test apps (``tests/apps/<name>/``)."""
    return APPS_DIR
