// Failures that are bugs against tests/apps/bugs: a telefunction that raises (500), a channel
// listener that raises (the acked send rejects), a streaming value that raises mid-way, and an
// Abort (not a bug). The Python side checks what its on_bug callbacks received.
import { run, attempt } from './setup.mjs'

const FILE = '/bugs.telefunc.py'

run(async (client) => {
  const call = client.__remoteTelefunctionCall
  await attempt('crash', () => call(FILE, 'crash', []))
  await attempt('refuse', () => call(FILE, 'refuse', []))
  await attempt('listener', async () => {
    const ch = await call(FILE, 'crashing_listener', [])
    try {
      return await ch.send('hello', { ack: true })
    } finally {
      ch.close()
    }
  })
  await attempt('stream', async () => {
    const seen = []
    for await (const n of await call(FILE, 'crashing_stream', [])) seen.push(n)
    return seen
  })
})
