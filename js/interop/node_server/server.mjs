// The official telefunc@0.2.23 Node server (no bundler), for the Python client's interop tests.
// Serves calc/chat/room/args.telefunc.mjs (mirrors of tests/apps/basic, tests/apps/channels,
// tests/apps/broadcast and tests/apps/streaming/args.telefunc.py) on 127.0.0.1, WebSocket channels enabled through `new Telefunc()`.
// Prints {"port": N} once listening. Run with plain `node` (NOT --conditions=browser).
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { config } from 'telefunc'
import { Telefunc } from 'telefunc/node'

const here = path.dirname(fileURLToPath(import.meta.url))
config.root = here
config.telefuncFiles = ['calc', 'chat', 'room', 'args'].map((name) => path.join(here, `${name}.telefunc.mjs`))
if (process.env.TELEFUNC_RECONNECT_TIMEOUT) {
  config.channel = { reconnectTimeout: Number(process.env.TELEFUNC_RECONNECT_TIMEOUT) }
}

const tf = new Telefunc()
const server = http.createServer(async (req, res) => {
  try {
    const handled = await tf.serve({ req, res })
    if (!handled) {
      res.statusCode = 404
      res.end('not found')
    }
  } catch (err) {
    console.error(err)
    if (!res.headersSent) res.statusCode = 500
    res.end()
  }
})
// WebSocket upgrades must be routed before the first HTTP request arrives.
tf.installWebSocket(server)
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
process.on('SIGTERM', () => process.exit(0))
