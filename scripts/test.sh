#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what is missing, then lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
TELEFUNC_APT_PACKAGES="${TELEFUNC_APT_PACKAGES:-redis-server chromium}" bash scripts/bootstrap.sh

echo "==> ruff check / ruff format --check / mypy --strict src"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy --strict src

echo "==> pytest"
# pytest exits 5 when it collected no test: with `set -e` that fails this script, on purpose.
.venv/bin/pytest "$@"
