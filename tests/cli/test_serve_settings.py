"""`telefunc serve` runs uvicorn with bounded settings and the cross-site flags.

What uvicorn gets (in-process, its ``Server.run`` replaced), then a real ``telefunc serve``
process: a WebSocket message past ``config.limits.max_message_size`` closes with 1009,
permessage-deflate is negotiated only with ``--ws-compression``, and ``--allow-origin`` lets a
foreign front end call while others get 403 and one log line saying how to allow them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets

from telefunc import config
from telefunc.asgi import uvicorn_settings
from telefunc.asgi.http_protocol import HEAD_TOO_LARGE, TelefuncHttpToolsProtocol
from telefunc.asgi.ws_protocol import TelefuncWebSocketProtocol
from telefunc.cli import ORIGINS_ENV, _reload_factory, main
from telefunc.config import LimitsSettings
from telefunc.wire.frames import Tag, decode_frame, encode_frame

REPO = Path(__file__).resolve().parents[2]
BASIC = REPO / "tests" / "apps" / "basic"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
CALL = '{"file":"/calc.telefunc.py","name":"add","args":[1,41]}'


@pytest.fixture
def restore_config() -> Iterator[None]:
    origins, limits = config.allowed_origins, config.limits.snapshot()
    yield
    config.allowed_origins = origins
    config.limits.reset()
    config.limits.update({"max_message_size": limits.max_message_size})


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[uvicorn.Config]:
    """The ``uvicorn.Config`` of every server ``main`` would have run."""
    configs: list[uvicorn.Config] = []

    def run(self: uvicorn.Server, sockets: Any = None) -> None:
        configs.append(self.config)
        for sock in sockets or ():
            sock.close()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return configs


def test_serve_passes_the_limits_and_origins_to_uvicorn(
    restore_config: None, captured: list[uvicorn.Config]
) -> None:
    config.limits.max_message_size = 123_456
    config.limits.max_concurrency = 77
    config.limits.max_request_head = 20 * 1024
    argv = ["serve", str(BASIC), "--port", "0", "--allow-origin", "http://localhost:5173"]
    assert main([*argv, "--allow-origin", "https://front.example"]) == 0
    (server,) = captured
    assert server.ws_max_size == 123_456
    assert server.ws_per_message_deflate is False
    assert server.limit_concurrency == 77
    assert server.timeout_keep_alive == 5
    assert server.h11_max_incomplete_event_size == 20 * 1024
    assert server.ws_ping_interval is None  # the channel PING deadline finds dead peers
    assert config.allowed_origins == ("http://localhost:5173", "https://front.example")
    assert main(["serve", str(BASIC), "--port", "0", "--ws-compression"]) == 0
    assert captured[1].ws_per_message_deflate is True
    assert uvicorn_settings() == {
        "ws": TelefuncWebSocketProtocol,
        "http": TelefuncHttpToolsProtocol,  # httptools is installed with the `server` extra
        "loop": "auto",
        "ws_max_size": 123_456,
        "ws_per_message_deflate": False,
        "limit_concurrency": 77,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 20 * 1024,
        "ws_ping_interval": None,
    }


def test_reload_passes_the_same_settings_and_origins(
    restore_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: runs.append(kwargs))
    for name in ("TELEFUNC_ROOT", "TELEFUNC_CONTEXT", ORIGINS_ENV):
        monkeypatch.delenv(name, raising=False)  # main sets them; restored afterwards
    argv = ["serve", str(BASIC), "--port", "0", "--reload", "--allow-origin", "http://a.test:81"]
    assert main(argv) == 0
    (kwargs,) = runs
    assert kwargs["ws_max_size"] == config.limits.max_message_size
    assert kwargs["ws_per_message_deflate"] is False
    assert kwargs["limit_concurrency"] == config.limits.max_concurrency
    # The reloaded worker is a fresh process: it gets the origins through the environment.
    config.allowed_origins = []
    _reload_factory()
    assert config.allowed_origins == ("http://a.test:81",)


def test_the_default_stack_is_the_capped_one_and_options_pick_others(
    captured: list[uvicorn.Config],
) -> None:
    assert main(["serve", str(BASIC), "--port", "0"]) == 0
    default = captured[-1]
    assert default.ws is TelefuncWebSocketProtocol
    assert default.http is TelefuncHttpToolsProtocol
    assert default.loop == "auto"  # uvicorn: uvloop when installed
    argv = ["serve", str(BASIC), "--port", "0", "--ws", "wsproto", "--http", "h11"]
    assert main([*argv, "--loop", "asyncio"]) == 0
    chosen = captured[-1]
    assert (chosen.ws, chosen.http, chosen.loop) == ("wsproto", "h11", "asyncio")
    assert chosen.ws_max_size == config.limits.max_message_size  # the limits stay


def test_stack_options_are_checked(
    captured: list[uvicorn.Config], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", str(BASIC), "--port", "0", "--loop", "trio"])
    assert "invalid choice: 'trio'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ws must be one of"):
        uvicorn_settings(ws="tornado")
    assert not captured
    help_text = subprocess.run(
        [sys.executable, "-m", "telefunc", "serve", "--help"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
        check=True,
    ).stdout
    assert "the others lack that cap" in " ".join(help_text.split())


def test_a_malformed_allow_origin_is_a_one_line_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "telefunc", "serve", str(BASIC), "--allow-origin", "localhost:5173"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "'localhost:5173' is not an origin" in proc.stderr


class Serve:
    """A real ``telefunc serve`` process on an ephemeral port (stdout and stderr merged)."""

    def __init__(self, *flags: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telefunc",
                "serve",
                str(BASIC),
                "--port",
                str(self.port),
                *flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # the banner: the socket is bound

    def stop(self) -> str:
        """Stop the server; everything it printed."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return out


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[Serve] = []

    def start(*flags: str) -> Serve:
        server = Serve(*flags)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.stop()


