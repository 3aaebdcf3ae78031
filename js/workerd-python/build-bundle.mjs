#!/usr/bin/env node
// Builds workerd's development Pyodide bundle, `pyodide_dev.capnp.bin`, from the pinned npm
// packages `pyodide` and `workerd` (package-lock.json), offline, with Debian's `capnp` tool.
//
// With the compat flag `python_workers_development`, workerd loads
// `<--pyodide-bundle-disk-cache-dir>/pyodide_dev.capnp.bin` without an integrity check
// (docs/cloudflare.md §2.3). The bundle is a capnp `Bundle` message holding three
// internal modules: the Emscripten glue patched to call workerd's wrappers, the wasm binary and
// the standard library zip. The patches are plain string replacements whose purpose is listed in
// workerd's src/pyodide/helpers.bzl; the list below is ours, written for the pinned
// `pyodide.asm.mjs` and checked against it occurrence by occurrence.
//
// Deterministic: every input file and the output bundle are checked against pinned sha256
// values. When a replacement no longer matches the pinned glue, the build fails naming it.
//
// Usage: node build-bundle.mjs [OUT_DIR]   (default: ./build; prints the bundle's path)

import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const PYODIDE_DIR = join(HERE, "node_modules", "pyodide");
const WORKERD_PKG = join(HERE, "node_modules", "workerd", "package.json");

// workerd 1.20261117.1 maps Pyodide version "dev" to 314.0.6 and rejects any other version
// ("Pyodide version mismatch"): the two pins move together.
const PINNED = {
  workerd: "1.20261117.1",
  pyodide: "314.0.6",
  inputs: {
    "pyodide.asm.mjs": "2ac5eba365ec12839c75c03b39b3be1dd63b798852cc460b014b52238be042f7",
    "pyodide.asm.wasm": "3a0a00dfeaa348ac20f9ef09904233d32d33f644339662d4af368f8a2010f37a",
    "python_stdlib.zip": "80c5be6babfe03297069703410c3c29404dcf2525d2b128746bae5536f94831f",
  },
  bundle: "10772ee2cc34f3f43eb5a64b330acac07cbc4de3991709a85a75b8126572283a",
};

// The module that workerd's `pyodide-internal:emscriptenSetup` imports `_createPyodideModule` from.
const WRAPPERS = "pyodide-internal:builtin_wrappers";
const THROW_ON_EVAL =
  "(() => { throw new Error('Emscripten tried to eval code, which Python Workers forbid'); })()";

// [name, search, replace, expected occurrences in the pinned pyodide.asm.mjs]
const REPLACEMENTS = [
  // The 314 glue is already an ES module with a default export; workerd imports a named one.
  ["named export", "export default _createPyodideModule;", "export { _createPyodideModule };", 1],
  // workerd forbids runtime wasm compilation except through its checked wrappers.
  ["wasm module creation", "new WebAssembly.Module(", "newWasmModule(", 4],
  ["wasm instantiation", "WebAssembly.instantiate(", "wasmInstantiate(", 2],
  // Python's import cache needs a clock that moves between two directory writes.
  ["clock", "Date.now", "monotonicDateNow", 22],
  // Randomness goes through workerd, which refuses it while the worker module loads.
  ["randomness", "crypto.getRandomValues(", "getRandomValues(Module, ", 1],
  // No eval in a Worker.
  ["eval of EM_ASM", "eval(func)", THROW_ON_EVAL, 2],
  ["eval of a script file", "eval(data)", THROW_ON_EVAL, 1],
  ["emscripten_run_script", "eval(UTF8ToString(ptr))", THROW_ON_EVAL, 3],
];
// Deliberately not applied: the `reportUndefinedSymbols()` replacement of helpers.bzl (this
// workerd's wrappers no longer export its target) and the dynamic-library hooks (`!libData`,
// `func.apply(`), whose search strings no longer occur in the 314 glue.

// `addEventListener` and `location` shadow the globals Emscripten's browser code touches
// (workerd's addEventListener throws on useCapture=true); the others are the replacement targets.
const PRELUDE =
  `import { addEventListener, location, newWasmModule, wasmInstantiate, monotonicDateNow, ` +
  `getRandomValues } from "${WRAPPERS}";\n`;

