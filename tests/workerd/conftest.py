"""Fixtures of the real-runtime tier: one real workerd (via Miniflare) for the whole session.

The worker is the zero-config telefunc worker over the union of the test apps (basic,
channels, broadcast, streaming), so every scenario of the official npm client has its
telefunctions. Under ``CI=true`` a missing workerd, Node 22, Miniflare or Pyodide bundle fails
the tier instead of skipping it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from telefunc.testing.workerd import WorkerdNotInstalled, WorkerdWorker, workerd_dir
from testpaths import APPS_DIR, IN_CI

#: The test apps served together (their telefunc file names do not collide).
APPS = ("basic", "channels", "broadcast", "streaming")
#: This tier's worker.py (a context naming the serving object) and its telefunction.
APP = Path(__file__).resolve().parent / "app"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A workerd start takes 15-40 s on a busy 2-core machine: room beyond the default 120 s."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.timeout(300))


@pytest.fixture(scope="session")
def workerd_required() -> None:
    """Skips (fails under CI) when real workerd is not set up."""
    try:
        workerd_dir()
    except WorkerdNotInstalled as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def merged_apps(target: Path) -> Path:
    """Copy the test apps' Python files, this tier's worker and the probe into one ROOT."""
    target.mkdir(parents=True, exist_ok=True)
    sources = [APP / "worker.py", APP / "where.telefunc.py"]
    sources += [path for app in APPS for path in sorted((APPS_DIR / app).glob("*.py"))]
    sources = [path for path in sources if path.name != "context.py"]
    for source in sources:
        assert not (target / source.name).exists(), source.name
        shutil.copyfile(source, target / source.name)
    shutil.copyfile(APP / "wrangler.jsonc", target / "wrangler.jsonc")
    shutil.copyfile(APP.parent / "probe" / "worker.py", target / "probe_worker.py")
    return target


@pytest.fixture(scope="session")
def workerd_worker(
    workerd_required: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerdWorker]:
    """The merged apps running in real workerd; ``.url`` is its origin."""
    base = tmp_path_factory.mktemp("workerd")
    root = merged_apps(base / "root")
    with (base / "workerd.log").open("w") as log:
        worker = WorkerdWorker(root, persist_dir=base / "state", log=log)
        worker.start()
        try:
            yield worker
        finally:
            worker.stop()


@pytest.fixture(scope="session")
def origin(workerd_worker: WorkerdWorker) -> str:
    return workerd_worker.url
