"""The attack benchmark: what one bad client or one foreign web page does to ``telefunc serve``.

    PYTHONPATH=src:bench .venv/bin/python bench/hostile.py [--quick] [--only ROW[,ROW...]]

Each row is one attack (issue 13) against ``telefunc serve bench/hostile_app`` running in its own
process on an ephemeral 127.0.0.1 port. Per row the server's peak RSS is reset
(``/proc/PID/clear_refs``), a probe process calls ``ping()`` over HTTP every ~50 ms, the attack
runs (bounded in time and count), and then the table records:

* **peak RSS growth**: ``VmHWM`` over the row's starting RSS;
* **worst probe latency**: the slowest ``ping()`` during the row (a failed call counts as its time);
* **survived**: the process is alive, answers a call after the row, and no probe call failed
  (each has a 5 s timeout) — a server that was killed, crashed or wedged did not survive;
* **goals**: survived, peak RSS growth < 64 MiB, worst probe latency < 250 ms (plus the row's own
  check, in *notes*: refused, nothing lost, back to baseline...).

A row that kills or wedges the server is recorded and the server is restarted for the next row
(also after a row that grew it past the RSS goal, so the next baseline is clean). A watchdog
kills the server past 2 GiB RSS. ``--quick`` runs a short version of every row (about 90 s in
all); the full run takes about 15 minutes. The exit status is 0 even when rows fail.
The proxy rows use the Python client (``telefunc.client``), which speaks the official client's
protocol; every other row speaks raw HTTP, WebSocket frames and telefunc frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _hostile_io import (
    FILE,
    MIB,
    OP_BINARY,
    OP_PING,
    OP_TEXT,
    REPO,
    TXT_HEADERS,
    Probe,
    RawWS,
    ServerProcess,
    probe_main,
    reconcile,
    ws_frame,
)

from telefunc.wire.frames import HEADER, Tag, encode_frame, encode_json, encode_u32_frame
from telefunc.wire.framing import encode_u32_be, length_prefixed

RSS_GOAL = 64 * MIB
LATENCY_GOAL = 0.25
EVIL = "https://evil.example"


@dataclass
class Ctx:
    """What an attack gets: the server, the run's mode, and a place for notes."""

    server: ServerProcess
    quick: bool
    http: Any  # httpx.AsyncClient on the server's origin
    notes: list[str] = field(default_factory=list)
    ok: bool = True  # the row's own check (refused, nothing lost, ...)

    @property
    def port(self) -> int:
        return self.server.port

    def dur(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def count(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def note(self, text: str) -> None:
        self.notes.append(text)

    async def call(self, name: str, *args: Any, timeout: float = 10.0) -> Any:
        body = json.dumps({"file": FILE, "name": name, "args": list(args)})
        response = await self.http.post(
            "/_telefunc", content=body, headers=TXT_HEADERS, timeout=timeout
        )
        response.raise_for_status()
        return json.loads(response.text)["ret"]

    async def channel(self, name: str, *args: Any) -> str:
        """Call a telefunction returning a channel; its id."""
        placeholder: str = await self.call(name, *args)
        meta: dict[str, Any] = json.loads(placeholder.split(":", 1)[1])
        channel_id: str = meta["channelId"]
        return channel_id

    async def stats(self) -> dict[str, int] | None:
        try:
            result: dict[str, int] = await self.call("stats", timeout=5)
            return result
        except Exception:
            return None

    async def open_ws(self, *channels: tuple[str, int], never_read: bool = False) -> RawWS:
        ws = await RawWS.connect(self.port, never_read=never_read)
        ws.send_frame(reconcile(list(channels)))
        await ws.drain()
        return ws


async def run_for(seconds: float, step: Callable[[], Awaitable[Any]]) -> int:
    """Run ``step`` again and again for ``seconds`` (cancelling the one running at the end);
    how many times it ran. A step timing out ends the loop early."""
    n = 0
    deadline = time.monotonic() + seconds
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while time.monotonic() < deadline:
                await step()
                n += 1
                await asyncio.sleep(0)  # drain() does not yield while the socket takes data
    return n


# ── channel memory and inbound work ─────────────────────────────────────────────────────────


async def huge_credit(ctx: Ctx) -> None:
    cid = await ctx.channel("flood", 1024)
    ws = await ctx.open_ws((cid, 1), never_read=True)
    ws.send_frame(encode_u32_frame(Tag.WINDOW, 1, 0xFFFFFFFF))
    ws.send_frame(encode_u32_frame(Tag.MSG_WINDOW, 1, 0xFFFFFFFF))
    await ws.drain()
    await asyncio.sleep(ctx.dur(10, 2))
    ws.abort()


async def _reconcile_queue_ws(ctx: Ctx, deflate: bool) -> None:
    ws = await RawWS.connect(ctx.port, deflate=deflate, never_read=True)
    if deflate and not ws.deflate:
        ctx.note("server did not negotiate permessage-deflate")
    payload = bytes(4 * MIB) if ws.deflate else bytes(16 * 1024)
    state = {"seq": 0, "next_reconcile": 0.0}

    async def step() -> None:
        if time.monotonic() >= state["next_reconcile"]:
            # A fresh unknown id every 4 s: the server waits connect_ttl (5 s) for each.
            ws.send_frame(reconcile([(str(uuid.uuid4()), 1)]))
            state["next_reconcile"] = time.monotonic() + 4
        for _ in range(16):
            state["seq"] += 1
            ws.send_frame(encode_frame(Tag.BINARY, 1, int(state["seq"]), payload))
        await asyncio.wait_for(ws.drain(), 5)

    try:
        await run_for(ctx.dur(8, 2), step)
    except (OSError, TimeoutError) as exc:
        ctx.note(f"connection ended: {type(exc).__name__}")
    sent = int(state["seq"]) * len(payload) / MIB
    ctx.note(
        f"{int(state['seq'])} frames: {ws.wire_bytes / MIB:.1f} MiB on the wire, "
        f"{sent:.0f} MiB of frames"
    )
    ws.abort()


async def reconcile_queue_ws(ctx: Ctx) -> None:
    await _reconcile_queue_ws(ctx, deflate=False)


async def reconcile_queue_deflate(ctx: Ctx) -> None:
    await _reconcile_queue_ws(ctx, deflate=True)


def _sse_body(conn_id: str, flags: dict[str, bool], *frames: bytes) -> bytes:
    meta = json.dumps({"connId": conn_id, **flags}).encode()
    return length_prefixed([meta, *frames])


async def reconcile_queue_sse(ctx: Ctx) -> None:
    import httpx

    conn_id = str(uuid.uuid4())
    headers = {"x-telefunc-request": "sse", "content-type": "application/octet-stream"}
    sent = {"frames": 0}

    async def downstream() -> None:
        body = _sse_body(conn_id, {"streamResponse": True}, reconcile([(str(uuid.uuid4()), 1)]))
        async with ctx.http.stream(
            "POST", "/_telefunc?_telefunc=sse", content=body, headers=headers, timeout=None
        ) as response:
            async for _ in response.aiter_bytes():
                pass

    async def upstream() -> None:
        async def frames() -> Any:
            yield _sse_body(conn_id, {"streamRequest": True})
            payload = bytes(16 * 1024)
            deadline = time.monotonic() + ctx.dur(8, 2)
            next_reconcile = time.monotonic() + 4
            while time.monotonic() < deadline:
                if time.monotonic() >= next_reconcile:
                    yield length_prefixed([reconcile([(str(uuid.uuid4()), 1)])])
                    next_reconcile += 4
                chunk = []
                for _ in range(16):
                    sent["frames"] += 1
                    chunk.append(encode_frame(Tag.BINARY, 1, sent["frames"], payload))
                yield length_prefixed(chunk)

        async with httpx.AsyncClient(base_url=ctx.server.origin, timeout=None) as upload:
            await upload.post("/_telefunc?_telefunc=sse", content=frames(), headers=headers)

    down = asyncio.create_task(downstream())
    await asyncio.sleep(0.3)
    try:
        await asyncio.wait_for(upstream(), ctx.dur(8, 2) + 10)
    except (httpx.HTTPError, TimeoutError) as exc:
        ctx.note(f"upload ended: {type(exc).__name__}")
    down.cancel()
    with contextlib.suppress(BaseException):
        await down
    ctx.note(f"{sent['frames']} frames ({sent['frames'] * 16 // 1024} MiB)")


async def broadcast_never_reads(ctx: Ctx) -> None:
    key = f"room-{uuid.uuid4()}"
    cid = await ctx.channel("room", key)
    ws = await ctx.open_ws((cid, 1), never_read=True)
    ws.send_frame(encode_frame(Tag.BROADCAST_SUB, 1, 0, b"\x00"))
    await ws.drain()
    published = 0

    async def publisher() -> None:
        nonlocal published

        async def step() -> None:
            nonlocal published
            await ctx.call("blast", key, 100, 4096, timeout=30)
            published += 100

        await run_for(ctx.dur(15, 2), step)

    await asyncio.gather(publisher(), publisher())
    ctx.note(f"{published} messages of 4 KiB published")
    ws.abort()


async def ws_pings_never_read(ctx: Ctx) -> None:
    ws = await RawWS.connect(ctx.port, never_read=True)
    ping = ws_frame(OP_PING, bytes(125))
    sent = 0

    async def step() -> None:
        nonlocal sent
        ws.writer.write(ping * 200)
        sent += 200
        await asyncio.wait_for(ws.drain(), 5)

    try:
        await run_for(ctx.dur(10, 2), step)
    except (OSError, TimeoutError) as exc:
        ctx.note(f"connection ended: {type(exc).__name__}")
    ctx.note(f"{sent} pings")
    ws.abort()


async def telefunc_pings(ctx: Ctx) -> None:
    ws = await ctx.open_ws(never_read=True)
    ping = ws_frame(OP_BINARY, encode_frame(Tag.PING))
    sent = 0

    async def step() -> None:
        nonlocal sent
        ws.writer.write(ping * 500)
        sent += 500
        await asyncio.wait_for(ws.drain(), 5)

    try:
        await run_for(ctx.dur(10, 2), step)
    except (OSError, TimeoutError) as exc:
        ctx.note(f"connection ended: {type(exc).__name__}")
    ctx.note(f"{sent} PINGs")
    ws.abort()


async def slow_listener_flood(ctx: Ctx) -> None:
    cid = await ctx.channel("slow")
    ws = await ctx.open_ws((cid, 1), never_read=True)
    n = ctx.count(50_000, 5_000)
    try:
        for start in range(0, n, 1000):
            ws.writer.write(
                b"".join(
                    ws_frame(OP_BINARY, encode_frame(Tag.TEXT, 1, seq + 1, b"1"))
                    for seq in range(start, min(n, start + 1000))
                )
            )
            await asyncio.wait_for(ws.drain(), 5)
    except (OSError, TimeoutError) as exc:
        ctx.note(f"connection ended: {type(exc).__name__}")
    await asyncio.sleep(ctx.dur(5, 1))
    stats = await ctx.stats()
    ctx.note(f"{n} messages past the window; server tasks {stats and stats['tasks']}")
    ws.abort()


async def reconcile_leak(ctx: Ctx) -> None:
    before = await ctx.stats()
    ws = await ctx.open_ws()
    await ws.reconciled()
    n = ctx.count(2000, 50)
    done = 0
    try:
        for start in range(1, n + 1, 20):
            ixs = range(start, min(n, start + 19) + 1)
            cids = await asyncio.gather(*(ctx.channel("idle") for _ in ixs))
            for ix, cid in zip(ixs, cids, strict=True):
                ws.send_frame(reconcile([(cid, ix)]))  # no sessionId: a fresh session each time
                await ws.drain()
                await ws.reconciled()
                done += 1
    except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
        ctx.note(f"the server closed the connection after {done} ({type(exc).__name__})")
    during = await ctx.stats()
    await ws.close(1000)
    await asyncio.sleep(1.0)
    after = await ctx.stats()
    live = during["channels"] - before["channels"] if during and before else None
    left = after["channels"] - before["channels"] if after and before else None
    ctx.note(f"{done} re-RECONCILEs: {live} channels live, {left} left after close")
    ctx.ok = live is not None and live <= 1 and left == 0


# ── requests ────────────────────────────────────────────────────────────────────────────────


async def huge_post(ctx: Ctx) -> None:
    size = ctx.count(200, 20) * MIB
    chunk = bytes(MIB)

    async def body() -> Any:
        yield b'{"file":"' + FILE.encode() + b'","name":"ping","args":["'
        for _ in range(size // MIB):
            yield chunk.replace(b"\0", b"a")
        yield b'"]}'

    started = time.monotonic()
    try:
        response = await asyncio.wait_for(
            ctx.http.post("/_telefunc", content=body(), headers=TXT_HEADERS, timeout=None),
            ctx.dur(60, 15),
        )
        ctx.note(f"{size // MIB} MB: status {response.status_code}")
    except Exception as exc:
        ctx.note(f"{size // MIB} MB: {type(exc).__name__}")
    ctx.note(f"{time.monotonic() - started:.1f} s")


async def placeholders(ctx: Ctx) -> None:
    n = ctx.count(20_000, 5_000)
    args = [f'!TelefuncStream:{{"channelId":"c{i}"}}' for i in range(n)]
    body = json.dumps({"file": FILE, "name": "ping", "args": args})
    started = time.monotonic()
    try:
        response = await ctx.http.post("/_telefunc", content=body, headers=TXT_HEADERS, timeout=60)
        ctx.note(f"{len(body) / 1e6:.1f} MB, {n} placeholders: status {response.status_code}")
    except Exception as exc:
        ctx.note(f"{type(exc).__name__}")
    ctx.note(f"{time.monotonic() - started:.1f} s")


async def sse_huge_record(ctx: Ctx) -> None:
    announced = 256 * MIB
    sent = ctx.count(256, 48) * MIB

    async def body() -> Any:
        yield _sse_body(str(uuid.uuid4()), {"streamResponse": True})
        yield encode_u32_be(announced)
        chunk = bytes(MIB)
        for _ in range(sent // MIB):
            yield chunk

    headers = {"x-telefunc-request": "sse", "content-type": "application/octet-stream"}
    try:
        async with ctx.http.stream(
            "POST", "/_telefunc?_telefunc=sse", content=body(), headers=headers, timeout=30
        ) as response:
            ctx.note(f"status {response.status_code}")
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    async for _ in response.aiter_bytes():
                        pass
    except Exception as exc:
        ctx.note(f"{type(exc).__name__}")
    ctx.note(f"{sent // MIB} of {announced // MIB} MiB sent")


# ── cross-site ──────────────────────────────────────────────────────────────────────────────

_TRANSFER = json.dumps({"file": FILE, "name": "transfer", "args": ["mallory", 1000]})
_BOUNDARY = "----evil"
CROSS_SITE: dict[str, tuple[str, dict[str, str], str]] = {
    # name: (url, headers, body) of what a foreign page can make a browser send with cookies
    "text/plain form": (
        "/_telefunc?_telefunc=txt",
        {"content-type": "text/plain", "origin": EVIL, "sec-fetch-site": "cross-site"},
        _TRANSFER,
    ),
    "urlencoded form": (
        "/_telefunc?_telefunc=txt",
        {"content-type": "application/x-www-form-urlencoded", "origin": EVIL},
        _TRANSFER,
    ),
    "multipart form": (
        "/_telefunc?_telefunc=txt",
        {"content-type": f"multipart/form-data; boundary={_BOUNDARY}", "origin": EVIL},
        _TRANSFER,
    ),
    "Origin null": (
        "/_telefunc",
        {"content-type": "text/plain", "origin": "null", "x-telefunc-request": "txt"},
        _TRANSFER,
    ),
    "no x-telefunc-request": (
        "/_telefunc",
        {"content-type": "text/plain", "origin": EVIL},
        _TRANSFER,
    ),
}


def cross_site(variant: str) -> Callable[[Ctx], Awaitable[None]]:
    async def attack(ctx: Ctx) -> None:
        url, headers, body = CROSS_SITE[variant]
        before = await ctx.stats()
        response = await ctx.http.post(
            url, content=body, headers={**headers, "cookie": "session=victim"}
        )
        after = await ctx.stats()
        ran = bool(before and after and after["transfers"] > before["transfers"])
        ctx.note(f"status {response.status_code}; refused: {'no' if ran else 'yes'}")
        ctx.ok = not ran

    return attack


async def foreign_ws_upgrade(ctx: Ctx) -> None:
    ws = await RawWS.connect(ctx.port, origin=EVIL)
    refused = ws.status != 101
    ctx.note(f"handshake status {ws.status}; refused: {'yes' if refused else 'no'}")
    ctx.ok = refused
    ws.abort()


# ── ownership ───────────────────────────────────────────────────────────────────────────────


async def attach_foreign_channel(ctx: Ctx) -> None:
    cid = await ctx.channel("idle")
    victim = await ctx.open_ws((cid, 1))
    await victim.reconciled()
    intruder = await RawWS.connect(ctx.port)
    intruder.send_frame(reconcile([(cid, 1)], initial=False))
    await intruder.drain()
    answer = await intruder.reconciled()
    attached = any(entry.get("ix") == 1 for entry in answer.get("open", []))
    ctx.note(
        f"intruder attached: {'yes' if attached else 'no'}; refused: {'no' if attached else 'yes'}"
    )
    ctx.ok = not attached
    await intruder.close()
    await victim.close()


async def end_foreign_session(ctx: Ctx) -> None:
    cid = await ctx.channel("idle")
    victim = await ctx.open_ws((cid, 1))
    session = (await victim.reconciled())["sessionId"]
    alive: list[bool] = []
    # A plain RECONCILE and an SSE-to-WebSocket upgrade, each presenting the victim's session.
    for extra in ({}, {"upgrade": True}):
        intruder = await RawWS.connect(ctx.port)
        payload = {"open": [], "sessionId": session, **extra}
        intruder.send_frame(encode_json(Tag.RECONCILE, payload))
        await intruder.drain()
        with contextlib.suppress(Exception):
            await intruder.reconciled(5)
        await asyncio.sleep(0.5)
        alive.append(bool(await ctx.call("channel_alive", cid)))
        await intruder.close()
    ctx.note(
        "victim's channel still open after a RECONCILE: "
        f"{'yes' if alive[0] else 'no'}, after an upgrade: {'yes' if alive[1] else 'no'}"
    )
    ctx.ok = all(alive)
    await victim.close()


# ── malformed input ─────────────────────────────────────────────────────────────────────────


def _tracebacks(ctx: Ctx, offset: int) -> int:
    return ctx.server.log_since(offset).count("Traceback")


async def deep_nesting(ctx: Ctx) -> None:
    offset = ctx.server.log_size()
    statuses = []
    for depth in (990, 5000, 100_000):
        arg = "[" * depth + "]" * depth
        body = f'{{"file":"{FILE}","name":"ping","args":[{arg}]}}'
        response = await ctx.http.post("/_telefunc", content=body, headers=TXT_HEADERS)
        statuses.append(f"{depth}: {response.status_code}")
    await asyncio.sleep(0.2)
    tracebacks = _tracebacks(ctx, offset)
    ctx.note(f"status {', '.join(statuses)}; tracebacks in log: {tracebacks}")
    ctx.ok = tracebacks == 0 and all(s.endswith("400") for s in statuses)


async def file_metadata(ctx: Ctx) -> None:
    offset = ctx.server.log_size()
    meta = json.dumps({"file": FILE, "name": "upload", "args": ["!TelefuncFile:{}"]}).encode()
    body = encode_u32_be(len(meta)) + meta
    headers = {"x-telefunc-request": "bin", "content-type": "application/octet-stream"}
    response = await ctx.http.post("/_telefunc?_telefunc=bin", content=body, headers=headers)
    await asyncio.sleep(0.2)
    tracebacks = _tracebacks(ctx, offset)
    ctx.note(f"status {response.status_code}; tracebacks in log: {tracebacks}")
    ctx.ok = tracebacks == 0 and response.status_code == 400


async def nul_static_path(ctx: Ctx) -> None:
    offset = ctx.server.log_size()
    statuses = []
    for path in ("/%00", "/index.html%00", "/index%00.html"):
        response = await ctx.http.get(path)
        statuses.append(str(response.status_code))
    await asyncio.sleep(0.2)
    tracebacks = _tracebacks(ctx, offset)
    ctx.note(f"status {'/'.join(statuses)}; tracebacks in log: {tracebacks}")
    ctx.ok = tracebacks == 0 and all(s in ("400", "404") for s in statuses)


async def slowloris(ctx: Ctx) -> None:
    n = ctx.count(500, 500)
    writers: list[asyncio.StreamWriter] = []
    for _ in range(n):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", ctx.port)
        except OSError:
            break
        writer.write(b"POST /_telefunc HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
        writers.append(writer)
    ctx.note(f"{len(writers)} connections")

    async def step() -> None:
        for writer in writers:
            if not writer.is_closing():
                writer.write(b"a")
        await asyncio.sleep(1.0)

    await run_for(ctx.dur(15, 3), step)
    still = sum(1 for writer in writers if not writer.transport.is_closing())
    for writer in writers:
        writer.transport.abort()
    ctx.note(f"{still} still open at the end")


MALFORMED_WS: dict[str, bytes] = {
    "unmasked": ws_frame(OP_BINARY, b"x", masked=False),
    "bad utf-8": ws_frame(OP_TEXT, b"\xff\xfe"),
    "2^62 length": bytes([0x82, 0xFF]) + (1 << 62).to_bytes(8, "big") + b"\0\0\0\0",
    "reserved opcode": ws_frame(0x3, b"x"),
    "fragmented ping": ws_frame(OP_PING, b"x", fin=False),
    "rsv bits": ws_frame(OP_BINARY, b"x", rsv1=True),
    "bad frame tag": ws_frame(OP_BINARY, bytes([0xEE]) + bytes(HEADER - 1)),
}


async def malformed_ws(ctx: Ctx) -> None:
    codes = []
    for _ in range(ctx.count(20, 2)):
        for name, frame in MALFORMED_WS.items():
            ws = await RawWS.connect(ctx.port)
            ws.writer.write(frame)
            await ws.drain()
            code = await ws.close_code(3)
            if len(codes) < len(MALFORMED_WS):
                codes.append(f"{name} {code}")
            ws.abort()
    ctx.note("close codes: " + ", ".join(codes))


# ── fuzzing ─────────────────────────────────────────────────────────────────────────────────

_VALID_BODY = {"file": FILE, "name": "ping", "args": []}


def _fuzz_frame(rng: random.Random) -> bytes:
    tag = rng.choice([int(t) for t in Tag] + [rng.randrange(256)])
    ix = rng.choice([0, 1, 2, rng.randrange(65536)])
    seq = rng.choice([0, 1, rng.randrange(1 << 32)])
    payload = rng.randbytes(rng.choice([0, 1, 4, 5, 12, rng.randrange(64)]))
    if tag in (Tag.RECONCILE, Tag.TEXT) and rng.random() < 0.5:
        payload = json.dumps(
            rng.choice(
                [
                    {"open": [{"id": "x", "ix": rng.randrange(4), "lastSeq": -1}]},
                    {"open": "x", "sessionId": 5},
                    [1, 2],
                    "!BigInt:" + "9" * 50,
                    {"open": [None]},
                ]
            )
        ).encode()
    return encode_frame(tag, ix, seq, payload)


def _fuzz_body(rng: random.Random) -> bytes:
    text = json.dumps(
        rng.choice(
            [
                _VALID_BODY,
                {"file": FILE, "name": "upload", "args": ['!TelefuncFile:{"index":0}']},
                {"file": FILE, "name": rng.choice(["ping", "transfer", "x"]), "args": "a"},
                {"file": 5, "name": None},
                {"file": FILE, "name": "transfer", "args": ["!Date:x", "!BigInt:1e9"]},
                {"file": FILE, "name": "ping", "args": ["!Map:[[", "!Set:{", "!RegExp:/("]},
                [],
            ]
        )
    ).encode()
    data = bytearray(text)
    for _ in range(rng.randrange(4)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


async def fuzz(ctx: Ctx) -> None:
    import httpx

    limit = 1_000_000
    seconds = ctx.dur(180, 4)
    deadline = time.monotonic() + seconds
    offset = ctx.server.log_size()
    counts = {"frames": 0, "bodies": 0}

    async def frames(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline and counts["frames"] < limit:
            try:
                ws = await RawWS.connect(ctx.port)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.1)
                continue
            start = [reconcile([])] if rng.random() < 0.8 else []
            batch = start + [_fuzz_frame(rng) for _ in range(500)]
            ws.writer.write(b"".join(ws_frame(OP_BINARY, f) for f in batch))
            counts["frames"] += len(batch)
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(ws.drain(), 5)
            await ws.close_code(0.05)
            ws.abort()

    async def bodies(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline and counts["bodies"] < limit:
            kind = rng.choice(["txt", "bin", "sse"])
            body = _fuzz_body(rng)
            if kind != "txt":
                body = encode_u32_be(len(body)) + body + rng.randbytes(rng.randrange(16))
            counts["bodies"] += 1
            with contextlib.suppress(httpx.HTTPError):
                await ctx.http.post(
                    f"/_telefunc?_telefunc={kind}",
                    content=body,
                    headers={"x-telefunc-request": kind},
                    timeout=2,
                )

    # Frames first, then bodies, half the time each: the server's CPU is what both compete for.
    half = seconds / 2
    deadline = time.monotonic() + half
    await asyncio.gather(*(frames(seed) for seed in range(3)))
    deadline = time.monotonic() + half
    await asyncio.gather(*(bodies(seed) for seed in range(10, 26)))
    tracebacks = _tracebacks(ctx, offset)
    ctx.ok = tracebacks == 0
    log_kib = (ctx.server.log_size() - offset) / 1024
    ctx.note(
        f"{counts['frames']} frames + {counts['bodies']} bodies in {seconds:.0f} s "
        f"(cap {limit}); log +{log_kib:.0f} KiB, {tracebacks} tracebacks"
    )


# ── reconnects under a cutting proxy ────────────────────────────────────────────────────────


def _proxy_row(transport: str) -> Callable[[Ctx], Awaitable[None]]:
    async def attack(ctx: Ctx) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from tcp_proxy import FaultyProxy  # type: ignore[import-not-found, unused-ignore]
        from telefunc.client import Client

        n = ctx.count(10_000, 200)
        seconds = ctx.dur(60, 3)
        proxy = FaultyProxy(ctx.port)
        await proxy.start()
        ticks: list[Any] = []
        acks_wrong = 0
        acks = 0
        report: Any = None
        connects = 0
        client: Any = None

        async def cutter() -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                proxy.cut()

        cutting = asyncio.create_task(cutter())
        try:
            async with asyncio.timeout(seconds + ctx.dur(90, 30)):
                async with Client(proxy.origin, transports=(transport,)) as c:
                    client = c
                    ch = await _retry(lambda: c.call(FILE, "echo", n))
                    ch.listen(ticks.append)
                    pace = seconds / max(1, n) * 0.8
                    for i in range(n):
                        if ch.is_closed:
                            ctx.note(f"channel closed after {i} sends: {ch.close_error!r}")
                            break
                        if i % 10 == 0:
                            acks += 1
                            if await ch.send(i, ack=True) != i:
                                acks_wrong += 1
                        else:
                            await ch.send(i)
                        if i % 50 == 0 and not cutting.done():
                            await asyncio.sleep(pace * 50)  # spread over the cutting period
                    await cutting
                    while len(ticks) < n and not ch.is_closed:
                        await asyncio.sleep(0.05)
                    if not ch.is_closed:
                        report = await ch.send("report", ack=True)
        except Exception as exc:
            ctx.note(f"{type(exc).__name__} {exc}"[:120])
        finally:
            cutting.cancel()
            await proxy.close()
        if client is not None and client.connection is not None:
            connects = client.connection.connects
        lost = len(set(range(n)) - set(ticks))
        dup = len(ticks) - len(set(ticks))
        ordered = ticks == sorted(ticks)
        up_ok = report == list(range(n))
        ctx.note(
            f"{proxy.cuts} cuts, {connects} connects; server→client {len(ticks)}/{n}: "
            f"lost {lost}, dup {dup}, order {'kept' if ordered else 'broken'}; client→server "
            f"{'all, in order' if up_ok else 'not confirmed'}; acks wrong {acks_wrong}/{acks}"
        )
        ctx.ok = lost == 0 and dup == 0 and ordered and up_ok and acks_wrong == 0

    return attack


async def _retry(make: Callable[[], Awaitable[Any]], attempts: int = 50) -> Any:
    """A plain HTTP call through the cutting proxy: retried when a cut lands on it."""
    for _ in range(attempts - 1):
        try:
            return await make()
        except Exception:
            await asyncio.sleep(0.02)
    return await make()


# ── connection churn ────────────────────────────────────────────────────────────────────────


async def churn(ctx: Ctx) -> None:
    """Connect, open a channel, disconnect, over and over, in two equal rounds.

    After each round the server must be back to its live channels, tasks and mux map entries of
    before, and RSS (after ``malloc_trim``) must not grow from one round to the next: what the
    first round leaves is the allocator's high water (peak live channels while cycling), not a
    leak that grows with the number of cycles.
    """
    n = ctx.count(10_000, 150)
    done = 0
    errors = 0

    async def worker(count: int) -> None:
        nonlocal done, errors
        for _ in range(count):
            try:
                cid = await ctx.channel("idle")
                ws = await ctx.open_ws((cid, 1))
                await ws.reconciled()
                await ws.close(1000)
                done += 1
            except Exception:
                errors += 1

    await worker(1)  # warm up: the hub's timer task, imports, allocator arenas
    await asyncio.sleep(0.5)
    before = await ctx.stats()
    rss_before = ctx.server.status()["VmRSS"]
    done = errors = 0
    workers = 8
    peak_channels = 0
    after: dict[str, int] | None = None

    def settled() -> bool:
        return bool(
            before
            and after
            and after["channels"] <= before["channels"]
            and after["tasks"] <= before["tasks"]
            and after.get("mux_entries", 0) <= before.get("mux_entries", 0)
        )

    async def sample() -> None:
        nonlocal peak_channels
        while True:
            stats = await ctx.stats()
            if stats:
                peak_channels = max(peak_channels, stats["channels"])
            await asyncio.sleep(0.5)

    growth: list[int] = []
    started = time.monotonic()
    rounds_settled = True
    for half in (n // 2, n - n // 2):
        sampler = asyncio.ensure_future(sample())
        try:
            await asyncio.gather(
                *(worker(half // workers + (i < half % workers)) for i in range(workers))
            )
        finally:
            sampler.cancel()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            after = await ctx.stats()
            if settled():
                break
            await asyncio.sleep(0.5)
        rounds_settled = rounds_settled and settled()
        await ctx.call("trim_heap")  # what is left after this is live data, not high water
        growth.append(ctx.server.status().get("VmRSS", 0) - rss_before)
    cycling = time.monotonic() - started
    channels = f"{before and before['channels']}→{after and after['channels']}"
    tasks = f"{before and before['tasks']}→{after and after['tasks']}"
    entries = f"{before and before.get('mux_entries')}→{after and after.get('mux_entries')}"
    ctx.note(
        f"{done} cycles ({errors} failed) in {cycling:.0f} s, at most {peak_channels} channels "
        f"live at once; channels {channels}, tasks {tasks}, mux map entries {entries}; RSS "
        f"after malloc_trim {growth[0] / MIB:+.1f} MiB after round 1, "
        f"{growth[1] / MIB:+.1f} MiB after round 2"
    )
    # No leak: the second round leaves no more than the first (2 MiB of slack for noise).
    ctx.ok = rounds_settled and errors == 0 and growth[1] - growth[0] < 2 * MIB


# ── the table ───────────────────────────────────────────────────────────────────────────────

ROWS: dict[str, tuple[str, Callable[[Ctx], Awaitable[None]]]] = {
    "credit": ("huge receive credit on a sending channel", huge_credit),
    "reconcile-ws": ("RECONCILE of an unknown channel, then frames (WS)", reconcile_queue_ws),
    "reconcile-deflate": (
        "RECONCILE of an unknown channel, then frames (compressed WS)",
        reconcile_queue_deflate,
    ),
    "reconcile-sse": ("RECONCILE of an unknown channel, then frames (SSE)", reconcile_queue_sse),
    "broadcast": ("broadcast subscriber that never reads", broadcast_never_reads),
    "ws-pings": ("WebSocket pings from a client that never reads", ws_pings_never_read),
    "pings": ("telefunc PING flood", telefunc_pings),
    "slow-listener": ("flooding a slow listener past the window", slow_listener_flood),
    "reconcile-leak": ("repeated RECONCILE without sessionId", reconcile_leak),
    "huge-post": ("200 MB POST (quick: 20 MB)", huge_post),
    "placeholders": ("body with 20,000 placeholders (quick: 5,000)", placeholders),
    "sse-record": ("SSE record announcing 256 MiB (quick: 48 MiB sent)", sse_huge_record),
    **{
        f"csrf-{i}": (f"cross-site POST: {variant}", cross_site(variant))
        for i, variant in enumerate(CROSS_SITE, 1)
    },
    "csrf-ws": ("cross-site WebSocket upgrade", foreign_ws_upgrade),
    "attach": ("attaching to another client's channel", attach_foreign_channel),
    "end-session": ("ending another client's session", end_foreign_session),
    "nesting": ("deep nesting (990, 5,000, 100,000)", deep_nesting),
    "file-meta": ("file metadata {}", file_metadata),
    "nul-path": ("NUL byte in a static path", nul_static_path),
    "slowloris": ("500 slowloris connections", slowloris),
    "malformed-ws": ("malformed WebSocket frames", malformed_ws),
    "fuzz": ("1,000,000 fuzzed frames and HTTP bodies (time-capped)", fuzz),
    "proxy-ws": ("proxy cutting every 100 ms, 10,000 messages each way (WS)", _proxy_row("ws")),
    "proxy-sse": (
        "proxy cutting every 100 ms, 10,000 messages each way (SSE)",
        _proxy_row("sse"),
    ),
    "churn": ("10,000 connect/open-channel/disconnect cycles", churn),
}


@dataclass
class Result:
    row: str
    attack: str
    growth: int
    worst: float
    survived: bool
    goals: bool
    notes: str


class Bench:
    """Runs rows against one server process, restarting it when a row took it down."""

    def __init__(self, quick: bool, log_dir: Path) -> None:
        self.quick = quick
        self.log_path = log_dir / "server.log"
        self.server: ServerProcess | None = None
        self.probe: Probe | None = None

    def ensure_server(self) -> tuple[ServerProcess, Probe]:
        if self.server is None or self.probe is None or not self.server.alive:
            self.restart(kill=True)
            self.server = ServerProcess(self.log_path)
            self.probe = Probe(self.server.origin)
        return self.server, self.probe

    def restart(self, kill: bool = False) -> None:
        if self.server is not None:
            self.server.stop(kill=kill)
            self.server = None
        if self.probe is not None:
            self.probe.stop()
            self.probe = None

    async def run_row(self, key: str) -> Result:
        import httpx

        attack_name, attack = ROWS[key]
        if not self.quick:
            attack_name = re.sub(r" \(quick: [^)]*\)", "", attack_name)
        server, probe = self.ensure_server()
        async with httpx.AsyncClient(base_url=server.origin, timeout=30) as http:
            ctx = Ctx(server, self.quick, http)
            await ctx.call("ping")  # warm: imports, first connection
            baseline = server.start_peak()
            probe.report()  # starts the row's window
            cap = ctx.dur(420, 30)  # churn takes ~230 s on a busy 2-core machine
            try:
                await asyncio.wait_for(attack(ctx), cap)
            except TimeoutError:
                ctx.note(f"attack stopped at its {cap:.0f} s cap")
                ctx.ok = False
            except Exception as exc:
                ctx.note(f"attack failed: {type(exc).__name__}: {exc}"[:160])
                ctx.ok = False
            answered = False
            if server.alive:
                with contextlib.suppress(Exception):
                    answered = await ctx.call("ping", timeout=ctx.dur(10, 3)) == "pong"
            probed = probe.report()
            growth = server.peak() - baseline
        if server.killed_for_rss:
            ctx.note("killed by the watchdog past 2 GiB RSS")
        elif not server.alive:
            ctx.note(f"server died (exit {server.proc.returncode})")
        elif not answered:
            ctx.note("server wedged: no answer to a call after the row")
        if probed["failed"]:
            ctx.note(f"{probed['failed']} of {probed['calls']} probe calls failed")
        survived = server.alive and answered and probed["failed"] == 0
        worst = float(probed["worst"])
        goals = survived and ctx.ok and growth < RSS_GOAL and worst < LATENCY_GOAL
        if not survived or growth >= RSS_GOAL:
            self.restart(kill=not survived)
        return Result(key, attack_name, growth, worst, survived, goals, "; ".join(ctx.notes))

    async def run(self, keys: list[str]) -> list[Result]:
        results = []
        try:
            for key in keys:
                started = time.monotonic()
                try:
                    result = await self.run_row(key)
                except Exception as exc:  # the bench itself failed: record, restart, go on
                    self.restart(kill=True)
                    result = Result(key, ROWS[key][0], 0, math.inf, False, False, f"bench: {exc!r}")
                print(
                    f"  {key}: {time.monotonic() - started:.1f} s, survived "
                    f"{'yes' if result.survived else 'no'}",
                    file=sys.stderr,
                    flush=True,
                )
                results.append(result)
        finally:
            self.restart()
        return results


def table(results: list[Result]) -> str:
    lines = [
        "| attack | server peak RSS growth | worst probe latency | survived | goals | notes |",
        "|---|---:|---:|---|---|---|",
    ]
    for r in results:
        worst = "∞" if math.isinf(r.worst) else f"{r.worst * 1000:.0f} ms"
        lines.append(
            f"| {r.attack} | {r.growth / MIB:.1f} MiB | {worst} | "
            f"{'yes' if r.survived else 'no'} | {'yes' if r.goals else 'no'} | "
            f"{r.notes.replace('|', '/')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short version of every row")
    parser.add_argument("--only", help="comma-separated rows: " + ", ".join(ROWS))
    parser.add_argument("--log-dir", help="keep the server log (server.log) in this folder")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe_main(args.probe)
        return 0
    if not sys.platform.startswith("linux"):
        print("hostile.py reads /proc/<pid>: Linux only", file=sys.stderr)
        return 2
    keys = list(ROWS)
    if args.only:
        keys = [key.strip() for key in args.only.split(",")]
        unknown = [key for key in keys if key not in ROWS]
        if unknown:
            parser.error(f"unknown rows {unknown}; rows are: {', '.join(ROWS)}")
    started = time.monotonic()
    if args.log_dir:  # keep the server's log, to read what a failing row made it write
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
        results = asyncio.run(Bench(args.quick, Path(args.log_dir)).run(keys))
    else:
        with tempfile.TemporaryDirectory(prefix="telefunc-hostile-") as log_dir:
            results = asyncio.run(Bench(args.quick, Path(log_dir)).run(keys))
    print(table(results))
    survived = sum(r.survived for r in results)
    goals = sum(r.goals for r in results)
    print(
        f"\n{survived}/{len(results)} rows survived, {goals}/{len(results)} met the goals "
        f"({'quick' if args.quick else 'full'} run, {time.monotonic() - started:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    # The raw sockets of the slowloris row: 500 descriptors plus the rest.
    with contextlib.suppress(Exception):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    sys.exit(main())
