"""examples/cloudflare as shipped, in real workerd: its worker module loads under the real
startup rules (no entropy while a Python Worker starts) and answers a call; a worker that
draws randomness at import is refused by the runtime itself."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from telefunc.testing.workerd import WorkerdWorker
from testpaths import REPO

EXAMPLE = REPO / "examples" / "cloudflare"


@pytest.mark.usefixtures("workerd_required")
def test_example_worker_loads_and_answers(tmp_path: Path) -> None:
    with WorkerdWorker(EXAMPLE, persist_dir=tmp_path / "state") as example:
        body = json.dumps({"file": "/hello.telefunc.py", "name": "hello", "args": ["Ada"]})
        r = httpx.post(
            f"{example.url}/_telefunc",
            content=body,
            headers={"content-type": "text/plain", "x-user": "Grace"},
            timeout=60,
        )
    assert r.status_code == 200, (r.text, "".join(example.output))
    assert r.json() == {"ret": "Hello Ada, from Grace"}


ENTROPY_AT_IMPORT = """\
import random

from workers import Response, WorkerEntrypoint

TOKEN = random.random()  # forbidden while a Python Worker starts


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(str(TOKEN))
"""


@pytest.mark.usefixtures("workerd_required")
def test_entropy_at_import_is_refused_by_workerd(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "worker.py").write_text(ENTROPY_AT_IMPORT)
    worker = WorkerdWorker(root, persist_dir=tmp_path / "state")
    try:
        try:
            worker.start(timeout=90)
        except RuntimeError as exc:
            output = str(exc)
        else:
            r = httpx.get(worker.url, timeout=60)
            assert r.status_code >= 500, r.text
            output = "".join(worker.output)
    finally:
        worker.stop()
    assert "Randomness is not allowed" in output, output
