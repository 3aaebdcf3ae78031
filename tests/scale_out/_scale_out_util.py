"""The scale-out tier's support (import as ``_scale_out_util``): examples/scale-out/run.sh
(redis-server, N ``telefunc serve --redis --server-id sK`` processes, HAProxy) on ephemeral
ports, and the processes' own logs.

Evidence of where a request went is taken on the process side: each process's uvicorn access log
(``"POST /_telefunc?_telefunc=sse&session=s2.<hex> HTTP/1.1"``, ``"WebSocket
/_telefunc?session=s2.<hex>" [accepted]``), in ``<run dir>/sK.log``.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from redis_support import free_port
from testpaths import IN_CI, REPO

RUN_SH = REPO / "examples" / "scale-out" / "run.sh"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
START_TIMEOUT = 60.0
#: One request in a process's access log: method (or "WebSocket"), path and query.
ACCESS = re.compile(r'"(GET|POST|WebSocket) (/[^ "]*)(?: HTTP/1\.1)?" (\[accepted\]|\d+)')


def require(ok: bool, reason: str) -> None:
    """Skip when a prerequisite is missing locally; under CI=true that is a failure."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@dataclass
class Request:
    """One line of a process's access log."""

    process: str
    method: str
    path: str
    status: str

    @property
    def token(self) -> str | None:
        """The ``?session=`` token the request carried."""
        match = re.search(r"[?&]session=([^&]+)", self.path)
        return match.group(1) if match else None

    @property
    def kind(self) -> str:
        """``call``, ``sse``, ``ws`` or ``other``."""
        if self.method == "WebSocket":
            return "ws"
        if "_telefunc=txt" in self.path:
            return "call"
        if "_telefunc=sse" in self.path:
            return "sse"
        return "other"


@dataclass
class Cluster:
    """A running run.sh: HAProxy at ``url``, processes ``s1``..``sN``."""

    url: str
    run_dir: Path
    workers: int
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [f"s{k}" for k in range(1, self.workers + 1)]

    def pid(self, name: str) -> int:
        return int((self.run_dir / f"{name}.pid").read_text())

    def kill(self, name: str) -> None:
        """SIGKILL process ``name`` (and wait until it is gone)."""
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)  # polling for the exit of a process that is not our child
        pytest.fail(f"{name} (pid {pid}) did not die")

    def requests(self) -> list[Request]:
        """Every request in every process's access log so far."""
        found = []
        for name in self.names:
            log = self.run_dir / f"{name}.log"
            for line in log.read_text(errors="replace").splitlines():
                match = ACCESS.search(line)
                if match:
                    found.append(Request(name, *match.groups()))
        return found

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        """Poll ``condition`` (the logs grow on their own) until true; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """run.sh with 3 processes on ephemeral ports (chat example), stopped after the test."""
    require(Path(HAPROXY).exists(), "haproxy is not installed (apt-get install haproxy)")
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    port = free_port()
    ports = ",".join(str(free_port()) for _ in range(3))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            "bash",
            str(RUN_SH),
            "--no-install",
            "--workers",
            "3",
            "--port",
            str(port),
            "--worker-ports",
            ports,
            "--redis-port",
            str(free_port()),
            "--run-dir",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    running = Cluster(f"http://127.0.0.1:{port}", run_dir, 3, proc)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                pytest.fail(f"run.sh not ready in {START_TIMEOUT}s:\n{''.join(running.output)}")
            if line is None:
                pytest.fail(f"run.sh exited:\n{''.join(running.output)}")
            running.output.append(line)
            if line.startswith("ready: "):
                break
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
