"""(d) ``handle_call`` on a tiny in-memory Registry, on whatever asyncio loop is running.

Under Pyodide that loop is the webloop (JS event loop) and there are no threads, so a ``def``
telefunction must run inline on the loop's thread; under CPython it runs in a worker thread.
``get_context()`` must work in both, and each call sees its own context.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any

from telefunc.endpoint.client_errors import ClientErrorLog
from telefunc.errors import Abort
from telefunc.server import rpc
from telefunc.server.context import get_context
from telefunc.server.registry import Registry
from telefunc.server.rpc import handle_call


class BytesBody:
    """A BodyReader over bytes (everything at once when ``max_bytes`` is negative)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, max_bytes: int = -1) -> bytes:
        size = len(self._data) if max_bytes < 0 else max_bytes
        out, self._data = self._data[:size], self._data[size:]
        return out


def sync_whoami(greeting: str) -> dict[str, Any]:
    """A ``def`` telefunction: reports the thread it ran on and the context user."""
    return {
        "greeting": greeting,
        "user": get_context()["user"],
        "same_thread": threading.get_ident() == LOOP_THREAD[0],
    }


async def async_add(a: int, b: int) -> int:
    """An ``async def`` telefunction that yields to the loop before answering."""
    await asyncio.sleep(0)
    offset: int = get_context()["offset"]
    return a + b + offset


def refuse(reason: str) -> None:
    """A telefunction that aborts with a value."""
    raise Abort({"reason": reason})


def crash() -> None:
    """A telefunction that fails: 500, details only in the log."""
    raise RuntimeError("secret detail")


LOOP_THREAD: list[int] = [0]


class Collect(logging.Handler):
    """Keeps ``(level, message, exception type)`` of every record of the telefunc logger."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[list[Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        self.records.append([record.levelname, record.getMessage(), exc])


async def _call(registry: Registry, body: str, context: dict[str, Any]) -> list[Any]:
    response = await handle_call(
        registry, method="POST", kind="txt", body=BytesBody(body.encode()), context=context
    )
    return [response.status, response.body.decode(), response.content_type]


async def run() -> dict[str, Any]:
    """Calls: sync, async (two at once, different contexts), abort, crash, shield, unknown."""
    logger = logging.getLogger("telefunc")
    handler = Collect()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    # Client mistakes log rate-limited lines: a fresh limiter, so both runs log the same ones.
    shared_limiter, rpc.log_client_error = rpc.log_client_error, ClientErrorLog()
    try:
        out = await _calls()
    finally:
        rpc.log_client_error = shared_limiter
        logger.removeHandler(handler)
        logger.propagate = propagate
    out["logged"] = handler.records
    return out


async def _calls() -> dict[str, Any]:
    LOOP_THREAD[0] = threading.get_ident()
    registry = Registry()
    for func in (sync_whoami, async_add, refuse, crash):
        registry.add("/demo.telefunc.py", func)
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {"platform": sys.platform, "loop": type(loop).__name__}
    out["sync"] = await _call(
        registry,
        '{"file":"/demo.telefunc.py","name":"sync_whoami","args":["hi"]}',
        {"user": "ada"},
    )
    both = await asyncio.gather(
        _call(
            registry, '{"file":"/demo.telefunc.py","name":"async_add","args":[1,2]}', {"offset": 10}
        ),
        _call(
            registry,
            '{"file":"/demo.telefunc.py","name":"async_add","args":[3,4]}',
            {"offset": 100},
        ),
    )
    out["async"] = list(both)
    out["abort"] = await _call(
        registry, '{"file":"/demo.telefunc.py","name":"refuse","args":["no"]}', {}
    )
    out["crash"] = await _call(
        registry, '{"file":"/demo.telefunc.py","name":"crash","args":[]}', {}
    )
    out["shield"] = await _call(
        registry, '{"file":"/demo.telefunc.py","name":"async_add","args":["1",2]}', {"offset": 0}
    )
    out["unknown"] = await _call(
        registry, '{"file":"/demo.telefunc.py","name":"nope","args":[]}', {}
    )
    return out
