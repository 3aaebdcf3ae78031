#!/bin/sh
# Miniflare's MINIFLARE_WORKERD_PATH target: runs the pinned workerd with the flags Miniflare has
# no option for, right after the subcommand: `--experimental` and the folder holding
# pyodide_dev.capnp.bin (js/workerd-python/build-bundle.mjs). Set by run-worker.mjs.
subcommand=$1
shift
exec "$TELEFUNC_WORKERD_BINARY" "$subcommand" --experimental \
  --pyodide-bundle-disk-cache-dir "$TELEFUNC_PYODIDE_BUNDLE_DIR" "$@"
