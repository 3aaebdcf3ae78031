"""The layering of docs/architecture.md: wire -> endpoint -> server -> adapters -> cli,
dependencies pointing down.

``telefunc.endpoint`` (the asyncio channel endpoint both sides share) and the broadcast transport
interface (``telefunc.broadcast.transport``) sit between the wire core and the server; the
client is an adapter beside ``asgi`` and ``cloudflare`` that needs nothing from the server.
Checked from the source text (every ``import``/``from`` of a telefunc module, including the
lazy ones inside functions), so a new upward import fails here rather than in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "telefunc"
TESTS = Path(__file__).resolve().parent

_BASE = {"telefunc.errors", "telefunc.config"}
_WIRE = _BASE | {"telefunc.wire"}
_ENDPOINT = _WIRE | {"telefunc.endpoint"}
_TRANSPORT = "telefunc.broadcast.transport"

#: What each layer (a package, or one module of a package) may import from telefunc.
ALLOWED = {
    "wire": _WIRE,
    "endpoint": _ENDPOINT,
    "broadcast/transport.py": _BASE | {_TRANSPORT},
    "server": _ENDPOINT | {_TRANSPORT, "telefunc.server"},
    "client": _ENDPOINT | {"telefunc.client"},
}


def _modules(layer: str) -> list[Path]:
    root = SRC / layer
    return [root] if root.suffix == ".py" else sorted(root.rglob("*.py"))


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports by absolute name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def telefunc_imports(path: Path) -> set[str]:
    return {name for name in imports(path) if name.split(".")[0] == "telefunc"}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_import_nothing_above_them(layer: str) -> None:
    allowed = ALLOWED[layer]
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in _modules(layer)
        for name in telefunc_imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    }
    assert not offenders, sorted(offenders)


def test_the_client_imports_nothing_from_the_server() -> None:
    # Stated on its own (ALLOWED["client"] implies it) because it is the rule a change to the
    # client is most likely to break: what both sides need lives in wire or endpoint.
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in _modules("client")
        for name in telefunc_imports(path)
        if name == "telefunc.server" or name.startswith("telefunc.server.")
    }
    assert not offenders, sorted(offenders)


def test_the_wire_core_runs_without_an_event_loop() -> None:
    # telefunc.wire is sans-I/O (it runs on Pyodide inside a Durable Object's own loop):
    # asyncio belongs to the layers above it.
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in _modules("wire")
        for name in imports(path)
        if name == "asyncio" or name.startswith("asyncio.")
    }
    assert not offenders, sorted(offenders)


def test_every_layer_named_here_exists() -> None:
    # A renamed package would otherwise leave its rule checking nothing.
    assert all(_modules(layer) for layer in ALLOWED)


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
    """A Worker bundles the packages ``telefunc.testing.workerd`` vendors: the Durable Object
    adapts the transport-free SSE and call endpoints itself, without ``telefunc.asgi``, and no
    vendored module imports one that is not vendored."""
    from telefunc.testing.workerd import VENDORED_MODULES, VENDORED_PACKAGES

    shipped = {f"telefunc.{package}" for package in VENDORED_PACKAGES}
    shipped |= {f"telefunc.{module.removesuffix('.py')}" for module in VENDORED_MODULES}
    shipped.discard("telefunc.__init__")
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for package in VENDORED_PACKAGES
        for path in (SRC / package).rglob("*.py")
        for name in telefunc_imports(path)
        if not any(name == s or name.startswith(s + ".") for s in shipped)
    }
    assert not offenders, sorted(offenders)
