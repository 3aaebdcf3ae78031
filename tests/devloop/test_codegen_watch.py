"""``telefunc codegen ROOT --out DIR --watch``: stubs follow the Python files as they change.

The ``Regenerator`` tests run one round at a time in-process; the CLI tests run the real
command (watchfiles included) and wait, with deadlines, for what it prints and writes.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from devloop_support import TELEFUNC, Proc, wait_until

from telefunc.codegen_watch import Regenerator

TODOS = """\
from typing import TypedDict


class Todo(TypedDict):
    id: int
    text: str


async def add_todo(text: str) -> Todo:
    return {"id": 1, "text": text}
"""
CLOCK = """\
async def now() -> float:
    return 0.0
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "server"
    root.mkdir()
    (root / "todos.telefunc.py").write_text(TODOS)
    (root / "clock.telefunc.py").write_text(CLOCK)
    return root


def _regenerator(app: Path, out: Path) -> tuple[Regenerator, list[str]]:
    errors: list[str] = []
    return Regenerator(app, out, errors.append), errors


def test_a_round_writes_only_the_stubs_whose_text_changed(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "stubs"
    regen, errors = _regenerator(app, out)
    assert regen.regenerate() == [out / "clock.telefunc.ts", out / "todos.telefunc.ts"]
    clock_before = (out / "clock.telefunc.ts").stat()

    (app / "todos.telefunc.py").write_text(TODOS.replace("(text: str)", "(text: str, due: int)"))
    assert regen.regenerate() == [out / "todos.telefunc.ts"]
    assert "add_todo(text: string, due: number)" in (out / "todos.telefunc.ts").read_text()
    clock_after = (out / "clock.telefunc.ts").stat()
    assert (clock_after.st_ino, clock_after.st_mtime_ns) == (
        clock_before.st_ino,
        clock_before.st_mtime_ns,
    )
    assert regen.regenerate() == []  # nothing changed: nothing touched
    assert errors == []


def test_a_syntax_error_is_reported_with_file_and_line_and_the_stubs_stay(
    app: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stubs"
    regen, errors = _regenerator(app, out)
    regen.regenerate()
    good = (out / "todos.telefunc.ts").read_text()

    (app / "todos.telefunc.py").write_text(TODOS + "\n\nasync def broken(:\n    pass\n")
    assert regen.regenerate() is None
    assert len(errors) == 1
    assert "/todos.telefunc.py line 13: SyntaxError" in errors[0], errors
    assert "previous stubs are kept" in errors[0]
    assert (out / "todos.telefunc.ts").read_text() == good

    (app / "todos.telefunc.py").write_text(TODOS)  # fixed: the next round works again
    assert regen.regenerate() == []
    assert len(errors) == 1


def test_an_unresolvable_annotation_is_reported_with_its_line(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "stubs"
    regen, errors = _regenerator(app, out)
    regen.regenerate()
    good = (out / "clock.telefunc.ts").read_text()
    (app / "clock.telefunc.py").write_text(
        "from __future__ import annotations\n\n\nasync def now(zone: Zone) -> float:\n"
        "    return 0.0\n"
    )
    assert regen.regenerate() is None
    assert len(errors) == 1
    assert "/clock.telefunc.py: now(): cannot resolve" in errors[0], errors
    assert "NameError" in errors[0] and "line 4" in errors[0], errors
    assert (out / "clock.telefunc.ts").read_text() == good


def test_a_changed_sibling_module_is_read_again(app: Path, tmp_path: Path) -> None:
    """A helper module the telefunc file imports is re-imported, not taken from sys.modules."""
    (app / "shapes.py").write_text(
        "from typing import TypedDict\n\n\nclass Box(TypedDict):\n    width: int\n"
    )
    (app / "boxes.telefunc.py").write_text(
        "from shapes import Box\n\n\nasync def box() -> Box:\n    return {'width': 1}\n"
    )
    out = tmp_path / "stubs"
    regen, errors = _regenerator(app, out)
    regen.regenerate()
    (app / "shapes.py").write_text(
        "from typing import TypedDict\n\n\nclass Box(TypedDict):\n    width: int\n    height: int\n"
    )
    assert regen.regenerate() == [out / "boxes.telefunc.ts"]
    assert "height: number" in (out / "boxes.telefunc.ts").read_text()
    assert errors == []


def test_the_stub_of_a_removed_telefunc_file_is_deleted(app: Path, tmp_path: Path) -> None:
    out = tmp_path / "stubs"
    (out).mkdir()
    hand_written = out / "mine.telefunc.ts"
    hand_written.write_text("// not ours\n")
    regen, _ = _regenerator(app, out)
    regen.regenerate()
    (app / "clock.telefunc.py").unlink()
    assert regen.regenerate() == [out / "clock.telefunc.ts"]
    assert not (out / "clock.telefunc.ts").exists()
    assert hand_written.read_text() == "// not ours\n"  # only what this process wrote goes


def test_the_command_regenerates_a_saved_file_and_stops_on_sigterm(
    app: Path, tmp_path: Path
) -> None:
    out = tmp_path / "stubs"
    watcher = Proc([*TELEFUNC, "codegen", str(app), "--out", str(out), "--watch"], tmp_path)
    try:
        watcher.wait_for(r"telefunc codegen: watching ")
        stub = out / "todos.telefunc.ts"
        clock_mtime = (out / "clock.telefunc.ts").stat().st_mtime_ns

        (app / "todos.telefunc.py").write_text(TODOS.replace("(text: str)", "(text: str, n: int)"))
        wait_until(lambda: "n: number" in stub.read_text(), 10, "the regenerated stub")
        watcher.wait_for(r"telefunc codegen: 1 stub\(s\) changed")
        assert (out / "clock.telefunc.ts").stat().st_mtime_ns == clock_mtime

        mark = len(watcher.lines)
        (app / "todos.telefunc.py").write_text("async def oops(:\n")
        found = watcher.wait_for(r"error: .*todos\.telefunc\.py line 1: SyntaxError", start=mark)
        assert "previous stubs are kept" in found.string
        assert "n: number" in stub.read_text()
    finally:
        status = watcher.stop()
    assert status == 0, watcher.output()


def test_the_command_keeps_watching_when_the_first_round_fails(app: Path, tmp_path: Path) -> None:
    (app / "clock.telefunc.py").write_text("async def now(:\n")
    out = tmp_path / "stubs"
    watcher = Proc([*TELEFUNC, "codegen", str(app), "--out", str(out), "--watch"], tmp_path)
    try:
        watcher.wait_for(r"clock\.telefunc\.py line 1: SyntaxError")
        watcher.wait_for(r"telefunc codegen: watching ")
        (app / "clock.telefunc.py").write_text(CLOCK)
        wait_until((out / "clock.telefunc.ts").exists, 10, "the first good stubs")
        watcher.signal(signal.SIGINT)  # Ctrl-C stops it cleanly too
        assert watcher.process.wait(timeout=20) == 0
    finally:
        watcher.stop()


def test_installed_packages_inside_root_are_not_reimported(app: Path, tmp_path: Path) -> None:
    """A venv inside ROOT is not the app's code: its modules stay imported between rounds."""
    import importlib.util
    import sys

    site = app / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "devloop_installed.py").write_text("VALUE = 1\n")
    spec = importlib.util.spec_from_file_location(
        "devloop_installed", site / "devloop_installed.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["devloop_installed"] = module
    try:
        regen, errors = _regenerator(app, tmp_path / "stubs")
        assert regen.regenerate() is not None
        assert sys.modules.get("devloop_installed") is module
        assert errors == []
    finally:
        sys.modules.pop("devloop_installed", None)
