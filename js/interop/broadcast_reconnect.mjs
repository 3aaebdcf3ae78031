// A subscriber whose WebSocket the test's TCP proxy cuts mid-stream (tests/apps/broadcast).
// The server publishes `n` ticks a few ms apart; the client also publishes `m` messages while
// the ticks flow. Prints {"phase":"midway"} once a third of the ticks arrived (the test cuts the
// connection then), and at the end everything it received.
// Args: <origin> <key> <n> <m>
import { run, emit } from './setup.mjs'

const FILE = '/room.telefunc.py'

run(async (client, args) => {
  const [key, nText, mText] = args
  const n = Number(nText)
  const m = Number(mText)
  const call = client.__remoteTelefunctionCall
  const ch = await call(FILE, 'room', [key])
  const received = []
  let ticks = 0
  let own = 0
  let announced = false
  let resolveAll
  const all = new Promise((r) => (resolveAll = r))
  const errors = []
  ch.onClose((err) => errors.push(String(err)))
  ch.subscribe((data, info) => {
    received.push([info.seq, data.kind, data.i])
    if (data.kind === 'tick') ticks++
    if (data.kind === 'own') own++
    if (!announced && ticks >= n / 3) {
      announced = true
      emit({ phase: 'midway' })
    }
    if (ticks === n && own === m + 1) resolveAll()
  })
  await ch.publish({ kind: 'own', i: -1 }) // comes back before its receipt: subscribed
  await call(FILE, 'start_ticker', [key, n])
  const receipts = []
  for (let i = 0; i < m; i++) {
    await new Promise((r) => setTimeout(r, 40))
    receipts.push(ch.publish({ kind: 'own', i }).then((r) => r.seq))
  }
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`ticks ${ticks}/${n}, own ${own}/${m + 1}`)), 60000))
  await Promise.race([all, timeout])
  const ownSeqs = await Promise.all(receipts)
  const report = await call(FILE, 'ticker_report', [key])
  emit({ name: 'result', received, ownSeqs, report, errors })
  await ch.close()
})
