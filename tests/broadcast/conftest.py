"""Fixtures for the broadcast tests: ``redis_server``, a real ``redis-server`` per test.

It listens on an ephemeral 127.0.0.1 port without persistence; ``redis_server.restart()``
restarts it on the same port (see ``_redis_server.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` on an ephemeral port, stopped after the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
