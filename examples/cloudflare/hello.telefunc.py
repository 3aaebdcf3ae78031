"""Plain telefunctions: they need no Durable Object state."""

from telefunc import get_context


async def hello(name: str) -> str:
    """Greets ``name`` on behalf of the current user."""
    return f"Hello {name}, from {get_context().get('user')}"
