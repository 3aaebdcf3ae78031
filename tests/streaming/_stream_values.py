"""The expected values of js/interop/stream_values.mjs, the official client's streaming
scenarios, shared by the tests of every stream transport (binary-inline, sse-inline, channel)."""

from __future__ import annotations

from typing import Any


def check_stream_values(results: dict[str, dict[str, Any]]) -> None:
    """Assert the value of each scenario stream_values.mjs printed (its lines by ``name``):
    generators, byte stream, promise, aborts and bugs mid-stream, early close, file, blob."""
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
