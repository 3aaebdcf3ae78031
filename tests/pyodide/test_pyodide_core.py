"""The pure-Python core under real Pyodide 0.28.2 (CPython 3.13 on wasm), run by Node.

Cloudflare Python Workers run Pyodide; the core (``telefunc``, ``telefunc.config``,
``telefunc.errors``, ``telefunc.wire.*``, ``telefunc.server.*``) must import and behave there
exactly as under CPython. One Pyodide process (``js/pyodide/run_python.mjs``, about 3-5 s to
load) runs every scenario of ``snippets/``; the same scenario functions run here under CPython
and the outputs are compared, plus direct checks of what each one must show.

Skipped when node or ``js/pyodide/node_modules`` is missing; failed instead when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PYODIDE_DIR = REPO / "js" / "pyodide"
RUNNER = PYODIDE_DIR / "run_python.mjs"
FAKES = PYODIDE_DIR / "cloudflare_fakes.mjs"
SNIPPETS = Path(__file__).resolve().parent / "snippets"


def require_pyodide() -> None:
    """Skip (or fail in CI) when Node or the npm ``pyodide`` package is not installed."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not (PYODIDE_DIR / "node_modules" / "pyodide" / "pyodide.asm.wasm").is_file():
        missing.append("js/pyodide/node_modules (run: cd js/pyodide && npm ci)")
    if missing:
        message = "Pyodide tier needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def run_pyodide(
    script: Path, *args: str, preload: Path | None = None, packages: tuple[Path, ...] = ()
) -> list[dict[str, Any]]:
    """Run ``script`` under Pyodide; its JSON stdout lines (exit code and stderr checked).

    ``packages``: extra Python package folders copied next to ``telefunc`` (``--package``).
    """
    require_pyodide()
    command = ["node", str(RUNNER)]
    for package in packages:
        command += ["--package", str(package)]
    if preload is not None:
        command += ["--preload", str(preload)]
    command += [str(script), *args]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {proc.returncode} after {elapsed:.1f}s\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def pyodide_results() -> dict[str, Any]:
    """``{scenario: result}`` of one Pyodide run of every core scenario (errors re-raised)."""
    lines = run_pyodide(SNIPPETS / "core_main.py")
    results: dict[str, Any] = {}
    for line in lines:
        results[line["scenario"]] = line
    return results


def pyodide_result(results: dict[str, Any], name: str) -> Any:
    line = results.get(name)
    assert line is not None, f"scenario {name} printed nothing under Pyodide"
    assert "error" not in line, f"scenario {name} failed under Pyodide:\n{line['error']}"
    return line["result"]


@pytest.fixture(scope="module")
def snippets_on_path() -> Any:
    """The scenario modules, importable here too (same code, CPython side)."""
    sys.path.insert(0, str(SNIPPETS))
    yield
    sys.path.remove(str(SNIPPETS))
    for name in [m for m in sys.modules if m.startswith("scenario_")]:
        del sys.modules[name]


def cpython(name: str) -> Any:
    """Run scenario ``name`` under this CPython (async ones on a fresh event loop)."""
    import importlib

    result = importlib.import_module(f"scenario_{name}").run()
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    # Through JSON, exactly as the Pyodide side arrives.
    return json.loads(json.dumps(result))


def test_runs_on_cpython_313_emscripten(pyodide_results: dict[str, Any]) -> None:
    result = pyodide_result(pyodide_results, "imports")
    assert result["platform"] == "emscripten"
    assert result["version"][:2] == [3, 13]


def test_every_core_module_imports_without_server_or_client_deps(
    pyodide_results: dict[str, Any], snippets_on_path: None
) -> None:
    result = pyodide_result(pyodide_results, "imports")
    assert result["failed"] == {}
    for name in ("telefunc", "telefunc.config", "telefunc.errors", "telefunc.wire.mux"):
        assert name in result["imported"]
    assert any(m.startswith("telefunc.server.") for m in result["imported"])
    # The module list is discovered by walking the packages: the same set as under CPython.
    from scenario_imports import core_module_names

    assert sorted(core_module_names()) == result["imported"]
    assert result["forbidden_before"] == []
    assert result["forbidden_after"] == [], "the core pulled in server/client-only modules"
    assert "Channel" in result["lazy"]


def test_serializer_bytes_match_cpython(
    pyodide_results: dict[str, Any], snippets_on_path: None
) -> None:
    under_pyodide = pyodide_result(pyodide_results, "serializer")
    under_cpython = cpython("serializer")
    assert under_pyodide["text"] == under_cpython["text"]
    assert under_pyodide["roundtrip"] == under_pyodide["text"]
    assert under_pyodide["parsed_types"] == under_cpython["parsed_types"]
    # Spot checks that the value really exercised the special encodings.
    text = under_pyodide["text"]
    for marker in ("!undefined", "!NaN", "!BigInt:", "!Date:", "!Map:", "!Set:", "!RegExp:"):
        assert marker in text
    assert "!Uint8Array:AP_-IGJpbmFyeQ" in text and "\\u003c\\/script>" in text