async def test_serve_closes_oversized_ws_messages_with_1009_and_does_not_compress(
    serve: Any,
) -> None:
    server = serve("--allow-origin", "https://front.example")
    url = f"ws://127.0.0.1:{server.port}/_telefunc"
    # The client offers permessage-deflate (websockets does by default); the server declines.
    async with websockets.connect(url, open_timeout=20, max_size=None) as ws:
        assert ws.response is not None
        assert "sec-websocket-extensions" not in ws.response.headers
        with pytest.raises(websockets.ConnectionClosed):  # while sending or just after
            await ws.send(b"\x00" * (config.limits.max_message_size + 1))
            await asyncio.wait_for(ws.recv(), 20)
    assert ws.close_code == 1009
    async with httpx.AsyncClient(base_url=server.origin, timeout=20) as client:
        allowed = await client.post(
            "/_telefunc", content=CALL, headers={"origin": "https://front.example"}
        )
        refused = [
            await client.post(
                "/_telefunc", content=CALL, headers={"origin": "http://localhost:5173"}
            )
            for _ in range(5)
        ]
    assert (allowed.status_code, allowed.text) == (200, '{"ret":42}')
    assert {r.status_code for r in refused} == {403}
    output = server.stop()
    lines = [line for line in output.splitlines() if "origin-refused" in line]
    assert len(lines) == 1, output
    assert "telefunc serve --allow-origin http://localhost:5173" in lines[0]


async def test_ws_compression_is_negotiated_only_when_asked(serve: Any) -> None:
    server = serve("--ws-compression")
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_telefunc", open_timeout=20) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        # The server's frames then go through websockets' compressing path, and arrive intact.
        await ws.send(encode_frame(Tag.PING))
        assert decode_frame(await asyncio.wait_for(ws.recv(), 20)).tag == Tag.PONG


BAD_ORIGIN = ["--allow-origin", "ftp://files.example"]


def test_dev_edge_takes_allow_origin_and_checks_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "telefunc", "dev", "--edge", str(BASIC), "--port", "0", *BAD_ORIGIN],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "'ftp://files.example' is not an origin" in proc.stderr


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_an_endless_request_head_is_cut(serve: Any, http: str) -> None:
    """Past ``config.limits.max_request_head`` bytes of an incomplete head (16 KiB by default):
    400 and closed, on either parser."""
    server = serve("--http", http)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /_telefunc HTTP/1.1\r\nHost: x\r\nX-Long: ")
        answer = b""
        for _ in range(4 * LimitsSettings().max_request_head // 1024):
            writer.write(b"a" * 1024)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        pass  # closed while we were still writing: the cap held
    finally:
        writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    if http == "httptools":
        assert HEAD_TOO_LARGE.encode() in answer
    # A request head within the cap is served as usual.
    async with httpx.AsyncClient(base_url=server.origin) as client:
        response = await client.post("/_telefunc", content=CALL, headers={"X-Long": "a" * 8000})
    assert response.status_code == 200
