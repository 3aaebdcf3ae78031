"""The example chat in a real browser: two users, one room, one of them offline for a while.

Drives Debian's headless ``/usr/bin/chromium`` with npm ``playwright-core`` (pinned in
``js/browser``) through ``js/browser/chat_two_users.mjs``. The scenario only looks at what a
user sees (the ``#messages`` list and the ``#status`` line), so it holds whatever transport
the chat uses. Screenshots land in pytest's ``tmp_path`` and are copied to ``test-output/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "js"
BROWSER_DIR = JS_DIR / "browser"
CHAT = REPO / "examples" / "chat"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
IN_CI = bool(os.environ.get("CI"))

ROUNDS = 3  # must match the driver: each user sends one message per round, alice first
BURST = 20  # messages bob sends while alice is offline


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


def test_two_users_one_offline(live_server: Any, tmp_path: Path) -> None:
    """Both pages show every message exactly once, in order, including the offline burst."""
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
    assert build.returncode == 0, build.stderr
    server = live_server(CHAT)

    shots = tmp_path / "screenshots"
    run = subprocess.run(
        ["node", str(BROWSER_DIR / "chat_two_users.mjs"), server.origin, str(shots)],
        cwd=BROWSER_DIR,
        capture_output=True,
        text=True,
        timeout=240,
    )
    # Keep the pictures where a human (or CI artifact upload) can find them, pass or fail.
    out = REPO / "test-output" / "browser"
    out.mkdir(parents=True, exist_ok=True)
    for png in sorted(shots.glob("*.png")):
        shutil.copy2(png, out / png.name)

    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"driver printed no JSON (exit {run.returncode}): {run.stderr[-3000:]}"
    seen = json.loads(lines[-1])
    assert run.returncode == 0 and "error" not in seen, (
        f"driver failed after steps {seen.get('steps')}: {seen.get('error')}\n"
        f"alice saw {seen.get('alice')}\nbob saw {seen.get('bob')}\n{run.stderr[-2000:]}"
    )

    expected = _expected()
    # While offline, alice's page received nothing (and said so: the driver waited for it).
    assert seen["alice_count_while_offline"] == seen["alice_count_before_offline"] == 2 * ROUNDS
    for user in ("alice", "bob"):
        shown: list[str] = seen[user]
        duplicates = sorted({t for t in shown if shown.count(t) > 1})
        assert not duplicates, f"{user}'s page shows messages more than once: {duplicates}"
        assert shown == expected, f"{user}'s page shows the wrong messages or order: {shown}"
        assert seen[f"{user}_status"] == "connected"

    names = {"chat-alice.png", "chat-bob.png", "chat-alice-offline.png"}
    for name in names:
        png = shots / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
