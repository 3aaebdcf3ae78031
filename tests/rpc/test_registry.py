"""Discovery: which files and functions become telefunctions, and under which keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from telefunc.errors import TelefuncFileError, UsageError
from telefunc.server.registry import discover


def test_keys_are_posix_paths_from_the_root_and_only_defined_public_functions(
    tmp_path: Path,
) -> None:
    (tmp_path / "rooms" / "deep").mkdir(parents=True)
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "top.telefunc.py").write_text(
        "from json import dumps\n"
        "from telefunc import get_context\n"
        "async def a() -> int:\n    return 1\n"
        "def b() -> int:\n    return 2\n"
        "def _private() -> None: ...\n"
        "class NotAFunction: ...\n"
    )
    (tmp_path / "rooms" / "deep" / "x.telefunc.py").write_text("async def c() -> None: ...\n")
    (tmp_path / "rooms" / "helper.py").write_text("def not_a_telefunction() -> None: ...\n")
    (tmp_path / "node_modules" / "skip.telefunc.py").write_text("def skipped() -> None: ...\n")

    registry = discover(tmp_path)

    assert sorted(registry) == [
        ("/rooms/deep/x.telefunc.py", "c"),
        ("/top.telefunc.py", "a"),
        ("/top.telefunc.py", "b"),
    ]
    assert registry[("/top.telefunc.py", "a")].is_async
    assert not registry[("/top.telefunc.py", "b")].is_async
    assert registry.files == ["/rooms/deep/x.telefunc.py", "/top.telefunc.py"]


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.telefunc.py").write_text("x = 1\ndef broken(:\n")
    with pytest.raises(TelefuncFileError, match=r"^/bad\.telefunc\.py line 2: SyntaxError"):
        discover(tmp_path)


def test_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a folder"):
        discover(tmp_path / "missing")
