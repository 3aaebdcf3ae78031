"""What a broadcast costs and how long presence lags, measured with the emulator's counters.

The numbers in ``examples/cloudflare/README.md`` come from these tests
(``PYTHONPATH=src .venv/bin/pytest tests/cloudflare/test_broadcast_costs.py -q -s`` prints them).
"""

from __future__ import annotations

from typing import Any

import pytest
from cf_broadcast_helpers import Subscriber, advance

COLOS = ("LHR", "IAD", "NRT")  # weur, enam, apac


@pytest.mark.parametrize("regions", [1, 2, 3])
async def test_requests_and_kv_operations_per_publish(make_edge: Any, regions: int) -> None:
    edge = make_edge(kv_delay=2.0)
    key = f"room:cost{regions}"
    subs = [await Subscriber.join(edge, key, colo=colo) for colo in COLOS[:regions]]
    await advance(edge, 3.0, subs)
    publisher = subs[0]
    publisher.publish("warm-up")  # the authority's first publish also reads its storage
    for sub in subs:
        await sub.pump(1)
    await edge.emu.drain()
    before = edge.emu.counters.snapshot()
    rounds = 20
    for n in range(rounds):
        publisher.publish(n)
    for sub in subs:
        await sub.pump(1 + rounds)
    await edge.emu.drain()
    diff = edge.emu.counters.diff(before)
    per_publish = {k: v / rounds for k, v in diff.items()}
    print(f"\n{regions} region(s) populated, per publish: {per_publish}")
    # publisher -> authority (1), authority -> one coordinator per region (R),
    # coordinator -> each object with subscribers (here one per region: R).
    assert per_publish == {
        "do_websocket_messages": 1.0,  # the client's PUBLISH_ACK_REQ
        "do_requests": 1.0 + 2 * regions,
        "do_storage_writes": 1.0,  # the authority's sequence counter
        "kv_lists": 1.0,  # the authority lists the key's presence
    }


@pytest.mark.parametrize("kv_delay", [1.0, 60.0])
async def test_presence_lag_of_a_new_subscriber(make_edge: Any, kv_delay: float) -> None:
    edge = make_edge(kv_delay=kv_delay)
    key = "room:lag"
    # The authority lives near its first publisher: weur (colo LHR).
    publisher = await Subscriber.join(edge, key, colo="LHR")
    step = 0.25
    published_at: dict[int, float] = {}

    async def publish_once() -> None:
        publisher.publish(len(published_at))
        await publisher.pump(len(published_at) + 1)
        seq = publisher.receipts[-1]["seq"]
        published_at[seq] = edge.clock.now()

    await publish_once()
    # New subscribers at t0: one in another region (apac), one in the authority's colo.
    far = await Subscriber.join(edge, key, colo="NRT")
    near = await Subscriber.join(edge, key, colo="LHR", subscribe=False)
    near.subscribe()
    await edge.emu.drain()
    t0 = edge.clock.now()
    clients = [publisher, far, near]
    first: dict[str, float] = {}
    while len(first) < 2 and edge.clock.now() - t0 < kv_delay + 5:
        await publish_once()
        for name, sub in (("far", far), ("near", near)):
            await sub.poll()
            if name not in first and sub.got:
                first[name] = published_at[sub.got[0][0]] - t0
        await advance(edge, step, clients, step=step)
    lag_far, lag_near = first["far"], first["near"]
    print(
        f"\nkv_delay={kv_delay}s: new subscriber in apac first receives a publish made "
        f"{lag_far:.2f}s after it subscribed; in the authority's colo {lag_near:.2f}s"
    )
    assert lag_near == 0.0
    assert kv_delay <= lag_far <= kv_delay + step
