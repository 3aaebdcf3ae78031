"""Smoke test of bench/hostile.py: two cheap rows of ``--quick`` run and print the table.

Not a security test: whether the server survives an attack is the bench's finding (and the
attack tests' job), so this asserts only that the script runs end to end against a real
``telefunc serve`` process and reports every row it was asked for, with the summary line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from testpaths import REPO

ROWS = ["csrf-1", "malformed-ws"]

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the bench reads /proc/<pid> (Linux only)"
)


def test_quick_rows_print_the_table() -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO / 'bench'}"}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "hostile.py"), "--quick", "--only", ",".join(ROWS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = "| attack | server peak RSS growth | worst probe latency | survived | goals | notes |"
    assert header in lines
    rows = [line for line in lines if line.startswith("| ") and line != header]
    assert [row.split(" | ")[0] for row in rows] == [
        "| cross-site POST: text/plain form",
        "| malformed WebSocket frames",
    ]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1].endswith("MiB") and cells[2].endswith("ms")
        assert cells[3] in ("yes", "no") and cells[4] in ("yes", "no")
    assert any(re.match(r"\d/2 rows survived, \d/2 met the goals", line) for line in lines)