def _frames(hexes: list[str]) -> list[tuple[int, int, int, bytes]]:
    out = []
    for h in hexes:
        raw = bytes.fromhex(h)
        ix, seq = int.from_bytes(raw[1:3], "little"), int.from_bytes(raw[3:7], "little")
        out.append((raw[0], ix, seq, raw[7:]))
    return out


def test_mux_handshake_and_text_frames_byte_identical(
    pyodide_results: dict[str, Any], snippets_on_path: None
) -> None:
    under_pyodide = pyodide_result(pyodide_results, "mux")
    assert under_pyodide == cpython("mux")
    assert _frames(under_pyodide["pong"]) == [(0x02, 0, 0, b"")]
    assert under_pyodide["before_register"] == []  # waits for the "initial" channel
    reconciled = _frames(under_pyodide["reconciled"])
    # The two buffered sends flush on attach, stamped with the client's ix 3, seq 1 and 2.
    assert reconciled[:2] == [(0x10, 3, 1, b'"early-1"'), (0x10, 3, 2, b'"early-2"')]
    tag, ix, seq, payload = reconciled[2]
    assert (tag, ix, seq) == (0x05, 0, 0)
    body = json.loads(payload)
    assert body["sessionId"] == under_pyodide["session_id"]
    assert body["open"] == [{"ix": 3, "lastSeq": 0}] and body["pingInterval"] == 5000
    # Client frames seq 1..3 delivered once each (the repeated seq 2 dropped), then our TEXT.
    messages = [e for e in under_pyodide["events"] if e[0] == "message"]
    assert [bytes.fromhex(m[1]) for m in messages] == [b'"c1"', b'"c2"', b'{"n": 3}']
    assert (0x10, 3, 3, b'"late"') in _frames(under_pyodide["after_traffic"])
    assert under_pyodide["close_request"] == [4000, "ping timeout"]
    assert under_pyodide["attached_after_drop"] is False
    # Reconnect with lastSeq 1: seq 2 and 3 replayed, RECONCILED reports our lastSeq 3.
    reconnect = _frames(under_pyodide["reconnect"])
    assert (0x10, 3, 2, b'"early-2"') in reconnect and (0x10, 3, 3, b'"late"') in reconnect
    second = json.loads(next(p for t, _, _, p in reconnect if t == 0x05))
    assert second["open"] == [{"ix": 3, "lastSeq": 3}]
    assert under_pyodide["session_id_2"] != under_pyodide["session_id"]


def test_handle_call_runs_def_inline_on_webloop_with_context(
    pyodide_results: dict[str, Any], snippets_on_path: None
) -> None:
    under_pyodide = pyodide_result(pyodide_results, "rpc")
    under_cpython = cpython("rpc")
    assert under_pyodide["platform"] == "emscripten" and under_pyodide["loop"] == "WebLoop"
    sync_status, sync_body, _ = under_pyodide["sync"]
    assert sync_status == 200
    assert json.loads(sync_body)["ret"] == {"greeting": "hi", "user": "ada", "same_thread": True}
    # Under CPython the same `def` runs in a worker thread (asyncio.to_thread).
    assert json.loads(under_cpython["sync"][1])["ret"]["same_thread"] is False
    for key in ("async", "abort", "crash", "shield", "unknown", "logged"):
        assert under_pyodide[key] == under_cpython[key], key
    assert [json.loads(r[1])["ret"] for r in under_pyodide["async"]] == [13, 107]
    assert under_pyodide["abort"][:2] == [403, '{"ret":{"reason":"no"},"abort":true}']
    assert under_pyodide["crash"][:2] == [500, "Internal Server Error"]
    assert under_pyodide["shield"][:2] == [422, "Shield Validation Error"]
    assert under_pyodide["unknown"][:2] == [400, "Malformed Telefunc Request"]
    assert ["ERROR", "telefunc: telefunction /demo.telefunc.py:crash raised", "RuntimeError"] in (
        under_pyodide["logged"]
    )


def test_channel_hub_timer_task_works_on_webloop(
    pyodide_results: dict[str, Any], snippets_on_path: None
) -> None:
    under_pyodide = pyodide_result(pyodide_results, "channel")
    under_cpython = cpython("channel")
    assert under_pyodide["loop"] == "WebLoop"
    assert under_pyodide["timer_task_running"] is True
    assert under_pyodide["texts"] == ["welcome", "echo: hello", "echo: wörld"]
    assert under_pyodide["reconciled_open"] == [{"ix": 0, "lastSeq": 0}]
    # Only the hub's timer task can end these waits: close() without CLOSE_ACK resolves 1 after
    # its timeout, and the wire without PINGs is dropped after the 2 s ping deadline.
    assert under_pyodide["close_result"] == 1 and under_pyodide["close_waited_enough"] is True
    assert under_pyodide["close_frame_sent"] is True
    assert under_pyodide["ping_timeout_close"] == [4000, "ping timeout"]
    assert 0.5 <= under_pyodide["ping_timeout_after_s"] <= 3.5
    timing_free = {"platform", "loop", "ping_timeout_after_s"}
    for key in under_cpython.keys() - timing_free:
        assert under_pyodide[key] == under_cpython[key], key
