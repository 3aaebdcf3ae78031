"""(a) Import the pure-Python core and report what got imported.

Run first in a fresh interpreter: it records which of the heavy, non-core modules (servers,
clients, test helpers) the core pulled into ``sys.modules``; the answer must be none of them.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

#: Packages whose every module must import (walked recursively).
CORE_PACKAGES = ("telefunc.wire", "telefunc.server")
#: Single modules that must import.
CORE_MODULES = ("telefunc", "telefunc.config", "telefunc.errors")
#: Modules the core must never import: they need uvicorn/websockets/httpx or are test-only.
FORBIDDEN_PREFIXES = (
    "telefunc.asgi",
    "telefunc.cli",
    "telefunc.client",
    "telefunc.testing",
    "uvicorn",
    "websockets",
    "httpx",
    "starlette",
    "redis",
)


def core_module_names() -> list[str]:
    """Every module of the core, found by walking the package folders (new modules count too)."""
    names = list(CORE_MODULES)
    for package_name in CORE_PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            names.append(info.name)
    return names


def run() -> dict[str, Any]:
    """Import each core module; report failures and any forbidden module found loaded."""
    already = sorted(m for m in sys.modules if m.startswith(FORBIDDEN_PREFIXES))
    imported: list[str] = []
    failed: dict[str, str] = {}
    for name in core_module_names():
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as exc:  # reported, the test names the module
            failed[name] = f"{type(exc).__name__}: {exc}"
    # Lazy attributes of the package (Channel, ByteStream, download) must resolve as well.
    import telefunc

    lazy: dict[str, str] = {}
    for name in sorted(getattr(telefunc, "_LAZY", {})):
        try:
            lazy[name] = type(getattr(telefunc, name)).__name__
        except Exception as exc:
            failed[f"telefunc.{name}"] = f"{type(exc).__name__}: {exc}"
    pulled_in = sorted(m for m in sys.modules if m.startswith(FORBIDDEN_PREFIXES))
    return {
        "platform": sys.platform,
        "version": list(sys.version_info[:3]),
        "imported": sorted(imported),
        "failed": failed,
        "lazy": lazy,
        "forbidden_before": already,
        "forbidden_after": pulled_in,
    }
