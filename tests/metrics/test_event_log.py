"""Structured event lines: connection opened/closed with code, violations rate-limited, JSON."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from telefunc import Channel
from telefunc.logformat import JsonFormatter
from telefunc.server import observe
from telefunc.server.hub import ChannelHub
from telefunc.server.observe import EventLog
from testpaths import APPS_DIR


@pytest.fixture(autouse=True)
def event_log() -> Iterator[None]:
    observe.reset()
    observe.enable_event_log()
    yield
    observe.reset()


def events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "telefunc.events"]


async def test_a_violating_connection_logs_opened_closed_and_one_violation(
    live_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="telefunc.events")
    server = live_server(APPS_DIR / "channels")
    url = f"ws://127.0.0.1:{server.port}/_telefunc"
    for _ in range(3):  # the same client mistake three times
        async with websockets.connect(url) as ws:
            await ws.send("a text message with a secret payload")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 20)
    async with asyncio.timeout(10):
        while sum(getattr(r, "event", "") == "connection.closed" for r in events(caplog)) < 3:
            await asyncio.sleep(0.01)
    records = events(caplog)
    opened = [r for r in records if getattr(r, "event", "") == "connection.opened"]
    closed = [r for r in records if getattr(r, "event", "") == "connection.closed"]
    violations = [r for r in records if getattr(r, "event", "") == "protocol.violation"]
    assert len(opened) == 3 and len(closed) == 3
    fields = closed[0].fields  # type: ignore[attr-defined]
    assert fields["transport"] == "ws" and fields["code"] == 1002 and fields["by"] == "server"
    assert "protocol violation" in fields["reason"]
    assert len(violations) == 1  # rate-limited: one line per kind per interval
    assert violations[0].fields == {"kind": "text-message"}  # type: ignore[attr-defined]
    assert all("secret payload" not in r.getMessage() for r in records)


def test_the_json_formatter_puts_event_keys_at_the_top_level() -> None:
    record = logging.LogRecord(
        "telefunc.events", logging.INFO, __file__, 1, "event=%s", ("x",), None
    )
    record.event = "connection.closed"
    record.fields = {"transport": "ws", "code": 4000, "conn": "abcd1234"}
    line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "connection.closed" and line["code"] == 4000
    assert line["level"] == "info" and line["logger"] == "telefunc.events"
    assert line["ts"].endswith("Z")


def test_ids_are_shortened() -> None:
    class Conn:
        transport = "sse"
        conn_id = "0123456789abcdef0123456789"
        session_id = "fedcba9876543210fedcba"
        close_request = (4000, "ping timeout")

    log = logging.getLogger("test.events.ids")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    EventLog(log).connection_closed(Conn(), None)  # type: ignore[arg-type]
    fields = seen[0].fields  # type: ignore[attr-defined]
    assert fields["conn"] == "01234567" and fields["session"] == "fedcba98"
    assert fields["code"] == 4000 and fields["reason"] == "'ping timeout'"


async def test_channels_dropped_by_the_server_log_one_line_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="telefunc.events")
    hub = ChannelHub()
    channels: list[Channel[Any, Any]] = [Channel() for _ in range(5)]
    for channel in channels:
        hub.register(channel)  # no client ever connects to them
    closed = asyncio.Event()
    channels[-1].on_close(lambda _error: closed.set())
    hub.mux.handle_timeout(hub.now() + 3600)  # past connect_ttl
    await asyncio.wait_for(closed.wait(), 10)
    dropped = [r for r in events(caplog) if getattr(r, "event", "") == "channel.dropped"]
    assert len(dropped) == 1  # five drops of one kind: one line (rate-limited)
    fields = dropped[0].fields  # type: ignore[attr-defined]
    assert fields == {"kind": "connect-timeout", "channel": channels[0].id[:8]}
    await hub.aclose()
