"""A Python Worker serving telefunc: the entry module (``main`` in wrangler.jsonc).

It exports ``Default`` (the worker's fetch handler) and ``TelefuncDurableObject`` (the Durable
Object class bound in wrangler.jsonc). Telefunctions live in the ``*.telefunc.py`` files next to
this module. Locally: ``telefunc dev --edge examples/cloudflare``.
"""

from typing import Any

from workers import Response, WorkerEntrypoint

from telefunc.cloudflare import Telefunc


def context(request: Any, env: Any) -> dict[str, Any]:
    """What ``get_context()`` returns: here, the visitor's name from a header."""
    return {"user": request.headers.get("x-user") or "anonymous"}


# Finds the *.telefunc.py files next to this module. Nothing here draws randomness or starts
# threads: Python Workers forbid that while the module loads.
telefunc = Telefunc(context=context)

# Exported under the class name the Durable Object binding names.
TelefuncDurableObject = telefunc.TelefuncDurableObject


class Default(WorkerEntrypoint):
    """Telefunc traffic goes to telefunc; everything else is a 404 here."""

    async def fetch(self, request: Any) -> Any:
        response = await telefunc.serve(request=request, env=self.env, ctx=self.ctx)
        if response is not None:
            return response
        return Response("Not found", status=404)
