"""The moving parts of bench/hostile.py: the server process, the latency probe, a raw WebSocket.

* :class:`ServerProcess` runs ``telefunc serve bench/hostile_app`` in its own process on an
  ephemeral 127.0.0.1 port, logs to a file, and reads its memory counters from ``/proc``. A
  watchdog thread kills it past :data:`RSS_CAP` so a successful attack cannot starve the machine.
* :class:`Probe` is a child process calling ``ping()`` over HTTP every ~50 ms, recording the worst
  latency and the calls that failed or timed out.
* :class:`RawWS` is a client WebSocket on a plain asyncio socket: it sends whatever frames it is
  told to (masked with a zero key, compressed or not), and reads only when asked, so it can play
  a client that never reads (with a small ``SO_RCVBUF`` and a small stream buffer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from telefunc.wire.frames import Frame, Tag, decode_frame, encode_json

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "bench" / "hostile_app"
FILE = "/hostile.telefunc.py"
MIB = 1024 * 1024
#: The server is killed when its RSS passes this (the row is then not survived).
RSS_CAP = 2048 * MIB
TXT_HEADERS = {"x-telefunc-request": "txt", "content-type": "text/plain"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """``python -m telefunc serve bench/hostile_app`` on an ephemeral port, logging to a file."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        command = [sys.executable, "-m", "telefunc", "serve", str(APP), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, "--log-level", "warning"], stdout=self.log, stderr=self.log, env=env
        )
        self.killed_for_rss = False
        self.peak_seen = 0
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"telefunc serve exited with {self.proc.returncode}")
            try:
                response = httpx.post(
                    f"{self.origin}/_telefunc",
                    content=json.dumps({"file": FILE, "name": "ping", "args": []}),
                    headers=TXT_HEADERS,
                    timeout=2,
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("telefunc serve did not answer within 60 s")

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            rss = self.status().get("VmRSS", 0)
            self.peak_seen = max(self.peak_seen, rss)
            if rss > RSS_CAP and self.alive:
                self.killed_for_rss = True
                self.proc.kill()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def status(self) -> dict[str, int]:
        """``VmHWM`` and ``VmRSS`` in bytes (empty once the process is gone)."""
        values: dict[str, int] = {}
        try:
            with open(f"/proc/{self.proc.pid}/status") as handle:
                for line in handle:
                    key, _, rest = line.partition(":")
                    if key in ("VmHWM", "VmRSS"):
                        values[key] = int(rest.split()[0]) * 1024
        except OSError:
            pass
        return values

    def start_peak(self) -> int:
        """Reset the high-water mark to the current RSS; returns that RSS (the baseline)."""
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as handle:
            handle.write("5")
        self.peak_seen = 0
        return self.status()["VmRSS"]

    def peak(self) -> int:
        """The peak RSS since :meth:`start_peak` (what the watchdog saw, if the process died)."""
        return max(self.status().get("VmHWM", 0), self.peak_seen)

    def log_size(self) -> int:
        self.log.flush()
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")

    def stop(self, kill: bool = False) -> None:
        """End the process: SIGINT (uvicorn's graceful stop), or SIGKILL when ``kill``."""
        self._stop.set()
        if kill and self.alive:
            self.proc.kill()
        if self.alive:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=15)
        self.log.close()


# ── the probe ───────────────────────────────────────────────────────────────────────────────

PROBE_INTERVAL = 0.05
PROBE_TIMEOUT = 5.0


def probe_main(origin: str) -> None:
    """Run in the probe child: call ``ping()`` every PROBE_INTERVAL until stdin ends. Each line
    read from stdin is answered with ``{"calls", "failed", "worst"}`` since the previous one (a
    call still in flight counts with its time so far), as one JSON line."""
    import httpx

    lock = threading.Lock()
    state: dict[str, Any] = {"calls": 0, "failed": 0, "worst": 0.0, "started": None}
    stopping = threading.Event()

    def answer() -> None:
        for _ in sys.stdin:
            with lock:
                worst = state["worst"]
                if state["started"] is not None:
                    worst = max(worst, time.monotonic() - state["started"])
                print(json.dumps({**state, "worst": worst, "started": None}), flush=True)
                state.update(calls=0, failed=0, worst=0.0)
        stopping.set()

    threading.Thread(target=answer, daemon=True).start()
    body = json.dumps({"file": FILE, "name": "ping", "args": []})
    with httpx.Client(base_url=origin, timeout=PROBE_TIMEOUT) as client:
        print("ready", flush=True)
        while not stopping.is_set():
            started = time.monotonic()
            state["started"] = started
            try:
                response = client.post("/_telefunc", content=body, headers=TXT_HEADERS)
                ok = response.status_code == 200 and "pong" in response.text
            except httpx.HTTPError:
                ok = False
            elapsed = time.monotonic() - started
            with lock:
                state["started"] = None
                state["calls"] += 1
                state["failed"] += not ok
                state["worst"] = max(state["worst"], elapsed)
            stopping.wait(max(0.0, PROBE_INTERVAL - elapsed))


