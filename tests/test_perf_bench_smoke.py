"""Smoke tests of bench/perf.py (``--quick`` on one row runs every server and prints the row)
and bench/inprocess.py (both figures, every delivery made).

Not benchmarks: they check that the one-way channel row drives telefunc, raw ``websockets`` and
the official Node server to the end and prints its table row, not what the figures are.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testpaths import IN_CI, REPO, node_available


def run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``bench/<script>`` with ``args`` on this checkout's src and bench; its output."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO / 'bench'}"}
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_quick_oneway_row_runs_against_every_server() -> None:
    if not node_available():
        if IN_CI:
            pytest.fail("node or js/node_modules is missing: .ci/run must install them")
        pytest.skip("node or js/node_modules is missing (run: cd js && npm ci)")
    result = run_bench("perf.py", "--quick", "--runs=1", "--rows=oneway", timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| oneway |")]
    assert len(rows) == 1, result.stdout
    cells = [cell.strip() for cell in rows[0].split("|")[1:-1]]
    websockets, starlette, node, ours = cells[2:6]
    assert starlette == "–"  # no Starlette baseline for a channel row
    for figure in (websockets, node, ours):
        assert float(figure.replace(",", "")) > 0  # each server handled messages


def test_quick_memory_rows_run_against_every_server() -> None:
    """bench/idle_memory.py through perf.py: bare and one-channel sets on every server."""
    if not node_available():
        if IN_CI:
            pytest.fail("node or js/node_modules is missing: .ci/run must install them")
        pytest.skip("node or js/node_modules is missing (run: cd js && npm ci)")
    result = run_bench("perf.py", "--quick", "--runs=1", "--rows=mem", timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("mem-bare", "mem-channel"):
        rows = [line for line in result.stdout.splitlines() if line.startswith(f"| {name} |")]
        assert len(rows) == 1, result.stdout
        cells = [cell.strip() for cell in rows[0].split("|")[1:-1]]
        assert "(at 100)" in cells[1]
        websockets, starlette, node, ours = cells[2:6]
        assert starlette == "–"
        for figure in (websockets, node, ours):
            assert float(figure) > 0  # each server held its connections


def test_quick_stack_bench_measures_the_default_stack() -> None:
    """bench/stack.py --quick on telefunc serve's default stack prints its row."""
    stack = "uvicorn:telefunc:httptools:uvloop"
    result = run_bench("stack.py", "--quick", f"--stacks={stack}", timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith(f"| {stack} |")]
    assert len(rows) == 1, result.stdout
    figures = [float(cell) for cell in rows[0].split("|")[2:-1]]
    assert len(figures) == 4 and all(f > 0 for f in figures), rows[0]


def test_the_in_process_bench_delivers_every_message_and_prints_both_figures() -> None:
    small = ["--messages=500", "--subscribers=20", "--publishes=3"]
    result = run_bench("inprocess.py", *small, timeout=120)
    # fanout raises unless every subscriber got a write per publish
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    figures = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert set(figures) == {"oneway", "fanout"}, result.stdout
    for figure in figures.values():
        assert float(figure.split()[0]) > 0
