#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, then lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
TELEFUNC_APT_PACKAGES="${TELEFUNC_APT_PACKAGES:-redis-server chromium capnproto haproxy openssl}" bash scripts/bootstrap.sh

echo "==> ruff check / ruff format --check / mypy --strict src"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy --strict src

echo "==> pytest"
# pytest exits 5 when it collected no test: with `set -e` that fails this script, on purpose.
.venv/bin/pytest "$@"

# The package promises Python >= 3.11 and 3.13: run the pure-Python tiers (serializer, shield,
# wire core, calls over HTTP) on CPython 3.13 as well, when this machine has one.
py313=""
for candidate in "$(command -v python3.13 2>/dev/null || true)" /root/.pyenv/versions/3.13*/bin/python3.13; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
    py313=$candidate
    break
  fi
done
if [ -n "$py313" ] && [ $# -eq 0 ]; then
  echo "==> pytest on $("$py313" --version) (core tiers)"
  if [ ! -x .venv313/bin/python ]; then
    "$py313" -m venv .venv313
    .venv313/bin/python -m pip install -q -e '.[dev]'
  fi
  .venv313/bin/pytest -q tests/unit tests/wire tests/rpc tests/test_layers.py
elif [ -z "$py313" ]; then
  echo "==> no CPython 3.13 on this machine: the 3.13 run is skipped (the Pyodide tier still runs the core on 3.13)"
fi