// The `Bundle` message of workerd's src/workerd/jsg/modules.capnp, reduced to the fields the
// bundle uses. Ordinals and types fix the wire layout; names and the file id are ours.
const SCHEMA = `@0xd2a3c1e5b7f90a11;
struct Bundle {
  modules @0 :List(Module);
}
struct Module {
  name @0 :Text;
  union {
    src @1 :Data;
    wasm @4 :Data;
    data @5 :Data;
    json @6 :Text;
  }
  tsDeclaration @3 :Text;
  type @2 :ModuleType;
}
enum ModuleType {
  bundle @0;
  builtin @1;
  internal @2;
}
`;

const BUNDLE = `@0xe4b6d8f0a2c41357;
using Schema = import "bundle_schema.capnp";
const pyodideBundle :Schema.Bundle = (modules = [
  (name = "pyodideRuntime-internal:pyodide.asm", src = embed "pyodide.asm.mjs", type = internal),
  (name = "pyodideRuntime-internal:pyodide.asm.wasm", wasm = embed "pyodide.asm.wasm", type = internal),
  (name = "pyodideRuntime-internal:python_stdlib.zip", data = embed "python_stdlib.zip", type = internal),
]);
`;

function fail(message) {
  console.error(`build-bundle: ${message}`);
  process.exit(1);
}

function sha256(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

function countOccurrences(text, search) {
  let count = 0;
  for (let at = text.indexOf(search); at !== -1; at = text.indexOf(search, at + search.length)) {
    count++;
  }
  return count;
}

function checkVersions() {
  if (!existsSync(WORKERD_PKG) || !existsSync(join(PYODIDE_DIR, "package.json"))) {
    fail(`npm packages missing: run \`npm ci\` in ${HERE}`);
  }
  const workerd = JSON.parse(readFileSync(WORKERD_PKG, "utf8")).version;
  const pyodide = JSON.parse(readFileSync(join(PYODIDE_DIR, "package.json"), "utf8")).version;
  if (workerd !== PINNED.workerd || pyodide !== PINNED.pyodide) {
    fail(
      `expected workerd ${PINNED.workerd} with pyodide ${PINNED.pyodide}, found ${workerd} with ${pyodide}; ` +
        "a workerd upgrade needs the matching Pyodide and a re-checked patch list",
    );
  }
}

function readPinned(name) {
  const bytes = readFileSync(join(PYODIDE_DIR, name));
  const digest = sha256(bytes);
  if (digest !== PINNED.inputs[name]) {
    fail(`${name} has sha256 ${digest}, pinned ${PINNED.inputs[name]}`);
  }
  return bytes;
}

function patchGlue(source) {
  let text = source;
  for (const [name, search, replace, expected] of REPLACEMENTS) {
    const found = countOccurrences(text, search);
    if (found !== expected) {
      fail(`replacement "${name}" (${JSON.stringify(search)}) matched ${found} times, expected ${expected}`);
    }
    text = text.split(search).join(replace);
  }
  return PRELUDE + text;
}

function main() {
  const outDir = resolve(process.argv[2] ?? join(HERE, "build"));
  checkVersions();
  const glue = readPinned("pyodide.asm.mjs").toString("utf8");
  const wasm = readPinned("pyodide.asm.wasm");
  const stdlib = readPinned("python_stdlib.zip");

  const work = join(outDir, "src");
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, "pyodide.asm.mjs"), patchGlue(glue));
  writeFileSync(join(work, "pyodide.asm.wasm"), wasm);
  writeFileSync(join(work, "python_stdlib.zip"), stdlib);
  writeFileSync(join(work, "bundle_schema.capnp"), SCHEMA);
  writeFileSync(join(work, "bundle.capnp"), BUNDLE);

  let bundle;
  try {
    bundle = execFileSync("capnp", ["eval", "-o", "binary", "bundle.capnp", "pyodideBundle"], {
      cwd: work,
      env: { ...process.env, PWD: work },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    fail(`capnp eval failed (Debian package capnproto): ${error.message}`);
  }
  const digest = sha256(bundle);
  if (digest !== PINNED.bundle) {
    fail(`bundle sha256 ${digest}, pinned ${PINNED.bundle}`);
  }
  const target = join(outDir, "pyodide_dev.capnp.bin");
  writeFileSync(`${target}.tmp`, bundle);
  renameSync(`${target}.tmp`, target);
  console.log(target);
}

main();
