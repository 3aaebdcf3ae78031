"""Zero-config: ``Telefunc()`` finds the telefunctions next to the module that builds it, and
``telefunc dev --edge ROOT`` serves ROOT's telefunctions when ROOT has no ``worker.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from telefunc.errors import UsageError
from telefunc.server.registry import discover
from telefunc.testing.edge_server import build_emulator

HELLO = "async def hello(name: str) -> str:\n    return 'hello ' + name\n"
CALL = json.dumps({"file": "/hello.telefunc.py", "name": "hello", "args": ["edge"]})


def _app(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hello.telefunc.py").write_text(HELLO)
    return root


def test_telefunc_without_arguments_uses_the_constructing_module_folder(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    (app / "worker.py").write_text(
        "from telefunc.cloudflare import Telefunc\ntelefunc = Telefunc()\n"
    )
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from telefunc.testing import install; install()\n"
        "import worker\n"
        "print(worker.telefunc.root)\n"
        "print(worker.telefunc.registry.files)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(app)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    root, keys = proc.stdout.splitlines()
    assert Path(root) == app.resolve()
    assert "/hello.telefunc.py" in keys


def test_telefunc_without_arguments_and_without_a_caller_file_names_root() -> None:
    namespace: dict[str, object] = {"__name__": "no_file"}
    with pytest.raises(UsageError, match="pass root="):
        exec("from telefunc.cloudflare import Telefunc\nTelefunc()\n", namespace)


def test_discover_skips_vendored_and_dot_folders(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    for skipped in ("python_modules/pkg", "node_modules/x", ".venv/lib", ".wrangler/tmp", "venv"):
        folder = app / skipped
        folder.mkdir(parents=True)
        (folder / "evil.telefunc.py").write_text("raise SystemExit('must not be imported')\n")
    (app / "nested").mkdir()
    (app / "nested" / "ok.telefunc.py").write_text("async def ok() -> int:\n    return 1\n")
    registry = discover(app)
    assert sorted(registry.files) == ["/hello.telefunc.py", "/nested/ok.telefunc.py"]


async def test_dev_edge_without_worker_py_serves_root_telefunctions(tmp_path: Path) -> None:
    app = _app(tmp_path / "app")
    emu, what = build_emulator(app, ["weur", "apac"], kv_delay=0.0)
    try:
        assert "telefunc.cloudflare.Telefunc" in what and "pending" not in what
        resp = await emu.fetch("https://edge.test/_telefunc", colo="NRT", method="POST", body=CALL)
        assert resp.status == 200
        assert json.loads(await resp.text()) == {"ret": "hello edge"}
        assert resp.headers.get("x-telefunc-session", "").startswith("telefunc-shard-apac-")
        missing = await emu.fetch("https://edge.test/elsewhere")
        assert missing.status == 404
    finally:
        emu.close()
