"""The synchronous face: a private loop in one background thread, closed without leaks."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from telefunc.client import Abort, Channel, SyncClient, connect_sync

APPS = Path(__file__).resolve().parents[1] / "apps"


def test_sync_calls_and_a_channel_then_no_thread_is_left(live_server: Any) -> None:
    basic = live_server(APPS / "basic")
    chat = live_server(APPS / "channels")
    baseline = threading.active_count()
    with connect_sync(basic.origin) as c:
        assert isinstance(c, SyncClient)
        assert c.call("/calc.telefunc.py", "add", 1, 2) == 3
        assert c.module("/calc.telefunc.py").add(3, 4) == 7
        with pytest.raises(Abort) as info:
            c.call("/calc.telefunc.py", "refuse", "no")
        assert info.value.value == {"reason": "no"}
        assert threading.active_count() == baseline + 1  # exactly one background thread
    assert threading.active_count() == baseline

    # A host name: the lookup runs in the loop's executor, whose threads must be joined too.
    c2 = connect_sync(chat.origin.replace("127.0.0.1", "localhost"))
    ch = c2.call("/chat.telefunc.py", "acked")
    assert isinstance(ch, Channel)
    ch.listen(lambda msg: "client-answer")
    assert c2.run(ch.send, 21) == 42
    assert c2.run(ch.close) == 0
    c2.close()
    c2.close()  # idempotent
    assert threading.active_count() == baseline


def test_a_failed_start_leaves_no_thread() -> None:
    baseline = threading.active_count()
    with pytest.raises(ValueError):
        connect_sync("ftp://nowhere")
    assert threading.active_count() == baseline


def test_sync_iteration_of_a_generator_and_an_early_break(live_server: Any) -> None:
    streaming = live_server(APPS / "streaming")
    baseline = threading.active_count()
    with connect_sync(streaming.origin) as c:
        assert list(c.iterate(c.call("/stream.telefunc.py", "countdown", 3))) == [3, 2, 1, 0]
        for n in c.iterate(c.call("/stream.telefunc.py", "ticker", "sync-run")):
            if n == 2:
                break  # closes the remote generator: the server's finally must run
        events = c.call("/stream.telefunc.py", "events_of", "sync-run", "finally", 10.0)
    assert events[:2] == ["started", "finally"]
    assert threading.active_count() == baseline