class Probe:
    """The probe child process (see :func:`probe_main`), one per server process."""

    def __init__(self, origin: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve().parent / "hostile.py"),
                "--probe",
                origin,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO / 'bench'}"},
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "ready"

    def report(self) -> dict[str, Any]:
        """What the probe saw since the previous report."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write("report\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            result: dict[str, Any] = json.loads(line)
        except (OSError, ValueError):
            result = {"calls": 0, "failed": 1, "worst": float("inf")}
        return result

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=PROBE_TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ── a raw WebSocket client ──────────────────────────────────────────────────────────────────

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def ws_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, masked: bool = True
) -> bytes:
    """One client WebSocket frame; masked with the all-zero key, so the payload goes as is."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    return head + (b"\0\0\0\0" if masked else b"") + payload


_last_deflated: tuple[bytes, bytes] = (b"", b"")


def _deflate(payload: bytes, split: int = 7) -> bytes:
    """``payload`` as one permessage-deflate message body.

    The first ``split`` bytes (a telefunc frame header) are compressed and fully flushed on their
    own, so the rest compresses the same for every frame and is cached: a large frame costs one
    compression, not one per send.
    """
    global _last_deflated
    head, body = payload[:split], payload[split:]
    if _last_deflated[0] != body:
        compressor = zlib.compressobj(wbits=-15)
        _last_deflated = (body, compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH))
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH) + _last_deflated[1])[
        :-4
    ]


class RawWS:
    """A client WebSocket speaking frames itself; see the module docstring."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deflate: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.deflate = deflate
        self.status = 101
        #: Bytes written on the wire by :meth:`send` (after compression).
        self.wire_bytes = 0

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        origin: str | None = None,
        deflate: bool = False,
        never_read: bool = False,
        path: str = "/_telefunc",
    ) -> RawWS:
        """Open and upgrade; ``status`` is the handshake's HTTP status (101 when accepted)."""
        sock = socket.socket()
        if never_read:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(
            sock=sock, limit=1024 if never_read else 1 << 20
        )
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        if deflate:
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        text = head.decode("latin-1")
        ws = cls(reader, writer, deflate and "permessage-deflate" in text.lower())
        ws.status = int(text.split(" ", 2)[1])
        return ws

    def send(self, opcode: int, payload: bytes) -> None:
        """Queue one message (compressed when permessage-deflate was negotiated)."""
        if self.deflate and opcode in (OP_TEXT, OP_BINARY):
            frame = ws_frame(opcode, _deflate(payload), rsv1=True)
        else:
            frame = ws_frame(opcode, payload)
        self.wire_bytes += len(frame)
        self.writer.write(frame)

    def send_frame(self, frame: bytes) -> None:
        """Queue one telefunc frame as a binary message."""
        self.send(OP_BINARY, frame)

    async def drain(self) -> None:
        await self.writer.drain()

    async def read_message(self) -> tuple[int, bytes]:
        """The next message ``(opcode, payload)``; server messages are never fragmented here."""
        head = await self.reader.readexactly(2)
        n = head[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        payload = await self.reader.readexactly(n)
        if head[0] & 0x40:
            payload = zlib.decompress(payload + b"\0\0\xff\xff", -15)
        return head[0] & 0x0F, payload

    async def read_frame(self) -> Frame | None:
        """The next telefunc frame, or ``None`` when the server closed."""
        while True:
            opcode, payload = await self.read_message()
            if opcode == OP_BINARY:
                return decode_frame(payload)
            if opcode == OP_CLOSE:
                return None
            if opcode == OP_PING:  # uvicorn drops a client that does not answer its pings
                self.writer.write(ws_frame(OP_PONG, payload))

    async def close_code(self, timeout: float) -> int | None:
        """Read until the server's close frame; its code (None: no close frame in time)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    opcode, payload = await self.read_message()
                    if opcode == OP_CLOSE:
                        return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return None

    async def reconciled(self, timeout: float = 10.0) -> dict[str, Any]:
        """Read (discarding data frames) until RECONCILED; its JSON."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.read_frame()
                if frame is None:
                    raise ConnectionError("closed before RECONCILED")
                if frame.tag == Tag.RECONCILED:
                    value: dict[str, Any] = frame.json()
                    return value

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self, code: int = 1000) -> None:
        try:
            self.writer.write(ws_frame(OP_CLOSE, struct.pack("!H", code)))
            await asyncio.wait_for(self.writer.drain(), 2)
        except (OSError, TimeoutError):
            pass
        self.abort()


def reconcile(
    entries: list[tuple[str, int]], session_id: str | None = None, initial: bool = True
) -> bytes:
    """A RECONCILE frame opening ``(channel_id, ix)`` entries."""
    value: dict[str, Any] = {
        "open": [
            {"id": cid, "ix": ix, "lastSeq": 0, **({"initial": True} if initial else {})}
            for cid, ix in entries
        ]
    }
    if session_id is not None:
        value["sessionId"] = session_id
    return encode_json(Tag.RECONCILE, value)
