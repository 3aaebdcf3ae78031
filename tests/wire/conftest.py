"""Fixtures of the wire-core tests: a fake clock and a server mux on the default settings."""

from __future__ import annotations

import pytest
from client_model import Clock

from telefunc.config import ChannelSettings
from telefunc.wire.mux import ServerMux


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mux() -> ServerMux:
    return ServerMux(ChannelSettings())
