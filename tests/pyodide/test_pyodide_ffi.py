"""FFI smoke tier (issue 9 item 8): real Pyodide 0.28.2 with small JS fakes of the Workers APIs.

``snippets/ffi_main.py`` pins the Pyodide conversions the Cloudflare adapter relies on (Map vs
Object, ``jsnull`` vs ``None``, keyword arguments, proxy lifetimes, Promises, Request/Response,
WebSocketPair, Durable Object stubs); ``snippets/cf_ffi_main.py`` runs the helpers of
``telefunc.cloudflare._ffi`` against the same fakes (``js/pyodide/cloudflare_fakes.mjs``).
"""

from __future__ import annotations

from typing import Any

import pytest
from test_pyodide_core import FAKES, SNIPPETS, run_pyodide

FFI_CHECKS = [
    "map_versus_object",
    "null_and_undefined",
    "keyword_arguments",
    "proxy_lifetime",
    "promises",
    "request_response_headers",
    "websocket_pair_and_stub_fetch",
    "platform",
]
ADAPTER_CHECKS: list[Any] = [
    "imports",
    "requests",
    "kv_and_bindings",
    "durable_object_fetch",
    "websockets",
    "timers_and_clock",
    "streamed_body",
    # _ffi.wait_until hands ctx.waitUntil a real Promise settled from the Future (a bare Future
    # would be a *borrowed* PyProxy, destroyed before the Promise machinery calls its `then`).
    "wait_until",
    "broadcast_ffi",
]


def _by_check(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["check"]: line for line in lines}


@pytest.fixture(scope="module")
def ffi_results() -> dict[str, dict[str, Any]]:
    return _by_check(run_pyodide(SNIPPETS / "ffi_main.py", preload=FAKES))


@pytest.fixture(scope="module")
def adapter_results() -> dict[str, dict[str, Any]]:
    return _by_check(run_pyodide(SNIPPETS / "cf_ffi_main.py", preload=FAKES))


def _passed(results: dict[str, dict[str, Any]], name: str) -> Any:
    line = results.get(name)
    assert line is not None, f"check {name} printed nothing"
    assert line["ok"] is True, line.get("error") or line
    return line.get("observed")


@pytest.mark.parametrize("check", FFI_CHECKS)
def test_pyodide_ffi_behaviour(ffi_results: dict[str, dict[str, Any]], check: str) -> None:
    _passed(ffi_results, check)


def test_ffi_findings_are_the_documented_ones(ffi_results: dict[str, dict[str, Any]]) -> None:
    kwargs = _passed(ffi_results, "keyword_arguments")
    assert "Invalid expiration_ttl of 10" in kwargs["ttl_error"]
    assert "[object PyProxy]" in kwargs["kwargs_dict_error"]  # dict kwarg values not converted
    assert "[object Map]" in kwargs["map_error"]
    nulls = _passed(ffi_results, "null_and_undefined")
    assert nulls == {"null": "jsnull", "undefined": "None", "header_missing": "jsnull"}
    promises = _passed(ffi_results, "promises")
    assert "borrowed proxy" in promises["bare_future"]


@pytest.mark.parametrize("check", ADAPTER_CHECKS)
def test_cloudflare_ffi_module_under_pyodide(
    adapter_results: dict[str, dict[str, Any]], check: str
) -> None:
    _passed(adapter_results, check)
