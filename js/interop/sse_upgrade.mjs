// Both sides stream, spread over time, from before the channel opens (the first messages ride the
// initial SSE batch) until well after the client upgraded to WebSocket. The server records which
// transport carried each message; this prints the client's tallies and the server's record.
import { run, emit } from './setup.mjs'

const FILE = '/sse.telefunc.py'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

run(async (client, args) => {
  const n = Number(args[0] ?? 400)
  const call = client.__remoteTelefunctionCall
  const ch = await call(FILE, 'upgrade_flow', [n])
  const ticks = []
  let resolveAll
  const all = new Promise((r) => (resolveAll = r))
  ch.listen((msg) => {
    ticks.push(msg)
    if (ticks.length >= n) resolveAll()
  })
  const errors = []
  ch.onClose((err) => errors.push(String(err)))
  for (let i = 0; i < n; i++) {
    await ch.send(i)
    if (i % 10 === 0) await sleep(10)
  }
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('ticks timed out')), 30000))
  await Promise.race([all, timeout])
  const report = await ch.send('report', { ack: true })
  emit({ name: 'result', ticks, report, errors })
  await ch.close()
})
