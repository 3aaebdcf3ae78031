"""Assorted telefunctions exercising the type mapping (fixture for `telefunc codegen`)."""

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any, Optional, Union

from codegen_models import Priority, Tree

from telefunc import UNDEFINED, UploadedFile
from telefunc.wire.serializer import UndefinedType


def add(a: int, b: float = 1.0) -> float:
    return a + b


async def stats(values: Sequence[float], labels: set[str]) -> dict[str, float]:
    return {}


async def lookup(ids: dict[int, str], when: datetime) -> tuple[int, str, bool]:
    return (1, "a", True)


# The old spellings on purpose: codegen must map them like `X | None`.
async def blob(data: bytes, name: Optional[str]) -> Union[bytes, None]:  # noqa: UP007, UP045
    return data


async def upload(file: UploadedFile, *tags: str, dry_run: bool = False) -> int:
    return 0


async def maybe(x: int | UndefinedType = UNDEFINED) -> Any:
    return x


async def tree() -> Tree:
    return {}


async def ticker(n: int) -> AsyncIterator[int]:
    yield n


async def on_tick(callback: Callable[[int], bool], priority: Priority) -> Callable[[str], None]:
    return lambda s: None


async def delete(new: str, value) -> tuple[()]:  # `value` is unannotated on purpose
    return ()


def _private() -> None:
    pass
