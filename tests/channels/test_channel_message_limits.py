"""A channel message from the client is parsed within ``config.limits.max_depth``, like a call.

Too deep or malformed text is dropped (or, with an ack request, answered with ERROR) and logged
as one rate-limited line, never a traceback; the listener never sees it and the channel goes on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from telefunc.config import config
from telefunc.endpoint.client_errors import log_client_error
from telefunc.server.channel import Channel
from telefunc.wire.frames import AckStatus, Frame, Tag, decode_frame


class Peer:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def write(self, frame: bytes) -> None:
        self.frames.append(decode_frame(frame))

    def acks(self) -> list[tuple[int, AckStatus, str]]:
        return [f.ack_res() for f in self.frames if f.tag == Tag.ACK_RES]


def nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


@pytest.fixture(autouse=True)
def fresh_limits() -> Any:
    log_client_error._state.clear()
    yield
    config.limits.reset()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_too_deep_or_malformed_messages_are_dropped_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ch: Channel[Any, Any] = Channel()
    peer = Peer()
    assert ch._core.attach(peer, 0, 0, 0.0)
    got: list[Any] = []
    ch.listen(got.append)
    caplog.set_level(logging.WARNING)
    limit = config.limits.max_depth
    ch._core.receive(Frame(Tag.TEXT, 0, 1, nested(limit)), 0.0)  # at the limit: delivered
    ch._core.receive(Frame(Tag.TEXT, 0, 2, nested(limit + 1)), 0.0)  # past it: dropped
    ch._core.receive(Frame(Tag.TEXT, 0, 3, nested(100_000)), 0.0)  # would recurse: dropped
    ch._core.receive(Frame(Tag.TEXT, 0, 4, b"{not json"), 0.0)
    ch._core.receive(Frame(Tag.TEXT, 0, 5, b'"\xff not utf-8"'), 0.0)  # parsed from bytes
    ch._core.receive(Frame(Tag.TEXT, 0, 6, b'"after"'), 0.0)
    await settle()
    assert len(got) == 2 and got[1] == "after"
    assert not any(r.exc_info for r in caplog.records)
    dropped = [r for r in caplog.records if "malformed-channel-message" in r.getMessage()]
    assert len(dropped) == 1


async def test_a_too_deep_ack_request_is_answered_with_error_and_the_listener_not_called(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config.limits.max_depth = 8
    ch: Channel[Any, Any] = Channel()
    peer = Peer()
    assert ch._core.attach(peer, 0, 0, 0.0)
    calls: list[Any] = []

    def listener(value: Any) -> str:
        calls.append(value)
        return "ok"

    ch.listen(listener)
    ch._core.receive(Frame(Tag.TEXT_ACK_REQ, 0, 1, nested(9)), 0.0)
    ch._core.receive(Frame(Tag.TEXT_ACK_REQ, 0, 2, nested(8)), 0.0)
    await settle()
    statuses = {seq: status for seq, status, _ in peer.acks()}
    assert statuses == {1: AckStatus.ERROR, 2: AckStatus.OK}
    assert len(calls) == 1
    assert not any(r.exc_info for r in caplog.records)
