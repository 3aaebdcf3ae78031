"""Backpressure measured as the peak RSS of a real server process (issue 7, item 4).

Each test starts ``python -m telefunc serve tests/apps/streaming`` as its own process, warms it
up with one small transfer of the same kind (imports, allocator arenas, first connections), resets
the kernel's high-water mark (``/proc/<pid>/clear_refs``), then moves 50 MiB and reads ``VmHWM``
from ``/proc/<pid>/status``. The growth of the peak over the warmed-up ``VmRSS`` must stay under
the bound in the test's name: buffering the whole 50 MiB (or even half of it) fails every one.

The tracemalloc tests (test_stream_interop.py, test_upload_memory.py) bound the Python heap;
these bound everything the process touched, C buffers included.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "apps" / "streaming"
MIB = 1024 * 1024
SIZE = 50 * MIB
CHUNK = 64 * 1024
TXT = {"x-telefunc-request": "txt", "content-type": "text/plain"}
BIN = {"x-telefunc-request": "bin", "content-type": "application/octet-stream"}

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status (Linux only)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """``telefunc serve`` in a child process, and its memory counters."""

    def __init__(self) -> None:
        port = _free_port()
        self.origin = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        command = [sys.executable, "-m", "telefunc", "serve", str(APP), "--port", str(port)]
        self.proc = subprocess.Popen(
            [*command, "--log-level", "warning"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        # Drains the pipe for the whole run (a full pipe would block the server's logging).
        threading.Thread(target=self._drain, daemon=True).start()
        banner = self.lines.get(timeout=60)
        assert self.origin in banner, banner

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def status(self) -> dict[str, int]:
        """``VmHWM`` and ``VmRSS`` of the server process, in bytes."""
        values: dict[str, int] = {}
        with open(f"/proc/{self.proc.pid}/status") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    values[key] = int(rest.split()[0]) * 1024
        return values

    def start_peak(self) -> int:
        """Reset the high-water mark to the current RSS; returns that RSS (the baseline)."""
        try:
            with open(f"/proc/{self.proc.pid}/clear_refs", "w") as handle:
                handle.write("5")
        except OSError as exc:  # pragma: no cover - kernels before 4.0, locked-down /proc
            pytest.skip(f"cannot reset the peak RSS of a child: {exc}")
        return self.status()["VmRSS"]

    def peak_growth(self, baseline: int) -> int:
        """How far the peak RSS rose above ``baseline`` since :meth:`start_peak`."""
        return self.status()["VmHWM"] - baseline

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    proc = ServerProcess()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    # Retries cover the moment between the banner (socket bound) and uvicorn's listen().
    with httpx.Client(
        base_url=server.origin, timeout=120, transport=httpx.HTTPTransport(retries=10)
    ) as client:
        yield client


def report(kind: str, baseline: int, growth: int, bound: int) -> None:
    print(
        f"\n{kind}: baseline RSS {baseline / MIB:.1f} MiB, "
        f"peak growth {growth / MIB:.2f} MiB (bound {bound / MIB:.0f} MiB)"
    )


def pattern_chunk(index: int, block: bytes) -> bytes:
    """Chunk ``index`` of a deterministic, not-all-equal byte pattern."""
    return bytes((index % 251,)) + block[1:]


# ── download ─────────────────────────────────────────────────────────────────


class InlineBody:
    """Incremental decoder of a binary-inline body: hashes the bytes of streaming value 0."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.meta: str | None = None
        self.digest = hashlib.sha256()
        self.total = 0
        self.ended = False

    def feed(self, data: bytes) -> None:
        self._buf += data
        pos = 0
        buf = self._buf
        while not self.ended and len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos : pos + 4], "big")
            if self.meta is None:
                if len(buf) - pos - 4 < n:
                    break
                self.meta = bytes(buf[pos + 4 : pos + 4 + n]).decode()
            elif n == 0:
                self.ended = True
            else:
                assert n != 0xFFFFFFFF, "an error frame in the download"
                if len(buf) - pos - 4 < n:
                    break
                assert buf[pos + 4] == 0, "one streaming value only"
                payload = buf[pos + 5 : pos + 4 + n]
                self.digest.update(payload)
                self.total += len(payload)
            pos += 4 + n
        del buf[:pos]


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        for i in range(size // MIB):
            chunk = pattern_chunk(i, block)
            handle.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def download(http: httpx.Client, path: Path, *, pace: float = 0.0) -> InlineBody:
    """POST ``file_download`` and read the binary-inline body; ``pace`` seconds per chunk.

    The pace makes this a slow consumer on purpose (that is what backpressure is about): it
    is not a synchronisation. A pause after the first chunk lets the server run into the full
    socket buffers before anything else is read.
    """
    envelope = {
        "file": "/stream.telefunc.py",
        "name": "file_download",
        "args": [str(path), path.name],
        "stream": {"transport": "binary-inline"},
    }
    body = InlineBody()
    with http.stream(
        "POST", "/_telefunc?_telefunc=txt", content=json.dumps(envelope), headers=TXT
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        for i, chunk in enumerate(response.iter_raw(CHUNK)):
            body.feed(chunk)
            if pace:
                time.sleep(1.0 if i == 0 else pace)
    assert body.ended and body.meta is not None
    assert "!TelefuncFileDownload:" in body.meta
    return body


DOWNLOAD_BOUND = 16 * MIB


def test_50mb_download_peak_rss_grows_under_16mb(
    server: ServerProcess, http: httpx.Client, tmp_path: Path
) -> None:
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small_digest = write_file(small, MIB)
    big_digest = write_file(big, SIZE)
    assert download(http, small).digest.hexdigest() == small_digest  # warm-up
    baseline = server.start_peak()
    # ~60 MB/s at most: far slower than the server can read a file, so it must wait for us.
    body = download(http, big, pace=0.001)
    growth = server.peak_growth(baseline)
    report("50 MiB download (binary-inline, slow reader)", baseline, growth, DOWNLOAD_BOUND)
    assert body.total == SIZE
    assert body.digest.hexdigest() == big_digest
    assert growth < DOWNLOAD_BOUND, f"peak RSS grew by {growth / MIB:.1f} MiB"


# ── bin upload ───────────────────────────────────────────────────────────────


def bin_upload(http: httpx.Client, size: int) -> tuple[dict[str, Any], str]:
    """Upload ``size`` bytes as one ``File`` argument of ``hash_upload``, streamed by a
    generator (chunked request body); returns the result and the expected SHA-256."""
    meta = {
        "index": 0,
        "name": "big.bin",
        "size": size,
        "type": "application/octet-stream",
        "lastModified": 7,
    }
    envelope = json.dumps(
        {
            "file": "/backpressure.telefunc.py",
            "name": "hash_upload",
            "args": ["!TelefuncFile:" + json.dumps(meta, separators=(",", ":"))],
        }
    ).encode()
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)

    def body() -> Iterator[bytes]:
        yield len(envelope).to_bytes(4, "big") + envelope
        for i in range(size // CHUNK):
            chunk = pattern_chunk(i, block)
            digest.update(chunk)
            yield chunk

    response = http.post("/_telefunc?_telefunc=bin", content=body(), headers=BIN)
    assert response.status_code == 200, response.text
    return response.json()["ret"], digest.hexdigest()


UPLOAD_BOUND = 16 * MIB


def test_50mb_bin_upload_peak_rss_grows_under_16mb(
    server: ServerProcess, http: httpx.Client
) -> None:
    result, digest = bin_upload(http, MIB)  # warm-up
    assert result["total"] == MIB and result["sha256"] == digest
    baseline = server.start_peak()
    result, digest = bin_upload(http, SIZE)
    growth = server.peak_growth(baseline)
    report("50 MiB bin file upload", baseline, growth, UPLOAD_BOUND)
    assert result == {"name": "big.bin", "size": SIZE, "total": SIZE, "sha256": digest}
    assert growth < UPLOAD_BOUND, f"peak RSS grew by {growth / MIB:.1f} MiB"


# ── client ReadableStream over a channel (official client) ──────────────────

STREAM_BOUND = 24 * MIB


def test_50mb_stream_upload_over_a_channel_peak_rss_grows_under_24mb(
    server: ServerProcess, run_node: Callable[..., list[dict[str, Any]]]
) -> None:
    [warm] = run_node("stream_upload.mjs", server.origin, "1", timeout=120)
    assert warm["server"]["sha256"] == warm["sha256"]
    baseline = server.start_peak()
    [line] = run_node("stream_upload.mjs", server.origin, str(SIZE // MIB), timeout=300)
    growth = server.peak_growth(baseline)
    report("50 MiB ReadableStream upload over a channel", baseline, growth, STREAM_BOUND)
    assert line["total"] == SIZE and line["server"]["total"] == SIZE
    assert line["server"]["sha256"] == line["sha256"]
    assert growth < STREAM_BOUND, f"peak RSS grew by {growth / MIB:.1f} MiB"


# A slow consumer: the telefunction reads 4 MiB, stops reading for 2 s while the official client
# keeps pushing, then reads the rest at ~16 MB/s (a 4 ms delay per 64 KiB chunk), far slower than
# the client can send. Flow control must hold the client back to about one receive window. Before
# the fix every quarter-window consumed re-granted a whole window on top of the backlog, so the
# backlog grew with every advertisement (to ~40 MiB here).
PAUSED = ("/backpressure.telefunc.py", "upload_digest_paused")
PAUSE_SECONDS = 2.0
CHUNK_DELAY = 0.004
PAUSED_BOUND = 24 * MIB


def test_slow_reader_50mb_stream_upload_peak_rss_grows_under_24mb(
    server: ServerProcess, run_node: Callable[..., list[dict[str, Any]]]
) -> None:
    [warm] = run_node(
        "stream_upload.mjs", server.origin, "1", *PAUSED, str(MIB // 2), "0", "0", timeout=120
    )
    assert warm["server"]["sha256"] == warm["sha256"]
    baseline = server.start_peak()
    [line] = run_node(
        "stream_upload.mjs",
        server.origin,
        str(SIZE // MIB),
        *PAUSED,
        str(4 * MIB),
        str(PAUSE_SECONDS),
        str(CHUNK_DELAY),
        timeout=300,
    )
    growth = server.peak_growth(baseline)
    report("50 MiB ReadableStream upload, slow reader", baseline, growth, PAUSED_BOUND)
    assert line["server"] == {"total": SIZE, "sha256": line["sha256"], "paused": True}
    assert growth < PAUSED_BOUND, f"peak RSS grew by {growth / MIB:.1f} MiB"
