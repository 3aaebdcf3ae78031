"""A channel: it lives on the Durable Object that holds the client's WebSocket."""

from telefunc import Channel


async def chat() -> Channel[str, str]:
    """Greets on open and echoes every message back."""
    ch: Channel[str, str] = Channel()
    ch.on_open(lambda: ch.send("welcome"))
    ch.listen(lambda msg: ch.send(f"echo: {msg}"))
    return ch
