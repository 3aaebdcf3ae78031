// Bundles an example's front end (examples/<name>/frontend/main.js) with esbuild into
// examples/<name>/public/bundle.js, resolving npm packages from js/node_modules.
import { build } from 'esbuild'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const jsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const example = process.argv[2] || 'chat'
const exampleDir = path.resolve(jsDir, '..', 'examples', example)

await build({
  entryPoints: [path.join(exampleDir, 'frontend', 'main.js')],
  outfile: path.join(exampleDir, 'public', 'bundle.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  conditions: ['browser'],
  nodePaths: [path.join(jsDir, 'node_modules')],
  logLevel: 'warning',
})
console.log(`bundled examples/${example}/frontend/main.js -> examples/${example}/public/bundle.js`)
