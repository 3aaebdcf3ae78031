// Both sides stream while the test's TCP proxy cuts the WebSocket mid-stream. Prints
// {"phase":"midway"} once a third of the server ticks arrived, then the final tallies.
import { run, emit } from './setup.mjs'

const FILE = '/chat.telefunc.py'

run(async (client, args) => {
  const n = Number(args[0] ?? 600)
  const call = client.__remoteTelefunctionCall
  const ch = await call(FILE, 'both_ways', [n])
  const ticks = []
  let announced = false
  let resolveAll
  const all = new Promise((r) => (resolveAll = r))
  ch.listen((msg) => {
    ticks.push(msg)
    if (!announced && ticks.length >= n / 3) {
      announced = true
      emit({ phase: 'midway' })
    }
    if (ticks.length >= n) resolveAll()
  })
  const errors = []
  ch.onClose((err) => errors.push(String(err)))
  for (let i = 0; i < n; i++) {
    await ch.send(i)
    if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5))
  }
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('ticks timed out')), 30000))
  await Promise.race([all, timeout])
  const serverGot = await ch.send('report', { ack: true })
  emit({
    name: 'result',
    ticks,
    serverGot,
    errors,
  })
  await ch.close()
})
