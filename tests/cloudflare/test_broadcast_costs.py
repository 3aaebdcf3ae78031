"""What a broadcast costs and how long presence lags, measured with the emulator's counters.

The numbers in ``examples/cloudflare/README.md`` come from these tests
(``PYTHONPATH=src .venv/bin/pytest tests/cloudflare/test_broadcast_costs.py -q -s`` prints them).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cf_broadcast_helpers import Subscriber, advance, presence

from telefunc.cloudflare.broadcast import (
    PRESENCE_KV_PROPAGATION,
    PRESENCE_REFRESH,
    PRESENCE_TTL,
    DurableBroadcast,
    authority_name,
)

COLOS = ("LHR", "IAD", "NRT")  # weur, enam, apac


def authority_host(edge: Any, key: str) -> Any:
    (host,) = [h for h in edge.emu.hosts() if h.id.name == authority_name("telefunc", key)]
    return host


def direct_presence(edge: Any, key: str) -> dict[str, float]:
    """What the authority keeps in storage: ``"<region>:<object>"`` -> expiry (seconds)."""
    stored = authority_host(edge, key).storage_data.get(f"broadcast:{key}:presence")
    members: dict[str, float] = json.loads(stored)["members"] if stored else {}
    return members


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
    # coordinator -> each object with subscribers (here one per region: R). The authority's own
    # presence table is in memory: merging it costs nothing per publish.
    assert per_publish == {
        "do_websocket_messages": 1.0,  # the client's PUBLISH_ACK_REQ
        "do_requests": 1.0 + 2 * regions,
        "do_storage_writes": 1.0,  # the authority's sequence counter
        "kv_lists": 1.0,  # the authority lists the key's presence
    }


async def test_cost_of_subscribe_refresh_and_unsubscribe(make_edge: Any) -> None:
    edge = make_edge(kv_delay=60.0)
    key = "room:presence-cost"
    publisher = await Subscriber.join(edge, key, colo="LHR")
    publisher.publish("create the authority")
    await publisher.pump(1)
    far = await Subscriber.join(edge, key, colo="NRT", subscribe=False)
    await edge.emu.drain()
    clients = [publisher, far]

    before = edge.emu.counters.snapshot()
    far.subscribe()
    await edge.emu.drain()
    subscribe = edge.emu.counters.diff(before)

    await advance(edge, PRESENCE_REFRESH - 1, clients)
    before = edge.emu.counters.snapshot()
    await advance(edge, 1.0, clients, step=1.0)
    refresh = edge.emu.counters.diff(before)
    # The clients' pings (one WebSocket message each) are not part of the refresh.
    refresh.pop("do_websocket_messages")

    await advance(edge, 1.0, clients, step=1.0)  # KV allows one write per key per second
    before = edge.emu.counters.snapshot()
    far.unsubscribe()
    await edge.emu.drain()
    unsubscribe = edge.emu.counters.diff(before)
    print(f"\nsubscribe: {subscribe}\nrefresh (each 30 s): {refresh}\nunsubscribe: {unsubscribe}")
    # Both presence refreshes (publisher's and far's objects) fall in that second. The authority
    # hibernated while idle (10 s on the emulator): the first report wakes it, and it reads its
    # authority bucket and presence table back (2 reads, once per wake-up, not per report).
    assert refresh == {
        "kv_writes": 2,
        "do_requests": 2,
        "do_storage_writes": 2,
        "do_storage_reads": 2,
    }
    assert subscribe == {
        "do_websocket_messages": 1,  # BROADCAST_SUB
        "kv_writes": 1,  # the KV presence record
        "do_requests": 1,  # telefuncBroadcastPresence to the authority
        "do_storage_writes": 1,  # the authority's presence table
    }
    assert unsubscribe == {
        "do_websocket_messages": 1,  # BROADCAST_UNSUB
        "kv_deletes": 1,
        "do_requests": 1,
        "do_storage_writes": 1,
    }


@pytest.mark.parametrize("direct", [True, False], ids=["with-authority-rpc", "kv-only"])
@pytest.mark.parametrize("kv_delay", [1.0, 60.0])
async def test_presence_lag_of_a_new_subscriber(
    make_edge: Any, monkeypatch: pytest.MonkeyPatch, kv_delay: float, direct: bool
) -> None:
    if not direct:
        # What 0.2.23 does: presence through KV only (the authority report always fails).
        async def refuse(self: DurableBroadcast, key: str, present: bool) -> bool:
            return False

        monkeypatch.setattr(DurableBroadcast, "_tell_authority", refuse)
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
    first_seq: dict[str, int] = {}
    while len(first) < 2 and edge.clock.now() - t0 < kv_delay + 5:
        await publish_once()
        for name, sub in (("far", far), ("near", near)):
            await sub.poll()
            if name not in first and sub.got:
                first[name] = published_at[sub.got[0][0]] - t0
                first_seq[name] = sub.got[0][0]
        await advance(edge, step, clients, step=step)
    lag_far, lag_near = first["far"], first["near"]
    print(
        f"\nkv_delay={kv_delay}s, {'authority RPC' if direct else 'KV only'}: new subscriber in "
        f"apac first receives a publish made {lag_far:.2f}s after it subscribed; in the "
        f"authority's colo {lag_near:.2f}s"
    )
    assert lag_near == 0.0 and first_seq["near"] == 2
    if direct:
        # The very next publish after the subscription, however slow KV is.
        assert lag_far == 0.0 and first_seq["far"] == 2
        assert [s for s, _ in far.got] == list(range(2, 2 + len(far.got)))
    else:
        assert kv_delay <= lag_far <= kv_delay + step


async def test_own_publish_racing_a_far_subscribe_is_held_until_the_authority_acked(
    make_edge: Any,
) -> None:
    edge = make_edge(kv_delay=60.0)
    key = "room:race"
    publisher = await Subscriber.join(edge, key, colo="LHR")
    publisher.publish("authority in weur")
    await publisher.pump(1)
    far = await Subscriber.join(edge, key, colo="NRT", subscribe=False)
    far.subscribe()  # not drained: the presence report is in flight
    status, _, body = await edge.call("announce", [key, "mine"], colo="NRT", token=far.client.token)
    assert status == 200, body
    await far.pump(1)
    assert far.got == [(2, "mine")]
    assert sorted(body["ret"]["meta"]["fanoutBuckets"]) == ["apac", "weur"]
    assert body["ret"]["meta"]["authorityBucket"] == "weur"
    # KV in weur does not show the apac record yet: only the direct report found it.
    assert set(await presence(edge, key)) == {f"tfps:room%3Arace:weur:{publisher.shard}"}
    assert edge.emu.errors == []


async def test_direct_presence_survives_authority_eviction_expires_and_unsubscribes(
    make_edge: Any,
) -> None:
    edge = make_edge(kv_delay=60.0)
    key = "room:direct"
    publisher = await Subscriber.join(edge, key, colo="LHR")
    publisher.publish(0)
    await publisher.pump(1)
    far = await Subscriber.join(edge, key, colo="NRT")
    t0 = edge.clock.now()
    member = f"apac:{far.shard}"
    assert direct_presence(edge, key)[member] == pytest.approx(t0 + PRESENCE_TTL)
    # The authority is evicted: its table comes back from storage.
    edge.emu.evict(authority_host(edge, key))
    publisher.publish(1)
    await publisher.pump(2)
    await far.pump(1)
    assert far.got == [(2, 1)]
    # Refreshed with the KV record every 30 s.
    await advance(edge, PRESENCE_REFRESH, [publisher, far])
    last_report = t0 + PRESENCE_REFRESH
    assert direct_presence(edge, key)[member] == pytest.approx(last_report + PRESENCE_TTL)
    # The far object is evicted (no unsubscribe): its entry lapses 90 s after its last report,
    # exactly with its KV record.
    (far_host,) = [h for h in edge.emu.hosts() if h.id.name == far.shard]
    edge.emu.evict(far_host)
    await advance(edge, last_report + PRESENCE_TTL - 1 - edge.clock.now(), [publisher])
    publisher.publish(2)
    await publisher.pump(3)
    assert sorted(publisher.receipts[-1]["meta"]["fanoutBuckets"]) == ["apac", "weur"]
    await advance(edge, 1.0, [publisher], step=1.0)
    assert edge.clock.now() == pytest.approx(last_report + PRESENCE_TTL)
    publisher.publish(3)
    await publisher.pump(4)
    assert publisher.receipts[-1]["meta"]["fanoutBuckets"] == ["weur"]
    # A subscriber whose KV record is long visible unsubscribes: the authority stops fanning out
    # to it at once, not when the KV delete has propagated (a tombstone hides the record).
    again = await Subscriber.join(edge, key, colo="NRT")
    await advance(edge, 61.0, [publisher, again])
    assert f"tfps:room%3Adirect:apac:{again.shard}" in await presence(edge, key)
    again.unsubscribe()
    await edge.emu.drain()
    assert f"tfps:room%3Adirect:apac:{again.shard}" in await presence(edge, key)  # weur's view
    publisher.publish(4)
    await publisher.pump(5)
    assert publisher.receipts[-1]["meta"]["fanoutBuckets"] == ["weur"]
    await advance(edge, PRESENCE_KV_PROPAGATION, [publisher])
    assert f"tfps:room%3Adirect:apac:{again.shard}" not in await presence(edge, key)
    publisher.publish(5)
    await publisher.pump(6)
    assert publisher.receipts[-1]["meta"]["fanoutBuckets"] == ["weur"]
    assert edge.emu.errors == []
