"""The real-runtime tier's worker: the adapter with a context naming the serving object, and
the probe of test_workerd_differences.py under ``/probe`` (``probe_worker.py``: probe/worker.py)."""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from probe_worker import Probe, handle
from workers import Response, WorkerEntrypoint

from telefunc.cloudflare import SHARD_HEADER, Telefunc


def context(request: Any, env: Any) -> dict[str, Any]:
    """``user`` as the basic app expects it; ``shard``: the Durable Object serving the call."""
    return {"user": "anonymous", "shard": request.headers.get(SHARD_HEADER)}


telefunc = Telefunc(root=Path(__file__).parent, context=context)
TelefuncDurableObject = telefunc.TelefuncDurableObject
__all__ = ["Default", "Probe", "TelefuncDurableObject"]


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        if urlsplit(request.url).path.startswith("/probe"):
            return await handle(request, self.env)
        response = await telefunc.serve(request=request, env=self.env, ctx=self.ctx)
        return response if response is not None else Response("Not found", status=404)
