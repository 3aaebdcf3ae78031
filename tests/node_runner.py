"""An asynchronous runner for the js/interop scenarios that reacts to their lines as they are
printed (import as ``node_runner``; tests/ is on ``sys.path`` through the rootdir conftest).

The ``run_node`` fixture of tests/conftest.py waits for the scenario to end; the reconnect
tests need to act mid-run instead (cut the proxy when the scenario prints its ``midway``
line), hence :func:`run_node_lines`, to be awaited from an async test.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from testpaths import INTEROP_DIR, JS_DIR

__all__ = ["run_node_lines"]


async def run_node_lines(
    script: str,
    *args: str,
    env: dict[str, str],
    on_line: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
    timeout: float = 90,
) -> list[dict[str, Any]]:
    """Run ``js/interop/<script> *args`` with the official client, ``env`` added to the
    environment, calling ``on_line`` for each JSON line as it is printed; returns those lines.

    Fails when the scenario exits non-zero (its stderr in the message) or outlives ``timeout``.
    """
    proc = await asyncio.create_subprocess_exec(
        "node",
        "--conditions=browser",
        "--experimental-websocket",
        "--no-warnings",
        str(INTEROP_DIR / script),
        *args,
        cwd=JS_DIR,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while raw := await proc.stdout.readline():
                if not raw.startswith(b"{"):
                    continue
                line = json.loads(raw)
                lines.append(line)
                if on_line is not None:
                    result = on_line(line)
                    if result is not None:
                        await result
            stderr = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, f"node {script} exited {code}\n{stderr}"
    return lines
