"""The runtime's private modules the ``workers`` SDK imports: what workerd injects beneath it.

* ``_cloudflare_compat_flags``: one boolean per compatibility flag (``False`` unless set here);
* ``_pyodide_entrypoint_helper``: ``patchWaitUntil(ctx)`` (the runtime makes ``ctx.waitUntil``
  accept Python awaitables; the emulator's ``waitUntil`` already takes Futures, so nothing to
  patch), the JS modules importable at top level (``cloudflare:workers``, ``cloudflare:sockets``)
  and ``doAnImport``, which the emulator does not provide (no JS modules run here).
"""

from __future__ import annotations

import types
from typing import Any

from .ffi import JsException, JsObject

__all__ = ["compat_flags_module", "entrypoint_helper_module"]

#: Compatibility flags the emulated runtime reports as on (what a 2026 compatibility date gives).
COMPAT_FLAGS: dict[str, bool] = {"python_request_headers_preserve_commas": True}


def compat_flags_module() -> types.ModuleType:
    """``_cloudflare_compat_flags``: unknown flags read as ``False``."""
    module = types.ModuleType("_cloudflare_compat_flags", __doc__)
    for name, value in COMPAT_FLAGS.items():
        setattr(module, name, value)

    def __getattr__(name: str) -> bool:
        if name.startswith("__"):
            raise AttributeError(name)
        return False

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def _patch_wait_until(ctx: Any) -> None:
    """The emulator's ``ctx.waitUntil`` already takes what the runtime's patched one does."""


async def _do_an_import(module_name: str) -> Any:
    raise JsException("Error", f"No such module {module_name!r} (the emulator runs no JS modules)")


def _patch_env_helper(kwds: Any) -> Any:
    raise NotImplementedError("workers.patch_env is not emulated")
    yield  # pragma: no cover - a generator, as in the runtime


def entrypoint_helper_module() -> types.ModuleType:
    """``_pyodide_entrypoint_helper``."""
    module = types.ModuleType("_pyodide_entrypoint_helper", __doc__)
    module.patchWaitUntil = _patch_wait_until  # type: ignore[attr-defined]
    module.doAnImport = _do_an_import  # type: ignore[attr-defined]
    module.patch_env_helper = _patch_env_helper  # type: ignore[attr-defined]
    module.cloudflareWorkersModule = JsObject()  # type: ignore[attr-defined]
    module.cloudflareSocketsModule = JsObject()  # type: ignore[attr-defined]
    return module
