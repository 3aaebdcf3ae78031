"""Distributed broadcast on Durable Objects with KV presence, on the emulator's fake clock.

Clients hold ``BroadcastChannel`` s of the test app (``room(key)``) over the objects' WebSockets,
subscribe with BROADCAST_SUB and publish with PUBLISH_ACK_REQ, exactly as the JS client does.
"""

from __future__ import annotations

from typing import Any

from cf_broadcast_helpers import Subscriber, advance, pin, presence

from telefunc.cloudflare.broadcast import (
    PRESENCE_TTL,
    coordinator_name,
    encode_uri_component,
    key_hash,
    presence_key,
)

# ── names ──────────────────────────────────────────────────────────────────


def test_names_match_telefunc_0_2_23() -> None:
    assert key_hash("ab") == 97 * 31 + 98
    assert key_hash("") == 0
    # (h*31 + c) >>> 0 wraps at 2**32; UTF-16 code units (an astral char is two of them).
    h = 0
    for c in "room:ünïcødé-" * 20 + "\U0001f600":
        for unit in [ord(c)] if ord(c) < 0x10000 else [0xD83D, 0xDE00]:
            h = (h * 31 + unit) % 2**32
    assert key_hash("room:ünïcødé-" * 20 + "\U0001f600") == h
    assert encode_uri_component("a b/ü:!*'()~") == "a%20b%2F%C3%BC%3A!*'()~"
    assert presence_key("room 1", "weur", "telefunc-shard-weur-0") == (
        "tfps:room%201:weur:telefunc-shard-weur-0"
    )
    assert coordinator_name("telefunc", "ab", "weur", 5) == f"telefunc:broadcast:weur:{3105 % 3}"
    assert coordinator_name("telefunc", "ab", "apac", 1) == "telefunc:broadcast:apac:0"


# ── ordering across regions ────────────────────────────────────────────────


async def test_1000_publishes_from_three_regions_reach_three_regions_in_one_order(
    make_edge: Any,
) -> None:
    edge = make_edge(scale=2, kv_delay=2.0)
    pin(edge, 7)
    key = "room:global"
    subs = [
        await Subscriber.join(edge, key, colo=colo)
        for colo in ("LHR", "IAD", "NRT", "LHR", "IAD", "NRT")
    ]
    objects = {s.shard for s in subs}
    assert {o.rsplit("-", 2)[1] for o in objects} == {"weur", "enam", "apac"}
    assert len(objects) >= 4  # scale=2: both objects of some regions hold subscribers
    await advance(edge, 3.0, subs)  # past KV propagation: every record visible everywhere
    assert len(await presence(edge, key)) == len(objects)
    publishers = subs[:3]  # one per region, interleaved
    sent = 0
    while sent < 1000:
        pub = publishers[sent % 3]
        pub.publish({"from": pub.colo, "n": sent})
        sent += 1
    for sub in subs:
        await sub.pump(1000)
        await sub.no_more()
    orders = [sub.got for sub in subs]
    seqs = [seq for seq, _ in orders[0]]
    assert seqs == list(range(1, 1001))  # strictly increasing, nothing missed
    for other in orders[1:]:
        assert other == orders[0]  # the same order in every region and object
    # Each publisher's messages keep its own order inside the global one.
    for pub in publishers:
        mine = [v["n"] for _, v in orders[0] if v["from"] == pub.colo]
        assert mine == sorted(mine) and len(mine) in (333, 334)
        receipt_seqs = [r["seq"] for r in pub.receipts]
        assert receipt_seqs == sorted(receipt_seqs)
        for r in pub.receipts:
            assert r["key"] == key and isinstance(r["timestamp"], int)
            assert r["meta"]["authorityBucket"] == "weur"  # the first publisher's region
            assert sorted(r["meta"]["fanoutBuckets"]) == ["apac", "enam", "weur"]
    all_seqs = sorted(r["seq"] for p in publishers for r in p.receipts)
    assert all_seqs == list(range(1, 1001))
    authority = [h for h in edge.emu.hosts() if h.id.name == "telefunc:broadcast:authority:" + key]
    assert len(authority) == 1 and authority[0].storage_data[f"broadcast:{key}:sequence"] == 1000
    assert authority[0].location_hint == "weur"
    dropped = [
        h.instance.telefunc.broadcast.dropped_out_of_order
        for h in edge.emu.hosts()
        if h.instance is not None and h.instance.telefunc.broadcast is not None
    ]
    assert sum(dropped) == 0
    assert edge.emu.errors == []


# ── eviction ───────────────────────────────────────────────────────────────


