"""Two Chromium pages and one Node official client chat through the real HAProxy of
examples/scale-out (3 processes, Redis), on the client's default transports (SSE, then the
upgrade to WebSocket).

Checked on the process side (each process's access log, see _scale_out_util): every request
carrying a client's session token (its calls, the SSE POSTs that attach its channels and the
WebSocket upgrade) reached the one process that issued the token, and the three clients landed on
three processes (round robin). Messages said by clients on different processes reach everyone in
one order (the Node client checks the broadcast ``seq`` increases). Then alice's process gets
SIGKILL: her page's channels end with NetworkError (the page logs it), the page reconnects to a
surviving process within the reconnect window, re-subscribes and catches up from the room's
history (in Redis) on what was said meanwhile; bob and the Node client notice nothing (no channel
closed, no new session, no second connection).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _scale_out_util import Cluster, Request, require

from testpaths import INTEROP_DIR, JS_DIR

BROWSER_DIR = JS_DIR / "browser"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ROOM = "lobby"

pytestmark = pytest.mark.timeout(180)


class LineDriver:
    """A Node process answering one JSON line per JSON command (bounded waits)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.answers: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.answers.put(line)
        self.answers.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def __call__(self, op: str, timeout: float = 40.0, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{op}: no answer in {timeout}s\n{''.join(self.stderr)[-2000:]}")
        if line is None:
            pytest.fail(f"{op}: the driver exited\n{''.join(self.stderr)[-2000:]}")
        answer = json.loads(line)
        assert answer["ok"], f"{op} {args} failed: {answer['error']}"
        return answer["value"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def chat_bundle() -> None:
    """The chat front end (codegen + esbuild), built once; checks the tier's prerequisites."""
    require(shutil.which("node") is not None, "node is not installed")
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    require((BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "npm ci in js/browser")
    require((JS_DIR / "node_modules" / "telefunc").is_dir(), "npm ci in js/")
    build = subprocess.run(
        ["node", "scripts/build-example.mjs", "chat"],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr


@pytest.fixture
def pages(chat_bundle: None) -> Iterator[LineDriver]:
    driver = LineDriver(["node", str(BROWSER_DIR / "scale_out_pages.mjs")], BROWSER_DIR)
    yield driver
    driver.close()


def _node_client(cluster: Cluster) -> LineDriver:
    argv = ["node", "--conditions=browser", "--experimental-websocket", "--no-warnings"]
    script = str(INTEROP_DIR / "scale_out_client.mjs")
    return LineDriver([*argv, script, cluster.url, ROOM], JS_DIR)


def _of(cluster: Cluster, tokens: list[str]) -> list[Request]:
    return [r for r in cluster.requests() if r.token in tokens]


def _home(cluster: Cluster, who: str, tokens: list[str]) -> str:
    """The one process that served every request carrying ``tokens`` (checked in its log)."""
    assert tokens, f"{who} got no session token"
    mine = _of(cluster, tokens)
    processes = {r.process for r in mine}
    assert len(processes) == 1, f"{who}'s requests went to {processes}: {mine}"
    (home,) = processes
    assert {t.split(".")[0] for t in tokens} == {home}, (who, tokens, home)
    kinds = {r.kind for r in mine}
    assert {"call", "sse", "ws"} <= kinds, f"{who}: {kinds} ({mine})"
    return home


def _upgraded(cluster: Cluster, tokens: list[str]) -> bool:
    return any(r.kind == "ws" and r.status == "[accepted]" for r in _of(cluster, tokens))


def test_three_clients_three_processes_one_dies(cluster: Cluster, pages: LineDriver) -> None:
    for user in ("alice", "bob"):
        pages("open", page=user, url=f"{cluster.url}/?room={ROOM}", user=user)
        pages("wait_text", page=user, selector="#status", text="connected")
    node = _node_client(cluster)
    try:
        _scenario(cluster, pages, node)
    finally:
        node.close()


def _scenario(cluster: Cluster, pages: LineDriver, node: LineDriver) -> None:
    started = node("start")
    assert started["pong"] == "pong" and started["user"] == "anonymous"
    tokens = {
        "alice": pages("state", page="alice")["tokens"],
        "bob": pages("state", page="bob")["tokens"],
        "node": node("state")["tokens"],
    }
    for who, own in tokens.items():
        cluster.wait_for(f"{who}'s WebSocket upgrade", lambda own=own: _upgraded(cluster, own))
    # A page's first token came from its first call, which carried no token yet, only the
    # HAProxy cookie set with the HTML: that the token names the same process as every later
    # request shows the cookie pinned the page (without it the call would go round robin on).
    homes = {who: _home(cluster, who, own) for who, own in tokens.items()}
    assert sorted(homes.values()) == cluster.names, f"not one process each: {homes}"

    # One order across processes: each line is said once the previous one reached everyone.
    said: list[str] = []

    def say(who: str, text: str, wait_on: tuple[str, ...] = ("alice", "bob")) -> None:
        if who == "node":
            node("say", text=text)
        else:
            pages("say", page=who, text=text)
        said.append(f"{'anonymous' if who == 'node' else who}: {text}")
        for page in wait_on:
            pages("wait_text", page=page, selector="#messages", text=said[-1])

    for n in (1, 2):
        for who in ("alice", "bob", "node"):
            say(who, f"{who} {n}")
    for page in ("alice", "bob"):
        assert pages("state", page=page)["messages"] == said
    seen = node("state")["seen"]
    assert [t for _, _, t in seen] == [line.split(": ", 1)[1] for line in said]
    seqs = [seq for seq, _, _ in seen]
    assert seqs == sorted(set(seqs)), f"broadcast seq not strictly increasing: {seqs}"
    assert [i for _, i, _ in seen] == list(range(1, len(said) + 1))

    # SIGKILL alice's process; bob speaks while she is away.
    before = {who: len(_of(cluster, own)) for who, own in tokens.items()}
    bob_ws = sum(r.kind == "ws" for r in _of(cluster, tokens["bob"]))
    node_ws = sum(r.kind == "ws" for r in _of(cluster, tokens["node"]))
    cluster.kill(homes["alice"])
    say("bob", "while alice is away", wait_on=("bob",))
    say("node", "node too", wait_on=("bob",))
    # Her page noticed, reconnected to another process, started over and caught up.
    pages("wait_text", page="alice", selector="#messages", text="anonymous: node too")
    pages("wait_text", page="alice", selector="#status", text="connected")
    alice = pages("state", page="alice")
    assert alice["session"] >= 2, alice
    assert alice["messages"] == said, alice["messages"]
    new_tokens = [t for t in alice["tokens"] if t not in tokens["alice"]]
    cluster.wait_for("alice's new WebSocket", lambda: _upgraded(cluster, new_tokens))
    new_home = _home(cluster, "alice after the kill", new_tokens)
    assert new_home != homes["alice"]
    logs = pages("logs")
    assert any("alice console.info: chat: channels closed (NetworkError)" in x for x in logs), logs
    assert not [x for x in logs if "starting over after" in x or "pageerror" in x], logs

    # Everyone hears alice on her new process, in the same order.
    say("alice", "back")
    pages("wait_text", page="alice", selector="#messages", text="alice: back")
    for page in ("alice", "bob"):
        assert pages("state", page=page)["messages"] == said
    # bob and the Node client noticed nothing: same session, no channel closed, no new
    # connection, and all their requests still on their own processes.
    bob = pages("state", page="bob")
    assert bob["session"] == 1 and bob["status"] == "connected", bob
    state = node("state")
    assert state["closed"] == [], state
    assert [t for _, _, t in state["seen"]][-3:] == ["while alice is away", "node too", "back"]
    seqs = [seq for seq, _, _ in state["seen"]]
    assert seqs == sorted(set(seqs)), seqs
    assert state["tokens"] == tokens["node"]
    for who in ("bob", "node"):
        assert _home(cluster, who, tokens[who]) == homes[who]
        assert len(_of(cluster, tokens[who])) >= before[who]
    assert sum(r.kind == "ws" for r in _of(cluster, tokens["bob"])) == bob_ws
    assert sum(r.kind == "ws" for r in _of(cluster, tokens["node"])) == node_ws
