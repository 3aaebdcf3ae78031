#!/usr/bin/env bash
# Runs the example chat on the embedded single-process default at http://127.0.0.1:3000,
# installing what it needs first (venv, pip, npm ci, the esbuild bundle). Extra arguments go to
# `telefunc serve` (e.g. `--metrics 127.0.0.1:9464`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "==> generating TypeScript stubs (telefunc codegen) and bundling the chat front end with esbuild"
(cd js && node scripts/build-example.mjs chat)
echo "==> open http://127.0.0.1:${PORT:-3000}/"
exec .venv/bin/telefunc serve examples/chat --host 127.0.0.1 --port "${PORT:-3000}" "$@"
