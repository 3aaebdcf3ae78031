"""``telefunc codegen ROOT --out DIR --watch``: stubs that follow the Python files as they change.

Generates once, then again after every change to a ``.py`` file under ROOT (noticed by
``watchfiles``, the watcher behind uvicorn's ``--reload``). Only stubs whose text changed are
rewritten, so a front-end dev server reloads once per save. When a file fails to import or an
annotation does not resolve, the error is printed with the file and line and every stub stays as
it was (the last good ones); the next good save regenerates. A stub this process wrote for a
telefunc file that has since gone away is deleted. SIGINT and SIGTERM stop it with status 0.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import watchfiles

from telefunc.codegen import PY_SUFFIX, render_all, write_if_changed
from telefunc.errors import UsageError

__all__ = ["Regenerator", "main_codegen_watch"]

PREFIX = "telefunc codegen"
_INSTALLED_DIRS = frozenset({"site-packages", "dist-packages", "node_modules", "venv"})
#: How often (ms) the watcher wakes without a change; bounds the start-up wait.
WATCHER_START_MS = 300


class Regenerator:
    """One round of codegen for ``root`` into ``out``, remembering the stubs it wrote.

    ``regenerate()`` re-imports the app's modules from their current source, renders every
    stub and writes only the changed ones; it returns the paths written, or ``None`` when the
    app failed to import or render (the error went to ``report``).
    """

    def __init__(self, root: Path, out: Path, report: Callable[[str], None]) -> None:
        self.root = root.resolve()
        self.out = out
        self._report = report
        self._owned: set[Path] = set()

    def regenerate(self) -> list[Path] | None:
        self._forget_app_modules()
        try:
            rendered = render_all(self.root, self.out)
        except UsageError as exc:
            self._report(f"{PREFIX}: error: {exc} (the previous stubs are kept)")
            return None
        except Exception as exc:  # a bug in codegen must not end the watch either
            kind = type(exc).__name__
            self._report(f"{PREFIX}: error: {kind}: {exc} (the previous stubs are kept)")
            return None
        if not rendered:
            self._report(f"{PREFIX}: error: no telefunctions in *{PY_SUFFIX} under {self.root}")
            return None
        written: list[Path] = []
        try:
            for path, text in rendered.items():
                if write_if_changed(path, text):
                    written.append(path)
            for gone in sorted(self._owned - set(rendered)):
                gone.unlink(missing_ok=True)
                written.append(gone)
        except OSError as exc:
            self._report(f"{PREFIX}: error: cannot write {exc.filename}: {exc.strerror or exc}")
            return None
        self._owned = set(rendered)
        return written

    def _forget_app_modules(self) -> None:
        """Drop the app's modules (telefunc files and their siblings) so imports read the disk."""
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if not file or name == "telefunc" or name.startswith("telefunc."):
                continue
            path = Path(file).resolve()
            if not path.is_relative_to(self.root):
                continue
            folders = path.relative_to(self.root).parts[:-1]
            # Installed packages (a venv inside ROOT) stay: only the app's own code changes.
            if not any(part in _INSTALLED_DIRS or part.startswith(".") for part in folders):
                del sys.modules[name]
        importlib.invalidate_caches()


def main_codegen_watch(root: str, out: str, stop: threading.Event | None = None) -> int:
    """Run ``telefunc codegen ROOT --out DIR --watch`` until SIGINT/SIGTERM (or ``stop``)."""
    root_path = Path(root)
    if not root_path.is_dir():
        print(f"{PREFIX}: error: {root} is not a folder", file=sys.stderr)
        return 2
    if stop is None:
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # we say what changed ourselves
    sys.dont_write_bytecode = True  # a .pyc from an earlier save must never stand in for the file

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    regenerator = Regenerator(root_path, Path(out), report)

    def one_round() -> None:
        written = regenerator.regenerate()
        if written is None:
            return
        for path in written:
            print(f"{'wrote' if path.exists() else 'removed'} {path}", flush=True)
        print(f"{PREFIX}: {len(written) or 'no'} stub(s) changed in {out}", flush=True)

    # The watcher runs once the generator has started (its first yield, at the latest after
    # WATCHER_START_MS): only then is the first round made, so no save can fall in between.
    watching = False
    for changes in watchfiles.watch(
        root_path,
        watch_filter=watchfiles.PythonFilter(),
        stop_event=stop,
        raise_interrupt=False,
        debounce=400,
        step=50,
        rust_timeout=WATCHER_START_MS,
        yield_on_timeout=True,
    ):
        if not watching:
            watching = True
            one_round()
            print(f"{PREFIX}: watching {root} for changes", flush=True)
        elif changes:
            one_round()
    return 0
