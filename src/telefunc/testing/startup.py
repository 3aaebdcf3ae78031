"""The Python Workers startup rules: no entropy and no threads while the worker module loads.

workerd runs a worker's top level before any request and snapshots it, so it refuses randomness
and threads there (docs/cloudflare.md §1.10). :func:`worker_startup` reproduces what user code
sees: ``os.urandom`` (and so ``uuid4``, ``secrets``) raises ``OSError(EIO, ...)``, the ``random``
module's functions raise ``RuntimeError``, an unseeded ``random.Random()`` raises
:class:`PythonUserError` (a ``BaseException``: fatal in workerd, no ``except Exception`` catches
it), and starting a thread raises ``RuntimeError``. ``random.Random(seed)`` is fine. Everything is
restored on exit, which stands for the first request.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "PYTHON_USER_ERROR",
    "TOP_LEVEL_ENTROPY_ERROR",
    "PythonUserError",
    "in_startup",
    "worker_startup",
]

TOP_LEVEL_ENTROPY_ERROR = (
    "Randomness is not allowed while a Worker is starting because startup "
    "values will be repeated across Worker instances, making them predictable. "
    "If this error occurs from importing a package, import the package from a "
    "function to load it after the Worker starts."
)
"""Message of the ``OSError`` from ``os.urandom`` at startup (workerd ``allow_entropy.py``)."""

PYTHON_USER_ERROR = (
    "Randomness is not allowed while a Python Worker is starting because startup "
    "values will be repeated across Worker instances. If this error occurs from "
    "importing a package, import the package from a function to load it after the Worker starts. "
    "If it must load at startup, set "
    'os.environ["PYTHON_WORKERS_ALLOW_TOP_LEVEL_ENTROPY"] = "1" '
    "before importing it to allow randomness for all startup code. "
    "Do not use this for secrets or unique IDs. "
    "Please report the package at "
    "https://github.com/cloudflare/workers-py/issues/new."
)
"""Message of the runtime's ``getRandomValues`` at startup (workerd ``topLevelEntropy/lib.ts``)."""

# The names of `random` that stay usable at startup (workerd's `random_context` allowlist).
_RANDOM_ALLOWED = frozenset({"Random", "SystemRandom"})

_active = [0]


class PythonUserError(BaseException):
    """The runtime's fatal startup error (entropy reached ``getentropy()``)."""


def in_startup() -> bool:
    """Whether a worker module is loading under :func:`worker_startup` right now."""
    return _active[0] > 0


def _blocked_urandom(_size: int) -> bytes:
    raise OSError(errno.EIO, TOP_LEVEL_ENTROPY_ERROR)


def _blocked_call(name: str) -> Callable[..., Any]:
    original = getattr(random, name)

    @functools.wraps(original)
    def blocked(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"Cannot use random.{name}() outside of request context")

    return blocked


def _blocked_thread_start(_self: threading.Thread) -> None:
    raise RuntimeError("can't start new thread")


@contextlib.contextmanager
def worker_startup() -> Iterator[None]:
    """Run the body (a worker module's import) under the Python Workers startup rules."""
    originals: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        current = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        originals.append((owner, name, current))
        setattr(owner, name, value)

    original_seed = random.Random.seed

    def seed(self: random.Random, a: Any = None, version: int = 2) -> None:
        if a is None:
            raise PythonUserError(PYTHON_USER_ERROR)
        original_seed(self, a, version)

    _active[0] += 1
    try:
        if _active[0] == 1:
            patch(os, "urandom", _blocked_urandom)
            patch(random, "_urandom", _blocked_urandom)
            patch(random.Random, "seed", seed)
            patch(threading.Thread, "start", _blocked_thread_start)
            for name in dir(random):
                value = getattr(random, name)
                if (
                    not name.startswith("_")
                    and name not in _RANDOM_ALLOWED
                    and callable(value)
                    and not isinstance(value, type)
                ):
                    patch(random, name, _blocked_call(name))
        yield
    finally:
        _active[0] -= 1
        for owner, name, value in reversed(originals):
            setattr(owner, name, value)
