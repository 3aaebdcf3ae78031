"""Paths and availability checks shared by test modules (import as ``testpaths``).

A uniquely named module rather than ``conftest``: several folders have their own conftest.py,
and ``from conftest import …`` would pick whichever was imported first.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JS_DIR = REPO / "js"
INTEROP_DIR = JS_DIR / "interop"
APPS_DIR = Path(__file__).resolve().parent / "apps"
#: Under CI a missing tool fails the test instead of skipping it.
IN_CI = bool(os.environ.get("CI"))


def node_available() -> bool:
    """Whether node and the pinned npm packages are installed."""
    return shutil.which("node") is not None and (JS_DIR / "node_modules" / "telefunc").is_dir()
