"""A pytest plugin recording every lifecycle transition the tests take (``-p phase_recorder``).

With ``TELEFUNC_PHASE_LOG=path`` set, it wraps ``ChannelCore._transition`` and
``ServerConnection._transition`` and, when the run ends, writes the legal ``(phase, event)``
pairs taken to ``path`` as JSON: ``{"channel": [[phase, event], ...], "connection": [...]}``.
tests/wire/test_phases.py runs the state tests under it to check they cover both tables.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from telefunc.wire.channel_state import ChannelCore, ChannelEvent
from telefunc.wire.mux import ConnectionEvent, ServerConnection

_taken: dict[str, set[tuple[str, str]]] = {"channel": set(), "connection": set()}


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("TELEFUNC_PHASE_LOG"):
        return
    channel_transition = ChannelCore._transition
    connection_transition = ServerConnection._transition

    def channel(self: ChannelCore, event: ChannelEvent) -> Any:
        left = channel_transition(self, event)  # an illegal move raises before it is recorded
        _taken["channel"].add((left.name, event.name))
        return left

    def connection(self: ServerConnection, event: ConnectionEvent) -> Any:
        left = connection_transition(self, event)  # an illegal move raises before it is recorded
        _taken["connection"].add((left.name, event.name))
        return left

    ChannelCore._transition = channel  # type: ignore[method-assign]
    ServerConnection._transition = connection  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get("TELEFUNC_PHASE_LOG")
    if path:
        with open(path, "w") as f:
            json.dump({k: sorted(v) for k, v in _taken.items()}, f)
