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
