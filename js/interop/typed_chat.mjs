// A typed chat room (tests/apps/typed_chat): the server validates client messages, the client's
// acks to server sends and broadcast publishes against the channel's Python type hints.
import { run, emit, describeError } from './setup.mjs'

const FILE = '/room.telefunc.py'

const settle = (promise) =>
  promise.then((value) => ({ ok: true, value }), (err) => ({ ok: false, error: describeError(err) }))

run(async (client) => {
  const call = client.__remoteTelefunctionCall

  {
    const ch = await call(FILE, 'room', [])
    let report
    const reported = new Promise((r) => (report = r))
    ch.listen((msg) => {
      if (msg === 'answer-bool') return true
      if (msg === 'answer-string') return 'not a bool'
      report(msg)
    })
    // Fire-and-forget: the malformed one is dropped, the others reach the listener in order.
    await ch.send({ author: 'ada', text: 'one' })
    await ch.send({ author: 5, text: 'malformed' })
    await ch.send({ author: 'bob', text: 'two' })
    const counted = await settle(ch.send({ author: 'cy', text: 'three' }, { ack: true }))
    const rejected = await settle(ch.send({ author: 'eve' }, { ack: true }))
    const after = await settle(ch.send({ author: 'dan', text: 'four' }, { ack: true }))
    const server = await reported
    emit({ name: 'room', counted, rejected, after, server })
    await ch.close()
  }

  {
    const ch = await call(FILE, 'plain_room', [])
    const ok = await settle(ch.send({ author: 'a', text: 'hi' }, { ack: true }))
    const bad = await settle(ch.send('not a message', { ack: true }))
    emit({ name: 'plain', ok, bad })
    await ch.close()
  }

  {
    const ch = await call(FILE, 'news', [])
    const good = await settle(ch.publish({ author: 'a', text: 'news' }))
    const bad = await settle(ch.publish({ author: 'a', text: 7 }))
    emit({ name: 'news', good: good.ok, goodSeq: good.value?.seq, bad })
    await ch.close()
  }
})
