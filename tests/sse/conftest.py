"""Fixtures of the SSE transport tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from telefunc import config


@pytest.fixture
def restore_config() -> Iterator[None]:
    """Put back the channel settings a test changes (transports, connect TTL, ping interval)."""
    saved = config.channel.snapshot()
    yield
    config.channel.reset()
    config.channel.update(
        {f: getattr(saved, f) for f in ("transports", "connect_ttl", "ping_interval")}
    )
