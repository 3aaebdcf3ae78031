"""CPU cost of the call endpoint's request bounds on hostile bodies (in-process, no sockets).

    .venv/bin/python bench/request_bounds.py [--mb 200] [--placeholders 20000]

* buffering an N MB body through ``AsgiBody.read()`` in 64 KiB ASGI messages (linear);
* one call whose arguments hold P stream placeholders (``config.limits.max_placeholders``
  raised to P for the run: it measures the duplicate-id check and channel setup, linear in P);
* refusing nesting far deeper than ``max_depth`` (400 without a RecursionError).

Prints CPU seconds per row; nothing is asserted (tests never time things).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from telefunc import config
from telefunc.asgi import TelefuncApp
from telefunc.asgi.http import AsgiBody

APP = Path(__file__).resolve().parents[1] / "tests" / "apps" / "basic"


async def body_buffering(megabytes: int) -> float:
    chunk = b"x" * 65536
    count = megabytes * 1024 * 1024 // len(chunk)
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": chunk, "more_body": sent < count}

    started = time.process_time()
    data = await AsgiBody(receive).read()
    assert len(data) == count * len(chunk)
    return time.process_time() - started


async def call(body: str) -> tuple[int, float]:
    app = TelefuncApp(APP)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        started = time.process_time()
        response = await client.post("/_telefunc", content=body)
        elapsed = time.process_time() - started
    await app.hub.aclose()
    return response.status_code, elapsed


def envelope(args_text: str) -> str:
    return '{"file":"/calc.telefunc.py","name":"add","args":' + args_text + "}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--placeholders", type=int, default=20_000)
    options = parser.parse_args()
    rows = [(f"AsgiBody.read() of {options.mb} MB", "-", await body_buffering(options.mb))]
    config.limits.max_placeholders = options.placeholders
    streams = [
        "!TelefuncStream:" + json.dumps({"channelId": f"c{i}"}) for i in range(options.placeholders)
    ]
    status, cpu = await call(envelope(json.dumps([streams, 0])))
    rows.append((f"call with {options.placeholders} stream placeholders", str(status), cpu))
    config.limits.reset()
    depth = 400_000
    status, cpu = await call(envelope("[" * depth + "]" * depth))
    rows.append((f"call nested {depth} levels deep", str(status), cpu))
    print(f"{'case':<48} {'status':>6} {'CPU s':>8}")
    for name, status_text, seconds in rows:
        print(f"{name:<48} {status_text:>6} {seconds:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
