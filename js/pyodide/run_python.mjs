// Runs one Python script under real Pyodide 0.28.2 (CPython 3.13, wasm) in Node, offline.
//
//   node js/pyodide/run_python.mjs [--src DIR] [--package DIR]... [--preload MODULE.mjs]...
//                                  SCRIPT.py [ARGS...]
//
// * Pyodide is loaded from this folder's node_modules/pyodide (the npm package ships the whole
//   runtime: pyodide.asm.wasm, python_stdlib.zip, so nothing is fetched from the network).
// * Every file of the `telefunc` package under --src (default: <repo>/src) is copied into
//   Pyodide's in-memory filesystem at /lib/telefunc_src, which goes first on sys.path. Copying
//   (not a NODEFS mount) keeps Python 3.13 from writing __pycache__ into the real tree.
// * Each --package DIR (a Python package folder, e.g. the `workers` package installed from the
//   workers-runtime-sdk wheel) is copied the same way to /lib/telefunc_src/<basename>.
// * The script's own folder is copied to /lib/telefunc_script and put on sys.path too, so a
//   script can import helper modules next to it; sys.argv is [SCRIPT, ...ARGS].
// * Each --preload module is imported before Python runs and its `install(globalThis, pyodide)`
//   export is called: that is how tests register JS fakes (KV, Durable Objects, Request, ...)
//   which Python then reaches through `import js`.
// * The script runs with top-level await allowed, on Pyodide's asyncio loop (webloop); if it
//   defines main(), main() is then called and awaited (how the test snippets are written). Its
//   stdout is forwarded line by line (scripts print JSON lines); on a Python exception the
//   traceback goes to stderr and the exit code is 1. Timing goes to stderr as one JSON line.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");

function usage(message) {
  process.stderr.write(`run_python.mjs: ${message}\n`);
  process.stderr.write(
    "usage: node run_python.mjs [--src DIR] [--package DIR]... [--preload M.mjs]... SCRIPT.py [ARGS...]\n",
  );
  process.exit(2);
}

let srcDir = path.join(repo, "src");
const preloads = [];
const packages = [];
const argv = process.argv.slice(2);
while (argv.length && argv[0].startsWith("--")) {
  const flag = argv.shift();
  const value = argv.shift();
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === "--src") srcDir = path.resolve(value);
  else if (flag === "--preload") preloads.push(path.resolve(value));
  else if (flag === "--package") packages.push(path.resolve(value));
  else usage(`unknown option ${flag}`);
}
const script = argv.shift();
if (!script) usage("no script given");
const scriptPath = path.resolve(script);
const scriptArgs = argv;

const pyodideDir = path.join(here, "node_modules", "pyodide");
if (!fs.existsSync(path.join(pyodideDir, "pyodide.asm.wasm"))) {
  usage(`${pyodideDir} is missing (run: cd js/pyodide && npm ci)`);
}

// Copy a host folder into the wasm filesystem: .py files and py.typed only, no caches.
function copyTree(pyodide, hostDir, wasmDir, { recursive }) {
  pyodide.FS.mkdirTree(wasmDir);
  for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
    const hostPath = path.join(hostDir, entry.name);
    if (entry.isDirectory()) {
      if (recursive && entry.name !== "__pycache__" && !entry.name.startsWith(".")) {
        copyTree(pyodide, hostPath, `${wasmDir}/${entry.name}`, { recursive });
      }
    } else if (entry.name.endsWith(".py") || entry.name === "py.typed") {
      pyodide.FS.writeFile(`${wasmDir}/${entry.name}`, fs.readFileSync(hostPath));
    }
  }
}

const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);

const started = performance.now();
const pyodide = await loadPyodide({
  indexURL: pyodideDir + path.sep,
  // Pyodide's own startup banner must not end up among the script's JSON lines.
  stdout: (line) => process.stderr.write(`[pyodide] ${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
});
const loadedMs = performance.now() - started;

pyodide.setStdout({ batched: (line) => process.stdout.write(`${line}\n`) });
pyodide.setStderr({ batched: (line) => process.stderr.write(`${line}\n`) });

const pkgDir = path.join(srcDir, "telefunc");
if (!fs.existsSync(path.join(pkgDir, "__init__.py"))) usage(`${pkgDir} is not the telefunc package`);
copyTree(pyodide, pkgDir, "/lib/telefunc_src/telefunc", { recursive: true });
for (const pkg of packages) {
  if (!fs.existsSync(path.join(pkg, "__init__.py"))) usage(`${pkg} is not a Python package`);
  copyTree(pyodide, pkg, `/lib/telefunc_src/${path.basename(pkg)}`, { recursive: true });
}
copyTree(pyodide, path.dirname(scriptPath), "/lib/telefunc_script", { recursive: false });

for (const preload of preloads) {
  const mod = await import(pathToFileURL(preload).href);
  if (typeof mod.install !== "function") usage(`${preload} has no install(globalThis, pyodide) export`);
  await mod.install(globalThis, pyodide);
}

const setup = `
import sys
sys.path[:0] = ["/lib/telefunc_src", "/lib/telefunc_script"]
sys.argv = __import__("json").loads(${JSON.stringify(JSON.stringify([scriptPath, ...scriptArgs]))})
sys.dont_write_bytecode = True
`;

let exitCode = 0;
const runStarted = performance.now();
try {
  pyodide.runPython(setup);
  const source = fs.readFileSync(scriptPath, "utf8");
  const globals = pyodide.toPy({ __name__: "__main__", __file__: scriptPath });
  try {
    await pyodide.runPythonAsync(source, { globals, filename: scriptPath });
    // A script may instead define main() (sync or async): it is called, and awaited, here, so
    // the script stays valid Python without top-level await.
    if (globals.has("main")) {
      await pyodide.runPythonAsync("import inspect as _inspect\n_r = main()\nif _inspect.isawaitable(_r):\n    await _r\n", {
        globals,
        filename: "<run_python main>",
      });
    }
  } finally {
    globals.destroy();
  }
} catch (err) {
  // A PythonError's message is the formatted traceback.
  process.stderr.write(`${err && err.message ? err.message : String(err)}\n`);
  exitCode = 1;
}
process.stderr.write(
  `${JSON.stringify({ pyodide_load_ms: Math.round(loadedMs), script_ms: Math.round(performance.now() - runStarted) })}\n`,
);
// Python may leave timers (webloop setTimeout) behind; they must not keep Node alive.
process.exitCode = exitCode;
process.stdout.write("", () => process.exit(exitCode));
