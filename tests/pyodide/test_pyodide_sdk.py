"""The adapter on Cloudflare's ``workers`` SDK under real Pyodide 0.28.2 (CPython 3.13, wasm).

The ``workers`` package is the one installed from the pinned ``workers-runtime-sdk`` wheel (the
files its RECORD lists), copied into Pyodide's filesystem; the JS fakes stand for the runtime's
bindings (KV, Durable Object namespace and stubs, Response). ``snippets/sdk_main.py`` checks that
the SDK's ``Response``, binding wrappers, class wrapping and ``pyfetch``-based stub ``fetch``
carry the adapter's values as production does.
"""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest
from test_pyodide_core import FAKES, SNIPPETS, run_pyodide

CHECKS = [
    "imports",
    "responses",
    "env_wrapper_and_kv",
    "durable_object_class",
    "stub_fetch_through_pyfetch",
]


def _sdk_package() -> Path:
    dist = distribution("workers-runtime-sdk")
    assert dist.version == "1.9.5"
    files = [f for f in dist.files or [] if f.parts[0] == "workers" and f.name == "__init__.py"]
    assert files, "the workers-runtime-sdk wheel has no workers/__init__.py"
    return Path(str(dist.locate_file(files[0]))).parent


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    lines = run_pyodide(SNIPPETS / "sdk_main.py", preload=FAKES, packages=(_sdk_package(),))
    return {line["check"]: line for line in lines}


@pytest.mark.parametrize("check", CHECKS)
def test_adapter_on_the_real_sdk_under_pyodide(
    results: dict[str, dict[str, Any]], check: str
) -> None:
    line = results.get(check)
    assert line is not None, f"check {check} printed nothing"
    assert line["ok"] is True, line.get("error") or line
