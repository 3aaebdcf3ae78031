"""The example chat in a real browser: two users, one room, one of them offline for a while.

Drives Debian's headless ``/usr/bin/chromium`` with npm ``playwright-core`` (pinned in
``js/browser``) through ``js/browser/chat_two_users.mjs``. The scenario only looks at what a
user sees (the ``#messages`` list, the ``#status`` line and the ``#typing`` line), so it holds
whatever transport the chat uses; it runs on the client's default (SSE, upgrading to WebSocket),
on WebSocket alone, and once with alice offline past the reconnect timeout (her page must start
over and catch up from history). Screenshots land in pytest's ``tmp_path`` and are copied to
``test-output/browser/`` (``ws-``/``expired-`` prefixed for those runs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from telefunc.config import config

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "js"
BROWSER_DIR = JS_DIR / "browser"
CHAT = REPO / "examples" / "chat"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
IN_CI = bool(os.environ.get("CI"))

ROUNDS = 3  # must match the driver: each user sends one message per round, alice first
BURST = 20  # messages bob sends while alice is offline
# Seconds: the server's reconnect timeout in the "expired" run (advertised to the client too).
EXPIRED_RECONNECT_TIMEOUT = 2.0


def _require(ok: bool, reason: str) -> None:
    """Skip when a browser-tier prerequisite is missing locally; in CI that is a failure."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


def _expected() -> list[str]:
    exchange = [
        f"{name}: hello {r} from {name}" for r in range(1, ROUNDS + 1) for name in ("alice", "bob")
    ]
    return exchange + [f"bob: burst {i}" for i in range(1, BURST + 1)] + ["alice: back online"]


@pytest.fixture(scope="module")
def chat_bundle() -> None:
    """Checks the browser-tier prerequisites, then builds the chat (codegen + esbuild) once."""
    _require(shutil.which("node") is not None, "node is not installed")
    _require(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    _require(
        (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(),
        "js/browser/node_modules is missing (run: cd js/browser && npm ci)",
    )
    _require(
        (JS_DIR / "node_modules" / "esbuild").is_dir(),
        "js/node_modules is missing (run: cd js && npm ci)",
    )
    build = subprocess.run(
        ["node", "scripts/build-example.mjs", "chat"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr


# transport None: the client's default transports (SSE, upgrading to WebSocket), what a user
# gets. expire: alice stays offline past the reconnect timeout (shortened for that run), so the
# server has dropped her channels and her page must start over and catch up from history.
@pytest.mark.parametrize(
    ("transport", "expire"),
    [(None, False), ("ws", False), (None, True)],
    ids=["default", "ws", "default-expired"],
)
def test_two_users_one_offline(
    chat_bundle: None, live_server: Any, tmp_path: Path, transport: str | None, expire: bool
) -> None:
    """Both pages show every message exactly once, in order, including the offline burst."""
    saved = config.channel.reconnect_timeout
    if expire:
        config.channel.reconnect_timeout = EXPIRED_RECONNECT_TIMEOUT
    try:
        seen, shots = _run_scenario(live_server, tmp_path, transport, expire)
    finally:
        config.channel.reconnect_timeout = saved

    expected = _expected()
    # While offline, alice's page received nothing (and said so: the driver waited for it).
    assert seen["alice_count_while_offline"] == seen["alice_count_before_offline"] == 2 * ROUNDS
    for user in ("alice", "bob"):
        shown: list[str] = seen[user]
        duplicates = sorted({t for t in shown if shown.count(t) > 1})
        assert not duplicates, f"{user}'s page shows messages more than once: {duplicates}"
        assert shown == expected, f"{user}'s page shows the wrong messages or order: {shown}"
        assert seen[f"{user}_status"] == "connected"

    burst = slice(2 * ROUNDS, 2 * ROUNDS + BURST)
    if expire:
        # Her channels were gone: a new session, and the burst came from the room's history.
        assert seen["alice_sessions"] >= 2
        assert seen["alice_via"][burst] == ["history"] * BURST, seen["alice_via"]
    else:
        # What alice missed came back as the room channel's replay after her reconnect, not
        # from a history reload (which the page only uses to fill a detected gap).
        assert seen["alice_sessions"] == 1
        assert seen["alice_via"][burst] == ["broadcast"] * BURST, seen["alice_via"]
    assert seen["bob_sessions"] == 1
    # alice typed before her last message: bob's page said so (and cleared it on her message).
    assert seen["bob_typing"] == "alice is typing…"
    names = {"chat-alice.png", "chat-bob.png", "chat-alice-offline.png", "chat-bob-typing.png"}
    for name in names:
        png = shots / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def _run_scenario(
    live_server: Any, tmp_path: Path, transport: str | None, expire: bool
) -> tuple[dict[str, Any], Path]:
    """Runs the driver against a fresh server; returns what it saw and the screenshot folder."""
    server = live_server(CHAT)
    shots = tmp_path / "screenshots"
    run = subprocess.run(
        [
            "node",
            str(BROWSER_DIR / "chat_two_users.mjs"),
            server.origin,
            str(shots),
            *([transport] if transport else []),
            *(["expire"] if expire else []),
        ],
        cwd=BROWSER_DIR,
        capture_output=True,
        text=True,
        timeout=240,
    )
    # Keep the pictures where a human (or CI artifact upload) can find them, pass or fail.
    out = REPO / "test-output" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    prefix = "".join(f"{part}-" for part in (transport, "expired" if expire else None) if part)
    for png in sorted(shots.glob("*.png")):
        shutil.copy2(png, out / (prefix + png.name))

    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"driver printed no JSON (exit {run.returncode}): {run.stderr[-3000:]}"
    seen = json.loads(lines[-1])
    assert run.returncode == 0 and "error" not in seen, (
        f"driver failed after steps {seen.get('steps')}: {seen.get('error')}\n"
        f"alice saw {seen.get('alice')}\nbob saw {seen.get('bob')}\n{run.stderr[-2000:]}"
    )
    return seen, shots
