"""The official npm client against the Cloudflare adapter in real workerd: calls, Abort,
bugs, 422 (shield), and session affinity across 100 calls."""

from __future__ import annotations

import json
from typing import Any

import httpx

from telefunc.cloudflare import SESSION_HEADER


def test_calls_abort_errors_and_shield(origin: str, run_node: Any) -> None:
    results = {line["name"]: line for line in run_node("rpc_basic.mjs", origin)}
    assert results["sum"] == {"name": "sum", "ok": True, "value": 5}
    abort = results["abort"]["error"]
    assert abort["isAbort"] is True and abort["abortValue"] == {"reason": "nope"}
    assert results["bug"]["ok"] is False
    assert "Internal Server Error" in results["bug"]["error"]["message"]
    assert results["unknown"]["ok"] is False
    assert "out of sync" in results["unknown"]["error"]["message"]
    assert results["shield"]["error"]["isShieldValidationError"] is True
    assert results["context"]["value"] == "anonymous"
    assert results["echo"]["ok"] is True, results["echo"]


def _call(http: httpx.Client, name: str, args: list[Any], token: str | None) -> httpx.Response:
    body = json.dumps({"file": "/where.telefunc.py", "name": name, "args": args})
    headers = {"content-type": "text/plain"}
    if token is not None:
        headers[SESSION_HEADER] = token
    return http.post("/_telefunc", content=body, headers=headers)


def test_wrong_argument_is_422_and_malformed_body_is_400(origin: str) -> None:
    with httpx.Client(base_url=origin, timeout=30) as http:
        body = json.dumps({"file": "/calc.telefunc.py", "name": "add", "args": ["2", 3]})
        r = http.post("/_telefunc", content=body, headers={"content-type": "text/plain"})
        assert r.status_code == 422, r.text
        r = http.post("/_telefunc", content=b"{not json", headers={"content-type": "text/plain"})
        assert r.status_code == 400, r.text


def test_session_affinity_across_100_calls(origin: str) -> None:
    with httpx.Client(base_url=origin, timeout=30) as http:
        first = _call(http, "where", [], None)
        assert first.status_code == 200, first.text
        token = first.headers[SESSION_HEADER]
        shard = first.json()["ret"]
        assert shard
        for _ in range(100):
            r = _call(http, "where", [], token)
            assert r.status_code == 200, r.text
            assert r.json()["ret"] == shard
            assert r.headers[SESSION_HEADER] == token
