"""The official telefunc@0.2.23 client (Node 20) calling our server over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

APPS = Path(__file__).resolve().parents[1] / "apps"


def test_official_client_calls(live_server: Any, run_node: Any) -> None:
    server = live_server(APPS / "basic")
    results = {line["name"]: line for line in run_node("rpc_basic.mjs", server.origin)}

    assert results["sum"] == {"name": "sum", "ok": True, "value": 5}

    abort = results["abort"]["error"]
    assert abort["isAbort"] is True
    assert abort["abortValue"] == {"reason": "nope"}

    assert results["bug"]["ok"] is False
    assert "Internal Server Error" in results["bug"]["error"]["message"]

    assert results["unknown"]["ok"] is False
    assert "out of sync" in results["unknown"]["error"]["message"]

    shield = results["shield"]["error"]
    assert shield["isShieldValidationError"] is True

    assert results["context"]["value"] == "anonymous"

    # echo(undefined) through an Any parameter answers undefined, as the Node server does.
    assert results["undefined"]["echoIsUndefined"] is True
    assert results["undefined"]["optional"] == "None"

    echo = results["echo"]
    assert echo["ok"] is True, echo
    assert echo["described"] == {
        "u": "UNDEFINED",
        "n": "NoneType",
        "nan": "float",
        "inf": "float",
        "ninf": "float",
        "d": "datetime",
        "big": "BigInt",
        "re": "JsRegExp",
        "m": "JsMap",
        "s": "set",
        "bytes": "bytes",
        "bang": "str",
        "html": "str",
        "float": "float",
        "neg0": "int",
        "list": "list",
    }
