"""Regions, session tokens, KV records and scale of telefunc.cloudflare (against the emulator)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from telefunc.cloudflare import SESSION_TTL, Telefunc
from telefunc.cloudflare.regions import COLO_REGIONS, normalize_scale, resolve_region
from telefunc.cloudflare.routing import Router, SessionRecord
from telefunc.errors import UsageError


def test_colo_table_continent_fallback_and_scale() -> None:
    assert len(COLO_REGIONS) > 300
    assert {COLO_REGIONS[c] for c in ("LHR", "CDG", "FRA")} == {"weur"}
    assert (COLO_REGIONS["IAD"], COLO_REGIONS["NRT"], COLO_REGIONS["SYD"]) == ("enam", "apac", "oc")
    assert (COLO_REGIONS["SJC"], COLO_REGIONS["WAW"]) == ("wnam", "eeur")
    assert resolve_region({"colo": " lhr "}, 1) == "weur"
    assert resolve_region({"colo": "ZZZ", "continent": "AF"}, 1) == "weur"
    assert resolve_region({"colo": "ZZZ", "continent": "AS"}, 1) == "apac"
    assert resolve_region({"colo": "ZZZ", "continent": "SA"}, 1) == "enam"
    assert resolve_region({"colo": "ZZZ", "continent": "AN"}, 1) == "oc"
    assert resolve_region({"colo": "ZZZ", "continent": "NA"}, 1, "enam") == "enam"  # ambiguous
    assert resolve_region(None, 1, "apac") == "apac"
    per_region = {"weur": 5, "enam": 3}
    assert resolve_region({"colo": "IAD"}, per_region) == "enam"
    assert resolve_region({"colo": "NRT"}, per_region) == "weur"  # unscaled -> fallback
    assert normalize_scale(2, "weur") == dict.fromkeys(
        ("wnam", "enam", "weur", "eeur", "apac", "oc"), 2
    )
    for bad in (0, -1, True, 1.5, {"moon": 1}, {"weur": -1}):
        with pytest.raises(UsageError):
            normalize_scale(bad, "weur")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="location_fallback"):
        Telefunc(root=".", scale={"enam": 2})  # fallback weur not scaled
    with pytest.raises(UsageError, match="location_fallback"):
        Telefunc(root=".", location_fallback="mars")
    with pytest.raises(UsageError, match="jurisdiction"):
        Telefunc(root=".", jurisdiction="moon")
    # Zero-config: the folder of the module constructing it (tests/cloudflare/test_zero_config.py)
    assert Telefunc().root == Path(__file__).resolve().parent


def test_router_tokens_and_records() -> None:
    router = Router("app", 3, "weur")
    target = router.new_session({"colo": "NRT"})
    shard, _, uid = target.token.rpartition(":")
    assert target.new and shard == target.record.shard and len(uid) == 36
    assert shard.startswith("app-shard-apac-") and int(shard.rsplit("-", 1)[1]) < 3
    assert SessionRecord.from_json(target.record.to_json()) == target.record
    assert json.loads(target.record.to_json()) == {"s": shard, "b": "apac"}
    kept = router.route(target.token, target.record.to_json(), {"colo": "IAD"})
    assert kept.token == target.token and not kept.new
    for junk in (None, "", "{", "[]", '{"s": 1, "b": "weur"}', '{"s": "x", "b": "moon"}'):
        assert SessionRecord.from_json(junk) is None
    # No record (not yet propagated / expired): a new token; it stays on its existing object.
    moved = router.route(target.token, None, {"colo": "IAD"})
    assert moved.new and moved.token != target.token and moved.record == target.record
    # A token naming no object of the current scale: placed by location.
    for token in ("garbage", "app-shard-apac-3:x", "app-shard-moon-0:x", "other-shard-weur-0:x"):
        fresh = router.route(token, None, {"colo": "IAD"})
        assert fresh.new and fresh.record.region == "enam", token


async def test_clients_in_three_regions_and_continent_fallbacks(make_edge: Any) -> None:
    edge = make_edge()
    expect = {"LHR": "weur", "IAD": "enam", "NRT": "apac", "ZZA": "weur", "ZZB": "apac"}
    expect["ZZC"] = "weur"  # no colo match, no continent: location_fallback
    for colo, region in expect.items():
        status, token, body = await edge.call("whoami", colo=colo)
        assert status == 200
        assert token is not None and token.startswith(f"telefunc-shard-{region}-0:")
        assert body == {"ret": {"shard": f"telefunc-shard-{region}-0", "region": region}}
    names = sorted(h.id.name for h in edge.emu.hosts())
    assert names == [f"telefunc-shard-{r}-0" for r in ("apac", "enam", "weur")]
    hints = {h.id.name: h.location_hint for h in edge.emu.hosts()}
    assert hints["telefunc-shard-apac-0"] == "apac"  # the object was created with locationHint


async def test_kv_session_record_written_through_wait_until_with_24h_ttl(make_edge: Any) -> None:
    edge = make_edge()
    kv = edge.emu.env.TelefuncKV
    before = edge.emu.counters.snapshot()
    status, token, _ = await edge.call("add", [1, 2], colo="IAD")
    assert status == 200 and token is not None
    assert len(edge.wait_until) == 1  # the KV put went through ctx.waitUntil
    await edge.emu.drain()
    cost = edge.emu.counters.diff(before)
    assert cost == {"requests": 1, "do_requests": 1, "kv_writes": 1}  # new session: no KV read
    await edge.clock.advance(3)  # KV propagation (2 s) to the colo the test reads from
    record = await kv.get(f"session:{token}", "json")
    assert record == {"s": "telefunc-shard-enam-0", "b": "enam"}
    # A known token: one KV read, no write, the same token back.
    before = edge.emu.counters.snapshot()
    status, again, body = await edge.call("add", [2, 3], colo="IAD", token=token)
    assert (status, again, body) == (200, token, {"ret": 5})
    assert edge.emu.counters.diff(before) == {"requests": 1, "do_requests": 1, "kv_reads": 1}
    assert len(edge.wait_until) == 1
    await edge.clock.advance(SESSION_TTL - 10)
    assert await kv.get(f"session:{token}") is not None
    await edge.clock.advance(10)
    assert await kv.get(f"session:{token}") is None  # expired after 24 h


async def test_unknown_or_expired_token_starts_a_new_session(make_edge: Any) -> None:
    edge = make_edge()
    status, token, body = await edge.call("whoami", colo="NRT", token="no-such-token")
    assert status == 200 and token is not None and token != "no-such-token"
    assert body["ret"]["region"] == "apac"
    _, query_token, body = await edge.call("whoami", colo="IAD", token="x:y", query_token=True)
    assert query_token not in (None, "x:y") and body["ret"]["region"] == "enam"
    await edge.emu.drain()
    await edge.clock.advance(SESSION_TTL + 1)
    status, renewed, body = await edge.call("whoami", colo="NRT", token=token)
    assert status == 200 and renewed not in (None, token)
    await edge.emu.drain()
    await edge.clock.advance(3)
    kv = edge.emu.env.TelefuncKV
    assert await kv.get(f"session:{renewed}", "json") == {"s": "telefunc-shard-apac-0", "b": "apac"}


async def test_session_token_accepted_from_query(make_edge: Any) -> None:
    edge = make_edge(scale=4)
    _, token, first = await edge.call("whoami", colo="LHR")
    await edge.emu.drain()
    for _ in range(10):
        _, again, body = await edge.call("whoami", colo="LHR", token=token, query_token=True)
        assert again == token and body == first


async def test_scale_2_spreads_sessions_over_two_objects_per_region(make_edge: Any) -> None:
    edge = make_edge(scale=2)
    shards: Counter[str] = Counter()
    for i in range(60):
        colo = ("LHR", "IAD", "NRT")[i % 3]
        _, _, body = await edge.call("whoami", colo=colo)
        shards[body["ret"]["shard"]] += 1
    assert set(shards) == {
        f"telefunc-shard-{r}-{n}" for r in ("weur", "enam", "apac") for n in (0, 1)
    }


async def test_per_region_scale_and_fallback(make_edge: Any) -> None:
    edge = make_edge(scale={"weur": 2, "enam": 1})
    seen: dict[str, set[str]] = {}
    for _ in range(20):
        for colo in ("LHR", "IAD", "NRT", "SYD", "WAW"):
            _, _, body = await edge.call("whoami", colo=colo)
            seen.setdefault(colo, set()).add(body["ret"]["shard"])
    assert seen["IAD"] == {"telefunc-shard-enam-0"}
    weur = {"telefunc-shard-weur-0", "telefunc-shard-weur-1"}
    for colo in ("LHR", "NRT", "SYD", "WAW"):  # NRT, SYD, WAW: unscaled regions fall back
        assert seen[colo] <= weur
    assert {h.id.name for h in edge.emu.hosts()} <= weur | {"telefunc-shard-enam-0"}
    edge2 = make_edge(scale={"apac": 1}, location_fallback="apac")
    _, _, body = await edge2.call("whoami", colo="LHR")
    assert body["ret"]["shard"] == "telefunc-shard-apac-0"


async def test_jurisdiction_restricts_the_namespace(make_edge: Any) -> None:
    edge = make_edge(jurisdiction="eu")
    status, _, body = await edge.call("whoami", colo="IAD")
    assert status == 200 and body["ret"]["shard"] == "telefunc-shard-enam-0"
    (host,) = edge.emu.hosts()
    assert host.id.jurisdiction == "eu"
    plain = edge.emu.env.TelefuncDurableObject.idFromName("telefunc-shard-enam-0")
    assert str(plain) != str(host.id)  # a different id space than the unrestricted namespace


async def test_non_telefunc_paths_are_not_served(make_edge: Any) -> None:
    edge = make_edge()
    resp = await edge.emu.fetch("https://app.test/other", colo="LHR")
    assert resp.status == 404
    assert edge.emu.counters.do_requests == 0 and edge.emu.counters.kv_reads == 0
