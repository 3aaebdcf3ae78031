"""Broadcast shared by several processes through one real redis-server.

Two extra Python processes (``broadcast_peer.py``), each with its own ``RedisBroadcast``, and the
test process itself all subscribe to one key; three publishers in different processes publish
1,000 messages concurrently. Every process must see the same order with strictly increasing seq,
and every publisher's receipts must match what the subscribers saw.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from _broadcast_util import Collector

from redis_support import RedisServer
from telefunc.broadcast.redis import RedisBroadcast
from telefunc.broadcast.transport import BroadcastGap

HERE = Path(__file__).resolve().parent
SRC = HERE.parent.parent / "src"
TOTAL = 1000
KEY = "room:shared"


async def read_line(proc: asyncio.subprocess.Process, timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        return (await proc.stdout.readline()).decode().strip()


async def test_two_processes_and_this_one_share_one_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    shares = {"proc1": 333, "proc2": 333, "main": 334}
    outputs = {name: tmp_path / f"{name}.json" for name in ("proc1", "proc2")}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "broadcast_peer.py"),
            redis_server.url,
            KEY,
            name,
            str(shares[name]),
            str(TOTAL),
            str(outputs[name]),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for name in ("proc1", "proc2")
    ]
    main = RedisBroadcast(redis_server.url)
    try:
        gaps: list[BroadcastGap] = []
        main.on_gap(gaps.append)
        mine = Collector()
        main.listen(KEY, mine)
        await main.wait_subscribed(KEY)
        for proc in procs:
            assert await read_line(proc) == "READY"
        # Three processes subscribed, one upstream subscription each.
        assert redis_server.command("PUBSUB", "NUMSUB", f"telefunc:bc:{KEY}").endswith(b":3\r\n")

        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"GO\n")
            await proc.stdin.drain()
        main_receipts = await asyncio.gather(
            *(main.publish(KEY, f"main-{i}") for i in range(shares["main"]))
        )
        await mine.wait_for(TOTAL, timeout=60)
        for proc in procs:
            async with asyncio.timeout(60):
                assert await proc.wait() == 0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await main.aclose()

    results: dict[str, Any] = {name: json.loads(outputs[name].read_text()) for name in outputs}
    results["main"] = {
        "received": [list(item) for item in mine.items],
        "receipts": [
            [f"main-{i}", r.seq, r.timestamp, r.meta["delivered"]]
            for i, r in enumerate(main_receipts)
        ],
        "gaps": gaps,
    }
    reference = results["main"]["received"]
    assert len(reference) == TOTAL
    # Identical order, seqs and timestamps in all three processes.
    for name in ("proc1", "proc2"):
        assert results[name]["received"] == reference, f"{name} saw a different order"
    seqs = [seq for _, seq, _ in reference]
    assert seqs == list(range(seqs[0], seqs[0] + TOTAL)), "seq must go up by one per message"
    assert sorted(text for text, _, _ in reference) == sorted(
        f"{name}-{i}" for name, count in shares.items() for i in range(count)
    )
    # Every publisher's receipts match what the subscribers saw, in its call order.
    seen = {text: (seq, ts) for text, seq, ts in reference}
    for name, result in results.items():
        receipts = result["receipts"]
        assert len(receipts) == shares[name]
        assert [seen[text] for text, *_ in receipts] == [(seq, ts) for _, seq, ts, _ in receipts]
        assert [seq for _, seq, _, _ in receipts] == sorted(seq for _, seq, _, _ in receipts)
        assert {delivered for *_, delivered in receipts} == {3}
        assert result["gaps"] == []
