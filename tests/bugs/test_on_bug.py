"""``telefunc.on_bug``: every error that answers 500 (telefunction, channel listener, streaming
value) reaches the callbacks with the telefunction's file, name and context; a failing callback
is logged and never masks the 500. Driven by the official client and by our Python client."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import telefunc
from telefunc import Bug
from telefunc.client import Client, RemoteCallError

APPS = Path(__file__).resolve().parents[1] / "apps"
FILE = "/bugs.telefunc.py"


class Collector:
    def __init__(self) -> None:
        self.bugs: list[Bug] = []
        self.lock = threading.Lock()

    def __call__(self, bug: Bug) -> None:
        with self.lock:
            self.bugs.append(bug)

    def by_kind(self) -> dict[str, Bug]:
        with self.lock:
            return {bug.where: bug for bug in self.bugs}


@pytest.fixture
def collector() -> Iterator[Collector]:
    def broken(bug: Bug) -> None:
        raise RuntimeError("the bug reporter itself is broken")

    collector = Collector()
    # A failing callback registered first: logged, and the next callback still runs.
    remove_broken = telefunc.on_bug(broken)
    remove = telefunc.on_bug(collector)
    yield collector
    remove()
    remove_broken()


def test_official_client_failures_reach_on_bug(
    live_server: Any, run_node: Any, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    server = live_server(APPS / "bugs")
    with caplog.at_level(logging.ERROR, logger="telefunc"):
        results = {line["name"]: line for line in run_node("on_bug.mjs", server.origin)}

    crash = results["crash"]
    assert crash["ok"] is False and "Internal Server Error" in crash["error"]["message"]
    assert results["refuse"]["error"]["isAbort"] is True
    assert results["listener"]["ok"] is False
    assert results["stream"]["ok"] is False

    bugs = collector.by_kind()
    assert set(bugs) == {"telefunction", "channel listener", "streaming value"}
    telefunction = bugs["telefunction"]
    assert isinstance(telefunction.error, RuntimeError)
    assert (telefunction.file, telefunction.name) == (FILE, "crash")
    assert telefunction.context is not None and telefunction.context["user"] == "anonymous"
    listener = bugs["channel listener"]
    assert isinstance(listener.error, ValueError)
    assert (listener.file, listener.name) == (FILE, "crashing_listener")
    stream = bugs["streaming value"]
    assert isinstance(stream.error, LookupError)
    assert (stream.file, stream.name) == (FILE, "crashing_stream")
    # The Abort is not a bug; the broken callback was logged once per bug.
    assert len(collector.bugs) == 3
    broken = [r for r in caplog.records if "on_bug callback raised" in r.getMessage()]
    assert len(broken) == 3


async def test_python_client_failures_reach_on_bug(live_server: Any, collector: Collector) -> None:
    server = live_server(APPS / "bugs")
    async with Client(server.origin, headers={"cookie": "user=ada"}) as client:
        with pytest.raises(RemoteCallError):
            await client.call(FILE, "crash")
    bug = collector.by_kind()["telefunction"]
    assert bug.context is not None and bug.context["user"] == "ada"


async def test_returned_function_bug_names_its_telefunction(
    live_server: Any, collector: Collector
) -> None:
    server = live_server(APPS / "bugs")
    async with Client(server.origin, headers={"cookie": "user=bob"}) as client:
        explode = await client.call(FILE, "crashing_function")
        with pytest.raises(Exception, match="Internal Server Error"):
            await explode(3)
    bug = collector.by_kind()["channel listener"]
    assert isinstance(bug.error, ZeroDivisionError)
    assert (bug.file, bug.name) == (FILE, "crashing_function")
    assert bug.context is not None and bug.context["user"] == "bob"


def test_unregistered_callback_hears_nothing(live_server: Any, run_node: Any) -> None:
    heard = Collector()
    telefunc.on_bug(heard)()  # registered, then removed at once
    server = live_server(APPS / "bugs")
    run_node("on_bug.mjs", server.origin)
    assert heard.bugs == []
