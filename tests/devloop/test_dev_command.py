"""``telefunc dev ROOT --stubs DIR``: ``serve --reload`` and ``codegen --watch``, together.

Runs the real command and checks what a user sees: both children's lines, prefixed; a call
that works; the stubs written and rewritten; and that SIGTERM, Ctrl-C (SIGINT) or the death of
one child leave no process behind (the reload worker included).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from devloop_support import TELEFUNC, Proc, free_port, pid_alive, wait_until

HELLO = """\
async def hello(name: str) -> str:
    return f"hello {name}"
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "server"
    root.mkdir()
    (root / "hello.telefunc.py").write_text(HELLO)
    return root


def _start(app: Path, tmp_path: Path) -> tuple[Proc, int]:
    port = free_port()
    dev = Proc(
        [*TELEFUNC, "dev", str(app), "--stubs", str(tmp_path / "stubs"), "--port", str(port)],
        tmp_path,
    )
    dev.wait_for(r"^\[serve\] .*Application startup complete", timeout=60)
    dev.wait_for(r"^\[codegen\] telefunc codegen: watching ")
    return dev, port


def _pids(dev: Proc) -> list[int]:
    """dev's two children and uvicorn's reload worker."""
    children = [
        int(dev.wait_for(rf"^\[dev\] started {name} \(pid (\d+)\)").group(1))
        for name in ("codegen", "serve")
    ]
    worker = int(dev.wait_for(r"^\[serve\] .*Started server process \[(\d+)\]").group(1))
    return [*children, worker]


def _call(port: int, name: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/_telefunc",
        content=json.dumps({"file": "/hello.telefunc.py", "name": "hello", "args": [name]}),
        timeout=10,
    )


def test_dev_serves_generates_prefixes_and_stops_both_on_sigterm(app: Path, tmp_path: Path) -> None:
    dev, port = _start(app, tmp_path)
    try:
        pids = _pids(dev)
        assert all(pid_alive(pid) for pid in pids)
        assert _call(port, "Ada").json() == {"ret": "hello Ada"}
        stub = tmp_path / "stubs" / "hello.telefunc.ts"
        assert "export function hello(name: string): Promise<string>" in stub.read_text()
        assert dev.count(r"^\[codegen\] wrote ") == 1
        # Every line says where it comes from.
        assert all(line.startswith(("[serve] ", "[codegen] ", "[dev] ")) for line in dev.lines)

        # A save reaches both: the stub changes and the server reloads.
        reloads = dev.count(r"^\[serve\] .*Application startup complete")
        (app / "hello.telefunc.py").write_text(HELLO.replace("(name: str)", "(name: str, n: int)"))
        wait_until(lambda: "n: number" in stub.read_text(), 15, "the regenerated stub")
        wait_until(
            lambda: dev.count(r"^\[serve\] .*Application startup complete") > reloads,
            30,
            "the server's reload",
        )
        assert _call(port, "Ada").status_code == 422  # one argument is now too few
    finally:
        status = dev.stop()
    assert status == 0, dev.output()
    assert dev.lines[-1] == "[dev] stopped"
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), 10, "no process left")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "hangup"])
def test_ctrl_c_or_a_closed_terminal_stops_both(
    app: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    dev, _ = _start(app, tmp_path)
    pids = _pids(dev)
    dev.signal(signum)
    assert dev.process.wait(timeout=30) == 0, dev.output()
    dev.stop()
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), 10, "no process left")


def test_when_one_child_dies_the_other_is_stopped(app: Path, tmp_path: Path) -> None:
    dev, _ = _start(app, tmp_path)
    pids = _pids(dev)
    os.kill(pids[0], signal.SIGKILL)  # the codegen watcher
    status = dev.process.wait(timeout=30)
    dev.stop()
    assert status != 0
    assert dev.wait_for(r"^\[dev\] codegen exited with status -9; stopped the rest")
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), 10, "no process left")


def test_a_busy_port_ends_dev_with_the_serve_error(app: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        dev = Proc(
            [*TELEFUNC, "dev", str(app), "--stubs", str(tmp_path / "stubs"), "--port", str(port)],
            tmp_path,
        )
        status = dev.process.wait(timeout=60)
        dev.stop()
    assert status == 2, dev.output()
    dev.wait_for(rf"^\[serve\] telefunc: port {port} on 127.0.0.1 is already in use")
    dev.wait_for(r"^\[dev\] serve exited with status 2; stopped the rest")


def test_dev_without_stubs_says_what_it_needs(app: Path, tmp_path: Path) -> None:
    dev = Proc([*TELEFUNC, "dev", str(app)], tmp_path)
    assert dev.process.wait(timeout=30) == 2
    dev.stop()
    dev.wait_for(r"the following arguments are required: --stubs")


def test_options_dev_does_not_know_go_to_serve(app: Path, tmp_path: Path) -> None:
    """``--allow-origin``, ``--redis`` … are serve's: dev hands them over as they are."""
    dev = Proc(
        [*TELEFUNC, "dev", str(app), "--stubs", str(tmp_path / "stubs"), "--no-such-option"],
        tmp_path,
    )
    status = dev.process.wait(timeout=60)
    dev.stop()
    assert status == 2, dev.output()
    dev.wait_for(r"^\[serve\] .*telefunc: error: unrecognized arguments: --no-such-option")
    dev.wait_for(r"^\[dev\] serve exited with status 2; stopped the rest")
