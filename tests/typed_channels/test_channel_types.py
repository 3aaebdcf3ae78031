"""What a channel annotation declares about client data and acks (shared by shield and codegen)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

import pytest

from telefunc import BroadcastChannel, Channel, ShieldValidationError
from telefunc.server.channel_shield import ChannelShield
from telefunc.server.hints import channel_message_types


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Channel[int, str], (int, None)),
        (Channel[Callable[[int], bool], str], (int, None)),
        (Channel[int, Callable[[str], bool]], (int, bool)),
        (Channel[int, Callable[[str], Awaitable[bool]]], (int, bool)),
        (Annotated[Channel[str, Any], "doc"], (str, None)),
        (BroadcastChannel[list[int]], (list[int], None)),
        (Channel, None),
        (list[int], None),
        (int, None),
    ],
)
def test_channel_message_types(annotation: Any, expected: Any) -> None:
    assert channel_message_types(annotation) == expected


def test_channel_shield_checks_and_converts() -> None:
    shield = ChannelShield(data=tuple[int, int], ack=bool)
    assert shield.check_data([1, 2]) == (1, 2)
    with pytest.raises(ShieldValidationError, match=r"channel message\[1\]: expected int"):
        shield.check_data([1, "2"])
    with pytest.raises(ShieldValidationError, match="channel ack: expected bool"):
        shield.check_ack("yes")


class Node(TypedDict):
    children: list[Node]


def test_deeply_nested_client_data_is_a_shield_error_not_a_crash() -> None:
    # A recursive type follows the value down: past Python's recursion limit that is a
    # ShieldValidationError (the message is dropped or its send rejected), not a crash.
    shield = ChannelShield(data=Node, ack=None)
    value: Any = {"children": []}
    for _ in range(5_000):
        value = {"children": [value]}
    with pytest.raises(ShieldValidationError, match="nested too deeply"):
        shield.check_data(value)
    assert shield.check_data({"children": [{"children": []}]}) == {"children": [{"children": []}]}
