"""KV: propagation delay between colos, negative caching, validation errors and limits."""

from __future__ import annotations

import pytest

from telefunc.testing import Emulator, FakeClock, JsException
from telefunc.testing._context import current_colo


def at(colo: str) -> object:
    """Run the following KV calls as code in ``colo``."""
    return current_colo.set(colo)


async def test_write_visible_at_once_in_writing_colo_and_later_elsewhere(
    emu: Emulator, clock: FakeClock
) -> None:
    kv = emu.kv("KV")
    at("LHR")
    await kv.put("k", "v1")
    assert await kv.get("k") == "v1"  # read-your-write where it was written
    at("NRT")
    assert await kv.get("k") is None  # not propagated yet (and never read before in NRT)
    at("IAD")
    await clock.advance(2.5)
    assert await kv.get("k") == "v1"  # IAD never cached a miss: sees it after the delay
    at("NRT")
    # NRT cached the miss (negative caching, cacheTtl 60 s): still stale after the delay.
    assert await kv.get("k") is None
    await clock.advance(60)
    assert await kv.get("k") == "v1"


async def test_overwrite_propagates_with_cache_ttl(emu: Emulator, clock: FakeClock) -> None:
    kv = emu.kv("KV")
    at("LHR")
    await kv.put("k", "old")
    await clock.advance(3)
    at("NRT")
    assert await kv.get("k") == "old"
    at("LHR")
    await kv.put("k", "new")
    assert await kv.get("k") == "new"
    at("NRT")
    await clock.advance(3)
    assert await kv.get("k") == "old"  # cached hit, default cacheTtl 60
    await clock.advance(58)
    assert await kv.get("k") == "new"
    # a shorter cacheTtl is honoured for the next fill
    at("IAD")
    assert await kv.get("k", cacheTtl=30) == "new"


async def test_write_limit_one_per_second_per_key(emu: Emulator, clock: FakeClock) -> None:
    kv = emu.kv("KV")
    at("LHR")
    await kv.put("k", "1")
    with pytest.raises(JsException, match="KV PUT failed: 429 Too Many Requests"):
        await kv.put("k", "2")
    await kv.put("other", "x")  # other keys are independent
    await clock.advance(1.0)
    await kv.put("k", "3")
    assert await kv.get("k") == "3"
    with pytest.raises(JsException, match="429"):
        await kv.delete("k")


async def test_write_limit_can_be_disabled(clock: FakeClock) -> None:
    e = Emulator(clock=clock, kv_write_limit=False)
    kv = e.kv("KV")
    for i in range(5):
        await kv.put("k", str(i))
    assert await kv.get("k") == "4"
    e.close()


async def test_validation_errors(emu: Emulator) -> None:
    kv = emu.kv("KV")
    with pytest.raises(JsException) as e1:
        await kv.put("k", "v", expirationTtl=10)
    assert e1.value.message == (
        "KV PUT failed: 400 Invalid expiration_ttl of 10. Expiration TTL must be at least 60."
    )
    with pytest.raises(JsException) as e2:
        await kv.get("k", cacheTtl=5)
    assert e2.value.message == (
        "KV GET failed: 400 Invalid cache_ttl of 5. Cache TTL must be at least 30."
    )
    with pytest.raises(JsException, match="414 UTF-8 encoded length of 513"):
        await kv.put("k" * 513, "v")
    with pytest.raises(JsException, match="413 Value length of 27262976 exceeds limit of 26214400"):
        await kv.put("big", b"x" * 27262976)
    with pytest.raises(JsException, match=r"413 Metadata length of \d+ exceeds limit of 1024"):
        await kv.put("m", "v", metadata={"x": "y" * 2048})
    with pytest.raises(JsException, match="Invalid expiration of"):
        await kv.put("k", "v", expiration=emu.clock.now() + 10)
    # the options-object form means the same as keyword arguments
    with pytest.raises(JsException, match="expiration_ttl of 59"):
        await kv.put("k", "v", {"expirationTtl": 59})
    await kv.put("k", "v", expirationTtl=60)


async def test_expiration_and_types(emu: Emulator, clock: FakeClock) -> None:
    kv = emu.kv("KV")
    await kv.put("j", '{"a": [1, 2]}', expirationTtl=60, metadata={"owner": "ann"})
    assert await kv.get("j", "json") == {"a": [1, 2]}
    assert await kv.get("j", type="arrayBuffer") == b'{"a": [1, 2]}'
    got = await kv.getWithMetadata("j", "json")
    assert got["value"] == {"a": [1, 2]} and got["metadata"] == {"owner": "ann"}
    assert (await kv.getWithMetadata("missing"))["value"] is None
    await clock.advance(61)
    assert await kv.get("j") is None


async def test_list_prefix_limit_cursor_and_delete(emu: Emulator, clock: FakeClock) -> None:
    kv = emu.kv("KV")
    for i in range(5):
        await kv.put(f"p:{i}", str(i), metadata={"i": i})
    await kv.put("q:0", "x")
    page = await kv.list(prefix="p:", limit=2)
    assert [k["name"] for k in page["keys"]] == ["p:0", "p:1"]
    assert page["list_complete"] is False and page["keys"][0]["metadata"] == {"i": 0}
    rest = await kv.list({"prefix": "p:", "cursor": page["cursor"]})
    assert [k["name"] for k in rest["keys"]] == ["p:2", "p:3", "p:4"]
    assert rest["list_complete"] is True and "cursor" not in rest
    await clock.advance(1)  # deletes count against the 1 write/s limit too
    await kv.delete("p:3")
    assert await kv.get("p:3") is None
    assert [k["name"] for k in (await kv.list(prefix="p:"))["keys"]] == ["p:0", "p:1", "p:2", "p:4"]
    with pytest.raises(JsException, match="key_count_limit"):
        await kv.list(limit=1001)


async def test_counters(emu: Emulator) -> None:
    kv = emu.kv("KV")
    before = emu.counters.snapshot()
    await kv.put("a", "1")
    await kv.get("a")
    await kv.get("b")
    await kv.list()
    await kv.delete("b")
    assert emu.counters.diff(before) == {
        "kv_writes": 1,
        "kv_reads": 2,
        "kv_lists": 1,
        "kv_deletes": 1,
    }
    emu.counters.reset()
    assert emu.counters.kv_reads == 0
