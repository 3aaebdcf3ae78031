"""A separate server-like process for ``test_redis_processes.py``.

Usage: ``python broadcast_peer.py URL KEY NAME COUNT TOTAL OUT``. It builds its own
``RedisBroadcast``, listens to KEY, prints ``READY`` once subscribed, waits for ``GO`` on stdin,
publishes COUNT messages ``NAME-<i>`` (all in flight at once), waits until TOTAL messages arrived,
writes ``{"received": [[text, seq, ts], ...], "receipts": [[text, seq, ts, delivered], ...],
"gaps": [...]}`` to OUT and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from telefunc.broadcast.redis import RedisBroadcast
from telefunc.broadcast.transport import BroadcastGap, PublishInfo


async def main(url: str, key: str, name: str, count: int, total: int, out: str) -> None:
    transport = RedisBroadcast(url)
    received: list[list[Any]] = []
    gaps: list[list[Any]] = []
    done = asyncio.Event()

    def on_message(text: str, info: PublishInfo) -> None:
        received.append([text, info.seq, info.timestamp])
        if len(received) >= total:
            done.set()

    def on_gap(gap: BroadcastGap) -> None:
        gaps.append([gap.key, gap.expected_seq, gap.got_seq, gap.reason])

    transport.on_gap(on_gap)
    transport.listen(key, on_message)
    await transport.wait_subscribed(key)
    print("READY", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    assert line.strip() == "GO", line
    results = await asyncio.gather(*(transport.publish(key, f"{name}-{i}") for i in range(count)))
    receipts = [
        [f"{name}-{i}", r.seq, r.timestamp, r.meta["delivered"]] for i, r in enumerate(results)
    ]
    async with asyncio.timeout(60):
        await done.wait()
    with open(out, "w") as fh:
        json.dump({"received": received, "receipts": receipts, "gaps": gaps}, fh)
    await transport.aclose()


if __name__ == "__main__":
    url, key, name, count, total, out = sys.argv[1:]
    asyncio.run(main(url, key, name, int(count), int(total), out))
