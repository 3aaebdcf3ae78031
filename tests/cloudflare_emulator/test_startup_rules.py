"""The Python Workers startup rules (no entropy, no threads while the worker module loads).

workerd's ``src/pyodide/internal/topLevelEntropy/`` is the reference: ``os.urandom`` raises
``OSError(EIO, ...)``, the ``random`` module's functions raise ``RuntimeError("Cannot use
random.<f>() outside of request context")``, an unseeded ``Random()`` dies with the runtime's
``PythonUserError``; seeded ``Random(x)`` and constructing ``SystemRandom`` are allowed.
"""

from __future__ import annotations

import errno
import os
import random
import secrets
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from telefunc.testing.edge_server import load_worker
from telefunc.testing.startup import (
    PYTHON_USER_ERROR,
    TOP_LEVEL_ENTROPY_ERROR,
    PythonUserError,
    in_startup,
    worker_startup,
)

REPO = Path(__file__).resolve().parents[2]
STARTUP_PY = REPO / "src" / "telefunc" / "testing" / "startup.py"
EXAMPLE_WORKERS = sorted((REPO / "examples").glob("*/worker.py"))


def test_urandom_uuid4_and_secrets_raise_the_runtime_oserror() -> None:
    with worker_startup():
        assert in_startup()
        for draw in (lambda: os.urandom(8), uuid.uuid4, lambda: secrets.token_hex(8)):
            with pytest.raises(OSError) as info:
                draw()
            assert info.value.errno == errno.EIO
            assert info.value.strerror == TOP_LEVEL_ENTROPY_ERROR
    assert not in_startup()


def test_random_functions_raise_outside_request_context() -> None:
    with worker_startup():
        with pytest.raises(RuntimeError, match=r"^Cannot use random\.random\(\) outside of"):
            random.random()
        with pytest.raises(RuntimeError, match=r"^Cannot use random\.choice\(\) outside of"):
            random.choice([1, 2])
        with pytest.raises(OSError):
            random.SystemRandom().random()  # constructing is allowed, drawing is not


def test_unseeded_random_is_fatal_seeded_random_is_fine() -> None:
    with worker_startup():
        assert random.Random(42).random() == random.Random(42).random()
        system = random.SystemRandom()
        with pytest.raises(PythonUserError) as info:
            random.Random()
        assert str(info.value) == PYTHON_USER_ERROR
        assert not isinstance(info.value, Exception)  # fatal: `except Exception` cannot hide it
    assert isinstance(system.random(), float)


def test_threads_cannot_start() -> None:
    with worker_startup(), pytest.raises(RuntimeError, match="can't start new thread"):
        threading.Thread(target=lambda: None).start()


def test_everything_is_restored_after_startup() -> None:
    with worker_startup():
        pass
    assert len(os.urandom(4)) == 4
    assert isinstance(uuid.uuid4(), uuid.UUID)
    assert 0 <= random.random() < 1
    assert isinstance(random.Random().random(), float)
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join(5)


@pytest.mark.parametrize(
    ("top_level", "error"),
    [
        ("import uuid\nTOKEN = str(uuid.uuid4())\n", "OSError"),
        ("import random\nRNG = random.Random()\n", "PythonUserError"),
        ("import secrets\nKEY = secrets.token_urlsafe()\n", "OSError"),
        ("import random\nN = random.randint(0, 3)\n", "RuntimeError"),
    ],
)
def test_a_worker_drawing_entropy_at_top_level_fails_to_load(
    tmp_path: Path, top_level: str, error: str
) -> None:
    (tmp_path / "worker.py").write_text(top_level)
    with pytest.raises(BaseException) as info:
        load_worker(tmp_path)
    assert type(info.value).__name__ == error
    assert "worker" not in sys.modules


def test_a_worker_drawing_entropy_in_a_handler_loads(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(
        "import uuid\n\ndef on_fetch(request, env):\n    return str(uuid.uuid4())\n"
    )
    module = load_worker(tmp_path)
    assert module is not None
    assert len(module.on_fetch(None, None)) == 36
    sys.modules.pop("worker", None)


# Fresh interpreter: the rules are in force before anything of telefunc is imported, so every
# module the worker pulls in (telefunc itself, the emulator's runtime modules) loads under them.
_IMPORT_UNDER_RULES = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_startup_rules", sys.argv[1])
rules = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rules)
with rules.worker_startup():
    from telefunc.testing import install
    install()
    sys.path.insert(0, sys.argv[2])
    spec = importlib.util.spec_from_file_location("worker", sys.argv[2] + "/worker.py")
    worker = importlib.util.module_from_spec(spec)
    sys.modules["worker"] = worker
    spec.loader.exec_module(worker)
print("exports", sorted(n for n in vars(worker) if not n.startswith("_")))
"""


@pytest.mark.parametrize("worker", EXAMPLE_WORKERS, ids=lambda p: p.parent.name)
def test_every_example_worker_imports_under_the_startup_rules(worker: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_UNDER_RULES, str(STARTUP_PY), str(worker.parent)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Default" in proc.stdout


def test_there_is_an_example_worker() -> None:
    assert EXAMPLE_WORKERS, "examples/*/worker.py"


def test_js_randomness_and_timers_are_refused_in_global_scope() -> None:
    import js  # type: ignore[import-not-found]

    from telefunc.testing.ffi import JsException
    from telefunc.testing.js_api import GLOBAL_SCOPE_ERROR

    with worker_startup():
        for call in (
            js.crypto.randomUUID,
            lambda: js.crypto.getRandomValues(bytearray(4)),
            lambda: js.setTimeout(lambda: None, 10),
        ):
            with pytest.raises(JsException) as info:
                call()
            assert info.value.message == GLOBAL_SCOPE_ERROR
    assert len(js.crypto.randomUUID()) == 36
