"""``tsc --noEmit`` on the chat's generated stubs and the front end that imports them.

``telefunc codegen examples/chat`` writes ``chat.telefunc.ts``; ``examples/chat/frontend/main.ts``
imports it. Both must type-check strictly against the official ``telefunc@0.2.23`` declarations
(in ``js/node_modules``), and the stubs' types must reject wrong use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from telefunc.codegen import generate

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "examples" / "chat"
JS_MODULES = REPO / "js" / "node_modules"
TSC = JS_MODULES / "typescript" / "bin" / "tsc"

# Wrong uses of the stubs, one per line, each of which tsc must reject.
BAD_TS = """\
import { connect, history, join } from './generated/chat.telefunc'
export async function bad(): Promise<void> {
  await history(42)
  const user = await connect('lobby')
  await user.send({ kind: 'shout' })
  const room = await join('lobby')
  room.subscribe((event) => event.message.text)
}
"""
BAD_LINES = (3, 5, 7)


def _node_or_skip() -> str:
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("node is not on PATH")
    if not TSC.is_file() or not (JS_MODULES / "telefunc" / "package.json").is_file():
        missing.append(f"{JS_MODULES} lacks typescript or telefunc (run npm ci in js/)")
    if not (JS_MODULES / "@types" / "node").is_dir():
        missing.append(f"{JS_MODULES} lacks @types/node (run npm ci in js/)")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"tsc check cannot run in CI: {reason}")
        pytest.skip(reason)
    assert node is not None
    return node


def _tsc(node: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(TSC), "--noEmit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _project(tmp_path: Path, files: list[str]) -> None:
    """A project like a user's: stubs generated next to main.ts, packages in node_modules."""
    (tmp_path / "node_modules").symlink_to(JS_MODULES, target_is_directory=True)
    generate(CHAT, tmp_path / "generated")
    shutil.copy2(CHAT / "frontend" / "main.ts", tmp_path / "main.ts")
    options = {
        "target": "es2022",
        "module": "esnext",
        "moduleResolution": "bundler",
        "lib": ["es2022", "dom", "dom.iterable"],
        "strict": True,
        "skipLibCheck": False,
        "isolatedModules": True,
        "verbatimModuleSyntax": True,
        "types": ["node"],
    }
    (tmp_path / "tsconfig.json").write_text(
        json.dumps({"compilerOptions": options, "files": files}, indent=2)
    )


def test_stubs_and_main_ts_type_check(tmp_path: Path) -> None:
    node = _node_or_skip()
    _project(tmp_path, ["generated/chat.telefunc.ts", "main.ts"])
    stub = (tmp_path / "generated" / "chat.telefunc.ts").read_text()
    # The channel generics made it into the stub (so main.ts is checked against them).
    assert "Promise<BroadcastChannel<MessageEvent | TypingEvent>>" in stub
    assert "Promise<ClientChannel<SendRequest | TypingRequest | PingRequest, Notice>>" in stub
    result = _tsc(node, "-p", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stub_types_reject_wrong_use(tmp_path: Path) -> None:
    node = _node_or_skip()
    (tmp_path / "bad.ts").write_text(BAD_TS)
    _project(tmp_path, ["generated/chat.telefunc.ts", "bad.ts"])
    result = _tsc(node, "-p", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    flagged = {
        int(line.split("(", 1)[1].split(",", 1)[0])
        for line in result.stdout.splitlines()
        if line.startswith("bad.ts(")
    }
    assert flagged == set(BAD_LINES), result.stdout


def test_the_examples_own_tsconfig_checks_main_ts() -> None:
    """``tsc -p examples/chat`` (what an editor uses) passes after the build's codegen step."""
    node = _node_or_skip()
    generate(CHAT, CHAT / "frontend" / "generated")
    result = _tsc(node, "-p", str(CHAT), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
