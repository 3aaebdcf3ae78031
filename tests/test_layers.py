"""The layering DESIGN.md promises: wire -> server -> adapters -> cli, dependencies pointing down.

Checked from the source text (every ``import``/``from`` of a telefunc module, including the
lazy ones inside functions), so a new upward import fails here rather than in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "telefunc"
TESTS = Path(__file__).resolve().parent

#: What each layer may import from telefunc (besides itself).
ALLOWED = {
    "wire": {"telefunc.errors", "telefunc.config", "telefunc.wire"},
    "server": {"telefunc.errors", "telefunc.config", "telefunc.wire", "telefunc.server"},
}


def telefunc_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == "telefunc")
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_import_nothing_above_them(layer: str) -> None:
    allowed = ALLOWED[layer]
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in (SRC / layer).rglob("*.py")
        for name in telefunc_imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    }
    assert not offenders, sorted(offenders)


def test_test_modules_do_not_import_from_conftest() -> None:
    # Several folders have a conftest.py; `from conftest import` picks whichever was imported
    # first. Shared paths live in tests/testpaths.py.
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path.name not in ("test_layers.py", "testpaths.py")
        and "from conftest import" in path.read_text()
    ]
    assert not offenders


def test_the_cloudflare_adapter_imports_only_what_a_worker_ships() -> None:
    """A Worker bundles wire, server and cloudflare (``telefunc.testing.workerd``): the Durable
    Object adapts the transport-free SSE and call endpoints itself, without ``telefunc.asgi``."""
    from telefunc.testing.workerd import VENDORED_MODULES, VENDORED_PACKAGES

    shipped = {f"telefunc.{package}" for package in VENDORED_PACKAGES}
    shipped |= {f"telefunc.{module.removesuffix('.py')}" for module in VENDORED_MODULES}
    shipped.discard("telefunc.__init__")
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in (SRC / "cloudflare").rglob("*.py")
        for name in telefunc_imports(path)
        if not any(name == s or name.startswith(s + ".") for s in shipped)
    }
    assert not offenders, sorted(offenders)
