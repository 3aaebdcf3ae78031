#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, idempotently, saying what it does:
# Debian packages (when missing and we are root), the Python venv with the package in editable
# mode, and the pinned npm packages (js/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Debian packages the test tiers use: redis-server (broadcast across processes), chromium
# (browser tests), haproxy (the scale-out example and tier), capnproto (its `capnp` tool encodes
# workerd's Pyodide bundle), openssl (the throwaway CA of the Redis TLS test). Only installed when
# the command they provide is missing.
apt_packages=()
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)
for pkg in ${TELEFUNC_APT_PACKAGES:-}; do
  case "$pkg" in
    capnproto) cmd=capnp ;;
    haproxy) cmd=/usr/sbin/haproxy ;;  # outside a user's PATH on Debian
    *) cmd=$pkg ;;
  esac
  command -v "$cmd" >/dev/null 2>&1 || apt_packages+=("$pkg")
done
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "apt-get install ${apt_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  else
    echo "missing Debian packages: ${apt_packages[*]} (install them, e.g. sudo apt-get install ${apt_packages[*]})" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.telefunc-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "pip install -e '.[dev]' into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

# Every npm folder with a lock file: js/ (telefunc@0.2.23, the serializer, esbuild, typescript),
# js/*/ (workerd for the emulator's conformance tests, playwright-core, pyodide, ...) and
# examples/*/ (the Vite + React example's own front-end packages).
for lock in js/package-lock.json js/*/package-lock.json examples/*/package-lock.json; do
  [ -f "$lock" ] || continue
  dir=$(dirname "$lock")
  # A symlinked node_modules is another checkout's install (git worktrees share one): npm ci
  # would empty the folder it points to, so leave it to that checkout.
  if [ -L "$dir/node_modules" ]; then continue; fi
  if [ ! -d "$dir/node_modules" ] || [ "$lock" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "npm ci in $dir/ (pinned by $lock)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# workerd's development Pyodide bundle for the real-runtime tier (tests/workerd), built from the
# pinned npm pyodide + workerd (js/workerd-python); the script checks every sha256.
bundle=js/workerd-python/build/pyodide_dev.capnp.bin
if [ ! -f "$bundle" ] || [ js/workerd-python/build-bundle.mjs -nt "$bundle" ]; then
  if command -v capnp >/dev/null 2>&1; then
    say "building $bundle (node js/workerd-python/build-bundle.mjs)"
    node js/workerd-python/build-bundle.mjs >/dev/null
  else
    echo "capnp is missing (Debian package capnproto): $bundle not built, tests/workerd cannot run" >&2
  fi
fi
