"""Which Durable Object served this call (session affinity)."""

from typing import Any

from telefunc import get_context


async def where() -> Any:
    return get_context().get("shard")
