// Binary publish/subscribe and unsubscribe against tests/apps/broadcast.
// Args: <origin> <unique prefix for keys>
import { run, emit } from './setup.mjs'

const FILE = '/room.telefunc.py'

async function until(condition, what) {
  const deadline = Date.now() + 20000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

run(async (client, args) => {
  const prefix = args[0]
  const call = client.__remoteTelefunctionCall

  // 1. binary: own publishBinary comes back, then server-side publishBinary calls
  {
    const key = `${prefix}-bin`
    const ch = await call(FILE, 'room', [key])
    const received = []
    let textCallbacks = 0
    ch.subscribeBinary((data, info) => received.push([info.seq, Array.from(data)]))
    ch.subscribe(() => textCallbacks++)
    const ownReceipt = await ch.publishBinary(new Uint8Array([9, 8, 7]))
    const serverSeqs = await call(FILE, 'server_publish_binary', [key, 5])
    await until(() => received.length >= 6, 'binary publishes')
    emit({ name: 'binary', ownReceipt, serverSeqs, received, textCallbacks })
    await ch.close()
  }

  // 2. unsubscribe stops delivery (the server stops sending, the transport listener goes)
  {
    const key = `${prefix}-unsub`
    const a = await call(FILE, 'room', [key])
    const b = await call(FILE, 'room', [key])
    const aGot = []
    const bGot = []
    const unsubA = a.subscribe((data) => aGot.push(data))
    const unsubB = b.subscribe((data) => bGot.push(data))
    await b.publish('first')
    await until(() => aGot.length === 1, 'first on A')
    const listenersBefore = await call(FILE, 'listener_count', [key])
    unsubA()
    // UNSUB(A) went out on the same WebSocket before B's next publish, so the server has
    // processed it by the time B gets its own publish back.
    await b.publish('second')
    const aOutSeqAfterUnsub = await call(FILE, 'channel_out_seq', [a.id])
    const listenersAfter = await call(FILE, 'listener_count', [key])
    await b.publish('third')
    await until(() => bGot.length === 3, 'third on B')
    const aOutSeqAtEnd = await call(FILE, 'channel_out_seq', [a.id])
    unsubB()
    await b.publish('fourth') // nobody listens: published (seq 4) but delivered to no one
    const listenersAtEnd = await call(FILE, 'listener_count', [key])
    emit({ name: 'unsubscribe', aGot, bGot, listenersBefore, listenersAfter, listenersAtEnd, aOutSeqAfterUnsub, aOutSeqAtEnd })
    await a.close()
    await b.close()
  }
})
