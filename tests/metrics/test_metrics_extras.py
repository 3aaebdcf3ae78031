"""prometheus-client and rich are optional: the core never imports them, and the commands that
need them say which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
OPTIONAL = ("prometheus_client", "rich")


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    hide = f"import sys\nsys.modules.update(dict.fromkeys({OPTIONAL!r}))\n"
    return subprocess.run(
        [sys.executable, "-c", hide + code, *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )


def test_the_server_and_its_hooks_import_without_the_extras() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, telefunc.asgi, telefunc.server.observe, telefunc.cli\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OPTIONAL!r}))",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_serve_metrics_without_prometheus_client_prints_the_install_command() -> None:
    proc = run(
        "from telefunc.cli import main\n"
        "sys.exit(main(['serve', sys.argv[1], '--port', '0', '--metrics', '127.0.0.1:0']))\n",
        str(APPS / "basic"),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("pip install 'telefunc[metrics]'")
    assert "Traceback" not in proc.stderr


def test_top_without_rich_prints_the_install_command() -> None:
    proc = run("from telefunc.cli import main\nsys.exit(main(['top', 'http://127.0.0.1:1']))\n")
    assert proc.returncode == 2
    assert "pip install 'telefunc[top]'" in proc.stderr


def test_an_app_with_metrics_without_prometheus_client_names_the_extra() -> None:
    proc = run(
        "from telefunc.asgi import TelefuncApp\n"
        "from telefunc.errors import UsageError\n"
        "try:\n"
        "    TelefuncApp(sys.argv[1], metrics=True)\n"
        "except UsageError as exc:\n"
        "    print(exc)\n",
        str(APPS / "basic"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("pip install 'telefunc[metrics]'")
