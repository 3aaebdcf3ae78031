"""The sans-I/O state tests in tests/wire take every move of both lifecycle tables.

They run again in a subprocess under the ``phase_recorder`` plugin, which records each
``(phase, event)`` that ``ChannelCore`` and ``ServerConnection`` look up in their table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from telefunc.wire.channel_state import CHANNEL_TRANSITIONS
from telefunc.wire.mux import CONNECTION_TRANSITIONS
from testpaths import REPO

HERE = Path(__file__).parent


def test_the_state_tests_take_every_transition_of_both_tables(tmp_path: Path) -> None:
    log = tmp_path / "transitions.json"
    env = dict(os.environ, TELEFUNC_PHASE_LOG=str(log))
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "phase_recorder",
            "-p",
            "no:cacheprovider",
            str(HERE),
            f"--ignore={__file__}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    taken = json.loads(log.read_text())
    for name, table in (("channel", CHANNEL_TRANSITIONS), ("connection", CONNECTION_TRANSITIONS)):
        listed = {(phase.name, event.name) for phase, event in table}
        recorded = {(phase, event) for phase, event in taken[name]}
        assert recorded <= listed  # anything else would have raised IllegalTransitionError
        assert sorted(listed - recorded) == [], f"{name} transitions no test takes"
