"""``examples/cloudflare/`` deploys as shipped: the files and config its README's steps use.

The README's deploy steps (``uv run pywrangler kv namespace create TelefuncKV``, ``uv run
pywrangler dev``, ``uv run pywrangler deploy``) read ``pyproject.toml`` and ``wrangler.jsonc``;
these tests check those same files, then run the example's ``worker.py`` with that
``wrangler.jsonc`` in the emulator, on Cloudflare's ``workers`` package.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

from telefunc.testing.edge_server import _bindings_from_wrangler, _strip_jsonc, build_emulator

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "cloudflare"


def _wrangler() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(_strip_jsonc((EXAMPLE / "wrangler.jsonc").read_text()))
    return config


def test_readme_deploy_steps_are_the_pywrangler_commands() -> None:
    readme = (EXAMPLE / "README.md").read_text()
    for command in (
        "uv run pywrangler kv namespace create TelefuncKV",
        "uv run pywrangler dev",
        "uv run pywrangler deploy",
        "telefunc dev --edge examples/cloudflare",
    ):
        assert command in readme, command
    assert "new_sqlite_classes" in readme and "python_modules/" in readme


def test_pyproject_is_a_pywrangler_project_depending_on_the_core_only() -> None:
    pyproject = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert pyproject["project"]["dependencies"] == ["telefunc"]
    assert pyproject["project"]["requires-python"] == ">=3.13"
    dev = pyproject["dependency-groups"]["dev"]
    assert "workers-py==1.17.9" in dev
    ours = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    sdk = [r for r in ours["optional-dependencies"]["dev"] if r.startswith("workers-runtime-sdk")]
    assert sdk and sdk[0] in dev  # the example pins the SDK version the emulator tier runs
    source = pyproject["tool"]["uv"]["sources"]["telefunc"]
    root = (EXAMPLE / source["path"]).resolve()
    assert tomllib.loads((root / "pyproject.toml").read_text())["project"]["name"] == "telefunc"
    assert ours["dependencies"] == []  # what pywrangler vendors: telefunc and nothing else


def test_wrangler_config_uses_sqlite_objects_and_the_default_bindings() -> None:
    config = _wrangler()
    assert (EXAMPLE / config["main"]).is_file()
    assert "python_workers" in config["compatibility_flags"]
    assert config["compatibility_date"] >= "2025-09-29"  # Pyodide 0.28.2, CPython 3.13
    migrations = config["migrations"]
    assert all("new_classes" not in m for m in migrations)
    assert migrations[0]["new_sqlite_classes"] == ["TelefuncDurableObject"]
    bindings = _bindings_from_wrangler(EXAMPLE)
    assert bindings is not None
    assert bindings["durable_objects"] == {"TelefuncDurableObject": "TelefuncDurableObject"}
    assert bindings["kv_namespaces"] == ["TelefuncKV"]
    ignored = (EXAMPLE / ".gitignore").read_text().split()
    assert {"python_modules/", ".venv-workers/", ".wrangler/"} <= set(ignored)


async def test_the_example_serves_with_vendored_packages_next_to_it(tmp_path: Path) -> None:
    # After `pywrangler sync`: python_modules/ holds packages, some with *.telefunc.py-looking
    # files; they are not the app's telefunctions and must not be imported.
    app = tmp_path / "cloudflare"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("__pycache__"))
    vendored = app / "python_modules" / "somepkg"
    vendored.mkdir(parents=True)
    (vendored / "trap.telefunc.py").write_text("raise SystemExit('vendored file imported')\n")
    emu, what = build_emulator(app, ["weur", "apac"], kv_delay=0.0)
    try:
        assert what == str(app / "worker.py")
        body = json.dumps({"file": "/hello.telefunc.py", "name": "hello", "args": ["deploy"]})
        resp = await emu.fetch(
            "https://example.workers.dev/_telefunc",
            colo="LHR",
            method="POST",
            headers={"x-user": "ada"},
            body=body,
        )
        assert resp.status == 200, await resp.text()
        assert json.loads(await resp.text()) == {"ret": "Hello deploy, from ada"}
        assert resp.headers.get("x-telefunc-session", "").startswith("telefunc-shard-weur-")
        assert (await emu.fetch("https://example.workers.dev/")).status == 404
    finally:
        emu.close()
