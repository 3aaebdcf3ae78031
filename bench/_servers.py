"""Servers the benchmarks start in child processes, so the client never shares their GIL."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def starlette_app() -> Any:
    """The baseline: a plain Starlette endpoint doing the same work as the telefunction."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def add(request: Request) -> PlainTextResponse:
        body = json.loads(await request.body())
        a, b = body["args"]
        return PlainTextResponse(json.dumps({"ret": a + b}, separators=(",", ":")))

    return Starlette(routes=[Route("/_telefunc", add, methods=["POST"])])


def telefunc_app() -> Any:
    """Our ASGI app serving bench/app/*.telefunc.py."""
    from telefunc.asgi import TelefuncApp

    return TelefuncApp(Path(__file__).resolve().parent / "app")


if __name__ == "__main__":
    import uvicorn

    kind, port = sys.argv[1], int(sys.argv[2])
    app = starlette_app() if kind == "starlette" else telefunc_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
