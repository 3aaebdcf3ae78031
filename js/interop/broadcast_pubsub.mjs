// One subscriber-and-publisher of a broadcast key (tests/apps/broadcast). Several of these run
// at once: each subscribes, proves its subscription is live (its own marker comes back), waits at
// a server-side barrier for the others, then publishes `count` messages without awaiting them one
// by one; the lead also starts `serverCount` server-side `Broadcast.publish`es. Prints everything
// it received and the receipts of its publishes.
//
// Args: <origin> <key> <who> <count> <parties|'stdin'> <lead 0|1> <serverCount> <total>
import { run, emit } from './setup.mjs'

const FILE = '/room.telefunc.py'

async function until(condition, what) {
  const deadline = Date.now() + 20000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

function nextStdinLine() {
  return new Promise((resolve) => {
    let buffered = ''
    const onData = (chunk) => {
      buffered += chunk
      if (buffered.includes('\n')) {
        process.stdin.off('data', onData)
        process.stdin.pause()
        resolve(buffered.split('\n')[0])
      }
    }
    process.stdin.setEncoding('utf8')
    process.stdin.on('data', onData)
  })
}

run(async (client, args) => {
  const [key, who, countText, partiesText, leadText, serverCountText, totalText] = args
  const count = Number(countText)
  const total = Number(totalText)
  const call = client.__remoteTelefunctionCall
  const ch = await call(FILE, 'room', [key])

  const received = []
  let markerSeen = false
  let resolveAll
  const all = new Promise((r) => (resolveAll = r))
  ch.subscribe((data, info) => {
    if (info.key !== key) throw new Error(`wrong key ${info.key}`)
    if (data.kind === 'marker') {
      if (data.who === who) markerSeen = true
      return
    }
    received.push([info.seq, data.who, data.i, info.timestamp])
    if (received.length === total) resolveAll()
  })

  // Once our own publish came back, the server forwards the key's publishes to us.
  const markerReceipt = await ch.publish({ kind: 'marker', who })
  await until(() => markerSeen, 'own marker')
  if (partiesText === 'stdin') {
    // Servers in several processes: the test is the barrier (it answers once all are ready).
    emit({ phase: 'ready', who })
    await nextStdinLine()
  } else {
    await call(FILE, 'barrier', [key, Number(partiesText)])
  }

  const serverPublishes = leadText === '1' ? call(FILE, 'server_publish', [key, Number(serverCountText), 'server']) : Promise.resolve([])
  const publishes = []
  for (let i = 0; i < count; i++) publishes.push(ch.publish({ kind: 'msg', who, i }))
  const receipts = (await Promise.all(publishes)).map((r, i) => [r.seq, i, r.timestamp, r.key])
  const serverReceipts = await serverPublishes

  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`received ${received.length}/${total}`)), 60000))
  await Promise.race([all, timeout])
  emit({ name: 'result', who, markerSeq: markerReceipt.seq, received, receipts, serverReceipts })
  await ch.close()
})
