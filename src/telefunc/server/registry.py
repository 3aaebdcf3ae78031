"""Discovery of telefunctions: every ``*.telefunc.py`` file under an app root.

A telefunc file's key is ``/`` + its posix path relative to the root (``/chat/room.telefunc.py``);
its telefunctions are the public functions *defined* in it (``def`` or ``async def``, not imported
into it, not starting with ``_``). The official client addresses a telefunction by
``(file, name)``, exactly these two strings.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from telefunc.errors import TelefuncFileError, UsageError

__all__ = ["Registry", "Telefunction", "discover", "telefunc_files"]

SUFFIX = ".telefunc.py"
# Vendored packages and tooling folders: `pywrangler sync` vendors into python_modules/.
_SKIPPED_DIRS = {"node_modules", "python_modules", "__pycache__", "venv", "site-packages"}


@dataclass(frozen=True, slots=True)
class Telefunction:
    """One remotely callable function: its ``file`` key, its ``name`` and the function itself."""

    file: str
    name: str
    func: Callable[..., Any]
    #: ``file:name``, the identity telefunc uses in messages and logs.
    key: str = field(init=False, repr=False, compare=False)
    #: Whether calling the function returns an awaitable (worked out once, read every call).
    is_async: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.file}:{self.name}")
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.func))


@dataclass(slots=True)
class Registry(Mapping[tuple[str, str], Telefunction]):
    """The telefunctions of an app, looked up by ``(file, name)``."""

    root: Path | None = None
    _by_key: dict[tuple[str, str], Telefunction] = field(default_factory=dict)

    def add(self, file: str, func: Callable[..., Any], name: str | None = None) -> Telefunction:
        """Register ``func`` under ``(file, name)``; ``file`` must start with ``/``."""
        if not file.startswith("/"):
            raise UsageError(f"telefunc file key must start with '/', got {file!r}")
        tf = Telefunction(file=file, name=name or func.__name__, func=func)
        self._by_key[(tf.file, tf.name)] = tf
        return tf

    @property
    def files(self) -> list[str]:
        """The file keys, sorted."""
        return sorted({file for file, _ in self._by_key})

    def __getitem__(self, key: tuple[str, str]) -> Telefunction:
        return self._by_key[key]

    def get(self, key: tuple[str, str], default: Any = None) -> Any:
        """The telefunction under ``key``, else ``default`` (one dict lookup: every call asks)."""
        return self._by_key.get(key, default)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)


def telefunc_files(root: Path) -> list[tuple[str, Path]]:
    """Every ``(key, path)`` of a ``*.telefunc.py`` file under ``root``, sorted by key.

    Vendored and tooling folders (``python_modules``, ``node_modules``, ``venv``, ...) and
    dot-folders (``.venv``, ``.git``, ``.wrangler``) are not entered.
    """
    root = root.resolve()
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith("."))
        for name in files:
            path = Path(folder) / name
            if name.endswith(SUFFIX) and path.is_file():
                found.append(("/" + path.relative_to(root).as_posix(), path))
    return sorted(found)


def discover(root: str | Path) -> Registry:
    """Import every telefunc file under ``root`` and collect its telefunctions.

    ``root`` is put on ``sys.path`` so telefunc files can import their sibling modules.
    Raises :class:`TelefuncFileError` (naming the file and line) when a file fails to import,
    and :class:`UsageError` when ``root`` is not a folder.
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise UsageError(f"telefunc app root {str(root)!r} is not a folder")
    if str(root_path) not in sys.path:
        sys.path.insert(0, str(root_path))
    registry = Registry(root=root_path)
    for key, path in telefunc_files(root_path):
        module = _import_file(key, path)
        for name, obj in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            if obj.__module__ != module.__name__:
                continue  # imported into the file, not defined there
            registry.add(key, obj, name)
    return registry


def _module_name(key: str) -> str:
    return "telefunc_app." + re.sub(r"\W", "_", key.strip("/"))


def _import_file(key: str, path: Path) -> ModuleType:
    name = _module_name(key)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for exotic loaders
        raise TelefuncFileError(f"cannot import telefunc file {key}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise TelefuncFileError(
            f"{key} line {_failing_line(exc, path)}: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _failing_line(exc: BaseException, path: Path) -> int | str:
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        return exc.lineno
    line: int | str = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path.resolve() and frame.lineno is not None:
            line = frame.lineno
    return line
