"""The ``channel`` stream transport with the official telefunc@0.2.23 client: every scenario
of js/interop/stream_values.mjs (countdown, empty, two generators, byte stream, promise, abort
and bug mid-stream, early break and ``close(gen)`` running the server's ``finally``, an echoed
file, a download), each streaming value pumped over its own channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parent.parent / "apps" / "streaming"


def test_official_client_streaming_values_over_channels(live_server: Any, run_node: Any) -> None:
    server = live_server(APP)
    lines = run_node("stream_values_channel.mjs", server.origin)
    results = {line["name"]: line for line in lines}
    for name, line in results.items():
        assert line["ok"], (name, line)

    # Every response but one was the plain-text form: the streaming values travelled on
    # channels. The echoed upload (read from its request's body, which ends with the HTTP
    # exchange) is the exception: it is sent inline.
    content_types = results["content_types"]["value"]
    assert len(content_types) >= 12
    inline = [ct for ct in content_types if not ct.startswith("text/plain")]
    assert inline == ["application/octet-stream"], content_types

    assert results["countdown"]["value"] == [3, 2, 1, 0]
    assert results["countdown_direct"]["value"] == [2, 1, 0]
    assert results["empty"]["value"] == []
    assert results["two"]["value"] == {
        "label": "two",
        "letters": ["a", "b", "c"],
        "squares": [1, 4, 9],
    }
    assert results["byte_stream"]["value"] == {
        "isReadableStream": True,
        "size": 100000,
        "total": 100000,
        "okBytes": True,
    }
    assert results["promise"]["value"] == {"isPromise": True, "value": {"resolved": "yes"}}

    abort = results["abort_mid"]["value"]
    assert abort["seen"] == [1, 2] and abort["threw"] is True
    assert abort["error"]["isAbort"] is True
    assert abort["error"]["abortValue"] == {"reason": "stop"}

    bug = results["bug_mid"]["value"]
    assert bug["seen"] == [1] and bug["threw"] is True and bug["error"]["isAbort"] is False
    assert "Internal Server Error" in bug["error"]["message"]

    early = results["break_early"]["value"]
    assert early["seen"] == [0, 1, 2]
    assert early["events"][:3] == ["started", "finally", "on_close"]

    closed = results["close_gen"]["value"]
    assert closed["first"] == 0
    assert closed["events"][:3] == ["started", "finally", "on_close"]

    assert results["echo_file"]["value"] == {
        "label": "echo",
        "isFile": True,
        "name": "a.txt",
        "type": "text/plain",
        "lastModified": 7,
        "size": 110000,
        "same": True,
    }
    assert results["blob_download"]["value"] == {
        "type": "text/plain",
        "size": 10,
        "name": None,
        "text": "hello blob",
    }
