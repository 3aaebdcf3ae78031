"""`telefunc dev --edge --workerd ROOT`, the one command, on a ROOT without worker.py: the
zero-config worker serves ROOT's telefunctions from real workerd."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

HELLO = """\
async def hello(name: str) -> str:
    return f"Hello {name}"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.usefixtures("workerd_required")
def test_zero_config_root_served_by_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    (root / "hello.telefunc.py").write_text(HELLO)
    port = _free_port()
    cmd = [sys.executable, "-m", "telefunc", "dev", "--edge", "--workerd", str(root)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once workerd answers (or EOF on failure)
        assert f"http://127.0.0.1:{port}" in banner, banner
        body = json.dumps({"file": "/hello.telefunc.py", "name": "hello", "args": ["Ada"]})
        r = httpx.post(
            f"http://127.0.0.1:{port}/_telefunc",
            content=body,
            headers={"content-type": "text/plain"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert r.json() == {"ret": "Hello Ada"}
        assert (root / ".wrangler" / "state").is_dir()  # the default --persist folder
    finally:
        proc.terminate()
        proc.wait(30)
