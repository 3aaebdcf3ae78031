"""`telefunc serve`: one-line errors, and a real server answering a call."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def telefunc(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telefunc", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def test_root_without_telefunc_files_is_a_one_line_error() -> None:
    proc = telefunc("serve", str(APPS / "empty"), "--port", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "no *.telefunc.py file" in proc.stderr


def test_import_failure_names_the_file_and_line() -> None:
    proc = telefunc("serve", str(APPS / "broken"), "--port", "0")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "telefunc: /bad.telefunc.py line 8: RuntimeError: boom at import"
    )


def test_port_taken_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = telefunc("serve", str(APPS / "basic"), "--port", str(port))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"telefunc: port {port} on 127.0.0.1 is already in use"


def test_serve_answers_calls_and_static_files() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "telefunc", "serve", str(APPS / "basic"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once the socket is bound
        assert f"http://127.0.0.1:{port}" in banner
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=20,
            transport=httpx.HTTPTransport(retries=5),
        ) as c:
            r = c.post(
                "/_telefunc", content='{"file":"/calc.telefunc.py","name":"add","args":[1,41]}'
            )
            page = c.get("/")
        assert (r.status_code, r.text) == (200, '{"ret":42}')
        assert "static ok" in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_dev_without_edge_needs_stubs() -> None:
    # Without --edge, `dev` is serve --reload + codegen --watch (tests/devloop/).
    proc = telefunc("dev", str(APPS / "basic"))
    assert proc.returncode == 2
    assert "the following arguments are required: --stubs" in proc.stderr


def test_dev_edge_serves_root_telefunctions_without_worker_py(tmp_path: Path) -> None:
    (tmp_path / "hello.telefunc.py").write_text(
        "async def hello(name: str) -> str:\n    return 'hello ' + name\n"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "telefunc",
            "dev",
            "--edge",
            str(tmp_path),
            "--port",
            str(port),
            "--kv-delay",
            "0",
        ],  # the session record is visible in every colo at once
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    body = '{"file":"/hello.telefunc.py","name":"hello","args":["edge"]}'
    try:
        transport = httpx.HTTPTransport(retries=20)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=20, transport=transport
        ) as c:
            first = c.post("/_telefunc", content=body, headers={"x-telefunc-colo": "NRT"})
            token = first.headers["x-telefunc-session"]
            second = c.post(
                "/_telefunc?colo=LHR", content=body, headers={"x-telefunc-session": token}
            )
        assert first.json() == {"ret": "hello edge"} and second.json() == {"ret": "hello edge"}
        assert token.startswith("telefunc-shard-apac-")  # placed in the first request's region
        assert second.headers["x-telefunc-session"] == token  # the session stays on its object
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    banner = out.splitlines()[0]
    assert "through telefunc.cloudflare.Telefunc" in banner and "pending" not in banner


def test_reload_picks_up_an_edited_telefunc_file(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    source = app / "calc.telefunc.py"
    source.write_text("async def add(a: int, b: int) -> int:\n    return a + b\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "telefunc", "serve", str(app), "--port", str(port), "--reload"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        start_new_session=True,  # the reloader has a child: stop the whole group
    )
    body = '{"file":"/calc.telefunc.py","name":"add","args":[1,2]}'
    try:
        transport = httpx.HTTPTransport(retries=20)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=10, transport=transport
        ) as c:
            assert c.post("/_telefunc", content=body).text == '{"ret":3}'
            source.write_text("async def add(a: int, b: int) -> int:\n    return a + b + 100\n")
            deadline = time.monotonic() + 30
            answer = ""
            while time.monotonic() < deadline:  # bounded wait for the reloaded worker
                try:
                    answer = c.post("/_telefunc", content=body).text
                except httpx.TransportError:
                    answer = ""  # the worker is restarting
                if answer == '{"ret":103}':
                    break
                time.sleep(0.2)
        assert answer == '{"ret":103}'
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_serve_socket_gives_accepted_connections_tcp_nodelay() -> None:
    """Without TCP_NODELAY, Nagle and delayed ACK add ~40 ms to back-to-back keep-alive calls."""
    import asyncio
    import socket

    from telefunc.cli import _bind

    listener = _bind("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            try:
                return await asyncio.wait_for(seen, 10)
            finally:
                writer.close()

    assert asyncio.run(accepted_nodelay()) != 0
