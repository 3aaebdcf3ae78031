"""A real ``redis-server`` for the tests, on an ephemeral loopback port (import as
``redis_support``; tests/ is on ``sys.path`` through the rootdir conftest).

:class:`RedisServer` starts ``redis-server`` (no persistence: ``--save '' --appendonly no``) in a
temporary directory, waits for its "Ready to accept connections" log line and a PING answer,
and :meth:`RedisServer.stop` stops it. ``restart()`` stops it and starts a new one on the same
port (the data, including broadcast counters, is lost, as in an unpersisted production restart).
``RedisServer(directory, tls=make_tls_files(...))`` serves only TLS on its port, with a
throwaway CA (made by the ``openssl`` CLI) and client certificates required.

The :func:`redis_server` fixture (one server per test, stopped at teardown) is defined here
once; a folder's conftest.py makes it available to its tests by importing it.
"""

from __future__ import annotations

import queue
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "RedisServer",
    "TlsFiles",
    "free_port",
    "make_tls_files",
    "redis_command",
    "redis_server",
]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway CA, a server certificate for ``localhost`` and a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        """A context that trusts the CA and presents the client certificate."""
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl CLI is not installed (apt-get install openssl)")
    subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: ``(certificate, key)`` in ``directory``."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def _issue(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}{ext}" for ext in (".pem", ".key", ".csr"))
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    extfile = directory / f"{name}.ext"
    extfile.write_text(extensions + "authorityKeyIdentifier=keyid\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extfile),
    )  # fmt: skip
    return cert, key


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, a server certificate for DNS name ``localhost`` only, and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory, "test-ca")
    server = _issue(
        directory, "server", ca, "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    client = _issue(directory, "client", ca, "extendedKeyUsage=clientAuth\n")
    return TlsFiles(ca[0], server[0], server[1], client[0], client[1])


def redis_command(
    port: int, *args: str, timeout: float = 5.0, tls: ssl.SSLContext | None = None
) -> bytes:
    """Send one command with a fresh socket and return the raw first reply line(s)."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        if tls is None:
            raw.sendall(payload)
            return raw.recv(65536)
        with tls.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(payload)
            return sock.recv(65536)


class RedisServer:
    """One ``redis-server`` process bound to 127.0.0.1:``port``, restartable on that port."""

    def __init__(self, directory: Path, tls: TlsFiles | None = None) -> None:
        if not Path(REDIS_SERVER).exists():
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.directory = directory
        self.tls = tls
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>``."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        assert self.proc is None
        self.starts += 1
        if self.tls is None:
            ports = ["--port", str(self.port)]
        else:
            ports = [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca),
                "--tls-auth-clients", "yes",
            ]  # fmt: skip
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                *ports,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                "",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # Read its log on a thread (also keeps the pipe from filling up) and wait for the
        # readiness line: a condition, not a fixed delay.
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump_log, args=(self.proc, lines), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        log: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                self.stop()
                pytest.fail(f"redis-server did not start within {START_TIMEOUT}s:\n{''.join(log)}")
            if line is None:
                self.stop()
                pytest.fail(f"redis-server exited during start-up:\n{''.join(log)}")
            log.append(line)
            if "Ready to accept connections" in line:
                break
        reply = self.command("PING")
        assert reply.startswith(b"+PONG"), reply

    @staticmethod
    def _pump_log(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until it has exited."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop, then start again on the same port (all data is lost)."""
        self.stop()
        self.start()

    def command(self, *args: str) -> bytes:
        """Run one command against the server (raw reply)."""
        tls = None if self.tls is None else self.tls.client_context()
        return redis_command(self.port, *args, tls=tls)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` on an ephemeral port, stopped after the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