async def test_object_evicted_mid_stream_subscribers_reconnect_and_presence_expires(
    make_edge: Any,
) -> None:
    edge = make_edge(kv_delay=2.0)
    key = "room:evict"
    weur = await Subscriber.join(edge, key, colo="LHR")
    apac = await Subscriber.join(edge, key, colo="NRT")
    enam = await Subscriber.join(edge, key, colo="IAD")
    await advance(edge, 3.0, [weur, apac, enam])
    for n in range(10):
        weur.publish(n)
    for sub in (weur, apac, enam):
        await sub.pump(10)
    hosts = {h.id.name: h for h in edge.emu.hosts()}
    # Both the apac and the enam object are evicted mid-stream (a deploy).
    for sub in (apac, enam):
        edge.emu.evict(hosts[sub.shard])
        code, _ = await sub.client.ws.wait_closed()
        assert code == 1006
    for n in range(10, 20):
        weur.publish(n)
    await weur.pump(20)
    # The records are still there: the fan-out still reaches both regions; the fresh
    # instances have no listeners, and the publishes resolve anyway.
    assert sorted(weur.receipts[-1]["meta"]["fanoutBuckets"]) == ["apac", "enam", "weur"]
    # The enam client reconnects (same session, same object) and subscribes again.
    await advance(edge, 2.0, [weur])
    enam2 = await Subscriber.join(edge, key, colo="IAD")
    assert enam2.shard == enam.shard
    for n in range(20, 30):
        weur.publish(n)
    await weur.pump(30)
    await enam2.pump(10)
    assert [s for s, _ in enam2.got] == list(range(21, 31))  # the seq continues
    assert [s for s, _ in weur.got] == list(range(1, 31))
    # The apac client never comes back: its record expires 90 s after its last write.
    records = await presence(edge, key)
    apac_record = presence_key(key, "apac", apac.shard)
    assert apac_record in records
    await advance(edge, PRESENCE_TTL, [weur, enam2])
    records = await presence(edge, key)
    assert apac_record not in records and len(records) == 2
    weur.publish("after-expiry")
    await weur.pump(31)
    await enam2.pump(11)
    assert sorted(weur.receipts[-1]["meta"]["fanoutBuckets"]) == ["enam", "weur"]
    assert edge.emu.errors == []


# ── presence TTL and refresh ───────────────────────────────────────────────


async def test_presence_ttl_refresh_and_delete_on_the_emulator_clock(make_edge: Any) -> None:
    edge = make_edge(kv_delay=2.0)
    key = "room/ttl ü"
    sub = await Subscriber.join(edge, key, colo="LHR")
    record = presence_key(key, "weur", sub.shard)
    t0 = edge.clock.now()
    assert await presence(edge, key) == {record: int(t0 + 90)}
    kv = edge.emu.env.TelefuncKV
    assert kv._versions[record][-1].value == sub.shard.encode()
    writes = edge.emu.counters.kv_writes
    await advance(edge, 29.0, [sub])
    assert edge.emu.counters.kv_writes == writes  # no refresh before 30 s
    await advance(edge, 1.0, [sub])
    assert edge.emu.counters.kv_writes == writes + 1  # refreshed at 30 s: TTL restarts
    assert await presence(edge, key) == {record: int(t0 + 30 + 90)}
    await advance(edge, 30.0, [sub])
    assert await presence(edge, key) == {record: int(t0 + 60 + 90)}
    assert edge.emu.counters.kv_writes == writes + 2
    # 90 s of subscription: the record never lapsed.
    await advance(edge, 30.0, [sub])
    last_refresh = t0 + 90
    assert await presence(edge, key) == {record: int(last_refresh + 90)}
    # Evicted: no more refreshes; present at 89 s after the last write, gone at 90 s.
    (host,) = [h for h in edge.emu.hosts() if h.id.name == sub.shard]
    edge.emu.evict(host)
    await edge.clock.set(last_refresh + 89)
    assert record in await presence(edge, key)
    await edge.clock.set(last_refresh + 90)
    assert await presence(edge, key) == {}
    # A new subscription on a fresh client, then the last unsubscribe deletes at once.
    again = await Subscriber.join(edge, key, colo="LHR")
    record2 = presence_key(key, "weur", again.shard)
    assert record2 in await presence(edge, key)
    await advance(edge, 2.0, [again])  # KV allows one write per key per second
    deletes = edge.emu.counters.kv_deletes
    again.unsubscribe()
    await edge.emu.drain()
    assert await presence(edge, key) == {}
    assert edge.emu.counters.kv_deletes == deletes + 1
    # And no refresh is armed any more.
    writes = edge.emu.counters.kv_writes
    await advance(edge, 31.0, [again])
    assert edge.emu.counters.kv_writes == writes
    assert edge.emu.errors == []


