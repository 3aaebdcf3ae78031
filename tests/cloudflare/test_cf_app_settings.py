"""Settings belong to the app on Cloudflare too: two ``Telefunc(settings=...)`` in one process.

Each runs on its own emulator (fake clock); the worker and its Durable Object read only their
app's ``Config``: the RECONCILED ``reconnectTimeout``, how long a detached channel is kept, and
the call body limit differ between the two, and the global ``config`` is left alone.
"""

from __future__ import annotations

import json
from typing import Any

from telefunc.config import config

PLACEHOLDER = "!TelefuncChannel:"


async def attach(edge: Any) -> tuple[Any, dict[str, Any]]:
    """Call ``echo`` and attach its channel; the client and the RECONCILED payload."""
    status, token, body = await edge.call("echo", colo="LHR")
    assert status == 200, body
    channel_id = json.loads(body["ret"][len(PLACEHOLDER) :])["channelId"]
    client = await edge.connect(colo="LHR", token=token)
    reconciled = await client.reconcile(
        [{"id": channel_id, "ix": 0, "lastSeq": 0, "initial": True}]
    )
    return client, reconciled


async def call_with_padding(edge: Any, padding: int) -> int:
    body = json.dumps(
        {"file": "/cf.telefunc.py", "name": "add", "args": [1, 2], "p": "x" * padding}
    )
    resp = await edge.emu.fetch(
        "https://app.test/_telefunc",
        colo="LHR",
        method="POST",
        headers={"content-type": "text/plain"},
        body=body,
    )
    await resp.text()
    return int(resp.status)


async def test_two_cloudflare_apps_in_one_process_each_keep_their_own_settings(
    make_edge: Any,
) -> None:
    short = config.copy()
    short.channel.update(reconnect_timeout=5)
    short.limits.max_body_size = 1000
    long_ = config.copy()
    long_.channel.update(reconnect_timeout=30)
    global_before = config.channel.snapshot(), config.limits.snapshot()
    edges = make_edge(settings=short), make_edge(settings=long_)

    assert [await call_with_padding(edge, 2000) for edge in edges] == [413, 200]

    clients = []
    for edge, expected_ms in zip(edges, (5000, 30000), strict=True):
        client, reconciled = await attach(edge)
        assert reconciled["reconnectTimeout"] == expected_ms
        assert await client.echo("hi") == "hi"
        clients.append(client)
    servers = [edge.emu.hosts()[0].instance.telefunc for edge in edges]

    for edge, client in zip(edges, clients, strict=True):
        client.ws.close(4000, "network blip")  # transient: the channel waits for a reconnect
        await edge.emu.drain()
    for edge in edges:
        await edge.clock.advance(6)  # past the short app's 5 s, well within the long app's 30 s
        await edge.emu.drain()
    assert [server.channel_count for server in servers] == [0, 1]
    await edges[1].clock.advance(25)  # 31 s: past the long app's own timeout
    await edges[1].emu.drain()
    assert servers[1].channel_count == 0

    assert (config.channel.snapshot(), config.limits.snapshot()) == global_before
