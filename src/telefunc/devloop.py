"""``telefunc dev ROOT --stubs DIR``: the dev loop, ``serve --reload`` plus ``codegen --watch``.

Runs the two as child processes of this one, each in its own process group, and prints every
line either writes prefixed with ``[serve]`` or ``[codegen]``. They start and stop together:
SIGINT (Ctrl-C), SIGTERM or SIGHUP stops both (their whole process groups, so uvicorn's reload
worker goes too), and when one exits on its own the other is stopped and its status is returned.

Options ``dev`` does not know go to ``serve`` as they are (``--allow-origin URL``, ``--redis``).
Cross-site checks: a Vite dev server that proxies ``/_telefunc`` without rewriting ``Host``
(``changeOrigin: false``) makes calls same-origin, so nothing needs allowing; see
``examples/vite-react/vite.config.ts``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO

__all__ = ["main_dev"]

#: How long a child has to exit after SIGTERM before its process group is killed.
STOP_GRACE_SECONDS = 10.0


@dataclass
class _Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="telefunc dev",
        description="serve --reload ROOT plus codegen --watch into --stubs DIR, together.",
    )
    parser.add_argument("root", metavar="ROOT")
    parser.add_argument("--stubs", required=True, metavar="DIR", help="where the stubs go")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--context", metavar="MODULE:FUNC", help="the context factory")
    parser.add_argument("--log-level", default="info")
    return parser


def _children(args: argparse.Namespace, serve_options: list[str]) -> list[_Child]:
    cli = [sys.executable, "-m", "telefunc.cli"]
    serve = [*cli, "serve", args.root, "--reload", "--host", args.host, "--port", str(args.port)]
    serve += ["--log-level", args.log_level, *serve_options]
    if args.context:
        serve += ["--context", args.context]
    codegen = [*cli, "codegen", args.root, "--out", args.stubs, "--watch"]
    return [_Child("codegen", codegen), _Child("serve", serve)]


def _pump(
    child: _Child,
    stream: IO[bytes],
    lock: threading.Lock,
    ended: list[_Child],
    wake: threading.Event,
) -> None:
    """Copy the child's output to ours, one prefixed line at a time; note when it ends."""
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        with lock:
            sys.stdout.write(f"[{child.name}] {line}\n")
            sys.stdout.flush()
    with lock:
        ended.append(child)
    wake.set()


def _stop(children: Sequence[_Child]) -> None:
    running = [c for c in children if c.process is not None and c.process.poll() is None]
    for child in running:
        assert child.process is not None
        _signal_group(child.process.pid, signal.SIGTERM)
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()
    for child in children:
        if child.process is not None:
            # Anything the child left in its group (a reload worker) goes with it.
            _signal_group(child.process.pid, signal.SIGKILL)
        if child.reader is not None:
            child.reader.join(timeout=STOP_GRACE_SECONDS)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def main_dev(argv: Sequence[str]) -> int:
    """Run ``telefunc dev ROOT --stubs DIR [--host H] [--port P] [serve options]``.

    Options ``dev`` does not know (``--allow-origin URL``, ``--redis URL`` …) go to ``serve``.
    Returns the exit status.
    """
    args, serve_options = _parser().parse_known_args(list(argv))
    children = _children(args, serve_options)
    wake = threading.Event()
    stopped_by_signal = threading.Event()
    lock = threading.Lock()
    ended: list[_Child] = []  # in the order their output ended

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopped_by_signal.set()
        wake.set()

    # SIGHUP too: the children have their own sessions, so a closed terminal reaches only us.
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, _on_signal) for s in stop_signals}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for child in children:
            child.process = subprocess.Popen(
                child.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own group: stopped as a whole, never orphaned
            )
            assert child.process.stdout is not None
            child.reader = threading.Thread(
                target=_pump, args=(child, child.process.stdout, lock, ended, wake), daemon=True
            )
            child.reader.start()
            with lock:
                print(f"[dev] started {child.name} (pid {child.process.pid})", flush=True)
        # A bounded wait so signals are handled promptly whatever the platform's lock does.
        while not wake.wait(timeout=0.5):
            pass
    finally:
        _stop(children)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if stopped_by_signal.is_set():
        print("[dev] stopped", flush=True)
        return 0
    first = ended[0]
    assert first.process is not None
    status = first.process.returncode
    print(f"[dev] {first.name} exited with status {status}; stopped the rest", flush=True)
    return status if status else 1
