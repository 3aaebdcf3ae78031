"""Telefunctions used by the RPC tests (HTTP, interop)."""

from __future__ import annotations

from typing import Any

from telefunc import Abort, get_context
from telefunc.wire.serializer import UNDEFINED


async def add(a: int, b: int) -> int:
    return a + b


async def refuse(reason: str) -> None:
    raise Abort({"reason": reason})


def crash() -> None:
    raise RuntimeError("secret detail that must not reach the client")


async def whoami() -> Any:
    return get_context().get("user")


async def echo(value: Any) -> Any:
    return value


async def maybe(value: int | None) -> str:
    """What an ``int | None`` parameter received (``undefined`` becomes ``None``)."""
    return repr(value)


async def describe(value: dict[str, Any]) -> dict[str, str]:
    """The Python type each key arrived as, so tests can check the mapping."""
    return {
        key: ("UNDEFINED" if item is UNDEFINED else type(item).__name__)
        for key, item in value.items()
    }


async def unusable(*, flag: bool) -> bool:
    """A keyword-only parameter without a default cannot be called from JavaScript."""
    return flag
