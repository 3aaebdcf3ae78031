"""`telefunc serve --metrics HOST:PORT --log-format json`: a separate metrics bind, JSON logs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from telefunc.top import parse_page

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_exposes_metrics_on_their_own_bind_and_logs_json() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "telefunc", "serve", str(APPS / "basic")),
            *("--port", str(port), "--metrics", "127.0.0.1:0", "--log-format", "json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        found = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", banner)
        assert found, banner
        assert f"http://127.0.0.1:{port}" in proc.stdout.readline()
        app = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=20,
            transport=httpx.HTTPTransport(retries=5),
        )
        with app:
            body = '{"file":"/calc.telefunc.py","name":"add","args":[1,41]}'
            assert app.post("/_telefunc", content=body).status_code == 200
            assert app.get("/_telefunc/metrics").status_code == 404  # not on the app's bind
        page = httpx.get(found.group(1), timeout=20).text
        snap = parse_page(page, 0.0)
        assert snap.total("telefunc_calls_total", telefunction="/calc.telefunc.py:add") == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert any(line["logger"].startswith("uvicorn") for line in lines)
