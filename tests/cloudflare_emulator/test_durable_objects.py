"""Durable Objects: ids and jurisdictions, RPC copies, gates, eviction, alarms, storage, SQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cf_sample_worker import Counter, Default

from telefunc.testing import DurableObjectAbort, Emulator, FakeClock, JsException
from telefunc.testing._context import current_colo


@pytest.fixture
def counter(emu: Emulator) -> Any:
    emu.kv("KV")
    return emu.durable_object("COUNTER", Counter)


async def test_ids_names_and_jurisdictions(emu: Emulator, counter: Any) -> None:
    a = counter.idFromName("room")
    assert a == counter.idFromName("room") and len(a.toString()) == 64
    assert a.name == "room"
    assert counter.idFromString(a.toString()) == a
    u1, u2 = counter.newUniqueId(), counter.newUniqueId()
    assert u1 != u2
    eu = counter.jurisdiction("eu")
    fed = counter.jurisdiction("fedramp")
    eu_id = eu.idFromName("room")
    assert eu_id != a and eu_id != fed.idFromName("room")  # separate id spaces
    with pytest.raises(JsException, match="jurisdiction eu"):
        eu.idFromString(a.toString())
    with pytest.raises(JsException, match="jurisdiction eu"):
        eu.get(a)
    with pytest.raises(JsException, match="Unknown jurisdiction"):
        counter.jurisdiction("mars")
    with pytest.raises(JsException, match="64 hex"):
        counter.idFromString("xyz")
    who = await eu.getByName("room").whoami()
    assert who == {"id": eu_id.toString(), "jurisdiction": "eu"}
    assert (await counter.getByName("room").whoami())["jurisdiction"] is None
    # the same name in two jurisdictions is two objects with separate storage
    await eu.getByName("room").increment(5)
    assert await counter.getByName("room").get_n() == 0
    assert await eu.get(eu.idFromString(eu_id.toString())).get_n() == 5


async def test_location_hint_places_object_once(emu: Emulator, counter: Any) -> None:
    stub = counter.getByName("x", locationHint="apac")
    await stub.get_n()
    assert emu.host_of(stub).colo == "NRT"
    # only used on first creation
    await counter.get(counter.idFromName("x"), {"locationHint": "enam"}).get_n()
    assert emu.host_of(stub).colo == "NRT"
    with pytest.raises(JsException, match="locationHint"):
        counter.getByName("y", locationHint="moon")
    # without a hint the object lives where its first caller was
    current_colo.set("IAD")
    stub2 = counter.getByName("near-caller")
    await stub2.get_n()
    assert emu.host_of(stub2).colo == "IAD"


async def test_rpc_arguments_and_results_are_copies(counter: Any) -> None:
    stub = counter.getByName("copy")
    arg = {"list": [1, 2], "nested": {"a": 1}}
    got = await stub.mutate(arg)
    assert got == {"list": [1, 2], "nested": {"a": 1}, "mutated": True}
    assert "mutated" not in arg  # the object got a copy
    got["list"].append(3)
    assert await stub.echo((1, 2)) == [1, 2]  # tuples travel as arrays

    class NotCloneable:
        pass

    with pytest.raises(JsException, match="could not be cloned"):
        await stub.echo(NotCloneable())
    with pytest.raises(JsException, match="does not implement"):
        await stub.nope()
    with pytest.raises(AttributeError):
        stub._private  # noqa: B018


async def test_input_gate_keeps_concurrent_read_modify_write_exact(
    emu: Emulator, counter: Any
) -> None:
    stub = counter.getByName("gates")
    results = await asyncio.gather(*(stub.increment(1) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await stub.get_n() == 50


async def test_without_input_gates_the_same_code_races(clock: FakeClock) -> None:
    # Proves the test above can fail: storage awaits do yield, only the gate serializes them.
    e = Emulator(clock=clock, input_gates=False)
    e.kv("KV")
    ns = e.durable_object("COUNTER", Counter)
    stub = ns.getByName("gates")
    await asyncio.gather(*(stub.increment(1) for _ in range(50)))
    assert await stub.get_n() < 50
    e.close()


async def test_non_storage_await_opens_the_gate_and_allows_the_race(counter: Any) -> None:
    # docs/cloudflare.md §3: the gate opens on non-storage I/O (here a KV read) as in the
    # real runtime.
    stub = counter.getByName("race")
    await asyncio.gather(*(stub.increment_with_kv_in_between(1) for _ in range(10)))
    assert await stub.get_n() < 10


async def test_output_gate_holds_result_until_write_is_durable(clock: FakeClock) -> None:
    e = Emulator(clock=clock, write_latency=0.5)
    e.kv("KV")
    stub = e.durable_object("COUNTER", Counter).getByName("out")
    call = asyncio.ensure_future(stub.increment(1))
    await clock.advance(0.4)
    assert not call.done()  # written but not yet durable: the result is held
    await clock.advance(0.2)
    assert call.done() and call.result() == 1
    # a read-only call is not held
    assert await asyncio.wait_for(stub.get_memory(), 1) == 1
    e.close()


async def test_block_concurrency_while_in_constructor_runs_before_events(emu: Emulator) -> None:
    order: list[str] = []

    from workers import DurableObject  # type: ignore[import-not-found]

    class Slow(DurableObject):  # type: ignore[misc]
        def __init__(self, ctx: Any, env: Any) -> None:
            super().__init__(ctx, env)
            self.ready = False
            self.ctx.blockConcurrencyWhile(self.init)

        async def init(self) -> None:
            order.append("init-start")
            await emu.clock.sleep(1)  # non-storage await inside bCW still blocks events
            self.ready = True
            order.append("init-end")

        async def ping(self) -> bool:
            order.append("ping")
            return bool(self.ready)

    stub = emu.durable_object("SLOW", Slow).getByName("s")
    call = asyncio.ensure_future(stub.ping())
    await emu.clock.advance(0.5)
    assert order == ["init-start"] and not call.done()
    await emu.clock.advance(1)
    assert await call is True
    assert order == ["init-start", "init-end", "ping"]


async def test_eviction_loses_memory_keeps_storage(emu: Emulator, counter: Any) -> None:
    stub = counter.getByName("evict")
    await stub.increment(3)
    assert await stub.get_memory() == 3
    emu.evict(stub)
    assert emu.counters.evictions == 1
    assert await stub.get_memory() == 0  # constructor re-ran
    assert await stub.get_n() == 3  # storage survived
    assert emu.host_of(stub).constructions == 2


async def test_idle_object_hibernates_after_10s_on_the_clock(emu: Emulator, counter: Any) -> None:
    stub = counter.getByName("idle")
    await stub.increment(2)
    await emu.clock.advance(9)
    assert await stub.get_memory() == 2  # activity resets the idle timer
    await emu.clock.advance(9.9)
    assert emu.host_of(stub).instance is not None
    await emu.clock.advance(0.2)
    assert emu.host_of(stub).instance is None
    assert await stub.get_memory() == 0 and await stub.get_n() == 2


async def test_pending_timer_prevents_hibernation_and_evicts_after_70s(emu: Emulator) -> None:
    from js import setTimeout  # type: ignore[import-not-found]
    from workers import DurableObject

    class Timed(DurableObject):  # type: ignore[misc]
        fired = 0

        async def arm(self) -> None:
            setTimeout(self.tick, 100_000)

        def tick(self) -> None:
            Timed.fired += 1

    stub = emu.durable_object("T", Timed).getByName("t")
    await stub.arm()
    await emu.clock.advance(69)
    assert emu.host_of(stub).instance is not None  # not hibernatable: no hibernation at 10 s
    await emu.clock.advance(2)
    assert emu.host_of(stub).instance is None  # evicted after 70 s idle; the timer died with it
    await emu.clock.advance(100)
    assert Timed.fired == 0


async def test_alarm_fires_on_fake_clock_and_retries(emu: Emulator, counter: Any) -> None:
    stub = counter.getByName("alarm")
    await stub.schedule(30)
    host = emu.host_of(stub)
    assert host.alarm_ms == int((emu.clock.now() + 30) * 1000)
    emu.evict(stub)  # alarms are persistent: they wake an evicted object
    await emu.clock.advance(29)
    assert await stub.get_n() == 0
    assert (await stub.echo(1)) == 1
    await emu.clock.advance(1.5)
    await emu.drain()
    assert host.alarm_ms is None
    assert emu.counters.alarms == 1

    from workers import DurableObject

    class Flaky(DurableObject):  # type: ignore[misc]
        async def arm(self) -> None:
            await self.ctx.storage.setAlarm(0)  # in the past: runs at once

        async def alarm(self, info: Any) -> None:
            count = await self.ctx.storage.get("tries") or 0
            await self.ctx.storage.put("tries", count + 1)
            if not info.isRetry:
                raise RuntimeError("first attempt fails")

        async def tries(self) -> int:
            return int(await self.ctx.storage.get("tries") or 0)

    flaky = emu.durable_object("FLAKY", Flaky).getByName("f")
    await flaky.arm()
    await emu.clock.advance(0)
    assert await flaky.tries() == 1
    await emu.clock.advance(2.1)  # at-least-once: retried after 2 s
    assert await flaky.tries() == 2
    await emu.clock.advance(100)
    assert await flaky.tries() == 2


async def test_storage_api(emu: Emulator) -> None:
    from workers import DurableObject

    class Store(DurableObject):  # type: ignore[misc]
        async def run(self) -> dict[str, Any]:
            s = self.ctx.storage
            await s.put({"a:1": 1, "a:2": {"x": [1]}, "b:1": "b"})
            got = await s.get(["a:1", "a:2", "zz"])
            listed = await s.list(prefix="a:")
            rev = await s.list({"reverse": True, "limit": 1})
            after = await s.list(startAfter="a:1", end="b:1")
            deleted_one = await s.delete("a:1")
            deleted_missing = await s.delete("nope")
            deleted_many = await s.delete(["a:2", "b:1", "zz"])
            left = await s.list()
            return {
                "got": got,
                "listed": list(listed),
                "rev": list(rev),
                "after": list(after),
                "deleted": [deleted_one, deleted_missing, deleted_many],
                "left": left,
                "missing": await s.get("missing"),
            }

        async def sql(self) -> dict[str, Any]:
            sql = self.ctx.storage.sql
            sql.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT); SELECT 1")
            cur = sql.exec("INSERT INTO t (v) VALUES (?), (?)", "x", "y")
            written = cur.rowsWritten
            rows = sql.exec("SELECT id, v FROM t ORDER BY id").toArray()
            one = sql.exec("SELECT count(*) AS n FROM t").one()
            cols = sql.exec("SELECT id, v FROM t").columnNames
            return {"written": written, "rows": rows, "one": one, "cols": cols}

    stub = emu.durable_object("STORE", Store).getByName("s")
    out = await stub.run()
    assert out["got"] == {"a:1": 1, "a:2": {"x": [1]}}
    assert out["listed"] == ["a:1", "a:2"]
    assert out["rev"] == ["b:1"]
    assert out["after"] == ["a:2"]
    assert out["deleted"] == [True, False, 2]
    assert out["left"] == {} and out["missing"] is None
    sql = await stub.sql()
    assert sql["written"] == 2
    assert sql["rows"] == [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}]
    assert sql["one"] == {"n": 2} and sql["cols"] == ["id", "v"]
    emu.evict(stub)
    assert (await stub.sql())["one"] == {"n": 4}  # the SQLite database survives eviction


async def test_abort_resets_the_object(emu: Emulator) -> None:
    from workers import DurableObject

    class Abortable(DurableObject):  # type: ignore[misc]
        def __init__(self, ctx: Any, env: Any) -> None:
            super().__init__(ctx, env)
            self.mem = "fresh"

        async def set_mem(self) -> None:
            self.mem = "changed"

        async def get_mem(self) -> str:
            return str(self.mem)

        async def die(self) -> None:
            self.ctx.abort("bye")

    stub = emu.durable_object("AB", Abortable).getByName("a")
    await stub.set_mem()
    with pytest.raises(JsException, match="aborted"):
        await stub.die()
    assert await stub.get_mem() == "fresh"
    assert issubclass(DurableObjectAbort, BaseException)
    assert not issubclass(DurableObjectAbort, Exception)


async def test_worker_fetch_with_cf_and_counters(emu: Emulator, counter: Any) -> None:
    emu.set_worker(Default)
    before = emu.counters.snapshot()
    r = await emu.fetch("https://app.test/counter/a", colo="NRT")
    assert r.status == 200 and await r.json() == {"n": 1, "colo": "NRT"}
    assert emu.counters.diff(before) == {
        "requests": 1,
        "do_requests": 1,
        "do_storage_reads": 2,  # bCW load + increment's get
        "do_storage_writes": 1,
    }
    r = await emu.fetch("https://app.test/kv/k", colo="LHR", method="PUT", body="hello")
    assert await r.text() == "stored"
    r = await emu.fetch("https://app.test/kv/k", colo="LHR")
    assert await r.json() == {"value": "hello"}
    r = await emu.fetch("https://app.test/kv/k", colo="IAD")
    assert await r.json() == {"value": None}  # not propagated yet
    r = await emu.fetch("https://app.test/x", colo="IAD", country="CA")
    assert r.status == 404
    req = emu.make_request("https://app.test/", colo="NRT")
    assert (req.cf.colo, req.cf.country, req.cf.continent) == ("NRT", "JP", "AS")


async def test_wait_until_refuses_a_bare_coroutine_like_the_runtime_loses_it() -> None:
    from telefunc.testing.ffi import check_wait_until_argument

    async def work() -> None:
        return None

    coroutine = work()
    with pytest.raises(TypeError, match="bare coroutine"):
        check_wait_until_argument(coroutine)
    assert coroutine.cr_frame is None  # closed, so it never runs half-way
    future = asyncio.ensure_future(work())
    assert check_wait_until_argument(future) is future
    await future
