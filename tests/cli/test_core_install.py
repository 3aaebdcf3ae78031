"""`pip install telefunc` is a core that fits in a Python Worker; the server is an extra.

A Worker bundles every dependency, so the bare package must pull no server, HTTP-client or Redis
package; ``telefunc serve`` without the ``server`` extra prints the exact install command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import requires
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
HEAVY = ("uvicorn", "websockets", "httpx", "redis", "h11", "anyio", "starlette")

# Run Python as if only the bare `telefunc` were installed: `sys.modules[name] = None` makes
# `import name` fail and `importlib.util.find_spec(name)` answer None, as for an absent package.
_WITHOUT_EXTRAS = f"""
import sys
HEAVY = {HEAVY!r}
sys.modules.update(dict.fromkeys(HEAVY))
"""


def _without_extras(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS + code, *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )


def test_the_package_requires_nothing_without_extras() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []
    extras = project["optional-dependencies"]
    # uvicorn with websockets, and the parser and loop telefunc serve measured best (bench/stack.py)
    server = {"uvicorn", "websockets", "httptools", "uvloop"}
    assert {r.split(">")[0] for r in extras["server"]} == server
    # `.[dev]` (what scripts/bootstrap.sh installs) brings the server packages too
    assert server <= {r.split(">")[0].split("=")[0] for r in extras["dev"]}
    # the installed metadata agrees: every requirement belongs to an extra
    assert all("extra ==" in r for r in requires("telefunc") or [])


def test_core_and_cloudflare_adapter_import_without_the_extras() -> None:
    proc = _without_extras(
        "import telefunc, telefunc.wire, telefunc.server.rpc, telefunc.cloudflare\n"
        "from telefunc.cloudflare import Telefunc\n"
        "loaded = sorted(m for m, v in sys.modules.items() if v and m.split('.')[0] in HEAVY)\n"
        "print(loaded)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_serve_without_the_server_extra_prints_the_install_command() -> None:
    proc = _without_extras(
        "from telefunc.cli import main\nsys.exit(main(['serve', sys.argv[1]]))\n",
        str(APPS / "basic"),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("pip install 'telefunc[server]'")
    assert "uvicorn and websockets not installed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dev_edge_without_the_server_extra_prints_the_install_command(tmp_path: Path) -> None:
    proc = _without_extras(
        "from telefunc.cli import main\nsys.exit(main(['dev', '--edge', sys.argv[1]]))\n",
        str(tmp_path),
    )
    assert proc.returncode == 2
    assert "pip install 'telefunc[server]'" in proc.stderr
