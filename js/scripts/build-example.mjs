// Builds an example's front end in two steps:
//
//   1. `telefunc codegen examples/<name> --out examples/<name>/frontend/generated`: typed
//      TypeScript stubs for the example's *.telefunc.py files (run with the repo's Python:
//      $TELEFUNC_PYTHON, else .venv/bin/python, else python3; src/ is put on PYTHONPATH so it
//      works whether or not the package is pip-installed);
//   2. esbuild bundles examples/<name>/frontend/main.ts (or main.js), which imports those stubs,
//      with npm packages resolved from js/node_modules, into examples/<name>/public/bundle.js.
//
//   node scripts/build-example.mjs [name]      (name defaults to "chat"; run from js/)
import { build } from 'esbuild'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const jsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const repo = path.resolve(jsDir, '..')
const example = process.argv[2] || 'chat'
const exampleDir = path.join(repo, 'examples', example)
const rel = (p) => path.relative(repo, p)

function python() {
  if (process.env.TELEFUNC_PYTHON) return process.env.TELEFUNC_PYTHON
  const venv = path.join(repo, '.venv', 'bin', 'python')
  return existsSync(venv) ? venv : 'python3'
}

const generated = path.join(exampleDir, 'frontend', 'generated')
const env = {
  ...process.env,
  PYTHONPATH: [path.join(repo, 'src'), process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
}
const codegen = spawnSync(
  python(),
  ['-m', 'telefunc', 'codegen', exampleDir, '--out', generated],
  { cwd: repo, env, encoding: 'utf8' },
)
if (codegen.error || codegen.status !== 0) {
  console.error(`telefunc codegen failed for ${rel(exampleDir)}:`)
  console.error(codegen.error ? String(codegen.error) : codegen.stderr + codegen.stdout)
  process.exit(1)
}
console.log(`generated TypeScript stubs: ${rel(exampleDir)}/*.telefunc.py -> ${rel(generated)}/`)

const entry = ['main.ts', 'main.js']
  .map((name) => path.join(exampleDir, 'frontend', name))
  .find((file) => existsSync(file))
if (!entry) {
  console.error(`no frontend/main.ts or frontend/main.js in ${rel(exampleDir)}`)
  process.exit(1)
}
const outfile = path.join(exampleDir, 'public', 'bundle.js')
await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  conditions: ['browser'],
  nodePaths: [path.join(jsDir, 'node_modules')],
  logLevel: 'warning',
})
console.log(`bundled ${rel(entry)} -> ${rel(outfile)}`)
