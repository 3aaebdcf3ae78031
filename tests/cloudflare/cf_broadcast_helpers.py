"""Helpers of the broadcast tests: BroadcastChannel clients over the emulator's WebSockets."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Any

from telefunc.cloudflare.broadcast import encode_uri_component
from telefunc.server.broadcast import decode_publish_text
from telefunc.wire.frames import AckStatus, Frame, Tag, encode_frame

BROADCAST = "!TelefuncBroadcast:"
COLO_REGION = {"LHR": "weur", "IAD": "enam", "NRT": "apac"}


class Subscriber:
    """One client with a BroadcastChannel on one key, over its own WebSocket."""

    def __init__(self, client: Any, key: str, colo: str) -> None:
        self.client = client
        self.key = key
        self.colo = colo
        #: ``(seq, value)`` of every PUBLISH received, in arrival order.
        self.got: list[tuple[int, Any]] = []
        #: Receipts of this client's publishes, in ack order.
        self.receipts: list[dict[str, Any]] = []
        self._pending_acks = 0

    @classmethod
    async def join(cls, edge: Any, key: str, *, colo: str, subscribe: bool = True) -> Subscriber:
        status, token, body = await edge.call("room", [key], colo=colo)
        assert status == 200, body
        meta = json.loads(body["ret"][len(BROADCAST) :])
        assert meta["key"] == key
        client = await edge.connect(colo=colo, token=token)
        await client.reconcile([{"id": meta["channelId"], "ix": 0, "lastSeq": 0, "initial": True}])
        client.channel_id = meta["channelId"]
        sub = cls(client, key, colo)
        if subscribe:
            sub.subscribe()
        await edge.emu.drain()
        return sub

    @property
    def shard(self) -> str:
        token = self.client.token
        assert token is not None
        return token.rpartition(":")[0]

    def subscribe(self) -> None:
        self.client.ws.send(encode_frame(Tag.BROADCAST_SUB, 0, 0, b"\x00"))

    def unsubscribe(self) -> None:
        self.client.ws.send(encode_frame(Tag.BROADCAST_UNSUB, 0, 0, b"\x00"))

    def publish(self, value: Any) -> None:
        """Send one PUBLISH_ACK_REQ (the receipt is collected by :meth:`pump`)."""
        self.client.seq += 1
        payload = json.dumps(value).encode()
        self.client.ws.send(encode_frame(Tag.PUBLISH_ACK_REQ, 0, self.client.seq, payload))
        self._pending_acks += 1

    async def pump(self, messages: int) -> None:
        """Read frames until ``messages`` PUBLISHes arrived and every publish was acked."""
        while len(self.got) < messages or self._pending_acks:
            self._handle(await self.client.next_frame())

    def _handle(self, frame: Frame) -> None:
        if frame.tag == Tag.PUBLISH:
            serialized, seq, _ = decode_publish_text(frame.payload)
            self.got.append((seq, json.loads(serialized)))
        elif frame.tag == Tag.ACK_RES:
            _, status, text = frame.ack_res()
            assert status == AckStatus.OK, text
            self.receipts.append(json.loads(text))
            self._pending_acks -= 1

    async def poll(self) -> None:
        """Handle the frames already queued, without waiting for more."""
        while self.client.ws._queue.qsize():  # type: ignore[attr-defined]
            self._handle(await self.client.next_frame())

    async def no_more(self) -> None:
        """Nothing but control frames is queued for this client."""
        await self.client.edge.emu.drain()
        while self.client.ws._queue.qsize():  # type: ignore[attr-defined]
            frame = await self.client.next_frame()
            assert frame.tag not in (Tag.PUBLISH, Tag.ACK_RES), frame


async def advance(
    edge: Any, seconds: float, clients: Iterable[Subscriber], step: float = 5.0
) -> None:
    """Move the fake clock, pinging every client so its connection stays alive."""
    subs = list(clients)
    left = seconds
    while left > 0:
        delta = min(step, left)
        await edge.clock.advance(delta)
        left -= delta
        for sub in subs:
            sub.client.ping()
        await edge.emu.drain()


async def presence(edge: Any, key: str) -> dict[str, int | None]:
    """The key's presence records visible from LHR (the test's colo): name -> expiration."""
    kv = edge.emu.env.TelefuncKV
    page = await kv.list({"prefix": f"tfps:{encode_uri_component(key)}:"})
    return {item["name"]: item.get("expiration") for item in page["keys"]}


def pin(edge: Any, seed: int) -> None:
    edge.telefunc.router.rng = random.Random(seed)