async def test_server_side_publish_right_after_subscribe_is_buffered_until_presence(
    make_edge: Any,
) -> None:
    edge = make_edge(kv_delay=2.0)
    key = "room:buffered"
    sub = await Subscriber.join(edge, key, colo="LHR", subscribe=False)
    sub.subscribe()  # presence setup starts; the publish below waits for it
    status, _, body = await edge.call("announce", [key, "hi"], colo="LHR", token=sub.client.token)
    assert status == 200, body
    await sub.pump(1)
    assert sub.got == [(1, "hi")]
    assert body["ret"]["seq"] == 1 and body["ret"]["meta"]["fanoutBuckets"] == ["weur"]


# ── scale, fallback, jurisdiction ──────────────────────────────────────────


async def test_per_region_scale_fallback_and_coordinators(make_edge: Any) -> None:
    edge = make_edge(scale={"weur": 3, "apac": 1}, kv_delay=2.0)
    pin(edge, 3)
    key = "ab"  # hash 3105: weur has ceil(3/2) = 2 coordinators -> ordinal 1
    from_enam = await Subscriber.join(edge, key, colo="IAD")  # enam unscaled -> weur
    from_apac = await Subscriber.join(edge, key, colo="NRT")
    assert from_enam.shard.startswith("telefunc-shard-weur-")
    assert from_apac.shard == "telefunc-shard-apac-0"
    await advance(edge, 3.0, [from_enam, from_apac])
    records = await presence(edge, key)
    assert set(records) == {
        presence_key(key, "weur", from_enam.shard),
        presence_key(key, "apac", from_apac.shard),
    }
    from_apac.publish("x")
    await from_apac.pump(1)
    await from_enam.pump(1)
    receipt = from_apac.receipts[0]
    # The authority was created by its first contact: from_enam's presence report (weur), and
    # authorityBucket names where it lives.
    assert receipt["meta"]["authorityBucket"] == "weur"
    authority = next(
        h for h in edge.emu.hosts() if h.id.name == f"telefunc:broadcast:authority:{key}"
    )
    assert authority.location_hint == "weur"
    assert sorted(receipt["meta"]["fanoutBuckets"]) == ["apac", "weur"]
    names = {h.id.name for h in edge.emu.hosts()}
    assert "telefunc:broadcast:weur:1" in names and "telefunc:broadcast:apac:0" in names
    assert not any(n.startswith("telefunc:broadcast:enam") for n in names)
    coordinator = next(h for h in edge.emu.hosts() if h.id.name == "telefunc:broadcast:weur:1")
    assert coordinator.location_hint == "weur" and coordinator.colo == "LHR"


async def test_broadcast_objects_stay_in_the_jurisdiction(make_edge: Any) -> None:
    edge = make_edge(jurisdiction="eu", kv_delay=2.0)
    key = "room:eu"
    sub = await Subscriber.join(edge, key, colo="LHR")
    sub.publish(1)
    await sub.pump(1)
    assert sub.got == [(1, 1)]
    assert {h.id.jurisdiction for h in edge.emu.hosts()} == {"eu"}
    assert any(h.id.name == f"telefunc:broadcast:authority:{key}" for h in edge.emu.hosts())


# ── failed deliveries ──────────────────────────────────────────────────────


async def test_publish_fails_naming_the_region_and_object_that_missed_it(make_edge: Any) -> None:
    from telefunc.wire.frames import AckStatus, Tag

    edge = make_edge(kv_delay=2.0)
    key = "room:lossy"
    publisher = await Subscriber.join(edge, key, colo="LHR")
    far = await Subscriber.join(edge, key, colo="NRT")
    await advance(edge, 3.0, [publisher, far])
    far_host = next(h for h in edge.emu.hosts() if h.id.name == far.shard)

    def refuse(request: Any) -> int:
        raise RuntimeError("object storage offline")

    far_host.instance.telefunc.broadcast_deliver = refuse
    publisher.publish("lost in apac")
    while True:
        frame = await publisher.client.next_frame()
        if frame.tag == Tag.ACK_RES:
            break
    publisher._pending_acks -= 1  # read here rather than by pump(), which expects OK
    _, status, text = frame.ack_res()
    assert status == AckStatus.ERROR
    assert "region apac" in text and far.shard in text and "object storage offline" in text
    assert "weur" not in text  # the region that received it is not blamed
    # Once the object receives again, publishes succeed and reach both regions.
    del far_host.instance.telefunc.broadcast_deliver
    publisher.got.clear()
    publisher.publish("after")
    await publisher.pump(1)
    await far.pump(1)
    assert publisher.receipts[-1]["seq"] == 2
    assert (2, "after") in publisher.got and far.got == [(2, "after")]
