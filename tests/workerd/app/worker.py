"""The real-runtime tier's worker: the adapter with a context naming the serving object."""

from pathlib import Path
from typing import Any

from workers import Response, WorkerEntrypoint

from telefunc.cloudflare import SHARD_HEADER, Telefunc


def context(request: Any, env: Any) -> dict[str, Any]:
    """``user`` as the basic app expects it; ``shard``: the Durable Object serving the call."""
    return {"user": "anonymous", "shard": request.headers.get(SHARD_HEADER)}


telefunc = Telefunc(root=Path(__file__).parent, context=context)
TelefuncDurableObject = telefunc.TelefuncDurableObject


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        response = await telefunc.serve(request=request, env=self.env, ctx=self.ctx)
        return response if response is not None else Response("Not found", status=404)
